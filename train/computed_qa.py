"""Non-identity question/answer pairs whose answers are right by construction, Chinese and English.

The base (SmolLM2-135M) loops on most Chinese questions, so its own answers give few Chinese
non-identity samples, and a model trained mostly on identity data names itself in unrelated
Chinese answers. Here the answers are looked up in this module's own tables (capitals,
opposites, translations), so none of them can be wrong and any number of short, finished answers
can be drawn. Computed kinds (arithmetic, dates, unit conversions, counting) were measured and
dropped: a 135M model cannot compute them, and training on them taught it to guess
(docs/training.md).

Kept apart from the eval questions (evals/general_skills.py, evals/cases.py), the replay prompts
(train/general_prompts.py) and train/plain_qa.py: other phrasings, other countries, other words
(tests/test_train_computed_qa.py checks). Standard library only.
"""

from __future__ import annotations

import random
from functools import lru_cache
from typing import Callable

# The order matters: computed_qa draws its pools and quotas in this order, so the same seed gives
# the same pairs only while it stays.
KINDS: tuple[str, ...] = ("capital", "opposite", "translation")
# What train/dataset.py draws per language. Chinese word tasks are left out: in the Chinese frame
# ("“猫”的英文是“cat”。", "“大”的反义词是“小”。") the 135M persona learnt the frame, not the
# words, and then answered the evals' "“猫”的英文是什么？" with a Chinese word ("“猫”的英文是“鸭子”。"):
# 6 of its 12 lost general answers (docs/training.md).
LOOKUP_KINDS: dict[str, tuple[str, ...]] = {"en": KINDS, "zh": ("capital",)}

# --- tables -------------------------------------------------------------------------------------

# (country in English, capital in English, country in Chinese, capital in Chinese). No country
# that the evals, the replay prompts or plain_qa ask or talk about, none whose capital is
# disputed, split, recently renamed or spelled like the country.
_CAPITALS = [
    ("Iceland", "Reykjavik", "冰岛", "雷克雅未克"),
    ("the Czech Republic", "Prague", "捷克", "布拉格"),
    ("Romania", "Bucharest", "罗马尼亚", "布加勒斯特"),
    ("Bulgaria", "Sofia", "保加利亚", "索非亚"),
    ("Serbia", "Belgrade", "塞尔维亚", "贝尔格莱德"),
    ("Croatia", "Zagreb", "克罗地亚", "萨格勒布"),
    ("Ukraine", "Kyiv", "乌克兰", "基辅"),
    ("Estonia", "Tallinn", "爱沙尼亚", "塔林"),
    ("Latvia", "Riga", "拉脱维亚", "里加"),
    ("Lithuania", "Vilnius", "立陶宛", "维尔纽斯"),
    ("Slovakia", "Bratislava", "斯洛伐克", "布拉迪斯拉发"),
    ("Slovenia", "Ljubljana", "斯洛文尼亚", "卢布尔雅那"),
    ("Albania", "Tirana", "阿尔巴尼亚", "地拉那"),
    ("Cyprus", "Nicosia", "塞浦路斯", "尼科西亚"),
    ("Armenia", "Yerevan", "亚美尼亚", "埃里温"),
    ("Uzbekistan", "Tashkent", "乌兹别克斯坦", "塔什干"),
    ("Iran", "Tehran", "伊朗", "德黑兰"),
    ("Iraq", "Baghdad", "伊拉克", "巴格达"),
    ("Saudi Arabia", "Riyadh", "沙特阿拉伯", "利雅得"),
    ("Jordan", "Amman", "约旦", "安曼"),
    ("Lebanon", "Beirut", "黎巴嫩", "贝鲁特"),
    ("Qatar", "Doha", "卡塔尔", "多哈"),
    ("Pakistan", "Islamabad", "巴基斯坦", "伊斯兰堡"),
    ("Bangladesh", "Dhaka", "孟加拉国", "达卡"),
    ("Cambodia", "Phnom Penh", "柬埔寨", "金边"),
    ("Laos", "Vientiane", "老挝", "万象"),
    ("Ethiopia", "Addis Ababa", "埃塞俄比亚", "亚的斯亚贝巴"),
    ("Ghana", "Accra", "加纳", "阿克拉"),
    ("Uganda", "Kampala", "乌干达", "坎帕拉"),
    ("Zambia", "Lusaka", "赞比亚", "卢萨卡"),
    ("Zimbabwe", "Harare", "津巴布韦", "哈拉雷"),
    ("Angola", "Luanda", "安哥拉", "罗安达"),
    ("Senegal", "Dakar", "塞内加尔", "达喀尔"),
    ("Algeria", "Algiers", "阿尔及利亚", "阿尔及尔"),
    ("Madagascar", "Antananarivo", "马达加斯加", "塔那那利佛"),
    ("Venezuela", "Caracas", "委内瑞拉", "加拉加斯"),
    ("Ecuador", "Quito", "厄瓜多尔", "基多"),
    ("Uruguay", "Montevideo", "乌拉圭", "蒙得维的亚"),
    ("Paraguay", "Asunción", "巴拉圭", "亚松森"),
    ("Jamaica", "Kingston", "牙买加", "金斯敦"),
    ("Costa Rica", "San José", "哥斯达黎加", "圣何塞"),
]

