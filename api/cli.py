"""``hotline serve``: the FastAPI service on the configured store, index and active model."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from hotline.settings import Settings


def prepare(settings: Settings) -> None:
    """Before traffic: the API keys (bad ones stop the start), and a first model if the store has labels but none."""
    from api.keys import service_keys
    from hotline.cli import city
    from hotline.store import open_store
    from search import check_index
    from training.registry import Registry
    from training.retrain import RetrainRequest, retrain

    check_index(settings.index_url, settings.store)  # a configuration that cannot serve stops now, not after training
    _, generated = service_keys(settings)
    registry = Registry(settings.models)
    if registry.active() is None and not registry.current.exists():
        store = open_store(settings.store, tokenize=city(settings).segmenter.tokens, zone=settings.timezone)
        try:
            labeled = store.summary().labeled
            if labeled:
                print(f"no active model: training one on the store's {labeled} labeled cases first …", file=sys.stderr)
                entry = retrain(registry, RetrainRequest(segmenter=settings.segmenter), store, by="serve",
                                city=city(settings))
                registry.promote(entry.version, by="serve")
                print(f"model {entry.version} trained and active (macro-F1 {entry.metrics.get('macro_f1', 0):.3f})",
                      file=sys.stderr)
            else:
                print("no active model and no labeled cases: /v1/route answers 503 until one is trained", file=sys.stderr)
        finally:
            store.close()
    if generated:
        path = Path(settings.models).parent / "api-keys.json"
        print(f"no HOTLINE_API_KEYS set; generated demo keys (kept in {path}):", file=sys.stderr)
        for key in generated:
            print(f"  {key['role']:<10} {key['name']:<16} {key['key']}", file=sys.stderr)


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    prepare(settings)
    print(f"serving on http://{args.host}:{args.port} (agent console /, supervisors /supervisor, models /models)",
          file=sys.stderr)
    if args.workers == 1:  # the settings object itself, as given (--store included)
        from api.app import create_app

        uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="warning", access_log=False)
        return 0
    # Worker processes build their own app from the environment, the only thing they inherit: hand them the
    # --store given here (the one place that writes it, at the entry point).
    os.environ["HOTLINE_STORE"] = settings.store
    uvicorn.run("api.app:create_app", factory=True, host=args.host, port=args.port, workers=args.workers,
                log_level="warning", access_log=False)
    return 0


def cmd_keys_new(args: argparse.Namespace, settings: Settings) -> int:
    """A fresh key: the entry for HOTLINE_API_KEYS, and the digest line for HOTLINE_API_KEYS_FILE."""
    from api.keys import ApiKey, digest, new_key

    key = new_key()
    ApiKey.parse(f"{args.name}:{args.role}:{key}", where="hotline keys new")  # the same checks as at start
    print(f"key for {args.name} ({args.role}), shown once: {key}")
    print(f"HOTLINE_API_KEYS entry:       {args.name}:{args.role}:{key}")
    print(f"HOTLINE_API_KEYS_FILE line:   {args.name}:{args.role}:sha256:{digest(key).hex()}")
    return 0


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    serve = commands.add_parser("serve", parents=[common], help="run the web service (API and pages)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1, help="processes (each loads the model)")
    serve.set_defaults(handler=cmd_serve)

    from hotline.settings import ROLES

    keys = commands.add_parser("keys", parents=[common], help="API keys")
    key_commands = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    new = key_commands.add_parser("new", parents=[common], help="make a named key for a role")
    new.add_argument("name", help="who holds it (shown in logs and label provenance)")
    new.add_argument("role", choices=ROLES)
    new.set_defaults(handler=cmd_keys_new)
