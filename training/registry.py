"""The model registry: versioned model directories, their states, atomic promotion and rollback.

Layout under ``HOTLINE_MODELS``::

    versions/<version>/      one trained model (manifest.json, model.skops, …)
    current -> versions/<v>  the active model: a symlink swapped atomically on promotion
    registry.json            states (candidate, active, retired) and the promotion history
    audit.jsonl              who registered, promoted or rolled back what, and when

Everything that serves or routes reads ``current``; promotion replaces the
link in one ``rename``, so a reader sees the old model or the new one, never
a mix. Models are only ever loaded from ``versions/`` (skops refuses foreign
types besides), never from a path a request names.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from classifiers.evaluate import noise_verdict
from hotline.errors import Conflict, InvalidInput, NotFound, ReadOnly

log = logging.getLogger(__name__)

CANDIDATE, ACTIVE, RETIRED = "candidate", "active", "retired"
#: Earlier active versions kept for rollback (the oldest are forgotten, never deleted).
HISTORY_LIMIT = 20
#: Prefix of a retrain's staging folder; the pid lets :meth:`Registry.recover` tell a dead one from a running one.
STAGING_PREFIX = ".train-"
#: The report retraining writes beside a version.
EVALUATION_FILE = "evaluation.json"
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,80}$")


@dataclass(frozen=True)
class Entry:
    version: str
    state: str
    manifest: dict[str, Any]

    @property
    def metrics(self) -> dict[str, Any]:
        return self.manifest.get("metrics", {})

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "state": self.state, "kind": self.manifest.get("kind"),
                "created": self.manifest.get("created"), "data_size": self.manifest.get("data_size"),
                "data_hash": self.manifest.get("data_hash"), "metrics": self.metrics,
                "compared_with": self.manifest.get("extra", {}).get("compared_with"),
                "train_seconds": (self.manifest.get("extra", {}).get("retrain_seconds")
                                  or self.manifest.get("extra", {}).get("train_seconds")),
                "params": self.manifest.get("params", {}), "libraries": self.manifest.get("libraries", {})}


class Registry:
    """Versions of the routing model in one directory; safe across processes (file lock)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.versions = self.root / "versions"
        self.current = self.root / "current"
        self._state_file = self.root / "registry.json"
        self._audit_file = self.root / "audit.jsonl"

    # ------------------------------------------------------------ state
    @contextmanager
    def _locked(self, save: bool = True) -> Iterator[dict[str, Any]]:
        """The registry's state under its lock; written back at the end (unless the caller saves it itself)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            state = self._read()
            read = json.dumps(state, sort_keys=True)
            yield state
            if save and json.dumps(state, sort_keys=True) != read:  # nothing to write: a full disk is no error
                self._save(state)

    def _save(self, state: dict[str, Any]) -> None:
        """Write the record durably (fsync'd file, then the folder) or not at all; a full disk is ReadOnly and
        leaves no temporary file behind."""
        tmp = self._state_file.with_suffix(".json.tmp")
        try:
            with tmp.open("w", encoding="utf-8") as fh:
                fh.write(json.dumps(state, ensure_ascii=False, indent=2))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self._state_file)
            _fsync_dir(self.root)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise ReadOnly(f"the model registry {self.root} cannot be written ({exc.strerror or exc}): "
                           "nothing was changed") from None

    def _read(self) -> dict[str, Any]:
        try:
            return json.loads(self._state_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"states": {}, "history": []}

    def _audit(self, action: str, version: str, by: str, **extra: Any) -> None:
        """One line of the audit; a change already made stands if the line cannot be written (full disk), and
        the log says so (the record's history keeps what was promoted)."""
        entry = {"at": datetime.now().isoformat(sep=" ", timespec="seconds"), "action": action, "version": version,
                 "by": by, **extra}
        try:
            with self._audit_file.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(entry, ensure_ascii=False) + "\n")
        except OSError as exc:
            log.error("model registry audit line not written (%s): %s", exc.strerror or exc, entry)

    def audit(self) -> list[dict[str, Any]]:
        try:
            return [json.loads(line) for line in self._audit_file.read_text(encoding="utf-8").splitlines() if line]
        except FileNotFoundError:
            return []

    # ------------------------------------------------------------ reads
    def path(self, version: str) -> Path:
        if not _VERSION.match(version):
            raise InvalidInput(f"{version!r} is not a model version")
        path = self.versions / version
        if not (path / "manifest.json").is_file():
            raise NotFound(f"no model version {version!r}")
        return path

    def entries(self) -> list[Entry]:
        states = self._read()["states"]
        found = []
        if self.versions.is_dir():
            for path in sorted(self.versions.iterdir()):
                manifest_file = path / "manifest.json"
                if path.name.startswith(".") or not manifest_file.is_file():
                    continue
                manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
                found.append(Entry(path.name, states.get(path.name, CANDIDATE), manifest))
        return sorted(found, key=lambda e: e.manifest.get("created", ""), reverse=True)

    def get(self, version: str) -> Entry:
        path = self.path(version)
        manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
        return Entry(version, self._read()["states"].get(version, CANDIDATE), manifest)

    def evaluation(self, version: str) -> dict[str, Any]:
        """The report retraining wrote beside a version (metrics, suspect labels, changed predictions); {} if none."""
        report = self.path(version) / EVALUATION_FILE
        return json.loads(report.read_text(encoding="utf-8")) if report.is_file() else {}

    def active(self) -> str | None:
        return self._read().get("active")

    # ------------------------------------------------------------ changes
    def register(self, model_dir: Path, by: str = "system") -> Entry:
        """Move a freshly trained model directory into the registry as a candidate."""
        manifest_file = Path(model_dir) / "manifest.json"
        if not manifest_file.is_file():
            raise InvalidInput(f"{model_dir} is not a trained model (no manifest.json)")
        version = json.loads(manifest_file.read_text(encoding="utf-8"))["version"]
        target = self.versions / version
        if target.exists():
            raise Conflict(f"model version {version} is already registered")
        self.versions.mkdir(parents=True, exist_ok=True)
        shutil.move(str(model_dir), str(target))
        with self._locked() as state:
            state["states"][version] = CANDIDATE
        self._audit("register", version, by)
        return self.get(version)

    def promote(self, version: str, by: str, force: bool = False) -> Entry:
        """Make ``version`` the active model, atomically.

        A candidate measured worse than the active model on the same held-out
        data, beyond the noise of that comparison (the 95% paired-bootstrap
        interval of the macro-F1 difference wholly below zero), is refused
        unless ``force``; so is one never compared with it. A candidate
        compared before the interval was recorded is refused when its
        macro-F1 is lower at all, as then.
        """
        candidate = self.get(version)
        with self._locked(save=False) as state:
            active = state.get("active")
            if active == version:
                raise Conflict(f"{version} is already the active model")
            if active and not force:
                compared = candidate.manifest.get("extra", {}).get("compared_with") or {}
                if compared.get("version") != active:
                    raise Conflict(f"{version} was not evaluated against the active model {active}; "
                                   "retrain to compare them or force the promotion")
                refusal = worse_beyond_noise(version, active, compared)
                if refusal:
                    raise Conflict(refusal)
            before = json.loads(json.dumps(state))
            if active:
                state["states"][active] = RETIRED
                state["history"] = [*state["history"], active][-HISTORY_LIMIT:]
            state["states"][version] = ACTIVE
            state["active"] = version
            self._switch(state, before, version)
        self._audit("promote", version, by, replaced=active, forced=force)
        return self.get(version)

    def _switch(self, state: dict[str, Any], before: dict[str, Any], version: str) -> None:
        """The record first, then the link: both change or neither does (a promotion on a full disk once swapped
        the link, failed to write the record, answered 500 and served a model the registry called retired)."""
        self._save(state)
        try:
            self._point_current(version)
        except OSError as exc:
            try:
                self._save(before)
            except ReadOnly:  # the record names the new model, the link the old: recover() at start relinks
                log.error("promotion of %s: the link could not be swapped nor the record restored", version)
            raise ReadOnly(f"cannot point the active model at {version} ({exc.strerror or exc}): "
                           "nothing was changed") from None

    def rollback(self, by: str) -> Entry:
        """Return to the model that was active before the current one."""
        with self._locked(save=False) as state:
            if not state.get("history"):
                raise Conflict("there is no earlier model to roll back to")
            before = json.loads(json.dumps(state))
            previous = state["history"].pop()
            self.path(previous)
            current = state.get("active")
            if current:
                state["states"][current] = RETIRED
            state["states"][previous] = ACTIVE
            state["active"] = previous
            self._switch(state, before, previous)
        self._audit("rollback", previous, by, replaced=current)
        return self.get(previous)

    def staging(self) -> Path:
        """A fresh folder for a model being trained; :meth:`recover` removes it if its process dies."""
        import tempfile

        self.root.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-", dir=self.root))

    def recover(self, by: str = "system") -> list[str]:
        """Repair what a killed process left: ``current`` out of step with the recorded active version, dead
        retrains' staging folders, stray links. Run at every start; returns what it did, in words.

        The record wins over the link: it is written (and fsync'd) before the link is swapped, so it is always
        the newer of the two; a promotion killed in between is completed here.
        """
        done: list[str] = []
        if not self.root.is_dir():
            return done
        with self._locked() as state:
            active = state.get("active")
            target = os.readlink(self.current) if self.current.is_symlink() else None
            linked = Path(target).name if target else None
            if active and linked != active and (self.versions / active / "manifest.json").is_file():
                self._point_current(active)
                done.append(f"current pointed to {linked}, the registry's active model is {active}: relinked")
            elif not active and linked and (self.versions / linked / "manifest.json").is_file():
                state["active"] = linked
                state["states"][linked] = ACTIVE
                done.append(f"the registry had no active model; current names {linked}: recorded as active")
            state["history"] = state.get("history", [])[-HISTORY_LIMIT:]
        for stray in self.root.iterdir():
            pid = _pid_of(stray.name)
            if pid is not None and not _alive(pid):
                if stray.is_symlink() or not stray.is_dir():
                    stray.unlink(missing_ok=True)
                else:
                    shutil.rmtree(stray, ignore_errors=True)
                done.append(f"removed {stray.name}, left by a process that died")
        for note in done:
            self._audit("recover", active or "", by, note=note)
        return done

    def _point_current(self, version: str) -> None:
        link = self.root / f".current-{os.getpid()}"
        link.unlink(missing_ok=True)
        try:
            self._swap_link(link, version)
        finally:
            link.unlink(missing_ok=True)

    def _swap_link(self, link: Path, version: str) -> None:
        link.symlink_to(Path("versions") / version)
        if self.current.exists() and not self.current.is_symlink():
            # A model trained before the registry existed: keep it as a version of its own.
            legacy = self.versions / f"legacy-{datetime.now():%Y%m%d%H%M%S}"
            self.versions.mkdir(parents=True, exist_ok=True)
            self.current.rename(legacy)
        os.replace(link, self.current)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_STRAY = re.compile(rf"^(?:{re.escape(STAGING_PREFIX)}|\.current-(?:old-)?)(\d+)(?:-|$)")


def _pid_of(name: str) -> int | None:
    """The pid in the name of a staging folder or a temporary link, if it is one."""
    match = _STRAY.match(name)
    return int(match.group(1)) if match else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def worse_beyond_noise(version: str, active: str, compared: dict[str, Any]) -> str | None:
    """Why ``version`` may not replace ``active`` on the comparison recorded at its training, or None."""
    candidate_f1, active_f1 = compared.get("candidate_macro_f1", 0.0), compared.get("active_macro_f1", 0.0)
    interval = compared.get("interval_95")
    if interval is None:  # recorded before the interval was: any drop refuses
        if candidate_f1 < active_f1:
            return (f"{version} scores macro-F1 {candidate_f1:.4f}, below the active {active} ({active_f1:.4f}) "
                    "on the same data; force to promote anyway")
        return None
    low, high = interval
    if noise_verdict(low, high) == "worse":
        return (f"{version} scores macro-F1 {candidate_f1:.4f} against the active {active}'s {active_f1:.4f} on the "
                f"same {compared.get('n', '?')} held-out cases: worse beyond the noise (95% paired-bootstrap interval "
                f"of the difference {low:+.4f} to {high:+.4f}); force to promote anyway")
    return None
