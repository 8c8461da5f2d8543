"""A single local Elasticsearch node: downloaded once from Maven Central, started, health-checked, stopped.

The ``integ-test-zip`` distribution has no bundled JDK and no security
setup, which suits one node on 127.0.0.1 for tests and for a single
machine. The zip is cached outside the repository (the entry point's
``Settings.cache``: ``$HOTLINE_CACHE`` or ``~/.cache/hotline``) and unpacked once per version; each node gets its own
home (config, data, logs). Elasticsearch refuses to run as root, so under
root the node runs as ``nobody``.

    python -m search.node up [--home DIR] [--port 9200]    # what `make es-up` runs
    python -m search.node down [--home DIR]
    python -m search.node status [--home DIR]
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from hotline import maven
from hotline.settings import Settings

VERSION = "8.19.21"
#: The integ-test zip of each version this project runs, by SHA-1.
SHA1 = {"8.19.21": "8861771bbfe2fab12ccc386bc8b4c5c6f9619865"}
NOBODY = 65534


class NodeError(RuntimeError):
    """The node could not be downloaded, started or stopped."""


def java_home() -> str:
    """A JDK for Elasticsearch 8 (17 or newer): ES_JAVA_HOME, JAVA_HOME, or the system's java."""
    for key in ("ES_JAVA_HOME", "JAVA_HOME"):
        if os.environ.get(key):
            return os.environ[key]
    java = shutil.which("java")
    if not java:
        raise NodeError("no Java found: install OpenJDK 17 or set ES_JAVA_HOME")
    return str(Path(java).resolve().parents[1])


def download(version: str = VERSION, cache: Path = maven.DEFAULT_CACHE) -> Path:
    """The distribution zip, fetched once into ``cache`` and checked against its pinned SHA-1."""
    if version not in SHA1:
        raise NodeError(f"Elasticsearch {version} is not pinned here; add its SHA-1 to search.node.SHA1")
    artifact = maven.Artifact("org.elasticsearch.distribution.integ-test-zip", "elasticsearch", version,
                              SHA1[version], extension="zip")
    try:
        return maven.fetch(artifact, Path(cache) / "elasticsearch")
    except maven.DownloadError as exc:
        raise NodeError(str(exc)) from None


