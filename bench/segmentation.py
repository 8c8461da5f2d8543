"""Segmentation throughput: our text pipeline against plain ``jieba.lcut``, same run.

Also checks that rjieba (jieba-rs) gives the same tokens as jieba with the same
dictionary, document by document, on the real messages.
"""

from __future__ import annotations

import difflib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import real_texts, report, timed


def main() -> None:
    import jieba

    from hotline.text import pii
    from hotline.text.clean import normalize
    from hotline.text.segment import default_segmenter

    jieba.setLogLevel(60)
    texts = real_texts()
    chars = sum(len(t) for t in texts)
    jieba.lcut(texts[0])  # load the dictionary outside the timing
    ours_jieba = default_segmenter("jieba")
    ours_rjieba = default_segmenter("rjieba")

    t_plain, _ = timed(lambda: [jieba.lcut(t) for t in texts])
    t_jieba, jieba_tokens = timed(lambda: [ours_jieba.cut(t) for t in texts])
    t_rjieba, rjieba_tokens = timed(lambda: [ours_rjieba.cut(t) for t in texts])
    t_pipeline, _ = timed(lambda: [ours_rjieba.tokens(pii.mask(normalize(t))) for t in texts])
    same = sum(a == b for a, b in zip(jieba_tokens, rjieba_tokens, strict=True))
    token_total = token_same = 0
    for a, b in zip(jieba_tokens, rjieba_tokens, strict=True):
        matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
        token_same += sum(block.size for block in matcher.get_matching_blocks())
        token_total += len(a)

    report("segmentation", {
        "documents": len(texts),
        "characters": chars,
        "baseline jieba.lcut chars/s": chars / t_plain,
        "jieba + city dictionary chars/s": chars / t_jieba,
        "rjieba + city dictionary chars/s": chars / t_rjieba,
        "full pipeline (normalize+mask+rjieba tokens) chars/s": chars / t_pipeline,
        "rjieba / jieba.lcut speed ratio": t_plain / t_rjieba,
        "pipeline / jieba.lcut speed ratio": t_plain / t_pipeline,
        "documents with identical tokens (rjieba vs jieba, same dictionary)": f"{same}/{len(texts)} ({same / len(texts):.2%})",
        "jieba tokens reproduced by rjieba": f"{token_same}/{token_total} ({token_same / token_total:.3%})",
    })


if __name__ == "__main__":
    main()
