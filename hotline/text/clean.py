"""Normalisation of raw text before anything else looks at it.

Government exports and ASR output mix full-width digits and letters, zero-width
characters and odd whitespace; left in, they split tokens and hide phone
numbers from the masker. Chinese punctuation is kept: it is what users read.
"""

from __future__ import annotations

import re

_FULLWIDTH = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F) if chr(code) not in "，：；！？（）"}
_FULLWIDTH[0x3000] = 0x20  # ideographic space
#: Invisible and control characters: zero-width ones, bidi embeddings, overrides and isolates (they reorder
#: what a reader sees: U+202A–U+202E, U+2066–U+2069), C0 controls and the noncharacters U+FFFE/U+FFFF that
#: XML 1.0 forbids (one of them in one case made the public requests.xml invalid for its whole window).
_INVISIBLE = re.compile(
    "[\u200b-\u200f\u2028\u2029\u202a-\u202e\u2060-\u2069\ufeff\ufffe\uffff\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]"
)
_SPACES = re.compile(r"[ \t\u00a0]+")
_NEWLINES = re.compile(r"\s*\n\s*")


def strip_invisible(text: str) -> str:
    """``text`` without invisible, control and noncharacter code points (tabs and line breaks kept)."""
    return _INVISIBLE.sub("", text)


def normalize(text: str) -> str:
    """Full-width ASCII to half-width, invisible characters removed, whitespace collapsed."""
    text = _INVISIBLE.sub("", text.translate(_FULLWIDTH)).replace("\r\n", "\n").replace("\r", "\n")
    text = _SPACES.sub(" ", text)
    return _NEWLINES.sub("\n", text).strip()


_SURROGATES = re.compile("[\ud800-\udfff]")


def unencodable(text: str) -> bool:
    """True when ``text`` holds lone surrogates: valid in JSON and in Python, but not in UTF-8, so never storable."""
    return _SURROGATES.search(text) is not None


def replace_unencodable(text: str) -> str:
    """``text`` with each lone surrogate shown as U+FFFD (for a reject file, which must be writable)."""
    return _SURROGATES.sub("\ufffd", text)
