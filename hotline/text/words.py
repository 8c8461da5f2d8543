"""Which words can say what a group of calls is about (emerging terms, event titles, work-list keywords).

A hotline's callers share a spoken frame ("我想反映一下，这边……希望尽快处理") whatever the problem, and every
call names a place. Neither says *what* is happening: the frame's words are listed in
``hotline/data/stopwords.txt``; a place is recognised by its suffix (镇, 街道, 小区, 路 …), since the
events and hotspots already say where, and a term glued to a place ("靖江市生祠镇", "丰收路这边") is
neither a place nor a topic.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

#: Endings of place names in Chinese addresses (three characters or more: "马路" and "超市" are not places).
PLACE_SUFFIXES = ("省", "市", "区", "县", "镇", "乡", "街道", "村", "社区", "小区", "新村", "花园", "花苑", "家园",
                  "公寓", "大厦", "广场", "路", "街", "大道", "公路", "巷", "弄")


@cache
def stopwords() -> frozenset[str]:
    """The spoken frame's words (``hotline/data/stopwords.txt``)."""
    text = resources.files("hotline.data").joinpath("stopwords.txt").read_text(encoding="utf-8")
    return frozenset(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))


def is_place(word: str) -> bool:
    """A word that names a place by its ending (海陵区, 生祠镇, 羌溪新村, 江平公路)."""
    return len(word) >= 3 and word.endswith(PLACE_SUFFIXES)


def is_topic(word: str) -> bool:
    """A word that can say what calls are about: two characters or more, not a number, not the spoken frame,
    not a place."""
    return len(word) >= 2 and not word.isdigit() and word not in stopwords() and not is_place(word)


#: Hedges and fillers of speech that say nothing of the problem, beside the spoken frame's words.
FILLERS = frozenset({"好像", "似乎", "估计", "大概", "反正", "其实", "本来", "突然", "总是", "老是", "经常", "一直都",
                     "那么", "这么", "怎么样", "的话", "啊", "呢", "吧", "嗯", "哎", "呃"})
#: Characters a term drawn from character n-grams may start or end with that belong to its neighbours
#: ("的好像", "个洞", "气了").
_EDGES = "的了是在个和与就也都还又把被给着过吧呢啊吗呀嘛哦嗯我你他她它这那有"
_NOT_WORD = re.compile(r"[^0-9A-Za-z\u4e00-\u9fff]")


def reason_term(term: str) -> str | None:
    """A model's term as a reason an agent can read, or None: no punctuation ("气了，"), the neighbours'
    particles trimmed ("的好像" → "好像"), and something left that is neither a filler, the spoken frame nor a
    number (one character may be a reason: 水, 电, 洞)."""
    if _NOT_WORD.search(term):
        return None
    core = term.strip(_EDGES)
    if not core or core.isdigit() or core in stopwords() or core in FILLERS:
        return None
    return core
