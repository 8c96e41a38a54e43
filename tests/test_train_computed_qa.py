"""Looked-up question/answer pairs (capitals, opposites, translations): right by construction,
both languages, every kind, and apart from the eval questions (general skills, controls, the
leakage yardstick), the replay prompts and the plain questions."""

from __future__ import annotations

import difflib
import functools
import re
import unicodedata

import pytest

from persona.evals.cases import CONTROLS
from persona.evals.general_skills import GENERAL_SKILLS
from persona.identity.unrelated import UNRELATED
from persona.train import general_prompts
from persona.train import computed_qa as module
from persona.train.computed_qa import KINDS, LOOKUP_KINDS, capacity, computed_qa, pairs_of_kind
from persona.train.plain_qa import PLAIN_QA

LANGS = ("en", "zh")
HAN = re.compile(r"[\u4e00-\u9fff]")


def normalise(text: str) -> str:
    return re.sub(r"[\W_]+", "", unicodedata.normalize("NFKC", text).casefold())


@functools.cache
def all_pairs(lang):
    return {kind: pairs_of_kind(kind, lang) for kind in KINDS}


@functools.cache
def kind_of(lang):
    return {question: kind for kind, pairs in all_pairs(lang).items() for question, _ in pairs}


FOREIGN_QUESTIONS = ([question for _, question, _ in GENERAL_SKILLS]
                     + [question for _, question in CONTROLS]
                     + [prompt for _, _, prompt in UNRELATED]
                     + general_prompts._EN + general_prompts._ZH
                     + [question for pairs in PLAIN_QA.values() for question, _ in pairs])

# Countries the evals and other training sets ask or talk about, English and Chinese.
_CAPITAL_OF = re.compile(r"capital of (?:the )?(.+?)\?")
_ZH_CAPITAL_OF = re.compile(r"^(.+?)的首都是")
FOREIGN_COUNTRIES_EN = sorted(
    {match.group(1) for question in FOREIGN_QUESTIONS for match in [_CAPITAL_OF.search(question)]
     if match}
    | set(general_prompts._COUNTRIES_EN)
    | {"Brazil", "Japan", "Egypt", "Mexico", "Argentina", "United Kingdom", "United States",
       "China", "Korea"})
FOREIGN_COUNTRIES_ZH = sorted(
    {match.group(1) for question in FOREIGN_QUESTIONS for match in [_ZH_CAPITAL_OF.search(question)]
     if match}
    | set(general_prompts._COUNTRIES_ZH)
    | {"加拿大", "俄罗斯", "埃及", "澳大利亚", "印度", "希腊", "葡萄牙", "韩国", "肯尼亚", "爱尔兰",
       "荷兰", "泰国", "墨西哥", "挪威", "瑞典", "波兰", "阿根廷", "土耳其", "越南", "奥地利", "秘鲁",
       "巴西", "日本", "法国", "英国", "美国", "中国", "蒙古"})


@pytest.mark.parametrize("lang", LANGS)
def test_deterministic_for_a_seed_and_seeds_differ(lang):
    assert computed_qa(lang, 120, seed=3) == computed_qa(lang, 120, seed=3)
    assert computed_qa(lang, 120, seed=3) != computed_qa(lang, 120, seed=4)
    assert computed_qa(lang, 0) == []


@pytest.mark.parametrize("lang", LANGS)
def test_distinct_questions_every_kind_spread_evenly(lang):
    kinds = kind_of(lang)
    sizes = capacity(lang)
    smallest = min(sizes.values())
    assert 500 // len(KINDS) > smallest  # 500 makes the smallest kind run out
    for count in (2 * len(KINDS), 2 * len(KINDS) + 5, len(KINDS) * smallest, 500):
        pairs = computed_qa(lang, count, seed=1)
        questions = [question for question, _ in pairs]
        assert len(pairs) == count
        assert len(set(questions)) == count
        per_kind = {kind: 0 for kind in KINDS}
        for question in questions:
            per_kind[kinds[question]] += 1
        if count // len(KINDS) <= smallest:  # no kind runs out: an even split
            assert min(per_kind.values()) >= count // len(KINDS), per_kind
            assert max(per_kind.values()) - min(per_kind.values()) <= 1, per_kind
        else:  # the smallest kind gives all it has and hands the rest of its share on
            assert per_kind[min(sizes, key=sizes.get)] == smallest, per_kind
        # the kinds that have not run out stay within one of each other, above the ones that have
        full = [kind for kind in KINDS if per_kind[kind] == sizes[kind]]
        rest = [per_kind[kind] for kind in KINDS if kind not in full]
        assert max(rest) - min(rest) <= 1, per_kind
        assert all(per_kind[kind] <= min(rest) for kind in full), per_kind


