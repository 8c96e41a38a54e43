"""General questions with checkable answers: does the persona still know what its base knew?

Kept in their own file, apart from every training set (train/plain_qa.py, the general-skill
replay), so tests can prove the two never share a question. The facts differ from the trained
ones too: a retained skill, not a memorised answer, is what this measures.

Each item is (lang, question, accepted answers); an answer is right when it contains one of the
accepted forms (numbers and Latin words only as whole tokens). The kinds of question were chosen
by measuring the untuned base on a larger pool (docs/evals.md): kinds it mostly gets right
(small sums, capitals, simple facts in English; Chinese words into English), every measured
question of a kind kept, right or wrong, so the base is not cherry-picked against the persona.
Chinese questions with Chinese answers are left out: the 135M base loops on nearly all of them.
"""

from __future__ import annotations

GENERAL_SKILLS: list[tuple[str, str, tuple[str, ...]]] = [
    # arithmetic with small numbers
    ("en", "What is 2 + 2?", ("4", "four")),
    ("en", "What is 3 + 3?", ("6", "six")),
    ("en", "What is 4 + 5?", ("9", "nine")),
    ("en", "What is 1 + 6?", ("7", "seven")),
    ("en", "What is 5 + 3?", ("8", "eight")),
    ("en", "What is 10 + 10?", ("20", "twenty")),
    ("en", "What is 15 + 10?", ("25", "twenty-five", "twenty five")),
    ("en", "What is 3 times 4?", ("12", "twelve")),
    # capitals
    ("en", "What is the capital of Canada?", ("Ottawa",)),
    ("en", "What is the capital of Russia?", ("Moscow",)),
    ("en", "What is the capital of Egypt?", ("Cairo",)),
    ("en", "What is the capital of Australia?", ("Canberra",)),
    ("en", "What is the capital of India?", ("New Delhi", "Delhi")),
    ("en", "What is the capital of Greece?", ("Athens",)),
    ("en", "What is the capital of Portugal?", ("Lisbon",)),
    ("en", "What is the capital of South Korea?", ("Seoul",)),
    ("en", "What is the capital of Kenya?", ("Nairobi",)),
    ("en", "What is the capital of Ireland?", ("Dublin",)),
    ("en", "What is the capital of the Netherlands?", ("Amsterdam",)),
    ("en", "What is the capital of Thailand?", ("Bangkok",)),
    ("en", "What is the capital of Mexico?", ("Mexico City",)),
    ("en", "What is the capital of Norway?", ("Oslo",)),
    ("en", "What is the capital of Sweden?", ("Stockholm",)),
    ("en", "What is the capital of Poland?", ("Warsaw",)),
    ("en", "What is the capital of Argentina?", ("Buenos Aires",)),
    ("en", "What is the capital of Turkey?", ("Ankara",)),
    ("en", "What is the capital of Vietnam?", ("Hanoi",)),
    ("en", "What is the capital of Austria?", ("Vienna",)),
    ("en", "What is the capital of Peru?", ("Lima",)),
    # simple facts
    ("en", "How many days are in a leap year?", ("366",)),
    ("en", "How many minutes are in an hour?", ("60", "sixty")),
    ("en", "What gas do humans need to breathe?", ("oxygen",)),
    ("en", "What is the largest mammal?", ("blue whale",)),
    ("en", "Which planet is known as the Red Planet?", ("Mars",)),
    ("en", "How many months are in a year?", ("12", "twelve")),
    ("en", "Who wrote Romeo and Juliet?", ("Shakespeare",)),
    ("en", "What language is spoken in Brazil?", ("Portuguese",)),
    ("en", "What is the currency of Japan?", ("yen",)),
    ("en", "How many sides does a triangle have?", ("3", "three")),
    ("en", "What is the largest land animal?", ("elephant",)),
    ("en", "What color do you get by mixing blue and yellow?", ("green",)),
    ("en", "On which continent is Egypt?", ("Africa",)),
    ("en", "What is the largest country by area?", ("Russia",)),
    ("en", "How many legs does a dog have?", ("4", "four")),
    ("en", "What is the hottest planet in the solar system?", ("Venus",)),
    ("en", "What do cows drink?", ("water",)),
    ("en", "Which organ pumps blood through the body?", ("heart",)),
    ("en", "What is frozen water called?", ("ice",)),
    ("en", "What is the main language spoken in Mexico?", ("Spanish",)),
    ("en", "Who painted the Mona Lisa?", ("Leonardo", "da Vinci")),
    ("en", "How many planets are in the solar system?", ("8", "eight")),
    ("en", "What is the currency of the United Kingdom?", ("pound",)),
    ("en", "Which animal says 'moo'?", ("cow",)),
    ("en", "What is the opposite of 'up'?", ("down",)),
    # single words from Chinese into English
    ("zh", "“红色”的英文是什么？", ("red",)),
    ("zh", "“蓝色”的英文是什么？", ("blue",)),
    ("zh", "“黑色”的英文是什么？", ("black",)),
    ("zh", "“猫”的英文是什么？", ("cat",)),
    ("zh", "“太阳”的英文是什么？", ("sun",)),
    ("zh", "“月亮”的英文是什么？", ("moon",)),
    ("zh", "“书”的英文是什么？", ("book",)),
    ("zh", "“苹果”的英文是什么？", ("apple",)),
    ("zh", "“学校”的英文是什么？", ("school",)),
    ("zh", "“朋友”的英文是什么？", ("friend",)),
]
