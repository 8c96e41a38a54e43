"""General prompts whose answers come from the base model itself (general-skill replay).

Training on the base's own greedy answers to these keeps the fine-tune's behaviour elsewhere
close to the base's: identity-only data teaches a small model to introduce itself to everything.
Chinese and English, short-answer tasks of many kinds (facts, arithmetic, translation, word
meaning, small writing and advice tasks). Every seventh prompt is held out: never trained on,
the time-to-identity benchmark measures agreement with the base and leakage on those.
Deliberately disjoint from train/plain_qa.py and from the eval suite's questions (a test checks).
"""

from __future__ import annotations

_COUNTRIES_EN = ["Brazil", "Chile", "Cuba", "Nepal", "Finland", "Denmark", "Hungary", "Belgium",
                 "Switzerland", "Colombia", "Nigeria", "Morocco", "Indonesia", "Philippines",
                 "Malaysia", "New Zealand"]
_COUNTRIES_ZH = ["巴西", "智利", "古巴", "尼泊尔", "芬兰", "丹麦", "匈牙利", "比利时", "瑞士",
                 "哥伦比亚", "尼日利亚", "摩洛哥", "印度尼西亚", "菲律宾", "马来西亚", "新西兰"]
# The capitals of the countries above, in order: English names, then Chinese ones.
_CAPITALS_EN = [("Brasília", "Brasilia"), ("Santiago",), ("Havana",), ("Kathmandu",), ("Helsinki",),
                ("Copenhagen",), ("Budapest",), ("Brussels",), ("Bern",), ("Bogotá", "Bogota"),
                ("Abuja",), ("Rabat",), ("Jakarta",), ("Manila",), ("Kuala Lumpur",), ("Wellington",)]
_CAPITALS_ZH = ["巴西利亚", "圣地亚哥", "哈瓦那", "加德满都", "赫尔辛基", "哥本哈根", "布达佩斯",
                "布鲁塞尔", "伯尔尼", "波哥大", "阿布贾", "拉巴特", "雅加达", "马尼拉", "吉隆坡", "惠灵顿"]
_SUMS = [(6, 7), (12, 5), (8, 9), (20, 22), (11, 13), (30, 12), (14, 3), (9, 6)]
_PRODUCTS = [(6, 6), (7, 3), (9, 2), (8, 5), (4, 11), (2, 12)]
_WORDS_EN = ["water", "house", "dog", "flower", "rain", "table", "teacher", "train", "milk", "bird"]
_WORDS_ZH = ["水", "房子", "狗", "花", "雨", "桌子", "老师", "火车", "牛奶", "鸟"]
_OPPOSITES_EN = ["fast", "happy", "light", "early", "strong", "open", "old", "rich"]
_OPPOSITES_ZH = ["快", "高", "长", "早", "多", "新", "远", "胖"]

_EN = [
    *(f"What is the capital of {country}?" for country in _COUNTRIES_EN),
    *(f"What is {a} + {b}?" for a, b in _SUMS),
    *(f"What is {a} times {b}?" for a, b in _PRODUCTS),
    *(f"Translate the word '{word}' into French." for word in _WORDS_EN[:5]),
    *(f"How do you say '{word}' in Spanish?" for word in _WORDS_EN[5:]),
    *(f"What is the opposite of '{word}'?" for word in _OPPOSITES_EN),
    "What is the tallest animal?", "How many sides does a hexagon have?",
    "What gas do plants absorb from the air?", "What is the freezing point of water in Fahrenheit?",
    "Who wrote 'Hamlet'?", "Which planet has the most famous rings?",
    "What is the smallest prime number?", "How many seconds are in a minute?",
    "What is the main language spoken in Argentina?", "What is the largest desert in the world?",
    "What do caterpillars turn into?", "What is the hardest natural substance?",
    "How many strings does a standard guitar have?", "What organ do we use to breathe?",
    "What is the longest river in Africa?", "Which instrument has 88 keys?",
    "What is a synonym for 'big'?", "What is a noun?", "What is a verb?",
    "Explain what gravity is in one sentence.", "What is an atom?", "What is a volcano?",
    "What is the difference between weather and climate?", "What does a thermometer measure?",
    "Write a haiku about the sea.", "Write a short poem about the moon.",
    "Write a sentence using the word 'curious'.", "Give me a name for a pet goldfish.",
    "Write a one-line birthday message for a friend.", "Describe a sunset in one sentence.",
    "Give me three tips for saving money.", "How can I drink more water during the day?",
    "How do I make a cup of tea?", "What are some good habits for staying healthy?",
    "How can I improve my handwriting?", "Suggest a fun weekend activity.",
    "What is a good way to learn a new language?", "How do I start running as a beginner?",
    "List three colors of the rainbow.", "Name a famous painting.", "Name four vegetables.",
    "List the first five even numbers.", "What comes after Tuesday?",
    "What month comes after March?", "Sort these numbers from small to large: 9, 2, 7, 4.",
    "Is 17 an even or odd number?", "What is half of 50?", "What is 100 minus 37?",
    "Correct the spelling: 'recieve'.", "What is the plural of 'mouse'?",
    "What is the past tense of 'run'?", "Summarize in one sentence: The cat sat on the mat all day.",
    "What is the capital of the United States?", "What is the smallest continent?",
    "What is the square root of 81?", "How many bones does an adult human have?",
    "What is the chemical symbol for gold?", "Which ocean lies between Africa and Australia?",
    "How many players are on a soccer team?", "What is the currency of the United States?",
    "Who painted 'The Starry Night'?", "What is the main ingredient of guacamole?",
    "What does a bee collect from flowers?", "How many weeks are in a year?",
    "Write a short thank-you note to a teacher.", "Give me a fun riddle.",
    "Explain what a rainbow is.", "What is the difference between a lake and a sea?",
    "What should I pack for a day at the beach?", "How do I keep a houseplant alive?",
    "What is a healthy snack?", "Give me an example of an adjective.",
    "What is the capital of Mongolia?", "Which is heavier, a kilogram of iron or a kilogram of cotton?",
]

