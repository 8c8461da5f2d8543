"""``hotline index …``: keep the search index in step with the store, rebuild it, see its state."""

from __future__ import annotations

import argparse
from typing import Any

from hotline.errors import InvalidInput, Unavailable
from hotline.settings import Settings
from hotline.store.base import redacted


def _open(settings: Settings, args: argparse.Namespace) -> tuple[Any, Any]:
    from hotline.cli import city
    from hotline.store import open_store
    from search import open_index

    tokens = city(settings).segmenter.tokens
    store = open_store(settings.store, tokenize=tokens, zone=settings.timezone)
    return store, open_index(args.index or settings.index_url, store, tokenize=tokens)


def cmd_sync(args: argparse.Namespace, settings: Settings) -> int:
    from search.sync import sync

    store, index = _open(settings, args)
    try:
        report = sync(store, index)
    finally:
        index.close()
        store.close()
    print(f"indexed {report.indexed}, deleted {report.deleted}, {report.pending} waiting in the outbox")
    if report.error:
        raise Unavailable(f"{report.error}; run `hotline index sync` again when the index is back")
    return 0


def cmd_rebuild(args: argparse.Namespace, settings: Settings) -> int:
    from search.elastic import ElasticsearchIndex
    from search.sync import sync

    store, index = _open(settings, args)
    try:
        if not isinstance(index, ElasticsearchIndex):
            raise InvalidInput("only an Elasticsearch index is rebuilt; the embedded one is the store's own table")
        name = index.rebuild(store)
        report = sync(store, index)
        print(f"{index.alias} now names {name}: {index.count()} cases, {report.pending} waiting in the outbox")
    finally:
        index.close()
        store.close()
    return 0


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    store, index = _open(settings, args)
    try:
        print(f"store {redacted(store.url)}: {store.summary().total} cases, {store.pending_count()} waiting for the index")
        print(f"index {redacted(index.url)}: {index.count()} cases")
    finally:
        index.close()
        store.close()
    return 0


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add ``hotline index sync|rebuild|status``."""
    index = commands.add_parser("index", help="the search index: sync from the store, rebuild, status")
    actions = index.add_subparsers(dest="index_action", required=True, metavar="ACTION")
    for name, handler, text in (
        ("sync", cmd_sync, "index what the store's outbox holds (after an outage or an import)"),
        ("rebuild", cmd_rebuild, "fill a new Elasticsearch index from the store and switch the alias to it"),
        ("status", cmd_status, "cases in the store, in the outbox and in the index"),
    ):
        action = actions.add_parser(name, parents=[common], help=text)
        action.add_argument("--index", metavar="URL", help="index URL (default: HOTLINE_INDEX)")
        action.set_defaults(handler=handler)
