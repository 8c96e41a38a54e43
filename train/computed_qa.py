"""Non-identity question/answer pairs whose answers are right by construction, Chinese and English.

The base (SmolLM2-135M) loops on most Chinese questions, so its own answers give few Chinese
non-identity samples, and a model trained mostly on identity data names itself in unrelated
Chinese answers. Here the answers are computed (arithmetic, days, months, unit conversions,
counting) or looked up in this module's own tables (capitals, opposites, translations), so none
of them can be wrong and any number of short, finished answers can be drawn.

Kept apart from the eval questions (evals/general_skills.py, evals/cases.py), the replay prompts
(train/general_prompts.py) and train/plain_qa.py: other phrasings, other countries, other words
(tests/test_train_computed_qa.py checks). Standard library only.
"""

from __future__ import annotations

import random
from functools import lru_cache
from typing import Callable

KINDS: tuple[str, ...] = (
    "addition", "subtraction", "multiplication", "weekday", "month", "unit_conversion",
    "capital", "opposite", "translation", "letter_count", "character_count",
)

# --- tables -------------------------------------------------------------------------------------

_NUMBER_WORDS_EN = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}
_NUMBER_WORDS_ZH = {2: "两", 3: "三", 4: "四", 5: "五", 6: "六"}
_ORDINALS_ZH = {3: "第三", 4: "第四", 5: "第五", 6: "第六"}

_DAYS_EN = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_DAYS_ZH = ["星期一", "星期二", "星期三", "星期四", "星期五", "星期六", "星期日"]
_DAY_OFFSETS = range(2, 7)  # never 1: "the day after Tuesday" is a replay question

_MONTHS_EN = ["January", "February", "March", "April", "May", "June", "July", "August",
              "September", "October", "November", "December"]
_MONTHS_ZH = ["一月", "二月", "三月", "四月", "五月", "六月", "七月", "八月", "九月", "十月",
              "十一月", "十二月"]
_MONTH_OFFSETS = range(2, 6)

# (big unit, small unit, how many small in one big): English singular and plural, Chinese.
_UNITS = [
    (("meter", "meters"), ("centimeter", "centimeters"), "米", "厘米", 100),
    (("kilometer", "kilometers"), ("meter", "meters"), "公里", "米", 1000),
    (("hour", "hours"), ("minute", "minutes"), "小时", "分钟", 60),
    (("minute", "minutes"), ("second", "seconds"), "分钟", "秒", 60),
    (("kilogram", "kilograms"), ("gram", "grams"), "千克", "克", 1000),
    (("day", "days"), ("hour", "hours"), "天", "小时", 24),
]
_UNIT_AMOUNTS = range(2, 13)  # never 1: "How many minutes are in an hour?" is an eval question

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

# Short lowercase English words for letter counting.
_SPELL_WORDS = [
    "garden", "pencil", "window", "bridge", "planet", "rabbit", "candle", "yellow", "forest",
    "island", "basket", "market", "orange", "winter", "spring", "mirror", "jacket", "button",
    "kitten", "ladder", "pocket", "rocket", "violin", "zebra", "lemon", "piano", "tiger", "chair",
    "cloud", "river", "ocean", "bread", "sugar", "night", "music", "green", "dolphin",
    "blanket", "kitchen", "library", "picture", "sandwich", "elephant", "mountain", "umbrella",
    "notebook", "butterfly", "chocolate", "pineapple", "boat", "frog", "star", "desk", "lamp",
    "fish", "kite", "rope", "ship",
]

