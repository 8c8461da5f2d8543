"""The masker's recall and over-masking, and its cost on hostile input (BENCHMARKS.md, "Masking").

Recall: the share of hand-written variants (tests/test_pii_variants.py: every
family the trust issues found) and of generated ones whose secret no longer
shows in any digit form. Over-masking: the share of texts that must stay
(dates, amounts, codes after their word, roads, room lists, titles, places)
that the masker changes, and the share of the real messages whose text it
changes, with those changes that are the organisers' own phone placeholders
(0000-00000000) counted apart. Cost: masking 5,000 and 20,000 characters of
each hostile pattern; a ratio near 4 is linear.

    python bench/pii.py [--generated 2000] [--seed 7]
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import time

from _common import ROOT, real_texts, report

sys.path.insert(0, str(ROOT / "tests"))

import test_pii_variants as table

from hotline.text import pii

FILLERS = [" ", "-", "—", "，", "、", "。", "……", "嗯", "啊", "呃", "杠", "点", "然后", " 坐席：嗯 市民：",
           " 坐席：好的您说 市民：", "，呃，"]


def digits_of(text: str) -> str:
    return re.sub(r"[^\dX]", "", pii.view(text).digits)


def leaked(text: str, secret: str) -> bool:
    masked = pii.mask(text)
    if secret.isdigit() or re.fullmatch(r"[\dX]+", secret):
        return len(secret) >= 7 and secret in digits_of(masked)
    return secret in pii.view(masked).text


def spoken(rng: random.Random, digits: str) -> str:
    """One generated variant: random groups, a random digit form, random things between the groups."""
    cuts = sorted(rng.sample(range(1, len(digits)), rng.randint(1, min(4, len(digits) - 1))))
    groups = [digits[a:b] for a, b in zip([0, *cuts], [*cuts, len(digits)], strict=True)]
    form = rng.choice(table.FORMS)
    labels = rng.random() < 0.2 and len(groups) == 3
    parts = []
    for i, group in enumerate(groups):
        if labels:
            parts.append(("前三位", "中间四位", "后四位")[i])
        parts.append(group.translate(form))
        if i < len(groups) - 1:
            parts.append(rng.choice(FILLERS))
    if rng.random() < 0.2:  # the agent reads the first groups back
        parts.insert(2, " 坐席：" + "".join(parts[:1]) + "对吗 市民：对 ")
    return "".join(parts)


def generated(rng: random.Random, n: int) -> dict[str, float]:
    families = {
        "mobile": lambda: rng.choice(["13", "15", "17", "18", "19"]) + "".join(rng.choices("0123456789", k=9)),
        "id": lambda: table.make_id(f"{rng.choice(['321202', '110105', '440305'])}{rng.randint(1930, 2020)}"
                                    f"{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}{rng.randint(100, 999)}"),
        "bank_card": lambda: table.make_card("6217" + "".join(rng.choices("0123456789", k=14))),
        "landline": lambda: rng.choice(["0523", "025", "010"]) + rng.choice("2345678") + "".join(rng.choices("0123456789", k=7)),
        "unknown_8_to_12": lambda: "".join(rng.choices("0123456789", k=rng.randint(8, 12))),
    }
    contexts = ["电话{}", "我的号码是{}，麻烦回电", "市民：{}", "你记一下{}", "身份证{}", "{}就是我的", "卡号{}后面没了"]
    out = {}
    for family, make in families.items():
        misses = 0
        for _ in range(n):
            secret = make()
            misses += leaked(rng.choice(contexts).format(spoken(rng, secret)), secret)
        out[f"generated recall, {family} (n={n})"] = round(1 - misses / n, 4)
    return out


def cost() -> dict[str, str]:
    patterns = {"a…@b": "a" * 100 + "@b", "digits and spaces": "1 ", "numerals": "一二三四，", "dotted digits": "1.",
                "room lists": "1-1-1101、", "spelled at": "a t ", "turns": "电话139坐席：嗯市民：", "names": "我老公张"}
    out = {}
    for name, pattern in {"one long a…a@b": "", **patterns}.items():
        took = []
        for size in (5_000, 20_000):
            text = pattern * (size // len(pattern)) if pattern else "a" * (size - 2) + "@b"  # alike but for length
            runs = []
            for _ in range(3):  # the best of three: the machine is shared
                started = time.perf_counter()
                pii.mask(text)
                runs.append(time.perf_counter() - started)
            took.append(min(runs))
        out[f"cost {name}: 5k / 20k chars"] = f"{took[0] * 1000:.1f} / {took[1] * 1000:.1f} ms (×{took[1] / took[0]:.1f})"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generated", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rows = [*table.LEAKS, *table.NAME_LEAKS, *table.ROUND3_LEAKS]
    survives = [*table.SURVIVES, *table.ROUND3_SURVIVES]
    figures: dict[str, object] = {
        "hand-written variants": len(rows),
        "recall, hand-written variants": round(sum(not leaked(t, s) for t, s in rows) / len(rows), 4),
        "recall, round-3 variants": round(sum(not leaked(t, s) for t, s in table.ROUND3_LEAKS) / len(table.ROUND3_LEAKS), 4),
        "texts that must stay": len(survives),
        "over-masking, texts that must stay": round(sum(pii.mask(t) != t for t in survives) / len(survives), 4),
    }
    figures.update(generated(random.Random(args.seed), args.generated))
    texts = real_texts()
    started = time.perf_counter()
    masked = [pii.mask(t) for t in texts]
    took = time.perf_counter() - started
    changed = [(t, m) for t, m in zip(texts, masked, strict=True) if t != m]
    placeholder = re.compile(r"0000-0000|\*\*\*\*-\*\*\*\*")
    other = [1 for t, m in changed if not placeholder.search(m)]
    figures.update({
        "real messages": len(texts),
        "real messages changed": f"{len(changed)} ({len(changed) / len(texts):.1%})",
        "… of which not only the organisers' placeholder numbers": f"{len(other)} ({len(other) / len(texts):.1%})",
        "mask, per real message (mean)": f"{took / len(texts) * 1000:.2f} ms",
    })
    figures.update(cost())
    report("pii", figures)


if __name__ == "__main__":
    main()
