"""Word segmentation with jieba and the city's own vocabulary.

Place names, department names and government terms are added to the
dictionary, so ``海陵区城东街道`` and ``不动产登记`` stay whole words; the same
tokens feed the models and the search index. ``rjieba`` (jieba-rs), with
jieba's own rules for digits and punctuation re-applied, reproduces 99.99% of
jieba's tokens about twelve times faster (bench/segmentation.py); jieba itself
stays available as the reference (``HOTLINE_SEGMENTER=jieba``). A model must be
served with the segmenter it was trained with; the manifest records it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from functools import lru_cache
from importlib import resources

log = logging.getLogger(__name__)

_WORDY = re.compile(r"[0-9A-Za-z\u4e00-\u9fff]")
# jieba's own rules for text that is not a dictionary word (jieba/__init__.py, jieba/finalseg).
_JIEBA_BLOCK_CHAR = re.compile(r"[\u4E00-\u9FD5a-zA-Z0-9+#&\._%\-]")
_JIEBA_SKIP = re.compile(r"([a-zA-Z0-9]+(?:\.\d+)?%?)")
_PLAIN_WORD = re.compile(r"^[\u4E00-\u9FD5a-zA-Z0-9]+$")
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


def _as_jieba_splits(tokens: list[str], has_word: Callable[[str], bool]) -> list[str]:
    """Split rjieba's mixed tokens (``2016.1.4``, ``0523-8688``) the way jieba does.

    jieba-rs keeps runs of digits and punctuation whole where jieba splits
    them with its ``re_skip`` rule and yields other punctuation one character
    at a time; this closes that gap. A residue remains on dictionary near-ties
    (``不等``), about 1% of real messages: bench/segmentation.py measures it.
    """
    out: list[str] = []
    for tok in tokens:
        if len(tok) == 1 or _PLAIN_WORD.match(tok) or tok.isspace() or has_word(tok):
            out.append(tok)
        elif not _JIEBA_BLOCK_CHAR.search(tok):
            out.extend(tok)
        else:
            out.extend(piece for piece in _JIEBA_SKIP.split(tok) if piece)
    return out


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
            self._cut = lambda text: _as_jieba_splits(self._tokenizer.cut(text, True), self._tokenizer.has_word)
        else:
            raise ValueError(f"unknown segmenter backend {backend!r}; use 'jieba' or 'rjieba'")

    def cut(self, text: str) -> list[str]:
        """All tokens, punctuation and spaces included (jieba's ``lcut``)."""
        return self._cut(text)

    def tokens(self, text: str) -> list[str]:
        """Word tokens only, lower-cased: what models and the index see."""
        return [tok.lower() for tok in self._cut(text) if _WORDY.search(tok)]


#: The vocabulary of the city this process serves (its places, departments, categories), set once by the entry
#: point (:meth:`hotline.city.City.serve`); until then, the bundled city's.
_city_words: tuple[tuple[str, int], ...] | None = None


def serve_city(words: Iterable[tuple[str, int]]) -> None:
    """Make ``words`` the city vocabulary of every segmenter this process hands out from now on."""
    global _city_words
    words = tuple(words)
    if words != _city_words:
        _city_words = words
        default_segmenter.cache_clear()


def city_vocabulary() -> tuple[tuple[str, int], ...]:
    """Government terms and the served city's words (the bundled city's before any is served)."""
    if _city_words is None:
        from hotline.city import City

        return tuple(City.bundled().vocabulary())
    return _city_words


@lru_cache(maxsize=4)
def default_segmenter(backend: str = "rjieba") -> Segmenter:
    """The process-wide segmenter of a backend, with the served city's vocabulary loaded.

    Models and the index find it by backend name (a fitted model cannot hold a
    tokenizer); the manifest's city fingerprint makes sure a model is only
    served where the vocabulary is the one it was trained with.
    """
    words = city_vocabulary()
    log.debug("loading %d custom words into %s", len(words), backend)
    return Segmenter(words, backend=backend)
