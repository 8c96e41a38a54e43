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
