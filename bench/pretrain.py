"""Continued masked-word pretraining on the hotline's own texts, before fine-tuning (domain adaptation).

Measured, not shipped: fine-tuned from the adapted encoder, the encoder alone
scored 1.4 points lower on the first two folds of short texts than fine-tuned
from bge-small-zh-v1.5 itself (BENCHMARKS.md), so the product fine-tunes the
fetched encoder and has no command for this.

bge-small-zh-v1.5 learned Chinese from the web; going on with its masked-word
task on unlabeled hotline texts should teach it the hotline's words (物业,
公积金, 拆迁, 噪音扰民) without a label. The jar's graph carries the encoder
only, not its masked-word head: the head's transform is new (its decoder
shares the word embeddings), so the first tenth of the steps train the head
alone on the frozen encoder. Only the masked positions go through the head.

The corpus is ../shared/data's time-stamped messages (title and text), less
every one whose text opens like a labeled message: the labeled messages are
what bench/encoder.py tests on, so none of them, not even unlabeled, is seen
here. Prints the time, the masked-word loss by epoch, and the held-out
masked-word loss and accuracy on 300 of those messages kept out of the
corpus. The adapted directory is ``bench/out/adapted``; bench/encoder.py
fine-tunes it with ``--base bench/out/adapted``.

    python bench/pretrain.py [--epochs 3] [--max-length 256]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import OUT, labeled_rows, report, shared_rows

PRETRAINING_FILE = "pretraining.json"
#: Texts shorter than this many characters teach the masked-word task little and are left out.
MIN_CHARACTERS = 8


def continue_pretraining(
    base: Path,
    texts: Sequence[str],
    out: Path,
    epochs: int = 2,
    batch_size: int = 16,
    learning_rate: float = 5e-5,
    max_length: int = 256,
    mask_share: float = 0.15,
    head_share: float = 0.1,
    threads: int = 0,
    progress: bool = False,
    seed: int = 0,
) -> Path:
    """Pretrain ``base`` further on ``texts`` (masking ``mask_share`` of their tokens, BERT's 80/10/10) and
    write the encoder to ``out``; the first ``head_share`` of the steps train the new head alone."""
    import torch

    from classifiers.tokens import load_tokenizer, pad, token_ids
    from classifiers.transformer import adamw, check_model_dir, length_batches

    os.environ["HF_HUB_OFFLINE"] = "1"
    from tqdm import tqdm
    from transformers import BertForMaskedLM
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    directory = check_model_dir(base)
    texts = [t for t in dict.fromkeys(t.strip() for t in texts) if len(t) >= MIN_CHARACTERS]
    if len(texts) < batch_size:
        raise SystemExit(f"continued pretraining needs at least {batch_size} texts of {MIN_CHARACTERS}+ "
                           f"characters; got {len(texts)}")
    if not 0 < mask_share < 1:
        raise SystemExit("mask_share must be between 0 and 1")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads or os.cpu_count() or 1)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    tokenizer = load_tokenizer(directory)
    rows = token_ids(tokenizer, texts, max_length)
    special = np.array([tokenizer.token_to_id(t) for t in ("[CLS]", "[SEP]", "[PAD]", "[UNK]")
                        if tokenizer.token_to_id(t) is not None])
    mask_id = tokenizer.token_to_id("[MASK]")
    if mask_id is None:
        raise SystemExit("the tokenizer has no [MASK] token")
    model = BertForMaskedLM.from_pretrained(directory, local_files_only=True).to(device)
    vocabulary = model.config.vocab_size
    head = [p for n, p in model.named_parameters() if n.startswith("cls.") and "decoder.weight" not in n]
    head_optimizer = torch.optim.AdamW(head, lr=learning_rate * 10)
    per_epoch = math.ceil(len(rows) / batch_size)
    total = per_epoch * epochs
    head_steps = int(head_share * total)
    body = max(1, total - head_steps)
    optimizer, schedule = adamw(model, learning_rate, 0.01, body, max(1, int(0.1 * body)))
    generator = np.random.default_rng(seed)
    rng = random.Random(seed)
    losses: list[float] = []
    started = time.perf_counter()
    bar = tqdm(total=total, disable=not progress, unit="batch", file=sys.stderr, desc="pretraining")
    step = 0
    for epoch in range(epochs):
        loss_sum, batches = 0.0, 0
        for batch in length_batches([len(r) for r in rows], batch_size, rng):
            ids, attention = pad([rows[i] for i in batch])
            inputs, positions, targets = _masked(ids, attention, special, mask_id, vocabulary, mask_share, generator)
            if not len(targets):
                continue
            heads_only = step < head_steps
            model.train()
            with torch.set_grad_enabled(not heads_only):
                hidden = model.bert(input_ids=torch.from_numpy(inputs).to(device),
                                    attention_mask=torch.from_numpy(attention).to(device)).last_hidden_state
            picked = hidden[torch.from_numpy(positions[0]).to(device), torch.from_numpy(positions[1]).to(device)]
            logits = model.cls(picked.detach() if heads_only else picked)
            loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(targets).to(device))
            chosen = head_optimizer if heads_only else optimizer
            chosen.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            chosen.step()
            if not heads_only:
                schedule.step()
            step += 1
            loss_sum += float(loss.detach())
            batches += 1
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, loss=f"{loss_sum / batches:.3f}", phase="head" if heads_only else "all")
        losses.append(loss_sum / max(batches, 1))
    bar.close()
    out = Path(out)
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial, safe_serialization=True)  # the encoder and its masked-word head
    for name in ("tokenizer.json", "tokenizer_config.json"):
        if (directory / name).is_file():
            shutil.copyfile(directory / name, partial / name)
    meta: dict[str, Any] = {
        "base": str(directory), "texts": len(rows), "epochs": epochs, "batch_size": batch_size,
        "learning_rate": learning_rate, "max_length": max_length, "mask_share": mask_share,
        "head_steps": head_steps, "steps": step, "loss_by_epoch": losses,
        "seconds": round(time.perf_counter() - started, 1), "device": device,
    }
    (partial / PRETRAINING_FILE).write_text(json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8")
    shutil.rmtree(out, ignore_errors=True)
    partial.rename(out)
    return out


def _masked(ids: np.ndarray, attention: np.ndarray, special: np.ndarray, mask_id: int, vocabulary: int,
            share: float, generator: np.random.Generator) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray], np.ndarray]:
    """BERT's corruption: ``share`` of the real tokens are chosen; of those 80% become [MASK], 10% a random
    token, 10% stay. Returns the corrupted ids, the chosen (row, column) positions and their true ids."""
    candidates = (attention == 1) & ~np.isin(ids, special)
    chosen = candidates & (generator.random(ids.shape) < share)
    rows, columns = np.nonzero(chosen)
    targets = ids[rows, columns].copy()
    inputs = ids.copy()
    roll = generator.random(len(rows))
    inputs[rows[roll < 0.8], columns[roll < 0.8]] = mask_id
    swap = (roll >= 0.8) & (roll < 0.9)
    ordinary = int(max(special.max(initial=0), mask_id)) + 1  # BERT vocabularies put the special tokens first
    inputs[rows[swap], columns[swap]] = generator.integers(ordinary, vocabulary, int(swap.sum()))
    return inputs, (rows.astype(np.int64), columns.astype(np.int64)), targets.astype(np.int64)


def corpus() -> list[str]:
    from classifiers.dataset import prepare_text

    def opening(text: str) -> str:
        return "".join(text.split())[:40]

    labeled = {opening(r["text"]) for r in labeled_rows()}
    rows = [r for r in shared_rows("messages_timed.csv") if opening(r["text"]) not in labeled]
    return [prepare_text(f"{r['title']}。{r['text']}") for r in rows]


def held_out_loss(directory: Path, texts: list[str], max_length: int) -> tuple[float, float]:
    """Masked-word cross-entropy and accuracy on ``texts`` (the same masks for every model measured)."""
    import torch
    from transformers import BertForMaskedLM

    from classifiers.tokens import load_tokenizer, pad, token_ids

    tokenizer = load_tokenizer(directory)
    model = BertForMaskedLM.from_pretrained(directory, local_files_only=True).eval()
    special = np.array([tokenizer.token_to_id(t) for t in ("[CLS]", "[SEP]", "[PAD]", "[UNK]")])
    rows = token_ids(tokenizer, texts, max_length)
    generator = np.random.default_rng(1)
    losses, hits, count = 0.0, 0, 0
    with torch.no_grad():
        for start in range(0, len(rows), 16):
            ids, attention = pad(rows[start:start + 16])
            inputs, (r, c), targets = _masked(ids, attention, special, tokenizer.token_to_id("[MASK]"),
                                              model.config.vocab_size, 0.15, generator)
            hidden = model.bert(input_ids=torch.from_numpy(inputs), attention_mask=torch.from_numpy(attention))[0]
            logits = model.cls(hidden[torch.from_numpy(r), torch.from_numpy(c)])
            losses += float(torch.nn.functional.cross_entropy(logits, torch.from_numpy(targets), reduction="sum"))
            hits += int((logits.argmax(1).numpy() == targets).sum())
            count += len(targets)
    return losses / count, hits / count


def main() -> None:
    from classifiers import encoder

    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    args = parser.parse_args()
    base = encoder.fetch()
    texts = corpus()
    rng = np.random.default_rng(0)
    order = rng.permutation(len(texts))
    held = [texts[i] for i in order[:300]]
    train = [texts[i] for i in order[300:]]
    out = OUT / "adapted"
    adapted = continue_pretraining(base, train, out, epochs=args.epochs, max_length=args.max_length,
                                   learning_rate=args.learning_rate, progress=True)
    meta = json.loads((adapted / "pretraining.json").read_text(encoding="utf-8"))
    # The base has no masked-word head (the jar's graph lacks it): its "before" is measured with the head that
    # the adapted model trained, on the base's encoder — the encoder's own change, not the head's.
    before = held_out_loss_with_head(base, adapted, held, args.max_length)
    after = held_out_loss(adapted, held, args.max_length)
    report("pretrain", {
        "corpus texts (timed messages not opening like a labeled one)": len(train),
        "held-out texts": len(held),
        "epochs": args.epochs, "seconds": meta["seconds"], "loss by epoch": meta["loss_by_epoch"],
        "held-out masked-word loss / accuracy, base encoder with the trained head": "%.3f / %.3f" % before,
        "held-out masked-word loss / accuracy, adapted": "%.3f / %.3f" % after,
        "directory": str(adapted),
    })


def held_out_loss_with_head(base: Path, adapted: Path, texts: list[str], max_length: int) -> tuple[float, float]:
    """The base encoder under the adapted model's masked-word head."""
    import shutil
    import tempfile

    from safetensors.torch import load_file, save_file

    with tempfile.TemporaryDirectory(dir=OUT) as tmp:
        mixed = Path(tmp)
        for name in ("config.json", "tokenizer.json"):
            shutil.copyfile(adapted / name, mixed / name)
        weights = load_file(str(adapted / "model.safetensors"))
        weights.update({f"bert.{k}": v for k, v in load_file(str(base / "model.safetensors")).items()})
        save_file(weights, str(mixed / "model.safetensors"))
        return held_out_loss(mixed, texts, max_length)


if __name__ == "__main__":
    main()
