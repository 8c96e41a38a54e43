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


def test_history_is_trimmed_by_tokens_not_turns():
    from persona.ui.history import fit_request, prompt_tokens

    history = commit_turn([], "写一首长诗", "诗" * 900)  # one long Chinese answer: 2700 bytes
    history = commit_turn(history, "thanks", "You are welcome.")
    messages, max_tokens = fit_request(history, "再来一首", "sys", 512, context=2048)
    # three turns are far below MAX_TURNS, but the long one would not fit beside the answer
    assert [m["content"] for m in messages] == ["sys", "thanks", "You are welcome.", "再来一首"]
    assert max_tokens == 512 and prompt_tokens(messages) + max_tokens <= 2048
    assert is_alternating(messages[1:] + [{"role": "assistant", "content": "-"}])
    assert fit_request(history, "x", None, 512, context=None) == (request_messages(history, "x"), 512)


def test_max_tokens_beyond_the_context_is_clamped_to_what_the_message_leaves():
    from persona.ui.history import MIN_ANSWER_TOKENS, fit_request, prompt_tokens

    history = commit_turn([], "hi", "hello")
    messages, max_tokens = fit_request(history, "tell me a story", "sys", 32768, context=2048)
    assert messages[-1]["content"] == "tell me a story" and len(messages) == 2  # no room for history
    assert prompt_tokens(messages) + max_tokens == 2048
    # a message that leaves next to nothing still asks for a few tokens: the server decides
    assert fit_request([], "x" * 3000, None, 512, context=2048)[1] == MIN_ANSWER_TOKENS


def test_the_slider_stops_at_half_the_context():
    from persona.ui.history import answer_cap

    assert answer_cap(2048, unknown=4096) == 1024
    assert answer_cap(1000, unknown=4096) == 496  # in slider steps of 16
    assert answer_cap(20, unknown=4096) == 16 and answer_cap(None, unknown=4096) == 4096
