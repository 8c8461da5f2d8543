"""Token ids for BERT-style encoders: the tokenizer read as it is, [CLS] text [SEP] with head and tail kept, and
batches padded to their longest row. Shared by fine-tuning, serving and the int8 checks."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hotline.errors import InvalidInput


def load_tokenizer(directory: Path) -> Any:
    """The directory's ``tokenizer.json`` as a ``tokenizers.Tokenizer`` with no truncation or padding of its own.

    Read as it is: rebuilding a WordPiece tokenizer from a vocabulary file
    under transformers 5 silently maps every Chinese character to [UNK].
    """
    from tokenizers import Tokenizer

    path = Path(directory) / "tokenizer.json"
    if not path.is_file():
        raise InvalidInput(f"{directory} has no tokenizer.json")
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def token_ids(tokenizer: Any, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """[CLS] text [SEP] per text; a text longer than ``max_length`` tokens keeps its head (¾) and its tail."""
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    if cls is None or sep is None:
        raise InvalidInput("the tokenizer has no [CLS]/[SEP] tokens; a BERT-style tokenizer is needed")
    body = max_length - 2
    head = body * 3 // 4
    out = []
    for encoding in tokenizer.encode_batch([t or " " for t in texts], add_special_tokens=False):
        ids = encoding.ids
        if len(ids) > body:
            ids = ids[:head] + ids[len(ids) - (body - head):]
        out.append([cls, *ids, sep])
    return out


def pad(rows: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """(ids, attention mask), padded with 0 to the longest row of this batch only."""
    width = max(len(r) for r in rows)
    ids = np.zeros((len(rows), width), dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, row in enumerate(rows):
        ids[i, :len(row)] = row
        mask[i, :len(row)] = 1
    return ids, mask
