"""Data quality before training: duplicates, leakage between training and test, class balance, suspect labels, drift.

- Exact duplicates share their normalised text; near duplicates their
  *skeleton* (the text without digits, Latin letters, punctuation and
  spaces: the same complaint with another house number or phone mask).
- Leakage: a test case whose skeleton is in the training data measures
  memory, not skill; such cases leave the test set.
- Suspect labels (confident learning, Northcutt et al. 2021): with
  out-of-fold probabilities, a case whose given label gets less than that
  class's average self-confidence while another class gets more than its own
  is flagged for review, not dropped.
- Drift between two periods: the label mix and the vocabulary (Jensen–Shannon
  divergence, and the words that came or went).
"""

from __future__ import annotations

import logging
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from classifiers.dataset import Examples

log = logging.getLogger(__name__)

#: Fewer examples than this and a class is left out of training (it could be neither learned nor measured).
MIN_CLASS_EXAMPLES = 5
_NOISE = re.compile(r"[\sA-Za-z0-9０-９Ａ-Ｚａ-ｚ*＊#＃,，.。!！?？:：;；、\"'“”‘’()（）\[\]【】<>《》~～\-—_/\\|]+")


def skeleton(text: str) -> str:
    return _NOISE.sub("", unicodedata.normalize("NFKC", text))


@dataclass
class QualityReport:
    examples: int = 0
    exact_duplicates: int = 0
    near_duplicates: int = 0
    leaked_from_test: int = 0
    classes: dict[str, int] = field(default_factory=dict)
    smallest_class: tuple[str, int] | None = None
    suspect_labels: list[dict[str, Any]] = field(default_factory=list)
    dropped_classes: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def deduplicate(data: Examples, report: QualityReport) -> Examples:
    """Keep the last of each group of (near) duplicates: the store's confirmed labels come after a file's."""
    last: dict[str, int] = {}
    exact: set[str] = set()
    for i, text in enumerate(data.texts):
        key = skeleton(text) or text
        if text.strip() in exact:
            report.exact_duplicates += 1
        elif key in last:
            report.near_duplicates += 1
        last[key] = i
        exact.add(text.strip())
    return _subset(data, sorted(last.values()), report)


def drop_rare_classes(data: Examples, report: QualityReport, minimum: int = MIN_CLASS_EXAMPLES) -> Examples:
    """Leave out classes with fewer than ``minimum`` examples, with a warning, rather than fail.

    Two stray labels of one class used to make every retrain fail ("class
    has only one example"); a class that rare can neither be learned nor
    measured. What was left out is in the report.
    """
    rare = {label: n for label, n in Counter(data.labels).items() if n < minimum}
    if not rare:
        return data
    log.warning("left out %d classes with fewer than %d examples: %s", len(rare), minimum,
                ", ".join(f"{label} ({n})" for label, n in sorted(rare.items())))
    report.dropped_classes = rare
    return _subset(data, [i for i, label in enumerate(data.labels) if label not in rare], report)


def _subset(data: Examples, keep: Sequence[int], report: QualityReport) -> Examples:
    """The examples at ``keep``, with the report's counts brought up to date."""
    out = Examples(skipped=data.skipped)
    for name in ("texts", "labels", "ids", "times", "districts", "departments", "rows"):
        values = getattr(data, name)
        setattr(out, name, [values[i] for i in keep] if len(values) == len(data.texts) else list(values))
    report.examples = len(out.texts)
    report.classes = dict(Counter(out.labels).most_common())
    if report.classes:
        name, count = min(report.classes.items(), key=lambda kv: kv[1])
        report.smallest_class = (name, count)
    return out


def leak_free(train: Sequence[int] | np.ndarray, test: Sequence[int] | np.ndarray, texts: Sequence[str], report: QualityReport) -> np.ndarray:
    """The test indices whose skeleton does not occur in the training texts."""
    seen = {skeleton(texts[i]) for i in train}
    kept = [i for i in test if skeleton(texts[i]) not in seen]
    report.leaked_from_test = len(test) - len(kept)
    return np.asarray(kept, dtype=int)


def suspect_labels(labels: Sequence[str], proba: np.ndarray, classes: Sequence[str], texts: Sequence[str],
                   ids: Sequence[str], top: int = 200) -> list[dict[str, Any]]:
    """Confident-learning flags from out-of-fold probabilities, most confident contradiction first."""
    classes = list(classes)
    index = {c: j for j, c in enumerate(classes)}
    given = np.asarray([index[label] for label in labels])
    self_confidence = proba[np.arange(len(given)), given]
    thresholds = np.asarray([self_confidence[given == j].mean() if (given == j).any() else 1.0
                             for j in range(len(classes))])
    flagged = []
    for i in np.argsort(self_confidence):
        other = proba[i].copy()
        other[given[i]] = -1
        j = int(np.argmax(other))
        if self_confidence[i] < thresholds[given[i]] and other[j] >= thresholds[j]:
            flagged.append({"id": ids[i], "text": texts[i][:200], "label": labels[i], "suggested": classes[j],
                            "label_probability": round(float(self_confidence[i]), 4),
                            "suggested_probability": round(float(other[j]), 4)})
        if len(flagged) >= top:
            break
    return flagged


def drift(old_labels: Sequence[str], new_labels: Sequence[str], old_texts: Sequence[str], new_texts: Sequence[str],
          tokenize: Callable[[str], list[str]], top: int = 20) -> dict[str, Any]:
    """How a newer period differs from an older one: label mix and vocabulary."""
    def shares(values: Sequence[str]) -> dict[str, float]:
        counts = Counter(values)
        total = sum(counts.values()) or 1
        return {k: v / total for k, v in counts.items()}

    def vocabulary(texts: Sequence[str]) -> Counter[str]:
        words: Counter[str] = Counter()
        for text in texts:
            words.update(set(tokenize(text)))
        return words

    old_mix, new_mix = shares(old_labels), shares(new_labels)
    old_words, new_words = vocabulary(old_texts), vocabulary(new_texts)
    n_old, n_new = max(len(old_texts), 1), max(len(new_texts), 1)
    rise = sorted(((w, c / n_new - old_words.get(w, 0) / n_old) for w, c in new_words.items() if c >= 3),
                  key=lambda kv: -kv[1])[:top]
    fall = sorted(((w, c / n_old - new_words.get(w, 0) / n_new) for w, c in old_words.items() if c >= 3),
                  key=lambda kv: -kv[1])[:top]
    return {
        "label_js_divergence": _js(old_mix, new_mix),
        "vocabulary_js_divergence": _js(shares(list(old_words.elements())), shares(list(new_words.elements()))),
        "labels": {k: {"old": round(old_mix.get(k, 0.0), 4), "new": round(new_mix.get(k, 0.0), 4)}
                   for k in sorted(set(old_mix) | set(new_mix))},
        "new_labels": sorted(set(new_mix) - set(old_mix)),
        "rising_words": [{"word": w, "share_change": round(d, 4)} for w, d in rise],
        "falling_words": [{"word": w, "share_change": round(d, 4)} for w, d in fall],
    }


def _js(p: dict[str, float], q: dict[str, float]) -> float:
    keys = set(p) | set(q)
    m = {k: (p.get(k, 0.0) + q.get(k, 0.0)) / 2 for k in keys}

    def kl(a: dict[str, float]) -> float:
        return sum(a[k] * math.log2(a[k] / m[k]) for k in keys if a.get(k, 0.0) > 0)

    return round(0.5 * kl(p) + 0.5 * kl(q), 4)
