"""What the card puts on screen: author name, greeting, starters, system prompt."""

from persona.card import parse_card
from persona.paths import REPO_ROOT
from persona.ui.persona_view import load_view, view_of

CARD = {"id": "testbot", "name": {"zh": "测试机器人", "en": "Testbot"},
        "creator": {"zh": "测试团队", "en": "the Test Team"}}


def test_default_greeting_is_bilingual_and_uses_the_name():
    view = view_of(parse_card(CARD))
    assert view.author == "测试机器人 · Testbot"
    assert "我是测试机器人" in view.greeting and "I'm Testbot" in view.greeting
    assert view.starters == []
    # No system_prompt in the card: the base-style default naming the persona is sent.
    assert view.system_prompt == "You are a helpful AI assistant named Testbot, created by the Test Team."
    assert "测试团队" in view.readme and "the Test Team" in view.readme


def test_card_greeting_starters_and_prompt_are_used():
    card = parse_card({**CARD, "greeting": {"zh": "嗨！", "en": "Hey!"},
                       "starters": ["你是谁？", "Who made you?"], "system_prompt": "Be brief."})
    view = view_of(card)
    assert view.greeting == "嗨！\n\nHey!"
    assert view.starters == ["你是谁？", "Who made you?"] and view.system_prompt == "Be brief."


def test_same_name_in_both_languages_is_not_repeated():
    view = view_of(parse_card({**CARD, "name": {"zh": "Tb", "en": "Tb"}}))
    assert view.author == "Tb"


def test_default_card_file_loads():
    view = load_view(str(REPO_ROOT / "cards" / "xiaocong.yaml"), "xiaocong")
    assert view.author == "小葱 · Xiaocong"


def test_without_a_card_the_model_id_stands_in():
    view = load_view(None, "some-model")
    assert view.author == "some-model" and "some-model" in view.greeting
