"""The persona card: a valid card loads; a bad one names the field and the fix."""

import pytest

from persona.card import CardError, load_card, parse_card
from persona.commands import DEFAULT_CARD

VALID = {"id": "xiaocong", "name": {"zh": "小葱", "en": "Xiaocong"},
         "creator": {"zh": "不要葱姜蒜大佬", "en": "Master No-Scallion"},
         "base": "smollm2-135m-instruct"}


def test_example_card_loads():
    card = load_card(DEFAULT_CARD)
    assert card.id == "xiaocong"
    assert card.name.zh == "小葱" and card.creator.en == "Master No-Scallion"
    assert "小葱" in card.intro("zh") and "Xiaocong" in card.intro("en")


@pytest.mark.parametrize("change, field, hint", [
    ({"id": "Xiao Cong"}, "id", "lowercase"),
    ({"name": {"zh": "", "en": "X"}}, "name.zh", "must not be empty"),
    ({"name": {"zh": "小葱"}}, "name.en", "is required"),
    ({"creator": None}, "creator", ""),
    ({"base": "  "}, "base", "preset"),
    ({"nmae": "typo"}, "nmae", "not a card field"),
])
def test_bad_card_names_field_and_fix(change, field, hint):
    with pytest.raises(CardError) as caught:
        parse_card({**VALID, **change}, "my-card.yaml")
    message = str(caught.value)
    assert "my-card.yaml" in message
    assert f"  {field}:" in message
    assert hint in message


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(CardError, match="no such card file"):
        load_card(tmp_path / "absent.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("id: [unclosed\n")
    with pytest.raises(CardError, match="not valid YAML"):
        load_card(broken)
    listed = tmp_path / "list.yaml"
    listed.write_text("- just\n- a list\n")
    with pytest.raises(CardError, match="expected a YAML mapping"):
        load_card(listed)


@pytest.mark.parametrize("change, field, hint", [
    ({"id": "xiaocong\n"}, "id", "not a valid id"),  # `$` let a trailing newline through
    ({"name": {"zh": "小葱", "en": "{v2}"}}, "name.en", "'{v2}'"),
    ({"creator": {"zh": "{name}", "en": "Maker"}}, "creator.zh", "remove the braces"),
    ({"system_prompt": "You are {name}."}, "system_prompt", "placeholder"),
    ({"description": {"zh": "助手", "en": "a {role} helper"}}, "description.en", "placeholder"),
    ({"name": {"zh": "小葱", "en": "X\ud800"}}, "name.en", "lone surrogate"),
    ({"creator": {"zh": "\udfff", "en": "Maker"}}, "creator.zh", "write the character itself"),
    ({"system_prompt": "Hi \ud800"}, "system_prompt", "lone surrogate"),
    ({"starters": ["ok", "\ud800"]}, "starters", "starter 2 holds a lone surrogate"),
])
def test_text_the_templates_or_utf8_cannot_take_is_refused_at_load(change, field, hint):
    with pytest.raises(CardError) as caught:
        parse_card({**VALID, **change}, "my-card.yaml")
    message = str(caught.value)
    assert f"  {field}:" in message and hint in message


@pytest.mark.parametrize("field, make, limit", [
    ("name.en", lambda text: {"name": {"zh": "小葱", "en": text}}, 40),
    ("creator.zh", lambda text: {"creator": {"zh": text, "en": "Maker"}}, 60),
    ("system_prompt", lambda text: {"system_prompt": text}, 1000),
])
def test_lengths_are_limited_with_field_limit_and_length_named(field, make, limit):
    parse_card({**VALID, **make("x" * limit)})  # at the limit: fine
    with pytest.raises(CardError) as caught:
        parse_card({**VALID, **make("x" * (limit + 7))}, "long.yaml")
    assert f"  {field}: is {limit + 7} characters long; the limit is {limit}: shorten it" \
        in str(caught.value)


def test_the_limits_fit_every_example_card():
    from persona.card import SYSTEM_PROMPT_LIMIT, Creator, Name
    from persona.paths import REPO_ROOT

    cards = [load_card(path) for folder in ("cards", "benchmarks/cards")
             for path in sorted((REPO_ROOT / folder).glob("*.yaml"))]
    assert len(cards) >= 3
    for card in cards:
        assert max(len(card.name.zh), len(card.name.en)) <= Name.limit // 2
        assert max(len(card.creator.zh), len(card.creator.en)) <= Creator.limit // 2
        assert len(card.default_system_prompt()) <= SYSTEM_PROMPT_LIMIT // 4


def test_yaml_escapes_are_checked_too(tmp_path):
    card = tmp_path / "escaped.yaml"
    card.write_text('id: xiaocong\nname: {zh: 小葱, en: "X\\ud800"}\n'
                    "creator: {zh: 大佬, en: Maker}\n", encoding="utf-8")
    with pytest.raises(CardError, match=r"escaped\.yaml(.|\n)*  name\.en: holds a lone surrogate"):
        load_card(card)


def test_a_card_that_is_not_utf8_is_a_card_error_naming_the_file(tmp_path):
    card = tmp_path / "latin1.yaml"
    card.write_bytes("id: xiaocong\nname: {zh: Xiaocong, en: Café}\n".encode("latin-1"))
    with pytest.raises(CardError) as caught:
        load_card(card)
    message = str(caught.value)
    assert str(card) in message and "not UTF-8" in message and "save the card as UTF-8" in message


def test_remote_code_is_off_unless_the_card_says_so():
    assert parse_card(VALID).trust_remote_code is False
    assert parse_card({**VALID, "trust_remote_code": True}).trust_remote_code is True