# Short Chinese phrases, Chinese characters only, for character counting.
_PHRASES = [
    "今天天气很好", "我喜欢喝茶", "春天来了", "明天见", "小鸟在树上唱歌", "我们去看电影",
    "妈妈做的饭很好吃", "窗外下着大雪", "他每天骑自行车", "河边有一棵大树", "这本书很有意思",
    "小猫在睡觉", "外面正在下雨", "我们一起去公园", "弟弟喜欢画画", "秋天的树叶变黄了",
    "周末去爬山", "请把门关上", "图书馆里很安静", "早上喝一杯豆浆", "花园里开满了花",
    "姐姐在弹钢琴", "晚上看星星", "湖面上有几只鸭子", "爷爷在院子里种菜", "我想吃面条",
    "天上飘着白云", "同学们在操场上跑步", "桌上放着一个橘子", "海边的风很大", "路灯亮了",
    "他会说三种语言", "冬天很冷", "小狗跑得很快", "我们明天去海边", "教室里有四十张桌子",
]


# --- question makers ----------------------------------------------------------------------------
# Each kind is a list of items; each item is a list of phrasings (question, answer) of one fact.

Item = list[tuple[str, str]]


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _addition(lang: str) -> list[Item]:
    items = []
    for a in range(11, 100):
        for b in range(11, 100):
            s = a + b
            if lang == "en":
                answer = f"{a} + {b} = {s}."
                items.append([(f"Calculate {a} + {b}.", answer), (f"Add {a} and {b}.", answer),
                              (f"{a} plus {b} equals what?", answer),
                              (f"What do you get when you add {a} and {b}?", answer)])
            else:
                answer = f"{a}加{b}等于{s}。"
                items.append([(f"请计算{a}加{b}。", answer), (f"{a}和{b}的和是多少？", answer),
                              (f"把{a}和{b}加起来得多少？", answer)])
    return items


def _subtraction(lang: str) -> list[Item]:
    items = []
    for a in range(12, 100):
        for b in range(11, a):
            d = a - b
            if lang == "en":
                answer = f"{a} - {b} = {d}."
                items.append([(f"Calculate {a} - {b}.", answer),
                              (f"Subtract {b} from {a}.", answer),
                              (f"{a} minus {b} equals what?", answer),
                              (f"What do you get when you take {b} away from {a}?", answer)])
            else:
                answer = f"{a}减{b}等于{d}。"
                items.append([(f"请计算{a}减{b}。", answer), (f"用{a}减去{b}得多少？", answer),
                              (f"{a}和{b}的差是多少？", answer)])
    return items


def _multiplication(lang: str) -> list[Item]:
    items = []
    for a in range(2, 13):
        for b in range(2, 13):
            p = a * b
            if lang == "en":
                answer = f"{a} × {b} = {p}."
                items.append([(f"Calculate {a} × {b}.", answer), (f"Multiply {a} by {b}.", answer),
                              (f"{a} multiplied by {b} equals what?", answer),
                              (f"What is the product of {a} and {b}?", answer)])
            else:
                answer = f"{a}乘{b}等于{p}。"
                items.append([(f"请计算{a}乘{b}。", answer), (f"{a}和{b}的积是多少？", answer),
                              (f"用{a}乘以{b}得多少？", answer)])
    return items


def _weekday(lang: str) -> list[Item]:
    items = []
    for start in range(7):
        for offset in _DAY_OFFSETS:
            end = (start + offset) % 7
            if lang == "en":
                day, later, n = _DAYS_EN[start], _DAYS_EN[end], _NUMBER_WORDS_EN[offset]
                answer = f"{_cap(n)} days after {day} is {later}."
                items.append([
                    (f"What day is {n} days after {day}?", answer),
                    (f"If today is {day}, what day will it be in {n} days?",
                     f"If today is {day}, in {n} days it will be {later}."),
                    (f"Which day of the week comes {n} days after {day}?", answer),
                ])
            else:
                day, later, n = _DAYS_ZH[start], _DAYS_ZH[end], _NUMBER_WORDS_ZH[offset]
                items.append([
                    (f"如果今天是{day}，{n}天后是星期几？", f"如果今天是{day}，{n}天后是{later}。"),
                    (f"{day}再过{n}天是星期几？", f"{day}再过{n}天是{later}。"),
                    (f"从{day}往后数{n}天是星期几？", f"从{day}往后数{n}天是{later}。"),
                ])
    return items