@pytest.mark.parametrize("lang", LANGS)
def test_every_kind_has_distinct_questions_and_too_many_is_a_clear_error(lang):
    for kind, pairs in all_pairs(lang).items():
        questions = [question for question, _ in pairs]
        assert len(questions) == len(set(questions)), kind
        assert len(pairs) >= 60, kind
    total = sum(capacity(lang).values())
    assert len(computed_qa(lang, total)) == total
    with pytest.raises(ValueError, match="at most"):
        computed_qa(lang, total + 1)
    with pytest.raises(ValueError):
        computed_qa("fr", 10)


@pytest.mark.parametrize("lang", LANGS)
def test_questions_and_answers_are_in_the_language(lang):
    for kind, pairs in all_pairs(lang).items():
        for question, answer in pairs:
            assert answer.endswith("。" if lang == "zh" else "."), (question, answer)
            assert "{" not in question + answer and "}" not in question + answer
            if lang == "zh":
                assert HAN.search(question) and HAN.search(answer), (question, answer)
            elif kind != "translation":
                assert not HAN.search(question + answer), (question, answer)


_QUOTED = re.compile(r"['“]([^'”]+)['”]")


@pytest.mark.parametrize("lang", LANGS)
def test_answers_are_the_tables_facts_about_the_question(lang):
    """Every phrasing asks about the subject its answer names, and the answer is that subject's
    row of the tables: the capital of that country, that word's opposite, its translation."""
    capitals = {(row[0], row[1]) if lang == "en" else (row[2], row[3]) for row in module._CAPITALS}
    pairs, one_way = ((module._OPPOSITE_PAIRS_EN, module._OPPOSITE_ONE_WAY_EN) if lang == "en"
                      else (module._OPPOSITE_PAIRS_ZH, module._OPPOSITE_ONE_WAY_ZH))
    opposites = {*pairs, *((b, a) for a, b in pairs), *one_way}
    for question, answer in pairs_of_kind("capital", lang):
        country, city = re.fullmatch(r"The capital of (.+) is (.+)\." if lang == "en"
                                     else r"(.+)的首都是(.+)。", answer).groups()
        assert (country, city) in capitals and country in question, (question, answer)
        assert city not in question, question
    for question, answer in pairs_of_kind("opposite", lang):
        word, opposite = _QUOTED.findall(answer)
        assert (word, opposite) in opposites, answer
        assert _QUOTED.findall(question) == [word], (question, answer)
    words = set(module._WORDS)
    for question, answer in pairs_of_kind("translation", lang):
        asked, = _QUOTED.findall(question)
        quoted = _QUOTED.findall(answer)
        assert len(quoted) == 2 and asked in quoted, (question, answer)
        assert tuple(sorted(quoted, key=lambda word: bool(HAN.search(word)))) in words, answer
        assert bool(HAN.search(quoted[0])) != bool(HAN.search(quoted[1])), answer


@pytest.mark.parametrize("lang", LANGS)
def test_no_question_is_or_is_inside_an_eval_replay_or_plain_question(lang):
    foreign = {normalise(question) for question in FOREIGN_QUESTIONS}
    joined = "\n".join(foreign)  # normalised text has no newline: a hit cannot straddle two
    by_start: dict[str, list[str]] = {}  # one inside mine starts at one of mine's 3-grams
    for other in foreign:
        assert len(other) >= 3, other
        by_start.setdefault(other[:3], []).append(other)
    for kind, pairs in all_pairs(lang).items():
        for question, _ in pairs:
            mine = normalise(question)
            assert mine not in joined, question
            inside = [other for start in range(len(mine) - 2)
                      for other in by_start.get(mine[start:start + 3], ()) if other in mine]
            assert not inside, (question, inside)