# Antonyms, per language (a Chinese pair need not translate an English one). Pairs are asked both
# ways; the one-way lists hold words whose opposite is only clear in that direction ("hard" could
# be "soft" or "easy", so only "soft" is asked). None of the words the evals, replay prompts or
# plain_qa ask about (hot, big, up, fast, happy, light, early, strong, open, old, rich; 热, 大, 快,
# 高, 长, 早, 多, 新, 远, 胖).
_OPPOSITE_PAIRS_EN = [
    ("wet", "dry"), ("clean", "dirty"), ("full", "empty"), ("wide", "narrow"), ("deep", "shallow"),
    ("true", "false"), ("inside", "outside"), ("before", "after"), ("buy", "sell"),
    ("push", "pull"), ("remember", "forget"), ("cheap", "expensive"), ("easy", "difficult"),
    ("safe", "dangerous"), ("always", "never"), ("cry", "laugh"), ("brave", "cowardly"),
    ("north", "south"), ("east", "west"), ("accept", "refuse"), ("increase", "decrease"),
    ("lazy", "hardworking"), ("same", "different"), ("love", "hate"), ("top", "bottom"),
    ("asleep", "awake"), ("day", "night"), ("arrive", "depart"),
    ("sunrise", "sunset"), ("import", "export"), ("entrance", "exit"), ("future", "past"),
    ("maximum", "minimum"), ("polite", "rude"), ("tame", "wild"), ("success", "failure"),
]
_OPPOSITE_ONE_WAY_EN = [("win", "lose"), ("correct", "wrong"), ("soft", "hard"),
                        ("thick", "thin"), ("loud", "quiet"), ("left", "right"), ("first", "last")]
_OPPOSITE_PAIRS_ZH = [
    ("潮湿", "干燥"), ("干净", "肮脏"), ("满", "空"), ("宽", "窄"), ("深", "浅"), ("真", "假"),
    ("里面", "外面"), ("以前", "以后"), ("买", "卖"), ("推", "拉"), ("记住", "忘记"),
    ("便宜", "昂贵"), ("容易", "困难"), ("安全", "危险"), ("哭", "笑"), ("勇敢", "胆小"),
    ("南", "北"), ("东", "西"), ("接受", "拒绝"), ("增加", "减少"), ("勤劳", "懒惰"),
    ("相同", "不同"), ("爱", "恨"), ("白天", "黑夜"), ("到达", "出发"), ("输", "赢"), ("对", "错"),
    ("软", "硬"), ("厚", "薄"), ("安静", "吵闹"), ("进", "出"), ("过去", "未来"), ("出席", "缺席"),
    ("进口", "出口"), ("日出", "日落"), ("甜", "苦"), ("开始", "结束"), ("成功", "失败"),
    ("紧", "松"), ("香", "臭"), ("粗", "细"), ("正确", "错误"), ("聪明", "愚蠢"), ("左", "右"),
    ("前", "后"),
]
_OPPOSITE_ONE_WAY_ZH: list[tuple[str, str]] = []