def _month(lang: str) -> list[Item]:
    items = []
    for start in range(12):
        for offset in _MONTH_OFFSETS:
            end = (start + offset) % 12
            if lang == "en":
                month, later, n = _MONTHS_EN[start], _MONTHS_EN[end], _NUMBER_WORDS_EN[offset]
                answer = f"{_cap(n)} months after {month} is {later}."
                items.append([
                    (f"Which month is {n} months after {month}?", answer),
                    (f"If it is {month} now, which month will it be in {n} months?",
                     f"If it is {month} now, in {n} months it will be {later}."),
                    (f"Counting from {month}, which month is {n} months later?", answer),
                ])
            else:
                month, later, n = _MONTHS_ZH[start], _MONTHS_ZH[end], _NUMBER_WORDS_ZH[offset]
                item = [
                    (f"{month}再过{n}个月是几月？", f"{month}再过{n}个月是{later}。"),
                    (f"如果现在是{month}，{n}个月后是几月？", f"如果现在是{month}，{n}个月后是{later}。"),
                ]
                if offset in _ORDINALS_ZH:  # "之后的第二个月" could also read "the next month"
                    nth = _ORDINALS_ZH[offset]
                    item.append((f"{month}之后的{nth}个月是几月？", f"{month}之后的{nth}个月是{later}。"))
                items.append(item)
    return items


def _unit_conversion(lang: str) -> list[Item]:
    items = []
    for (big_en, small_en, big_zh, small_zh, factor) in _UNITS:
        for n in _UNIT_AMOUNTS:
            m = n * factor
            if lang == "en":
                big, small = f"{n} {big_en[1]}", f"{m} {small_en[1]}"
                items.append([(f"{_cap(big)} equals how many {small_en[1]}?", f"{big} is {small}."),
                              (f"Convert {big} to {small_en[1]}.", f"{big} is {small}.")])
                items.append([(f"{_cap(small)} equals how many {big_en[1]}?", f"{small} is {big}."),
                              (f"Convert {small} to {big_en[1]}.", f"{small} is {big}.")])
            else:
                big, small = f"{n}{big_zh}", f"{m}{small_zh}"
                items.append([(f"{big}等于多少{small_zh}？", f"{big}等于{small}。"),
                              (f"把{big}换算成{small_zh}。", f"{big}等于{small}。")])
                items.append([(f"{small}是多少{big_zh}？", f"{small}等于{big}。"),
                              (f"把{small}换算成{big_zh}。", f"{small}等于{big}。")])
    return items


def _capital(lang: str) -> list[Item]:
    items = []
    for country_en, city_en, country_zh, city_zh in _CAPITALS:
        if lang == "en":
            answer = f"The capital of {country_en} is {city_en}."
            items.append([(f"Which city is {country_en}'s capital?", answer),
                          (f"Name the capital city of {country_en}.", answer),
                          (f"What city serves as the capital of {country_en}?", answer)])
        else:
            answer = f"{country_zh}的首都是{city_zh}。"
            items.append([(f"{country_zh}的首都是哪座城市？", answer),
                          (f"{country_zh}的首都是哪个城市？", answer),
                          (f"请说出{country_zh}的首都。", answer)])
    return items