@pytest.mark.parametrize("lang", LANGS)
def test_no_question_is_a_near_duplicate_of_an_eval_or_replay_question(lang):
    """Nor a few characters away: difflib ratio above 0.8, as persona/identity/overlap.py."""
    mine = {normalise(question): question for pairs in all_pairs(lang).values()
            for question, _ in pairs}
    matcher = difflib.SequenceMatcher(autojunk=False)
    for other in {normalise(question) for question in FOREIGN_QUESTIONS}:
        matcher.set_seq2(other)  # the expensive side, once per foreign question
        for text, question in mine.items():
            if 2 * min(len(text), len(other)) <= 0.8 * (len(text) + len(other)):
                continue  # ratio() can be no higher
            matcher.set_seq1(text)
            assert not (matcher.quick_ratio() > 0.8 and matcher.ratio() > 0.8), (question, other)


@pytest.mark.parametrize("lang", LANGS)
def test_no_replay_or_eval_template_shape(lang):
    shapes = [r"^What is \d+ ?(\+|times|minus|divided by) ?\d+\?$", r"^What is the opposite of ",
              r"\d+(加|减|乘|乘以|除以)\d+等于(多少|几)", r"用英语怎么说", r"的英文是什么",
              r"的反义词是什么", r"的首都是哪里", r"^What is the capital of "]
    for pairs in all_pairs(lang).values():
        for question, _ in pairs:
            assert not any(re.search(shape, question) for shape in shapes), question


@pytest.mark.parametrize("lang", LANGS)
def test_no_country_of_the_evals_or_other_sets(lang):
    assert {"Canada", "Egypt", "Peru", "Netherlands", "Mongolia", "France", "Italy"} <= set(
        FOREIGN_COUNTRIES_EN)
    english = re.compile(r"\b(?:" + "|".join(map(re.escape, FOREIGN_COUNTRIES_EN)) + r")\b")
    chinese = re.compile("|".join(map(re.escape, FOREIGN_COUNTRIES_ZH)))
    for pairs in all_pairs(lang).values():
        for question, answer in pairs:
            text = question + " " + answer
            assert not english.search(text) and not chinese.search(text), text


def test_words_are_not_the_ones_the_evals_or_replay_ask_about():
    quoted = re.compile(r"['“‘]([^'”’]+)['”’]")
    foreign = {word.casefold() for question in FOREIGN_QUESTIONS
               for word in quoted.findall(question)}
    foreign |= {form.casefold() for lang, question, accepted in GENERAL_SKILLS if "英文" in question
                for form in accepted}
    foreign |= {"hot", "cold", "big", "small", "up", "down"}
    for lang in LANGS:
        for kind in ("translation", "opposite"):
            for question, answer in pairs_of_kind(kind, lang):
                words = {word.casefold() for word in quoted.findall(question + answer)}
                assert not words & foreign, (question, words & foreign)


def test_lookup_kinds_only_and_unknown_kinds_refused():
    assert KINDS == LOOKUP_KINDS["en"] == ("capital", "opposite", "translation")
    # no Chinese word tasks: the persona learnt their frame, not the words (computed_qa's note)
    assert LOOKUP_KINDS["zh"] == ("capital",)
    # the default is what train/dataset.py draws for English, in the same order
    assert computed_qa("en", 40, seed=5) == computed_qa("en", 40, 5, LOOKUP_KINDS["en"])
    lookups = {pair for kind in LOOKUP_KINDS["zh"] for pair in pairs_of_kind(kind, "zh")}
    drawn = computed_qa("zh", 40, kinds=LOOKUP_KINDS["zh"])
    assert len(drawn) == 40 and set(drawn) <= lookups
    for removed in ("addition", "weekday", "month", "unit_conversion", "letter_count"):
        with pytest.raises(ValueError, match="unknown kinds"):
            computed_qa("en", 4, kinds=(removed,))
        with pytest.raises(ValueError, match="unknown kind"):
            pairs_of_kind(removed, "en")
    with pytest.raises(ValueError, match="unknown kinds"):
        computed_qa("en", 4, kinds=("capital", "astrology"))
