"""What a stored answer records, and the session a stored thread gives back (ui/threads.py)."""

from __future__ import annotations

import json

from persona.ui.history import commit_turn, request_messages
from persona.ui.profiles import Profile, pick_or_add
from persona.ui.persona_view import load_view
from persona.ui.threads import answer_metadata, is_answer, resume

SYSTEM = "You are Xiaocong."


def user(text):
    return {"role": "user", "content": text}


def assistant(text):
    return {"role": "assistant", "content": text}


def answer_step(at: str, past: list, question: str, text: str, persona="xiaocong", **extra) -> dict:
    sent = request_messages(past, question, SYSTEM)
    return {"type": "assistant_message", "createdAt": at, "output": text,
            "metadata": answer_metadata(persona, persona, sent), **extra}


def test_the_metadata_keys_the_feedback_export_reads():
    sent = [{"role": "system", "content": SYSTEM}, user("hi")]
    metadata = answer_metadata("xiaocong", "xiaocong-v2", sent)
    assert metadata == {"persona_id": "xiaocong", "model": "xiaocong-v2", "messages": sent}
    assert metadata["messages"] is not sent and json.loads(json.dumps(metadata)) == metadata


def test_resume_replays_the_answers_in_order():
    first = answer_step("2026-01-01T00:00:02Z", [], "你是谁", "我是小葱")
    past = commit_turn([], "你是谁", "我是小葱")
    second = answer_step("2026-01-01T00:00:04Z", past, "Who made you?", "The team")
    steps = [
        second,  # stored out of order: resume sorts by time
        {"type": "system_message", "createdAt": "2026-01-01T00:00:00Z", "output": "你好！",
         "metadata": {}},
        {"type": "user_message", "createdAt": "2026-01-01T00:00:01Z", "output": "你是谁"},
        first,
        {"type": "user_message", "createdAt": "2026-01-01T00:00:03Z", "output": "Who made you?"},
    ]
    resumed = resume({"id": "t", "steps": steps})
    assert resumed.history == [user("你是谁"), assistant("我是小葱"),
                               user("Who made you?"), assistant("The team")]
    assert (resumed.persona_id, resumed.model) == ("xiaocong", "xiaocong")


def test_notes_errors_and_empty_answers_are_not_turns():
    past = commit_turn([], "hi", "hello")
    steps = [
        answer_step("1", [], "hi", "hello"),
        {"type": "assistant_message", "createdAt": "2", "output": "⚠️ HTTP 500", "isError": True,
         "metadata": answer_metadata("xiaocong", "xiaocong", [user("x")])},
        {"type": "assistant_message", "createdAt": "3", "output": "(The model returned an empty answer.)",
         "metadata": {}},
        answer_step("4", past, "again", "   "),
        {"type": "assistant_message", "createdAt": "5", "output": "no request", "metadata":
         {"persona_id": "xiaocong", "messages": []}},
    ]
    assert resume({"steps": steps}).history == past


def test_metadata_stored_as_text_is_read_too():
    step = answer_step("1", [], "hi", "hello")
    step["metadata"] = json.dumps(step["metadata"])
    assert is_answer(step) and resume({"steps": [step]}).history == commit_turn([], "hi", "hello")
    assert not is_answer({**step, "metadata": "{not json"})


def test_a_thread_without_answers_names_no_persona():
    resumed = resume({"steps": [{"type": "system_message", "output": "你好", "metadata": {}}]})
    assert resumed.history == [] and resumed.persona_id is None and resumed.model is None
    assert resume({}).history == []


def test_the_persona_of_the_latest_answer_is_resumed():
    first = answer_step("1", [], "hi", "hello", persona="lingxi")
    second = answer_step("2", commit_turn([], "hi", "hello"), "and?", "more", persona="xiaocong")
    assert resume({"steps": [first, second]}).persona_id == "xiaocong"


def test_a_resumed_persona_the_server_no_longer_lists_keeps_its_profile():
    offered = [Profile("xiaocong", load_view(None, "xiaocong"), default=True)]
    assert pick_or_add(offered, "xiaocong", {}) is offered[0]
    gone = pick_or_add(offered, "mystery-7b", {})
    assert gone.model == "mystery-7b" and gone.view.author == "mystery-7b"