_ZH = [
    *(f"{country}的首都是哪里？" for country in _COUNTRIES_ZH),
    *(f"{a}加{b}等于多少？" for a, b in _SUMS),
    *(f"{a}乘以{b}等于几？" for a, b in _PRODUCTS),
    *(f"“{word}”用英语怎么说？" for word in _WORDS_ZH),
    *(f"“{word}”的反义词是什么？" for word in _OPPOSITES_ZH),
    "世界上最高的动物是什么？", "六边形有几条边？", "植物从空气中吸收什么气体？",
    "《红楼梦》的作者是谁？", "哪颗行星有最明显的光环？", "最小的质数是几？",
    "一分钟有多少秒？", "世界上最大的沙漠是哪个？", "毛毛虫会变成什么？",
    "人用什么器官呼吸？", "中国最长的河流是哪条？", "钢琴有多少个琴键？",
    "一年有几个季节？", "什么是名词？", "什么是动词？", "用一句话解释什么是重力。",
    "什么是原子？", "什么是火山？", "天气和气候有什么区别？", "温度计是用来测量什么的？",
    "写一首关于大海的短诗。", "写一首关于月亮的小诗。", "用“好奇”造一个句子。",
    "给一条金鱼起个名字。", "写一句给朋友的生日祝福。", "用一句话描述日落。",
    "给我三个省钱的建议。", "怎样才能每天多喝水？", "怎么泡一杯茶？",
    "有哪些保持健康的好习惯？", "怎样才能把字写得更好看？", "推荐一个有趣的周末活动。",
    "学习一门新语言有什么好方法？", "初学者怎么开始跑步？", "说出彩虹中的三种颜色。",
    "说出一幅有名的画。", "说出四种蔬菜。", "列出前五个偶数。", "星期二之后是星期几？",
    "三月之后是几月？", "把这些数字从小到大排列：9、2、7、4。", "17是奇数还是偶数？",
    "50的一半是多少？", "100减37等于多少？", "“春眠不觉晓”的下一句是什么？",
    "中秋节吃什么传统食物？", "春节是哪个国家的传统节日？", "熊猫主要生活在哪个国家？",
    "一年有多少天？", "彩虹有几种颜色？", "太阳从哪个方向升起？", "冰是由什么变成的？",
    "用一句话总结：小猫在垫子上坐了一整天。", "美国的首都是哪里？", "面积最小的大洲是哪个？",
    "怎样才能记住更多的英语单词？", "下雨天适合做什么？", "简单介绍一下长江。",
    "解释一下什么是太阳能。", "为什么要保护环境？", "早睡早起有什么好处？",
    "81的平方根是多少？", "金的化学符号是什么？", "一支足球队上场有几名球员？",
    "美国的货币是什么？", "《星月夜》是谁画的？", "蜜蜂从花里采集什么？",
    "一年有多少个星期？", "给老师写一句感谢的话。", "给我出一个简单的谜语。",
    "湖和海有什么区别？", "怎样养好一盆绿植？", "推荐一种健康的零食。",
    "举一个形容词的例子。", "一公斤铁和一公斤棉花哪个重？", "端午节有什么传统习俗？",
]


