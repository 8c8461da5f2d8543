"""Fine-tuning a local pretrained Chinese model (BERT, RoBERTa …) for case categories.

The model comes from a directory on this machine, never from a hub: a city's
servers have no route to one, and a model that changes under the same name is
not a model anyone can audit. ``HF_HUB_OFFLINE=1`` and ``local_files_only``
make that explicit. Weights are written as safetensors, which hold tensors
and nothing that runs. Training runs on a GPU when there is one, else on the
CPU (small models only).
"""

from __future__ import annotations

import json
import logging
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from classifiers.features import check_labels, check_texts
from hotline.errors import InvalidInput, NotFound

log = logging.getLogger(__name__)

CLASSES_FILE = "classes.json"


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise InvalidInput("the transformer path needs torch and transformers: pip install -e '.[transformer]'") from None
    return torch


def check_model_dir(path: str | Path) -> Path:
    """A local model directory with a ``config.json``; hub names are refused."""
    directory = Path(path)
    if not (directory / "config.json").is_file():
        raise InvalidInput(f"{path} is not a local model directory (no config.json); hub downloads are disabled")
    return directory


class TransformerClassifier(ClassifierMixin, BaseEstimator):
    """A sequence-classification head fine-tuned on labeled texts; scikit-learn's fit/predict_proba."""

    def __init__(
        self,
        base_model: str = "",
        epochs: int = 3,
        batch_size: int = 16,
        learning_rate: float = 5e-5,
        max_length: int = 256,
        weight_decay: float = 0.01,
        device: str | None = None,
        seed: int = 0,
    ) -> None:
        self.base_model = base_model
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.max_length = max_length
        self.weight_decay = weight_decay
        self.device = device
        self.seed = seed

    def _device(self) -> str:
        return self.device or ("cuda" if _torch().cuda.is_available() else "cpu")

    def fit(self, X: Any, y: Any) -> TransformerClassifier:
        torch = _torch()
        os.environ["HF_HUB_OFFLINE"] = "1"
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        texts = check_texts(X)
        labels = check_labels(texts, y)
        self.classes_ = np.unique(labels)
        directory = check_model_dir(self.base_model)
        random.seed(self.seed)
        np.random.seed(self.seed)
        torch.manual_seed(self.seed)
        device = self._device()
        self.tokenizer_ = AutoTokenizer.from_pretrained(directory, local_files_only=True)
        names = [str(c) for c in self.classes_]
        self.model_ = AutoModelForSequenceClassification.from_pretrained(
            directory, local_files_only=True, num_labels=len(names),
            id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)},
            ignore_mismatched_sizes=True,
        ).to(device)
        target = torch.tensor(np.searchsorted(self.classes_, labels), dtype=torch.long)
        optimizer = torch.optim.AdamW(self.model_.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay)
        generator = torch.Generator().manual_seed(self.seed)
        self.loss_history_: list[float] = []
        self.model_.train()
        for epoch in range(self.epochs):
            order = torch.randperm(len(texts), generator=generator).tolist()
            total, batches = 0.0, 0
            for start in range(0, len(order), self.batch_size):
                index = order[start:start + self.batch_size]
                batch = self._encode([texts[i] for i in index], device)
                out = self.model_(**batch, labels=target[index].to(device))
                optimizer.zero_grad()
                out.loss.backward()
                optimizer.step()
                total += float(out.loss.detach())
                batches += 1
            self.loss_history_.append(total / max(batches, 1))
            log.info("epoch %d/%d: mean loss %.4f", epoch + 1, self.epochs, self.loss_history_[-1])
        self.model_.eval()
        return self

    def _encode(self, texts: list[str], device: str) -> dict[str, Any]:
        batch = self.tokenizer_(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        return {k: v.to(device) for k, v in batch.items()}

    def predict_proba(self, X: Any) -> np.ndarray:
        torch = _torch()
        if not hasattr(self, "model_"):
            raise NotFound("the transformer model is not fitted")
        texts = check_texts(X)
        device = next(self.model_.parameters()).device
        out = []
        with torch.no_grad():
            for start in range(0, len(texts), 64):
                logits = self.model_(**self._encode(texts[start:start + 64], str(device))).logits
                out.append(torch.softmax(logits.float(), dim=-1).cpu().numpy())
        return np.vstack(out)

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def save(self, directory: Path) -> Path:
        """Weights as safetensors, the tokenizer, and the classes in order."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.model_.save_pretrained(directory, safe_serialization=True)
        self.tokenizer_.save_pretrained(directory)
        params = {k: v for k, v in self.get_params().items() if k != "device"}
        (directory / CLASSES_FILE).write_text(
            json.dumps({"classes": [str(c) for c in self.classes_], "params": params}, ensure_ascii=False), encoding="utf-8"
        )
        return directory

    @classmethod
    def load(cls, directory: Path, device: str | None = None) -> TransformerClassifier:
        """Load a model :meth:`save` wrote; only safetensors weights are read."""
        os.environ["HF_HUB_OFFLINE"] = "1"
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        directory = check_model_dir(directory)
        try:
            meta = json.loads((directory / CLASSES_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise NotFound(f"{directory} has no {CLASSES_FILE}: not a model this project trained") from None
        if not any(directory.glob("*.safetensors")):
            raise InvalidInput(f"{directory} has no safetensors weights; other formats are not loaded")
        model = cls(**{**meta["params"], "device": device})
        model.classes_ = np.asarray(meta["classes"])
        model.tokenizer_ = AutoTokenizer.from_pretrained(directory, local_files_only=True)
        model.model_ = AutoModelForSequenceClassification.from_pretrained(
            directory, local_files_only=True, use_safetensors=True
        ).to(model._device())
        model.model_.eval()
        return model


class EnsembleClassifier(ClassifierMixin, BaseEstimator):
    """Weighted mean of the members' probabilities, aligned by class name."""

    def __init__(self, members: list[Any], weights: list[float] | None = None) -> None:
        self.members = members
        self.weights = weights

    @property
    def classes_(self) -> np.ndarray:
        return np.unique(np.concatenate([np.asarray(m.classes_, dtype=object) for m in self.members]))

    def predict_proba(self, X: Any) -> np.ndarray:
        texts = check_texts(X)
        classes = self.classes_
        weights = self.weights or [1.0] * len(self.members)
        total = np.zeros((len(texts), len(classes)))
        for member, weight in zip(self.members, weights, strict=True):
            columns = np.searchsorted(classes, np.asarray(member.classes_, dtype=object))
            total[:, columns] += weight * member.predict_proba(texts)
        return total / sum(weights)

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]