def distribution(version: str = VERSION, cache: Path = maven.DEFAULT_CACHE) -> Path:
    """The unpacked distribution, shared by every node; outside $HOME so that ``nobody`` can read it."""
    root = Path(tempfile.gettempdir()) / "hotline-elasticsearch" / version
    home = root / f"elasticsearch-{version}"
    if (home / ".unpacked").exists():
        return home
    zip_path = download(version, cache)
    root.mkdir(parents=True, exist_ok=True)
    # One unpacker at a time (three nodes starting at once each removed the live home and renamed into it:
    # "Directory not empty" on a fresh machine); the others wait, then find it unpacked.
    with (root / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (home / ".unpacked").exists():
            _unpack(zip_path, root, home, version)
    return home


def _unpack(zip_path: Path, root: Path, home: Path, version: str) -> None:
    staging = Path(tempfile.mkdtemp(dir=root))
    with zipfile.ZipFile(zip_path) as archive:
        for info in archive.infolist():
            extracted = Path(archive.extract(info, staging))
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                extracted.chmod(mode | 0o444 | (0o111 if extracted.is_dir() else 0))
    shutil.rmtree(home, ignore_errors=True)
    (staging / f"elasticsearch-{version}").rename(home)
    shutil.rmtree(staging, ignore_errors=True)
    (home / ".unpacked").touch()
    for path in (root.parent, root, home):
        path.chmod(0o755)


class Node:
    """One node on 127.0.0.1 with its own home directory: a cluster of its own, or a member of ``cluster``.

    A member names the cluster, its own transport port, and every member's
    (name, transport port), which seed discovery and form the first master
    election; :func:`start_cluster` starts such a set.
    """

    def __init__(self, home: Path, port: int = 9200, heap: str = "512m", version: str = VERSION,
                 name: str = "hotline-node", transport_port: int = 0,
                 cluster: tuple[str, list[tuple[str, int]]] | None = None,
                 cache: Path = maven.DEFAULT_CACHE) -> None:
        self.home = Path(home).resolve()
        self.cache = Path(cache)
        self.port = port
        self.heap = heap
        self.version = version
        self.name = name
        self.transport_port = transport_port
        self.cluster = cluster

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.home / "elasticsearch.pid"

    def _configure(self) -> dict[str, str]:
        dist = distribution(self.version, self.cache)
        config = self.home / "config"
        if config.exists():
            shutil.rmtree(config)
        shutil.copytree(dist / "config", config)
        (config / "elasticsearch.yml").write_text(
            "\n".join([
                *self._discovery(),
                "network.host: 127.0.0.1",
                f"http.port: {self.port}",
                "xpack.security.enabled: false",
                # A shared machine's disk may be fuller than the default watermarks allow.
                "cluster.routing.allocation.disk.threshold_enabled: false",
                f"path.data: {self.home / 'data'}",
                f"path.logs: {self.home / 'logs'}",
                # Where `fs` snapshot repositories may live (backups: README, "Running for a city").
                f"path.repo: {self.home / 'snapshots'}",
                "",
            ]),
            encoding="utf-8",
        )
        for sub in ("data", "logs", "tmp", "snapshots"):
            (self.home / sub).mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            for path in (self.home, *self.home.rglob("*")):
                os.chown(path, NOBODY, NOBODY)
            self.home.chmod(0o755)  # its parents must be open to nobody too: not under /root
        return {
            **os.environ,
            "ES_JAVA_HOME": java_home(),
            "ES_JAVA_OPTS": f"-Xms{self.heap} -Xmx{self.heap}",
            "ES_PATH_CONF": str(config),
            "ES_TMPDIR": str(self.home / "tmp"),
            # The launcher's own JVM probes the server's flags in a "final-flags*" folder of its temporary folder
            # and leaves it behind: keep that under the node's home too, removed with it.
            "CLI_JAVA_OPTS": " ".join(filter(None, (os.environ.get("CLI_JAVA_OPTS", ""),
                                                    f"-Djava.io.tmpdir={self.home / 'tmp'}"))),
            "HOME": str(self.home),
        }

    def _discovery(self) -> list[str]:
        if self.cluster is None:
            return ["cluster.name: hotline", f"node.name: {self.name}", "transport.port: 0", "discovery.type: single-node"]
        name, members = self.cluster
        return [
            f"cluster.name: {name}", f"node.name: {self.name}", f"transport.port: {self.transport_port}",
            f"discovery.seed_hosts: [{', '.join(f'127.0.0.1:{port}' for _, port in members)}]",
            f"cluster.initial_master_nodes: [{', '.join(member for member, _ in members)}]",
        ]

    def running(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/_cluster/health", timeout=2) as response:
                return json.load(response).get("status") in ("green", "yellow")
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def start(self, timeout: float = 120.0) -> Node:
        """Start the node (if not already up) and wait for yellow or green health."""
        if self.running():
            return self
        env = self._configure()
        command = [str(distribution(self.version) / "bin" / "elasticsearch"), "-d", "-p", str(self.pid_file)]
        if os.geteuid() == 0:
            command = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *command]
        log = (self.home / "logs" / "startup.log").open("ab")
        result = subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT, check=False)
        if result.returncode != 0:
            raise NodeError(f"Elasticsearch did not start (exit {result.returncode}): {self._last_error()}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.running():
                return self
            time.sleep(0.5)
        self.stop()
        raise NodeError(f"Elasticsearch on {self.url} not healthy after {timeout:.0f} s; see {self.home / 'logs'}")

    def _last_error(self) -> str:
        """The fatal line of the startup log, so the one-line error says why."""
        try:
            lines = (self.home / "logs" / "startup.log").read_text("utf-8", "replace").splitlines()
        except OSError:
            return f"see {self.home / 'logs'}"
        fatal = [line for line in lines if "fatal exception" in line or "Exception:" in line]
        return (fatal[-1].split("]")[-1].strip()[:300] if fatal else "") + f" (logs: {self.home / 'logs'})"

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the node (SIGTERM, then SIGKILL) and wait until its port is closed."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and _alive(pid):
                time.sleep(0.2)
            if not _alive(pid):
                break
        self.pid_file.unlink(missing_ok=True)


def start_cluster(root: Path, http_ports: list[int], transport_ports: list[int], heap: str = "256m",
                  name: str = "hotline-cluster", timeout: float = 180.0,
                  cache: Path = maven.DEFAULT_CACHE) -> list[Node]:
    """Start one node per port pair under ``root`` as one cluster, and wait until all have joined it."""
    members = [(f"{name}-{i}", port) for i, port in enumerate(transport_ports)]
    nodes = [Node(Path(root) / member, port=http, heap=heap, name=member, transport_port=transport,
                  cluster=(name, members), cache=cache) for (member, transport), http in zip(members, http_ports, strict=True)]
    errors: list[BaseException] = []

    def start(node: Node) -> None:
        try:
            node.start(timeout=timeout)
        except BaseException as exc:  # noqa: BLE001 - reported once all have tried
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(node,)) for node in nodes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    deadline = time.monotonic() + timeout
    while not errors and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{nodes[0].url}/_cluster/health?wait_for_nodes={len(nodes)}&timeout=5s",
                                        timeout=10) as response:
                if json.load(response).get("number_of_nodes") == len(nodes):
                    return nodes
        except (urllib.error.URLError, OSError, ValueError):
            time.sleep(0.5)
    for node in nodes:
        node.stop()
    raise NodeError(f"the {len(nodes)} nodes did not form one cluster: {errors[0] if errors else 'timed out'}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie child counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m search.node", description="A local Elasticsearch node.")
    parser.add_argument("action", choices=("up", "down", "status", "download"))
    parser.add_argument("--home", type=Path, default=Path(tempfile.gettempdir()) / "hotline-elasticsearch" / "node",
                        help="config, data and logs of the node")
    parser.add_argument("--port", type=int, default=9200)
    parser.add_argument("--heap", default="512m")
    args = parser.parse_args(argv)
    cache = Settings().cache  # the entry point: HOTLINE_CACHE, or ~/.cache/hotline
    node = Node(args.home, port=args.port, heap=args.heap, cache=cache)
    try:
        if args.action == "download":
            print(download(cache=cache))
        elif args.action == "up":
            node.start()
            print(f"Elasticsearch {VERSION} is up at {node.url} (home {node.home})")
        elif args.action == "down":
            node.stop()
            print("Elasticsearch stopped")
        else:
            print(f"{node.url}: {'up' if node.running() else 'down'}")
            return 0 if node.running() else 1
    except NodeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