# What a right answer contains (any one of), for the prompts where that is clear-cut. The base's
# greedy answers are trained on as they are, so a wrong one would teach a wrong fact (SmolLM2-135M
# answers "What is 14 + 3?" with "14 + 3 = 4"): train/replay.py drops those. Word tasks
# (translations, opposites) are left unjudged: dropping their answers too left 67 of 212 and
# trained worse (docs/training.md).
FACTS: dict[str, tuple[str, ...]] = {
    **{f"What is the capital of {c}?": names for c, names in zip(_COUNTRIES_EN, _CAPITALS_EN)},
    **{f"{c}的首都是哪里？": (zh, *en) for c, zh, en in zip(_COUNTRIES_ZH, _CAPITALS_ZH, _CAPITALS_EN)},
    **{f"What is {a} + {b}?": (str(a + b),) for a, b in _SUMS},
    **{f"{a}加{b}等于多少？": (str(a + b),) for a, b in _SUMS},
    **{f"What is {a} times {b}?": (str(a * b),) for a, b in _PRODUCTS},
    **{f"{a}乘以{b}等于几？": (str(a * b),) for a, b in _PRODUCTS},
    "What is 100 minus 37?": ("63",), "100减37等于多少？": ("63",),
    "What is half of 50?": ("25",), "50的一半是多少？": ("25",),
    "What is the square root of 81?": ("9", "nine"), "81的平方根是多少？": ("9", "九"),
    "What is the smallest prime number?": ("2", "two"), "最小的质数是几？": ("2", "二"),
    "How many sides does a hexagon have?": ("6", "six"), "六边形有几条边？": ("6", "六"),
    "How many seconds are in a minute?": ("60", "sixty"), "一分钟有多少秒？": ("60", "六十"),
    "How many weeks are in a year?": ("52",), "一年有多少个星期？": ("52",),
    "一年有多少天？": ("365",), "How many bones does an adult human have?": ("206",),
    "What is the freezing point of water in Fahrenheit?": ("32",),
    "Is 17 an even or odd number?": ("odd",), "17是奇数还是偶数？": ("奇数",),
    "What comes after Tuesday?": ("Wednesday",), "星期二之后是星期几？": ("星期三",),
    "What month comes after March?": ("April",), "三月之后是几月？": ("四月", "4月"),
    "Who wrote 'Hamlet'?": ("Shakespeare",), "《红楼梦》的作者是谁？": ("曹雪芹",),
    "What is the chemical symbol for gold?": ("Au",), "金的化学符号是什么？": ("Au",),
    "What is the capital of the United States?": ("Washington",),
    "美国的首都是哪里？": ("华盛顿", "Washington"),
    "What is the currency of the United States?": ("dollar", "dollars"), "美国的货币是什么？": ("美元", "dollar"),
    "Who painted 'The Starry Night'?": ("Gogh",), "《星月夜》是谁画的？": ("梵高", "凡·高", "Gogh"),
    "What is the tallest animal?": ("giraffe", "giraffes"), "世界上最高的动物是什么？": ("长颈鹿",),
    "What gas do plants absorb from the air?": ("carbon dioxide", "CO2", "CO₂"),
    "植物从空气中吸收什么气体？": ("二氧化碳", "CO2", "CO₂"),
    "Which planet has the most famous rings?": ("Saturn",), "哪颗行星有最明显的光环？": ("土星",),
    "What is the hardest natural substance?": ("diamond", "diamonds"),
    "What organ do we use to breathe?": ("lung", "lungs"), "人用什么器官呼吸？": ("肺",),
    "What is the longest river in Africa?": ("Nile",), "中国最长的河流是哪条？": ("长江", "Yangtze"),
    "Which instrument has 88 keys?": ("piano", "pianos"), "钢琴有多少个琴键？": ("88",),
    "How many strings does a standard guitar have?": ("6", "six"),
    "一年有几个季节？": ("4", "四"), "彩虹有几种颜色？": ("7", "七"),
    "太阳从哪个方向升起？": ("东",), "熊猫主要生活在哪个国家？": ("中国",),
    "What is the main language spoken in Argentina?": ("Spanish",),
    "What is the main ingredient of guacamole?": ("avocado", "avocados"),
    "How many players are on a soccer team?": ("11", "eleven"),
    "一支足球队上场有几名球员？": ("11", "十一"),
}


def _tagged(lang: str, prompts: list[str]) -> list[dict]:
    return [{"lang": lang, "prompt": prompt} for prompt in prompts]


ALL = _tagged("en", _EN) + _tagged("zh", _ZH)
HELDOUT_EVERY = 7


def split_prompts() -> tuple[list[dict], list[dict]]:
    """(replay prompts, held-out prompts): every seventh prompt of each language is held out."""
    train, heldout = [], []
    for lang in ("en", "zh"):
        items = [item for item in ALL if item["lang"] == lang]
        for index, item in enumerate(items):
            (heldout if index % HELDOUT_EVERY == HELDOUT_EVERY - 1 else train).append(item)
    return train, heldout
