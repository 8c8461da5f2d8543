"""``hotline train | evaluate | predict | route``: plugged into the ``hotline`` command.

The core package knows nothing of classifiers; it discovers these commands
through the ``hotline.commands`` entry point, so the dependency points inward.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from classifiers.kinds import KINDS, PRECISIONS
from hotline.cli import Renamed, city
from hotline.settings import Settings

DEFAULT_MODEL = "current"


def default_model_dir(settings: Settings) -> Path:
    return Path(settings.models) / DEFAULT_MODEL


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The model's kind and fitting options, shared by ``train`` (from a file) and ``retrain`` (into the registry)
    so that the two cannot drift."""
    parser.add_argument("--kind", default="linear", choices=list(KINDS), help="model kind")
    parser.add_argument("--model", dest="kind", choices=list(KINDS), action=Renamed, now="--kind",
                        help=argparse.SUPPRESS)
    parser.add_argument("--base-model", metavar="PATH", help="local pretrained encoder directory (transformer, ensemble)")
    parser.add_argument("--epochs", type=int, default=3, help="fine-tuning epochs (transformer, ensemble)")
    parser.add_argument("--batch-size", type=int, default=16, help="fine-tuning batch size (transformer, ensemble)")
    parser.add_argument("--learning-rate", type=float, default=5e-5,
                        help="fine-tuning learning rate (transformer, ensemble)")
    parser.add_argument("--max-length", type=int, default=256,
                        help="tokens read per text, head and tail (transformer, ensemble)")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS,
                        help="fine-tuning arithmetic: bf16 where native (auto), or as given (transformer, ensemble)")
    parser.add_argument("--C", type=float, default=0.5, help="SVM regularisation (linear, ensemble)")
    parser.add_argument("--holdout", type=float, default=0.1, help="share held out for metrics and the threshold")
    parser.add_argument("--seed", type=int, default=0)


def model_options(args: argparse.Namespace) -> dict[str, Any]:
    """What :func:`add_model_arguments` parsed, as the keyword arguments of fitting."""
    return {"base_model": args.base_model, "epochs": args.epochs, "batch_size": args.batch_size,
            "learning_rate": args.learning_rate, "max_length": args.max_length, "precision": args.precision,
            "C": args.C, "holdout": args.holdout, "seed": args.seed}


# Each command imports what it needs when it runs: scikit-learn and the models cost a second to import, which
# every `hotline` command (`hotline mask` included) paid when they were imported here.
def cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    from classifiers import persist
    from classifiers.dataset import load_examples
    from classifiers.fit import fit_model, holdout_split

    out = persist.writable(Path(args.out))  # before the minutes of training, not after
    here = city(settings)
    data = load_examples(Path(args.data), args.text_col, args.label_col, args.department_col, here.gazetteer)
    train, test = holdout_split(data.labels, args.holdout, args.seed)
    model, parts, manifest = fit_model(
        data, train, test, args.kind, segmenter=settings.segmenter, departments=bool(args.department_col),
        **model_options(args),
        source=str(args.data),
        params={"label_col": args.label_col, "department_col": args.department_col}, progress=True, city=here,
    )
    persist.save(out, model, manifest, parts)
    print(json.dumps({"model": str(args.out), "version": manifest.version, **manifest.metrics}, ensure_ascii=False))
    return 0


def cmd_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    from classifiers.dataset import load_examples
    from classifiers.evaluate import evaluation
    from classifiers.kinds import load_category_classifier

    classifier = load_category_classifier(Path(args.model))
    data = load_examples(Path(args.data), args.text_col, args.label_col)
    proba = classifier.predict_proba(data.texts)
    print(json.dumps(evaluation(data.labels, proba, classifier.classes_), ensure_ascii=False))
    return 0


def cmd_predict(args: argparse.Namespace, settings: Settings) -> int:
    import numpy as np

    from classifiers.dataset import load_examples
    from classifiers.kinds import load_category_classifier
    from hotline.spreadsheet import SafeWriter

    classifier = load_category_classifier(Path(args.model))
    data = load_examples(Path(args.data), args.text_col, None)
    proba = classifier.predict_proba(data.texts)
    classes = classifier.classes_
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8-sig", newline="") as fh:
        writer = SafeWriter(fh)
        writer.writerow(["row", "id", "label", "probability", "top3", "probabilities"])
        for i, row in enumerate(proba):
            order = np.argsort(-row)
            writer.writerow([
                data.rows[i], data.ids[i], classes[order[0]], round(float(row[order[0]]), 4),
                "|".join(str(classes[j]) for j in order[:3]),
                json.dumps({str(classes[j]): round(float(row[j]), 4) for j in order[:10] if row[j] >= 0.001}, ensure_ascii=False),
            ])
    print(f"wrote {len(proba)} predictions to {out} ({data.skipped} rows without text skipped)")
    return 0


