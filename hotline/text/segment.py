"""Word segmentation with jieba and the city's own vocabulary.

Place names, department names and government terms are added to the
dictionary, so ``海陵区城东街道`` and ``不动产登记`` stay whole words; the same
tokens feed the models and the search index. ``rjieba`` (jieba-rs) gives the
same tokens as jieba's default mode several times faster (see
bench/segmentation.py); jieba itself stays available as the reference.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from functools import lru_cache
from importlib import resources

log = logging.getLogger(__name__)

_WORDY = re.compile(r"[0-9A-Za-z\u4e00-\u9fff]")
USER_FREQ = 3000


def read_user_dict(text: str) -> list[tuple[str, int]]:
    """Parse jieba's user-dictionary format: ``word [freq] [tag]`` per line, ``#`` comments."""
    words: list[tuple[str, int]] = []
    for line in text.splitlines():
        parts = line.split("#", 1)[0].split()
        if not parts:
            continue
        freq = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else USER_FREQ
        words.append((parts[0], freq))
    return words


def government_terms() -> list[tuple[str, int]]:
    """The bundled government and hotline terms."""
    return read_user_dict(resources.files("hotline.data").joinpath("gov_terms.txt").read_text("utf-8"))


class Segmenter:
    """A jieba-compatible segmenter with extra words; ``backend`` is 'jieba' or 'rjieba'."""

    def __init__(self, words: Iterable[tuple[str, int]] = (), backend: str = "rjieba") -> None:
        self.backend = backend
        if backend == "jieba":
            import jieba

            jieba.setLogLevel(logging.WARNING)
            self._tokenizer = jieba.Tokenizer()
            self._tokenizer.initialize()
            add = self._tokenizer.add_word
            self._cut = lambda text: self._tokenizer.lcut(text, HMM=True)
            for word, freq in words:
                add(word, freq)
        elif backend == "rjieba":
            import rjieba

            self._tokenizer = rjieba.Jieba()
            for word, freq in words:
                self._tokenizer.add_word(word, freq, None)
            self._cut = lambda text: self._tokenizer.cut(text, True)
        else:
            raise ValueError(f"unknown segmenter backend {backend!r}; use 'jieba' or 'rjieba'")

    def cut(self, text: str) -> list[str]:
        """All tokens, punctuation and spaces included (jieba's ``lcut``)."""
        return self._cut(text)

    def tokens(self, text: str) -> list[str]:
        """Word tokens only, lower-cased: what models and the index see."""
        return [tok.lower() for tok in self._cut(text) if _WORDY.search(tok)]


@lru_cache(maxsize=4)
def default_segmenter(backend: str = "rjieba") -> Segmenter:
    """The process-wide segmenter with the gazetteer and taxonomy vocabulary loaded."""
    from hotline.places import default_gazetteer
    from hotline.taxonomy import default_taxonomy

    words = government_terms() + default_gazetteer().vocabulary() + default_taxonomy().vocabulary()
    log.debug("loading %d custom words into %s", len(words), backend)
    return Segmenter(words, backend=backend)