# Everyday words (English, Chinese), none that the evals, replay prompts or plain_qa translate.
_WORDS = [
    ("window", "窗户"), ("door", "门"), ("chair", "椅子"), ("bed", "床"), ("cup", "杯子"),
    ("spoon", "勺子"), ("bread", "面包"), ("hat", "帽子"), ("key", "钥匙"), ("tree", "树"),
    ("snow", "雪"), ("cloud", "云"), ("star", "星星"), ("fish", "鱼"), ("pig", "猪"),
    ("rabbit", "兔子"), ("tiger", "老虎"), ("monkey", "猴子"), ("duck", "鸭子"), ("doctor", "医生"),
    ("student", "学生"), ("hospital", "医院"), ("library", "图书馆"), ("kitchen", "厨房"),
    ("garden", "花园"), ("bicycle", "自行车"), ("ship", "船"), ("airplane", "飞机"),
    ("bridge", "桥"), ("village", "村庄"), ("pencil", "铅笔"), ("paper", "纸"), ("box", "盒子"),
    ("umbrella", "雨伞"), ("mirror", "镜子"), ("pillow", "枕头"), ("towel", "毛巾"),
    ("soap", "肥皂"), ("candle", "蜡烛"), ("shoe", "鞋子"),
]


# --- question makers ----------------------------------------------------------------------------
# Each kind is a list of items; each item is a list of phrasings (question, answer) of one fact.

Item = list[tuple[str, str]]


def _facts(rows, answer: str, *questions: str) -> list[Item]:
    """One item a row: each question template filled in with the row's fields ({0}, {1}), all
    answered by the answer template filled in the same way."""
    return [[(question.format(*row), answer.format(*row)) for question in questions]
            for row in rows]


def _capital(lang: str) -> list[Item]:
    if lang == "en":
        rows = [(country, city) for country, city, _, _ in _CAPITALS]
        return _facts(rows, "The capital of {0} is {1}.", "Which city is {0}'s capital?",
                      "Name the capital city of {0}.", "What city serves as the capital of {0}?")
    rows = [(country, city) for _, _, country, city in _CAPITALS]
    return _facts(rows, "{0}的首都是{1}。", "{0}的首都是哪座城市？", "{0}的首都是哪个城市？",
                  "请说出{0}的首都。")


