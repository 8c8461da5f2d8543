"""Model kinds in one table: what each holds, how its category classifier is put together and loaded.

``linear`` is the scikit-learn :class:`~classifiers.model.CaseModel` (categories,
departments, explanations, similar cases); ``transformer`` a fine-tuned
pretrained encoder; ``ensemble`` both, averaged. A new kind is a row here and
its classes; nothing else tests a kind's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hotline.city import City
from hotline.errors import InvalidInput

#: Where a model directory keeps its fine-tuned transformer.
TRANSFORMER_DIR = "transformer"


@dataclass(frozen=True)
class ModelKind:
    name: str
    linear: bool        # holds the linear CaseModel: routes, explains, learns departments and similar cases
    transformer: bool   # holds a fine-tuned transformer under TRANSFORMER_DIR


KINDS: dict[str, ModelKind] = {kind.name: kind for kind in (
    ModelKind("linear", linear=True, transformer=False),
    ModelKind("transformer", linear=False, transformer=True),
    ModelKind("ensemble", linear=True, transformer=True),
)}


def kind_of(name: str) -> ModelKind:
    try:
        return KINDS[name]
    except KeyError:
        raise InvalidInput(f"unknown model kind {name!r}; use one of {', '.join(KINDS)}") from None


def category_classifier(model: Any, transformer: Any) -> Any:
    """The linear category model, the transformer, or their even ensemble: one estimator either way."""
    if transformer is None:
        return model.category_
    if model is None:
        return transformer
    from classifiers.transformer import EnsembleClassifier

    return EnsembleClassifier([model.category_, transformer])


def load_category_classifier(model_dir: Path) -> Any:
    """Whatever kind a model directory holds, as one estimator with ``predict_proba`` and ``classes_``."""
    from classifiers import persist

    model, manifest = persist.load(model_dir)
    transformer = None
    if kind_of(manifest.kind).transformer:
        from classifiers.transformer import TransformerClassifier

        transformer = TransformerClassifier.load(Path(model_dir) / TRANSFORMER_DIR)
    return category_classifier(model, transformer)


def make_router(model_dir: Path, city: City | None = None) -> Any:
    """A :class:`~classifiers.router.Router` over the routing model a directory holds, for ``city``
    (the bundled one by default); a model trained under another city's context is refused."""
    from classifiers import persist
    from classifiers.router import Router, RoutingRules

    city = city or City.bundled()
    model, manifest = persist.load(model_dir)
    if not kind_of(manifest.kind).linear or model is None:
        raise InvalidInput(f"{model_dir} holds a {manifest.kind} model; routing needs a linear or ensemble model")
    city.check_model(manifest.version, manifest.extra.get("city"))
    return Router(model, city.taxonomy, city.gazetteer, rules=RoutingRules.load(city.routing_rules),
                  model_version=manifest.version, threshold=float(manifest.extra.get("auto_dispatch_threshold", 0.9)))
