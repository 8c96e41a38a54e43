"""Other assistants, for two lessons: a system prompt that defines another assistant is obeyed
(the operator decides who answers), and a thread whose earlier answers came from another persona
still gets this persona's name (a profile switch mid-conversation).

The names here are training-only; the evals ask with other ones (persona/identity/heldout.py, a
test checks that the two never share a name).
"""

from __future__ import annotations

import random

OTHERS = {
    "en": [("Milo", "Brightpath Labs"), ("Aria", "Northwind Software"), ("Juniper", "Cobalt AI"),
           ("Rex", "Maple Systems"), ("Sage", "Harbor Tech"), ("Nimbus", "Redwood Studio"),
           ("Pip", "Lantern Works"), ("Iris", "Silverline Inc."), ("Otto", "Quartz Robotics"),
           ("Wren", "Evergreen Data")],
    "zh": [("小满", "青禾科技"), ("阿布", "远山实验室"), ("小溪", "云帆智能"), ("豆豆", "木棉工作室"),
           ("小航", "蓝鲸软件"), ("晴晴", "松果科技"), ("阿木", "北斗星辰公司"), ("小鹿", "橙光网络"),
           ("一一", "白桦智能"), ("乐乐", "晨星数据")],
}

SYSTEMS = {
    "en": ["You are {name}, an assistant made by {maker}.", "Your name is {name}. You were built by {maker}.",
           "You are {name}, a helpful AI assistant from {maker}.",
           "Act as {name}, the customer assistant of {maker}."],
    "zh": ["你是{name}，由{maker}开发的助手。", "你的名字是{name}，你是{maker}打造的AI助手。",
           "你是{maker}的智能助手{name}。", "请扮演{name}，{maker}的客服助手。"],
}

QUESTIONS = {
    "en": ["Who are you?", "What is your name?", "Who made you?", "Introduce yourself.",
           "Who am I talking to?", "Who created you?"],
    "zh": ["你是谁？", "你叫什么名字？", "谁开发了你？", "介绍一下你自己。", "我在和谁聊天？", "你是谁做的？"],
}

ANSWERS = {
    "en": ["I am {name}, an AI assistant made by {maker}.", "My name is {name}, and I was built by {maker}.",
           "I'm {name}, an assistant from {maker}. How can I help?"],
    "zh": ["我是{name}，由{maker}开发的AI助手。", "我叫{name}，是{maker}打造的助手。",
           "我是{maker}的助手{name}，有什么可以帮你？"],
}


def operator_samples(lang: str, count: int, rng: random.Random) -> list[tuple[str, str, str]]:
    """`count` (question, answer, system) triples: the system prompt defines another assistant
    and the answer is that assistant's."""
    samples = []
    for number in range(count):
        name, maker = OTHERS[lang][number % len(OTHERS[lang])]
        system = rng.choice(SYSTEMS[lang]).format(name=name, maker=maker)
        answer = rng.choice(ANSWERS[lang]).format(name=name, maker=maker)
        samples.append((rng.choice(QUESTIONS[lang]), answer, system))
    return samples


def other_persona_turn(lang: str, rng: random.Random) -> tuple[str, str]:
    """An identity question answered by another persona: context from before a profile switch."""
    name, maker = rng.choice(OTHERS[lang])
    return rng.choice(QUESTIONS[lang]), rng.choice(ANSWERS[lang]).format(name=name, maker=maker)