def cmd_route(args: argparse.Namespace, settings: Settings) -> int:
    text = " ".join(args.text) if args.text else sys.stdin.read()
    if args.url:  # a running service answers at once, its model already loaded
        answer = _route_remotely(args.url, args.key or settings.client_key, text, args.area)
    else:
        from classifiers.kinds import make_router
        from hotline.case import Area

        router = make_router(Path(args.model) if args.model else default_model_dir(settings), city(settings))
        answer = router.route(text, area=Area(args.area) if args.area else None).to_dict()
    if args.json:
        print(json.dumps(answer, ensure_ascii=False))
        return 0
    area = "".join((answer["area"]["district"], answer["area"]["street"])) or "未识别"
    print(f"类别: {answer['category']} ({answer['category_probability']:.0%})  区域: {area}")
    for d in answer["departments"]:
        print(f"  {d['department']:<12} {d['probability']:6.1%}  {'；'.join(d['reasons'])}")
    if answer["terms"]:
        print("依据: " + "、".join(t["term"] for t in answer["terms"]))
    if answer["similar"]:
        print("相似工单: " + "、".join(f"{n['case_id']}({n['similarity']:.2f})" for n in answer["similar"]))
    if answer.get("event"):
        print(f"属于事件「{answer['event']['title']}」，已有 {answer['event']['size']} 位市民反映")
    print("自动派单" if answer["auto_dispatch"] else "需人工确认: " + "；".join(answer["needs_person"]))
    return 0


def _route_remotely(url: str, key: str, text: str, area: str | None) -> dict[str, Any]:
    """``POST {url}/v1/route`` with an agent's key: the service's answer, or a one-line error."""
    import urllib.error
    import urllib.request

    from hotline.errors import InvalidInput, NotFound, Unavailable

    if not key:
        raise InvalidInput("routing through a service needs an agent's key: --key KEY or HOTLINE_CLIENT_KEY")
    body = json.dumps({"text": text, **({"district": area} if area else {})}, ensure_ascii=False).encode("utf-8")
    request = urllib.request.Request(url.rstrip("/") + "/v1/route", data=body, method="POST",
                                     headers={"Content-Type": "application/json", "X-API-Key": key})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            answer: dict[str, Any] = json.loads(response.read().decode("utf-8"))
            return answer
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read().decode("utf-8")).get("detail", exc.reason)
        except ValueError:
            detail = exc.reason
        message = f"{url} answered {exc.code}: {detail}"
        if exc.code == 404:
            raise NotFound(message) from None
        raise (InvalidInput if 400 <= exc.code < 500 else Unavailable)(message) from None
    except (urllib.error.URLError, OSError) as exc:
        raise Unavailable(f"cannot reach {url}: {getattr(exc, 'reason', exc)}") from None


def cmd_encoder_fetch(args: argparse.Namespace, settings: Settings) -> int:
    """Fetch, verify and convert the pretrained encoder; the model directory is the last line printed."""
    from classifiers import encoder

    directory = encoder.fetch(Path(args.cache) if args.cache else settings.cache / "encoder")
    check = json.loads((directory / encoder.CHECK_FILE).read_text(encoding="utf-8"))
    print(f"{encoder.NAME} from {encoder.ARTIFACT.url} (sha1 {encoder.ARTIFACT.sha1[:12]}…): the rebuilt model "
          f"agrees with onnxruntime on {check['texts']} texts ({check['tokens']} tokens) within "
          f"{check['max_abs_diff']:.1e}; [CLS]={check['cls_id']}, unknown tokens {check['unknown_share']:.1%}",
          file=sys.stderr)
    print(directory)
    return 0


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add the classifier commands to the ``hotline`` parser."""
    train = commands.add_parser("train", parents=[common], help="train a category (and department) model from a file")
    train.add_argument("--data", required=True, metavar="FILE")
    train.add_argument("--text-col", required=True, metavar="C", help="column with the text or transcript")
    train.add_argument("--label-col", required=True, metavar="C", help="label column; 'a,b' makes the path a/b")
    train.add_argument("--department-col", metavar="C", help="also learn departments and similar cases from C")
    train.add_argument("--out", required=True, metavar="DIR")
    add_model_arguments(train)
    train.set_defaults(handler=cmd_train)

    model_on_file = argparse.ArgumentParser(add_help=False, parents=[common])
    model_on_file.add_argument("--model", required=True, metavar="DIR")
    model_on_file.add_argument("--data", required=True, metavar="FILE")
    model_on_file.add_argument("--text-col", required=True, metavar="C")

    evaluate = commands.add_parser("evaluate", parents=[model_on_file], help="score a model on a labeled file (JSON)")
    evaluate.add_argument("--label-col", required=True, metavar="C")
    evaluate.set_defaults(handler=cmd_evaluate)

    predict = commands.add_parser("predict", parents=[model_on_file], help="label every row of a file")
    predict.add_argument("--out", required=True, metavar="FILE.csv")
    predict.set_defaults(handler=cmd_predict)

    encoder = commands.add_parser("encoder", help="the pretrained Chinese encoder (bge-small-zh-v1.5)")
    encoder_commands = encoder.add_subparsers(dest="encoder_command", required=True)
    fetch = encoder_commands.add_parser("fetch", parents=[common],
                                        help="download, verify and convert it; prints the model directory last")
    fetch.add_argument("--cache", metavar="DIR", help="where it is kept (default: $HOTLINE_CACHE/encoder)")
    fetch.set_defaults(handler=cmd_encoder_fetch)

    route = commands.add_parser("route", parents=[common], help="suggest category and departments for a transcript")
    route.add_argument("text", nargs="*", help="transcript or message (default: stdin)")
    route.add_argument("--model", metavar="DIR", help="model directory (default: HOTLINE_MODELS/current)")
    route.add_argument("--area", metavar="DISTRICT", help="district, when the caller named it elsewhere")
    route.add_argument("--json", action="store_true")
    route.add_argument("--url", metavar="URL", help="ask a running service (http://127.0.0.1:8000) instead of "
                                                    "loading the model here: an answer in milliseconds")
    route.add_argument("--key", metavar="KEY", help="an agent's key for --url (default: HOTLINE_CLIENT_KEY)")
    route.set_defaults(handler=cmd_route)
