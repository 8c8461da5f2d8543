"""The linear model first, the encoder where the linear model is unsure: a cascade with a stacked combination.

Routing must answer in milliseconds, and most calls are plain: the linear
model is right on nearly all of those it is confident about, so it answers
them alone (above its auto-dispatch threshold). The rest go to the
fine-tuned encoder, and a :class:`Stacker` — a weighted geometric mean of both
models' probabilities, its weights fitted on rows neither model trained on —
decides.

In the service the encoder is bounded: at most ``encoder_calls`` calls of
the host's workers run it at once (:class:`EncoderGate`); an unsure call that
finds it full is answered by the linear model alone and marked for a person. On
real messages 40% of calls are unsure, more encoder work at 300 requests/s
than two cores have; without the bound every call queued behind it (134
requests/s served, p99 2.6 s; ``bench/api_load.py --texts real``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from classifiers.features import check_texts
from hotline.errors import InvalidInput

STACKER_FILE = "stacker.skops"
#: Where a model directory keeps the stacker.
STACKER_DIR = "stacker"


def aligned(proba: np.ndarray, member_classes: Sequence[Any], classes: np.ndarray) -> np.ndarray:
    """``proba`` (columns in ``member_classes`` order) as columns of ``classes``; classes it lacks get 0."""
    out = np.zeros((proba.shape[0], len(classes)))
    out[:, np.searchsorted(classes, np.asarray(member_classes, dtype=object))] = proba
    return out


class Stacker(ClassifierMixin, BaseEstimator):
    """How far to believe each member: a weighted geometric mean of their probabilities, fitted on held-out rows.

    p(k) ∝ exp(Σ_m w_m · log p_m(k) + b_k): one weight per member (≥ 0) and one
    bias per class, fitted by log-loss with the biases ridge-penalised (``C``).
    The stacker learns from a few hundred rows neither member trained on, so it
    must learn little: a multinomial logistic regression over both members'
    log-probabilities (``per_class=True``, 2·K weights per class) learned noise
    there, +2.1 points over the linear model on the first fold of short texts
    where one weight per member gave +3.8 (bench/encoder.py). The weights also
    say, in the manifest, how much the encoder is believed.
    """

    def __init__(self, C: float = 1.0, per_class: bool = False) -> None:
        self.C = C
        self.per_class = per_class

    def _logs(self, probas: Sequence[np.ndarray], member_classes: Sequence[Sequence[Any]]) -> np.ndarray:
        """The members' log-probabilities over ``classes_``: rows × members × classes."""
        return np.stack([np.log(np.clip(aligned(p, c, self.classes_), 1e-6, 1.0))
                         for p, c in zip(probas, member_classes, strict=True)], axis=1)

    @staticmethod
    def _log_proba(logs: np.ndarray, weights: np.ndarray, bias: np.ndarray) -> np.ndarray:
        """log p(k) of the weighted geometric mean: what fitting minimises and what combining returns."""
        from scipy.special import log_softmax

        return log_softmax(np.einsum("rmk,m->rk", logs, weights) + bias, axis=1)

    def fit(self, probas: Sequence[np.ndarray], member_classes: Sequence[Sequence[Any]],
            y: Sequence[Any] | np.ndarray) -> Stacker:
        if len(probas) != len(member_classes) or not probas:
            raise InvalidInput("the stacker needs each member's probabilities and classes")
        self.classes_ = np.unique(np.concatenate([np.asarray(c, dtype=object) for c in member_classes]))
        logs = self._logs(probas, member_classes)
        labels = np.asarray(y, dtype=object)
        if self.per_class:
            from sklearn.linear_model import LogisticRegression

            self.model_ = LogisticRegression(C=self.C, max_iter=2000).fit(logs.reshape(len(logs), -1), labels)
        else:
            self.weights_, self.bias_ = self._fit_shared(logs, labels)
        return self

    def _fit_shared(self, logs: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Member weights and class biases minimising the mean log-loss; a class the rows lack keeps bias 0."""
        from scipy.optimize import minimize

        rows, members, classes = logs.shape
        target = np.zeros((rows, classes))
        target[np.arange(rows), np.searchsorted(self.classes_, y)] = 1.0
        present = target.any(axis=0)
        ridge = 1.0 / (2 * self.C * rows)

        def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
            weights, bias = theta[:members], np.where(present, theta[members:], 0.0)
            log_proba = self._log_proba(logs, weights, bias)
            error = (np.exp(log_proba) - target) / rows
            value = -float((target * log_proba).sum()) / rows + ridge * float(bias @ bias)
            gradient = np.concatenate([np.einsum("rk,rmk->m", error, logs),
                                       np.where(present, error.sum(axis=0) + 2 * ridge * bias, 0.0)])
            return value, gradient

        start = np.concatenate([np.full(members, 1.0 / members), np.zeros(classes)])
        bounds = [(0.0, None)] * members + [(None, None)] * classes
        theta = minimize(loss, start, jac=True, method="L-BFGS-B", bounds=bounds).x
        return theta[:members], np.where(present, theta[members:], 0.0)

    def combine(self, probas: Sequence[np.ndarray], member_classes: Sequence[Sequence[Any]]) -> np.ndarray:
        """Probabilities over ``classes_``."""
        logs = self._logs(probas, member_classes)
        if not hasattr(self, "model_"):
            return np.exp(self._log_proba(logs, self.weights_, self.bias_))
        # The regression (per_class, and stackers saved before): a class the held-out rows lacked keeps the mean.
        mean = np.mean([aligned(p, c, self.classes_) for p, c in zip(probas, member_classes, strict=True)], axis=0)
        learned = aligned(self.model_.predict_proba(logs.reshape(len(logs), -1)), self.model_.classes_, self.classes_)
        missing = ~np.isin(self.classes_, self.model_.classes_)
        if missing.any():
            learned[:, missing] = mean[:, missing]
            learned /= learned.sum(axis=1, keepdims=True)
        return learned

    def save(self, directory: Path) -> Path:
        import skops.io

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        skops.io.dump(self, directory / STACKER_FILE)
        return directory

    @classmethod
    def load(cls, directory: Path) -> Stacker:
        from classifiers.persist import load_skops

        return load_skops(Path(directory) / STACKER_FILE)


class Cascade(ClassifierMixin, BaseEstimator):
    """``first`` alone where its top probability reaches ``threshold``; elsewhere ``stacker`` over both members."""

    def __init__(self, first: Any, second: Any, stacker: Stacker, threshold: float = 1.0) -> None:
        self.first = first
        self.second = second
        self.stacker = stacker
        self.threshold = threshold

    @property
    def classes_(self) -> np.ndarray:
        return self.stacker.classes_

    def predict_proba(self, X: Any) -> np.ndarray:
        texts = check_texts(X)
        first = self.first.predict_proba(texts)
        out = aligned(first, self.first.classes_, self.classes_)
        unsure = np.flatnonzero(self.unsure(first))
        if len(unsure):
            out[unsure] = self.combine(first[unsure], [texts[i] for i in unsure])
        return out

    def combine(self, first: np.ndarray, texts: Sequence[str]) -> np.ndarray:
        """The stacked answer for rows where ``first`` (its probabilities given) is unsure."""
        second = self.second.predict_proba(list(texts))
        return self.stacker.combine([first, second], [self.first.classes_, self.second.classes_])

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def unsure(self, first: np.ndarray) -> np.ndarray:
        """Per row of ``first``'s probabilities: below the threshold, so the encoder is asked."""
        return first.max(axis=1) < self.threshold

    def encoder_share(self, X: Any) -> float:
        """Share of ``X`` that would reach the encoder."""
        first = self.first.predict_proba(check_texts(X))
        return float(np.mean(self.unsure(first))) if len(first) else 0.0


class EncoderGate:
    """At most ``limit`` callers inside the encoder at once (0: no bound); the others are told to go without.

    With ``slots`` (a folder) the bound is shared by every process whose gate
    names that folder: the service's workers on one host, which share its
    cores. Each of ``limit`` files there is a slot, held by a non-blocking
    ``flock`` for as long as one call runs the encoder; a worker that dies
    holding one loses it with its file descriptors, so no slot is left taken.
    Without ``slots`` the bound is this process's alone: ``limit`` per worker,
    which on two workers let two encoder runs fight the HTTP work for two
    cores (p99 64.7 ms at 300 requests/s on real messages; one worker: 47–49 ms).
    """

    def __init__(self, limit: int = 0, slots: Path | None = None) -> None:
        self.limit = limit
        self.slots = Path(slots) if slots is not None else None
        self.inside = 0
        self.asked = 0
        self.shed = 0
        self._lock = threading.Lock()
        self._free = list(range(limit))  # the slots no thread of this process holds
        self._files: dict[int, Any] = {}

    def _take(self, slot: int) -> bool:
        """Whether no other process holds ``slot`` (which this process now holds until :meth:`_give`)."""
        import fcntl

        if self.slots is None:
            return True
        if slot not in self._files:
            self.slots.mkdir(parents=True, exist_ok=True)
            self._files[slot] = (self.slots / f"slot-{slot}").open("a")
        try:
            fcntl.flock(self._files[slot], fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _give(self, slot: int) -> None:
        import fcntl

        handle = self._files.get(slot)
        if handle is not None:  # none after close(): closing the file let go of the lock already
            fcntl.flock(handle, fcntl.LOCK_UN)

    @contextmanager
    def admit(self) -> Iterator[bool]:
        """Whether this caller may run the encoder now; its slot is held until the block ends."""
        slot = self._enter()
        try:
            yield slot is not None
        finally:
            if slot is not None:
                with self._lock:
                    self.inside -= 1
                    if slot >= 0:
                        self._give(slot)
                        self._free.append(slot)

    def _enter(self) -> int | None:
        """The slot this caller holds (-1 where nothing is bounded), or None: go without the encoder."""
        with self._lock:
            self.asked += 1
            slot = next((s for s in self._free if self._take(s)), None) if self.limit else -1
            if slot is None:
                self.shed += 1
                return None
            if slot >= 0:
                self._free.remove(slot)
            self.inside += 1
            return slot

    def close(self) -> None:
        """Let go of the slot files (a slot held by a running call is released when its block ends)."""
        with self._lock:
            for handle in self._files.values():
                handle.close()
            self._files.clear()


@dataclass
class CascadeFeatures:
    """One call's linear features and text; ``shed`` says the encoder was busy and the linear model answered."""

    row: Any
    text: str
    shed: bool = False


class CascadeModel:
    """A :class:`~classifiers.router.RoutingModel`: the linear :class:`CaseModel` with the cascade's categories.

    Departments, explanations and similar cases stay with the linear side,
    which can say which words made it choose; only the category
    probabilities of unsure calls come from the cascade.
    """

    #: Unsure calls wait for the encoder: the service routes this model's calls off its event loop.
    runs_encoder = True

    def __init__(self, linear: Any, cascade: Cascade, gate: EncoderGate | None = None) -> None:
        self.linear = linear
        self.cascade = cascade
        self.gate = gate or EncoderGate()
        self.similar_ = linear.similar_

    def features(self, text: str) -> CascadeFeatures:
        return CascadeFeatures(self.linear.features(text), text)

    def batch_features(self, texts: Sequence[str]) -> list[CascadeFeatures]:
        return [CascadeFeatures(row, text) for row, text in zip(self.linear.batch_features(texts), texts, strict=True)]

    def category_scores(self, features: CascadeFeatures) -> tuple[np.ndarray, np.ndarray]:
        classes, proba = self.linear.category_scores(features.row)
        if not self.cascade.unsure(proba[None, :])[0]:
            return classes, proba
        with self.gate.admit() as admitted:
            if not admitted:
                features.shed = True
                return classes, proba
            return self.cascade.classes_, self.cascade.combine(proba[None, :], [features.text])[0]

    def department_scores(self, features: CascadeFeatures) -> tuple[np.ndarray, np.ndarray] | None:
        return self.linear.department_scores(features.row)

    def explain(self, features: CascadeFeatures, category: str, k: int = 6) -> list[tuple[str, float]]:
        return self.linear.explain(features.row, category, k=k)

    def lead(self, departments: Sequence[str]) -> str:
        return self.linear.lead(departments)

    def unclear(self, features: CascadeFeatures) -> bool:
        return self.linear.unclear(features.row)

    def usual_departments(self, category: str) -> dict[str, float]:
        return self.linear.usual_departments(category)

    def co_handlers(self, category: str) -> dict[str, float]:
        return self.linear.co_handlers(category)