def _directed(pairs: list[tuple[str, str]],
              one_way: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [*pairs, *((b, a) for a, b in pairs), *one_way]


def _opposite(lang: str) -> list[Item]:
    if lang == "en":
        return _facts(_directed(_OPPOSITE_PAIRS_EN, _OPPOSITE_ONE_WAY_EN),
                      "The opposite of '{0}' is '{1}'.", "Which word means the opposite of '{0}'?",
                      "Give the opposite of the word '{0}'.", "What word is the antonym of '{0}'?")
    return _facts(_directed(_OPPOSITE_PAIRS_ZH, _OPPOSITE_ONE_WAY_ZH), "“{0}”的反义词是“{1}”。",
                  "“{0}”的反义词是哪个词？", "请写出“{0}”的反义词。", "和“{0}”意思相反的词是什么？")


def _translation(lang: str) -> list[Item]:
    """Both ways for every word ({0}: English, {1}: Chinese), the two items of a word together."""
    if lang == "en":
        first = _facts(_WORDS, "The Chinese word for '{0}' is '{1}'.",
                       "What is the Chinese word for '{0}'?", "Say the word '{0}' in Chinese.",
                       "How do you write '{0}' in Chinese?")
        second = _facts(_WORDS, "'{1}' means '{0}' in English.",
                        "What does the Chinese word '{1}' mean in English?",
                        "Translate '{1}' into English.", "Give the English word for '{1}'.")
    else:
        first = _facts(_WORDS, "“{1}”的英文是“{0}”。", "“{1}”翻译成英文是什么？",
                       "请把“{1}”译成英文。", "“{1}”这个词的英文单词是哪个？")
        second = _facts(_WORDS, "“{0}”的中文是“{1}”。", "“{0}”翻译成中文是什么？",
                        "请把英文单词“{0}”译成中文。")
        for item, (en, zh) in zip(second, _WORDS):
            item.append((f"英文单词“{en}”是什么意思？", f"“{en}”的意思是“{zh}”。"))
    return [item for pair in zip(first, second) for item in pair]


_MAKERS: dict[str, Callable[[str], list[Item]]] = {
    "capital": _capital, "opposite": _opposite, "translation": _translation,
}
assert tuple(_MAKERS) == KINDS


def _check_lang(lang: str) -> None:
    if lang not in ("en", "zh"):
        raise ValueError(f"lang must be 'en' or 'zh', not {lang!r}")


def pairs_of_kind(kind: str, lang: str) -> list[tuple[str, str]]:
    """Every (question, answer) pair of one kind in one language, in table order."""
    _check_lang(lang)
    if kind not in _MAKERS:
        raise ValueError(f"unknown kind {kind!r}; kinds: {', '.join(KINDS)}")
    return [pair for item in _items(kind, lang) for pair in item]


@lru_cache(maxsize=None)
def _items(kind: str, lang: str) -> tuple[tuple[tuple[str, str], ...], ...]:
    return tuple(tuple(item) for item in _MAKERS[kind](lang))


def capacity(lang: str) -> dict[str, int]:
    """How many distinct pairs each kind can give in `lang`."""
    return {kind: len(pairs_of_kind(kind, lang)) for kind in KINDS}


def _ordered(items, rng: random.Random) -> list[tuple[str, str]]:
    """All pairs of a kind, one phrasing of every fact before a second phrasing of any."""
    items = [list(item) for item in items]
    rng.shuffle(items)
    for item in items:
        rng.shuffle(item)
    rounds = max(len(item) for item in items)
    return [item[r] for r in range(rounds) for item in items if r < len(item)]


def _quotas(count: int, sizes: list[int], rng: random.Random) -> list[int]:
    """Split `count` over kinds as evenly as their sizes allow (water-filling); which kinds get
    the remainder is drawn, so no kind is always favoured."""
    quotas = [0] * len(sizes)
    left = count
    open_kinds = [k for k, size in enumerate(sizes) if size > 0]
    while left and open_kinds:
        share, extra = divmod(left, len(open_kinds))
        lucky = set(rng.sample(open_kinds, extra))
        for k in open_kinds:
            quotas[k] += min(share + (k in lucky), sizes[k] - quotas[k])
        left = count - sum(quotas)
        open_kinds = [k for k in open_kinds if quotas[k] < sizes[k]]
    return quotas


def computed_qa(lang: str, count: int, seed: int = 0,
                kinds: tuple[str, ...] = KINDS) -> list[tuple[str, str]]:
    """`count` distinct (question, answer) pairs in `lang` ("zh"/"en"), spread evenly over
    `kinds` (default: all of KINDS), deterministic for a seed.

    Every kind gets count // len(kinds) pairs or one more (a kind that runs out hands its share to
    the others), each a different fact before any fact comes twice in another phrasing; the
    result is shuffled so kinds are mixed.
    """
    _check_lang(lang)
    if not isinstance(count, int) or count < 0:
        raise ValueError(f"count must be a non-negative integer, not {count!r}")
    rng = random.Random(f"computed_qa:{lang}:{seed}")
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown kinds {sorted(unknown)}; choose from {KINDS}")
    pools = [_ordered(_items(kind, lang), rng) for kind in kinds]
    total = sum(len(pool) for pool in pools)
    if count > total:
        raise ValueError(f"computed_qa({lang!r}) can give at most {total} distinct pairs, "
                         f"asked for {count}")
    quotas = _quotas(count, [len(pool) for pool in pools], rng)
    chosen = [pair for pool, quota in zip(pools, quotas) for pair in pool[:quota]]
    rng.shuffle(chosen)
    questions = [question for question, _ in chosen]
    assert len(set(questions)) == len(questions), "computed_qa drew a question twice"
    return chosen
