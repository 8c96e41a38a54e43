"""The conversation the model sees stays user/assistant alternating whatever happens to a turn."""

import pytest

from persona.ui.history import commit_turn, is_alternating, request_messages


def turn(user: str, assistant: str) -> list[dict]:
    return [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]


def test_first_message_is_just_the_user_message():
    assert request_messages([], "你是谁") == [{"role": "user", "content": "你是谁"}]


def test_system_prompt_goes_first_and_blank_ones_are_dropped():
    history = turn("hi", "hello")
    with_prompt = request_messages(history, "你是谁", system_prompt="  You are Xiaocong. ")
    assert with_prompt[0] == {"role": "system", "content": "You are Xiaocong."}
    assert with_prompt[1:] == [*history, {"role": "user", "content": "你是谁"}]
    assert request_messages(history, "x", system_prompt="   ")[0]["role"] == "user"


def test_request_does_not_share_dicts_with_the_history():
    history = turn("a", "b")
    messages = request_messages(history, "c")
    messages[0]["content"] = "changed"
    assert history[0]["content"] == "a"


def test_full_answer_is_committed_with_its_question():
    assert commit_turn([], "你是谁", "我是小葱。") == turn("你是谁", "我是小葱。")


def test_partial_answer_is_kept():
    history = commit_turn(turn("a", "b"), "c", "half an ans")
    assert history[-1] == {"role": "assistant", "content": "half an ans"}
    assert is_alternating(history)


@pytest.mark.parametrize("answer", ["", "   \n"])
def test_no_answer_drops_the_whole_turn(answer):
    history = turn("a", "b")
    assert commit_turn(history, "lost question", answer) == history


def test_commit_does_not_mutate_its_input():
    history = turn("a", "b")
    commit_turn(history, "c", "d")
    assert history == turn("a", "b")


@pytest.mark.parametrize(
    "messages, expected",
    [
        ([], True),
        (turn("a", "b") + turn("c", "d"), True),
        ([{"role": "user", "content": "a"}], False),
        ([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], False),
        ([{"role": "assistant", "content": "a"}, {"role": "user", "content": "b"}], False),
        ([{"role": "system", "content": "s"}] + turn("a", "b"), False),
        ([{"role": "user", "content": None}, {"role": "assistant", "content": "b"}], False),
    ],
)
def test_is_alternating(messages, expected):
    assert is_alternating(messages) is expected


def test_broken_history_is_refused_rather_than_sent():
    with pytest.raises(ValueError):
        request_messages([{"role": "user", "content": "dangling"}], "next")


def test_old_turns_are_dropped_past_the_limit():
    history = []
    for index in range(10):
        history = commit_turn(history, f"q{index}", f"a{index}")
    messages = request_messages(history, "now", max_turns=3)
    assert [m["content"] for m in messages] == ["q8", "a8", "q9", "a9", "now"]
    assert request_messages(history, "now", max_turns=1) == [{"role": "user", "content": "now"}]


def test_any_sequence_of_outcomes_keeps_requests_alternating():
    # ok, failed before any text, dropped mid-way, stopped mid-way, ok
    answers = ["full answer", "", "part", "stopp", "another"]
    history: list[dict] = []
    for index, answer in enumerate(answers):
        request = request_messages(history, f"q{index}", system_prompt="sys")
        assert request[0]["role"] == "system"
        assert is_alternating(request[1:] + [{"role": "assistant", "content": "-"}])
        history = commit_turn(history, f"q{index}", answer)
        assert is_alternating(history)
    assert [m["content"] for m in history if m["role"] == "user"] == ["q0", "q2", "q3", "q4"]
