"""``hotline models list|show|compare|promote|rollback`` and ``hotline retrain``."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path
from typing import Any

from classifiers.cli import add_model_arguments, model_options
from hotline.cli import city, day_argument
from hotline.errors import InvalidInput
from hotline.settings import Settings
from hotline.store.base import CaseQuery


def _registry(settings: Settings) -> Any:
    from training.registry import Registry

    registry = Registry(settings.models)
    for note in registry.recover(by=_user()):
        print(f"hotline: registry: {note}", file=sys.stderr)
    return registry


def _user() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    entries = _registry(settings).entries()
    if args.json:
        print(json.dumps([e.to_dict() for e in entries], ensure_ascii=False, indent=1))
        return 0
    if not entries:
        print(f"no models in {settings.models}; train one with `hotline retrain`")
    for e in entries:
        m = e.metrics
        print(f"{e.version:<34} {e.state:<9} macro-F1 {m.get('macro_f1', float('nan')):.4f}  "
              f"accuracy {m.get('accuracy', float('nan')):.4f}  {e.manifest.get('data_size', 0)} examples  "
              f"{e.manifest.get('created', '')}")
    return 0


def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    entry = _registry(settings).get(args.version)
    print(json.dumps(entry.to_dict(), ensure_ascii=False, indent=1))
    return 0


def cmd_compare(args: argparse.Namespace, settings: Settings) -> int:
    registry = _registry(settings)
    a, b = registry.get(args.a), registry.get(args.b)
    keys = sorted(set(a.metrics) | set(b.metrics))
    rows = {k: {"a": a.metrics.get(k), "b": b.metrics.get(k)} for k in keys}
    extra_a, extra_b = a.manifest.get("extra", {}), b.manifest.get("extra", {})
    # Each model's own metrics are on its own held-out cases; a model trained while the other was active was
    # also measured beside it on the same cases, which is the comparison that counts.
    paired: dict[str, Any] | None = None
    for newer, older in ((b, a), (a, b)):
        compared = newer.manifest.get("extra", {}).get("compared_with") or {}
        if compared.get("version") == older.version:
            paired = {"n": compared.get("n"), "macro_f1": {older.version: compared.get("active_macro_f1"),
                                                           newer.version: compared.get("candidate_macro_f1")},
                      "difference": compared.get("difference"), "interval_95": compared.get("interval_95"),
                      "verdict": compared.get("verdict")}
            break
    same = paired is not None or extra_a.get("holdout_hash") == extra_b.get("holdout_hash")
    print(json.dumps({"a": a.version, "b": b.version, "same_evaluation_data": same, "metrics": rows,
                      "on_the_same_cases": paired}, ensure_ascii=False, indent=1))
    return 0


def cmd_promote(args: argparse.Namespace, settings: Settings) -> int:
    entry = _registry(settings).promote(args.version, by=_user(), force=args.force)
    print(f"{entry.version} is now the active model")
    return 0


def cmd_register(args: argparse.Namespace, settings: Settings) -> int:
    entry = _registry(settings).register(Path(args.folder), by=_user())
    print(f"{entry.version} registered as a candidate (not compared with the active model: "
          f"`hotline models promote {entry.version} --force` activates it)")
    return 0


def cmd_rollback(args: argparse.Namespace, settings: Settings) -> int:
    entry = _registry(settings).rollback(by=_user())
    print(f"rolled back: {entry.version} is the active model again")
    return 0


def cmd_retrain(args: argparse.Namespace, settings: Settings) -> int:
    from classifiers.dataset import USUAL
    from hotline.store import open_store
    from training.retrain import RetrainRequest, retrain

    if args.data is None and args.no_store:
        raise InvalidInput("nothing to train on: give --data or leave the store in")
    request = RetrainRequest(
        data=Path(args.data) if args.data else None, text_col=args.text_col, label_col=args.label_col,
        department_col=args.department_col or USUAL, since=CaseQuery.days(args.since).start,
        use_store=not args.no_store, kind=args.kind, segmenter=settings.segmenter, review=args.review,
        **model_options(args),
    )
    store = None if args.no_store else open_store(settings.store, tokenize=city(settings).segmenter.tokens,
                                                  zone=settings.timezone)
    try:
        registry = _registry(settings)
        by = args.by or _user()
        entry = retrain(registry, request, store, by=by, progress=True, city=city(settings))
        if args.promote and registry.active() is None:
            entry = registry.promote(entry.version, by=by)
    finally:
        if store is not None:
            store.close()
    compared = entry.manifest.get("extra", {}).get("compared_with")
    print(json.dumps({"version": entry.version, "state": entry.state, **entry.metrics,
                      "compared_with": compared}, ensure_ascii=False))
    report = registry.path(entry.version) / "evaluation.html"
    print(f"evaluation report: {report} (and on the /models page)", file=sys.stderr)
    if args.review:
        suspects = len(registry.evaluation(entry.version).get("data_quality", {}).get("suspect_labels", []))
        print(f"{suspects} suspect labels to review: in the report above, or /models → 疑似标错 in the service",
              file=sys.stderr)
    return 0


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    models = commands.add_parser("models", help="the model registry: list, show, compare, promote, rollback")
    actions = models.add_subparsers(dest="models_action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", parents=[common], help="every version with its state and metrics")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=cmd_list)
    show = actions.add_parser("show", parents=[common], help="one version's manifest")
    show.add_argument("version")
    show.set_defaults(handler=cmd_show)
    compare = actions.add_parser("compare", parents=[common], help="two versions' metrics side by side")
    compare.add_argument("a")
    compare.add_argument("b")
    compare.set_defaults(handler=cmd_compare)
    promote = actions.add_parser("promote", parents=[common], help="make a version the active model")
    promote.add_argument("version")
    promote.add_argument("--force", action="store_true", help="promote even if it scored worse than the active model beyond the noise")
    promote.set_defaults(handler=cmd_promote)
    add = actions.add_parser("register", parents=[common], help="add a model folder from `hotline train` as a candidate")
    add.add_argument("folder")
    add.set_defaults(handler=cmd_register)
    rollback = actions.add_parser("rollback", parents=[common], help="return to the previous active model")
    rollback.set_defaults(handler=cmd_rollback)

    retrain = commands.add_parser("retrain", parents=[common],
                                  help="train a candidate from a file and/or the store's labels, compared with the active model")
    retrain.add_argument("--data", metavar="FILE")
    retrain.add_argument("--text-col", default="transcript", metavar="C")
    retrain.add_argument("--label-col", default="category_l1,category_l2", metavar="C")
    retrain.add_argument("--department-col", metavar="C", help="departments column (default: the usual names, if any)")
    retrain.add_argument("--since", type=day_argument, metavar="DAY", help="only store labels from this day on")
    retrain.add_argument("--no-store", action="store_true", help="train on the file alone")
    add_model_arguments(retrain)
    retrain.add_argument("--by", metavar="NAME", help="who the registry records (default: cli:<user>)")
    retrain.add_argument("--promote", action="store_true", help="activate it when no model is active yet")
    retrain.add_argument("--review", action="store_true", help="flag likely mislabeled cases (three more fits)")
    retrain.set_defaults(handler=cmd_retrain)
