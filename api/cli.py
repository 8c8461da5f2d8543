"""``hotline serve``: the FastAPI service on the configured store, index and active model."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from hotline.settings import Settings


def prepare(settings: Settings) -> dict[str, str]:
    """Before traffic: train and activate a model if the store has labels but none is active; the API keys."""
    from api.auth import generated_keys
    from hotline.store import open_store
    from training.registry import Registry
    from training.retrain import RetrainRequest, retrain

    registry = Registry(settings.models)
    if registry.active() is None and not registry.current.exists():
        store = open_store(settings.store)
        try:
            labeled = store.summary().labeled
            if labeled:
                print(f"no active model: training one on the store's {labeled} labeled cases first …", file=sys.stderr)
                entry = retrain(registry, RetrainRequest(segmenter=settings.segmenter), store, by="serve")
                registry.promote(entry.version, by="serve")
                print(f"model {entry.version} trained and active (macro-F1 {entry.metrics.get('macro_f1', 0):.3f})",
                      file=sys.stderr)
            else:
                print("no active model and no labeled cases: /v1/route answers 503 until one is trained", file=sys.stderr)
        finally:
            store.close()
    keys = settings.api_key_roles()
    if not keys:
        path = Path(settings.models).parent / "api-keys.json"
        keys = generated_keys(path)
        print(f"no HOTLINE_API_KEYS set; generated keys (kept in {path}):", file=sys.stderr)
        for key, role in keys.items():
            print(f"  {role:<10} {key}", file=sys.stderr)
    return keys


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    os.environ["HOTLINE_STORE"] = settings.store  # the workers read the same settings
    prepare(settings)
    print(f"serving on http://{args.host}:{args.port} (agent console /, supervisors /supervisor, models /models)",
          file=sys.stderr)
    uvicorn.run("api.app:create_app", factory=True, host=args.host, port=args.port, workers=args.workers,
                log_level="warning", access_log=False)
    return 0


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    serve = commands.add_parser("serve", parents=[common], help="run the web service (API and pages)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1, help="processes (each loads the model)")
    serve.set_defaults(handler=cmd_serve)
