"""Saving and loading models without running code from the file.

A pickle runs whatever it names when loaded; a model directory copied from
elsewhere must not be able to do that. scikit-learn objects are saved with
skops, whose loader refuses every type it was not told to trust; we trust
only our own estimators and the scientific stack they are made of. Each model
directory holds ``model.skops`` and ``manifest.json`` (what it is, how it was
trained, how it scored, with which library versions).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import secrets
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from hotline.errors import InvalidInput, NotFound

MODEL_FILE = "model.skops"
MANIFEST_FILE = "manifest.json"
TRUSTED_PREFIXES = ("classifiers.", "sklearn.", "numpy.", "scipy.", "builtins.", "collections.")
LIBRARIES = ("scikit-learn", "numpy", "scipy", "jieba", "rjieba", "skops", "torch", "transformers", "onnxruntime",
             "tokenizers")


@dataclass
class Manifest:
    """What a model directory holds; written beside the model, read without loading it."""

    kind: str
    version: str
    created: str
    data_hash: str = ""
    data_size: int = 0
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    libraries: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def new(cls, kind: str, **kw: Any) -> Manifest:
        now = datetime.now().replace(microsecond=0)
        libraries = {}
        for name in LIBRARIES:
            try:
                libraries[name] = metadata.version(name)
            except metadata.PackageNotFoundError:
                continue
        libraries["python"] = platform.python_version()
        return cls(kind=kind, version=kw.pop("version", f"{kind}-{now:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"), created=now.isoformat(),
                   libraries=libraries, **kw)


def data_hash(texts: list[str], labels: list[Any]) -> str:
    """A fingerprint of the training data, so two models can be told apart by what they saw."""
    digest = hashlib.blake2b(digest_size=16)
    for text, label in zip(texts, labels, strict=True):
        digest.update(f"{label}\x1f{text}\x1e".encode())
    return digest.hexdigest()


def writable(directory: Path) -> Path:
    """``directory`` if a model may be written there: not a folder the model registry keeps.

    ``hotline train --out var/models/current`` once replaced the registry's
    link with an unregistered folder, left ``.current-old-*`` beside it, and
    promote and rollback could no longer recover.
    """
    if directory.is_symlink() or (directory.parent / "registry.json").exists() or \
            (directory.parent.name == "versions" and (directory.parent.parent / "registry.json").exists()):
        raise InvalidInput(f"{directory} belongs to the model registry; train into another folder and "
                           f"`hotline models register FOLDER`, or run `hotline retrain`")
    return directory


def save(directory: Path, model: Any, manifest: Manifest, parts: dict[str, Any] | None = None) -> Path:
    """Write the model, its manifest and any ``parts`` atomically: a half-written directory is never visible.

    ``parts`` maps a sub-directory name to an object with ``save(path)`` (a
    fine-tuned transformer, which keeps its own safetensors format).
    """
    import skops.io

    directory = writable(Path(directory))
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
    try:
        if model is not None:
            skops.io.dump(model, staging / MODEL_FILE)
        for name, part in (parts or {}).items():
            part.save(staging / name)
        write_manifest(staging, manifest)
        if directory.exists():
            old = directory.with_name(f".{directory.name}-old-{os.getpid()}")
            directory.rename(old)
            staging.rename(directory)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory


def write_manifest(directory: Path, manifest: Manifest) -> None:
    (Path(directory) / MANIFEST_FILE).write_text(json.dumps(asdict(manifest), ensure_ascii=False, indent=2),
                                                 encoding="utf-8")


def read_manifest(directory: Path) -> Manifest:
    path = Path(directory) / MANIFEST_FILE
    try:
        return Manifest(**json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise NotFound(f"no model at {directory} (no {MANIFEST_FILE})") from None
    except (json.JSONDecodeError, TypeError) as exc:
        raise InvalidInput(f"model manifest {path} is unreadable: {exc}") from None


def load(directory: Path) -> tuple[Any, Manifest]:
    """Load a model directory's scikit-learn part, refusing any type outside our own and the scientific stack."""
    manifest = read_manifest(directory)
    path = Path(directory) / MODEL_FILE
    if not path.exists():
        if manifest.kind == "transformer":
            return None, manifest
        raise NotFound(f"no model at {directory} (no {MODEL_FILE})")
    return load_skops(path), manifest


def load_skops(path: Path) -> Any:
    """A skops file's object, refusing any type outside our own and the scientific stack."""
    import skops.io

    try:
        untrusted = skops.io.get_untrusted_types(file=path)
    except Exception as exc:  # noqa: BLE001 (a corrupt or foreign file)
        raise InvalidInput(f"model file {path} is unreadable: {exc}") from None
    refused = [t for t in untrusted if not t.startswith(TRUSTED_PREFIXES)]
    if refused:
        raise InvalidInput(f"model file {path} names types we do not load: {refused[:5]}")
    return skops.io.load(path, trusted=untrusted)
