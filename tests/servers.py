"""Helpers for tests that start servers (imported by name; fixtures live in conftest.py)."""

from __future__ import annotations

import socket
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def drop_es_index(index: Any) -> None:
    """Remove a test's Elasticsearch index (every version behind its alias) and its template."""
    for name in index.versions():
        index.client.indices.delete(index=name)
    index.client.indices.delete_index_template(name=f"{index.alias}-template")
    index.close()
