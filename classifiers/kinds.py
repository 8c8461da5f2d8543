"""Model kinds in one table: what each holds, how its category classifier is put together and loaded.

``linear`` is the scikit-learn :class:`~classifiers.model.CaseModel` (categories,
departments, explanations, similar cases); ``transformer`` a fine-tuned
pretrained encoder; ``ensemble`` both, as a cascade: the linear model alone
where it is sure, a stacked combination elsewhere. A new kind is a row here and
its classes; nothing else tests a kind's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hotline.city import City
from hotline.errors import InvalidInput

if TYPE_CHECKING:
    from classifiers.cascade import EncoderGate

#: Where a model directory keeps its fine-tuned transformer.
TRANSFORMER_DIR = "transformer"


#: How fine-tuning may compute: "auto" picks bf16 where the device does it natively, else fp32.
PRECISIONS = ("auto", "bf16", "fp32")


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


def load_transformer(directory: Path, threads: int = 0) -> Any:
    """The fine-tuned encoder as the service runs it: its int8 ONNX graph with onnxruntime when exported
    (no torch, ``threads`` per run; 0: onnxruntime's choice), else with torch."""
    from classifiers.transformer import INT8_FILE, OnnxClassifier, TransformerClassifier

    if (Path(directory) / INT8_FILE).is_file():
        return OnnxClassifier.load(directory, threads=threads)
    return TransformerClassifier.load(directory)


def load_parts(model_dir: Path, threads: int = 0) -> tuple[Any, Any, Any]:
    """(linear CaseModel or None, category estimator, manifest) of whatever kind a model directory holds.

    The category estimator is the linear model's, the encoder's, or for
    ``ensemble`` the :class:`~classifiers.cascade.Cascade` of both.
    """
    from classifiers import persist
    from classifiers.cascade import STACKER_DIR, Cascade, Stacker

    model, manifest = persist.load(model_dir)
    kind = kind_of(manifest.kind)
    if not kind.transformer:
        return model, model.category_, manifest
    transformer = load_transformer(Path(model_dir) / TRANSFORMER_DIR, threads)
    if model is None:
        return None, transformer, manifest
    cascade = Cascade(model.category_, transformer, Stacker.load(Path(model_dir) / STACKER_DIR),
                      threshold=float(manifest.extra.get("cascade_threshold", 1.0)))
    return model, cascade, manifest


def load_category_classifier(model_dir: Path) -> Any:
    """Whatever kind a model directory holds, as one estimator with ``predict_proba`` and ``classes_``."""
    return load_parts(model_dir)[1]


def make_router(model_dir: Path, city: City | None = None, threads: int = 0, gate: EncoderGate | None = None) -> Any:
    """A :class:`~classifiers.router.Router` over the routing model a directory holds, for ``city``
    (the bundled one by default); a model trained under another city's context is refused. ``threads``:
    the encoder's per text (the service: one, since each worker routes one call at a time); ``gate``: how many
    calls may be inside an ensemble's encoder at once before the linear model answers alone (none: no bound)."""
    from classifiers.cascade import Cascade, CascadeModel
    from classifiers.router import Router, RoutingRules

    city = city or City.bundled()
    model, category, manifest = load_parts(model_dir, threads)
    if not kind_of(manifest.kind).linear or model is None:
        raise InvalidInput(f"{model_dir} holds a {manifest.kind} model; routing needs a linear or ensemble model")
    city.check_model(manifest.version, manifest.extra.get("city"))
    routing = CascadeModel(model, category, gate) if isinstance(category, Cascade) else model
    return Router(routing, city.taxonomy, city.gazetteer, rules=RoutingRules.load(city.routing_rules),
                  model_version=manifest.version, threshold=float(manifest.extra.get("auto_dispatch_threshold", 0.9)))