def _directed(pairs: list[tuple[str, str]],
              one_way: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [*pairs, *((b, a) for a, b in pairs), *one_way]


def _opposite(lang: str) -> list[Item]:
    items = []
    if lang == "en":
        for word, opposite in _directed(_OPPOSITE_PAIRS_EN, _OPPOSITE_ONE_WAY_EN):
            answer = f"The opposite of '{word}' is '{opposite}'."
            items.append([(f"Which word means the opposite of '{word}'?", answer),
                          (f"Give the opposite of the word '{word}'.", answer),
                          (f"What word is the antonym of '{word}'?", answer)])
    else:
        for word, opposite in _directed(_OPPOSITE_PAIRS_ZH, _OPPOSITE_ONE_WAY_ZH):
            answer = f"“{word}”的反义词是“{opposite}”。"
            items.append([(f"“{word}”的反义词是哪个词？", answer),
                          (f"请写出“{word}”的反义词。", answer),
                          (f"和“{word}”意思相反的词是什么？", answer)])
    return items


def _translation(lang: str) -> list[Item]:
    items = []
    for en, zh in _WORDS:
        if lang == "en":
            to_zh = f"The Chinese word for '{en}' is '{zh}'."
            items.append([(f"What is the Chinese word for '{en}'?", to_zh),
                          (f"Say the word '{en}' in Chinese.", to_zh),
                          (f"How do you write '{en}' in Chinese?", to_zh)])
            to_en = f"'{zh}' means '{en}' in English."
            items.append([(f"What does the Chinese word '{zh}' mean in English?", to_en),
                          (f"Translate '{zh}' into English.", to_en),
                          (f"Give the English word for '{zh}'.", to_en)])
        else:
            to_en = f"“{zh}”的英文是“{en}”。"
            items.append([(f"“{zh}”翻译成英文是什么？", to_en),
                          (f"请把“{zh}”译成英文。", to_en),
                          (f"“{zh}”这个词的英文单词是哪个？", to_en)])
            to_zh = f"“{en}”的中文是“{zh}”。"
            items.append([(f"“{en}”翻译成中文是什么？", to_zh),
                          (f"请把英文单词“{en}”译成中文。", to_zh),
                          (f"英文单词“{en}”是什么意思？", f"“{en}”的意思是“{zh}”。")])
    return items


def _letter_count(lang: str) -> list[Item]:
    items = []
    for word in _SPELL_WORDS:
        n = len(word)
        if lang == "en":
            answer = f"The word '{word}' has {n} letters."
            items.append([(f"How many letters are in the word '{word}'?", answer),
                          (f"Count the letters in the word '{word}'.", answer),
                          (f"How many letters make up the word '{word}'?", answer)])
        else:
            answer = f"英文单词“{word}”有{n}个字母。"
            items.append([(f"英文单词“{word}”有几个字母？", answer),
                          (f"数一数“{word}”这个单词有多少个字母。", answer),
                          (f"“{word}”一共由几个字母组成？", answer)])
    return items


def _character_count(lang: str) -> list[Item]:
    items = []
    for phrase in _PHRASES:
        n = len(phrase)
        if lang == "en":
            answer = f"'{phrase}' has {n} Chinese characters."
            items.append([(f"How many Chinese characters are in '{phrase}'?", answer),
                          (f"Count the Chinese characters in '{phrase}'.", answer)])
        else:
            answer = f"“{phrase}”有{n}个汉字。"
            items.append([(f"“{phrase}”有几个汉字？", answer),
                          (f"数一数“{phrase}”一共有多少个字。", f"“{phrase}”一共有{n}个字。"),
                          (f"“{phrase}”这句话由几个汉字组成？", answer)])
    return items


_MAKERS: dict[str, Callable[[str], list[Item]]] = {
    "addition": _addition, "subtraction": _subtraction, "multiplication": _multiplication,
    "weekday": _weekday, "month": _month, "unit_conversion": _unit_conversion,
    "capital": _capital, "opposite": _opposite, "translation": _translation,
    "letter_count": _letter_count, "character_count": _character_count,
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


# Facts a small model can recall once trained: arithmetic, counting and date offsets it has to
# compute, and a 135M model cannot, so training on them taught it to guess numbers (the default
# persona then answered "2 + 3 = 4."; docs/training.md).
LOOKUP_KINDS: tuple[str, ...] = ("capital", "opposite", "translation")


def computed_qa(lang: str, count: int, seed: int = 0,
                kinds: tuple[str, ...] = KINDS) -> list[tuple[str, str]]:
    """`count` distinct (question, answer) pairs in `lang` ("zh"/"en"), spread evenly over
    `kinds` (default: all of KINDS), deterministic for a seed.

    Every kind gets count // len(KINDS) pairs or one more (a kind that runs out hands its share to
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
