"""A local PostgreSQL server for tests and one machine: ``initdb`` and ``pg_ctl`` on a free 127.0.0.1 port.

It uses the server programs of the system's PostgreSQL (Debian's
``postgresql`` package: ``/usr/lib/postgresql/<version>/bin``; ``make test``
installs it when missing). The cluster lives in a directory of its own,
listens on 127.0.0.1 only (no Unix socket outside that directory), trusts
local connections, and has one superuser and one database, both ``hotline``.
PostgreSQL refuses to run as root, so under root the server runs as the
``postgres`` system user (or ``nobody``).

    python -m hotline.store.pgserver up [--home DIR] [--port 5433]   # what `make pg-up` runs
    python -m hotline.store.pgserver down [--home DIR]
    python -m hotline.store.pgserver status [--home DIR]
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

USER = "hotline"
DATABASE = "hotline"


class ServerError(RuntimeError):
    """The server could not be found, initialised, started or stopped."""


def bin_dir() -> Path:
    """The directory of ``initdb`` and ``pg_ctl``: PG_BIN, the newest Debian version, or the PATH."""
    if os.environ.get("PG_BIN"):
        return Path(os.environ["PG_BIN"])
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if versions:
        return versions[-1].parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise ServerError("no PostgreSQL server programs found (initdb): install Debian's postgresql package "
                      "(scripts/install-postgresql) or set PG_BIN")


def _run_as() -> tuple[int, int] | None:
    """(uid, gid) to run the server as when this process is root; None otherwise."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return entry.pw_uid, entry.pw_gid
    raise ServerError("running as root and no unprivileged user (postgres, nobody) to run PostgreSQL as")


def configured_port(home: Path) -> int | None:
    """The port an existing cluster in ``home`` was set up with (its last ``port =`` line), if any."""
    try:
        lines = (Path(home) / "data" / "postgresql.conf").read_text("utf-8").splitlines()
    except OSError:
        return None
    ports = [line.split("=", 1)[1].strip() for line in lines if line.startswith("port =")]
    return int(ports[-1]) if ports else None


class Server:
    """One PostgreSQL cluster in ``home``, listening on 127.0.0.1:``port``."""

    def __init__(self, home: Path, port: int = 5433) -> None:
        self.home = Path(home).resolve()
        self.port = port

    @property
    def data(self) -> Path:
        return self.home / "data"

    @property
    def url(self) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{DATABASE}"

    def _command(self, program: str, *args: str) -> list[str]:
        command = [str(bin_dir() / program), *args]
        owner = _run_as()
        if owner:
            command = ["setpriv", f"--reuid={owner[0]}", f"--regid={owner[1]}", "--clear-groups", *command]
        return command

    def _call(self, program: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(self._command(program, *args), capture_output=True, text=True, check=False,
                                env={**os.environ, "LC_ALL": "C.UTF-8"}, cwd=self.home)
        if check and result.returncode != 0:
            last = (result.stderr or result.stdout).strip().splitlines()[-1:] or [f"exit {result.returncode}"]
            raise ServerError(f"{program} failed: {last[0]}")
        return result

    def _initdb(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.home.chmod(0o755)  # its parents must be open to the server's user too: not under /root
        owner = _run_as()
        if owner:
            os.chown(self.home, *owner)
        self._call("initdb", "-D", str(self.data), "-U", USER, "--auth=trust", "--encoding=UTF8",
                   "--locale=C.UTF-8", "--no-instructions")
        with (self.data / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write("\n".join([
                "", "# hotline: loopback only, the socket inside the cluster's own directory",
                "listen_addresses = '127.0.0.1'", f"port = {self.port}",
                f"unix_socket_directories = '{self.home}'", "max_connections = 200",
                "shared_buffers = 128MB", "fsync = on", "",
            ]))

    def running(self) -> bool:
        if not (self.data / "postmaster.pid").exists():
            return False
        return self._call("pg_ctl", "status", "-D", str(self.data), check=False).returncode == 0

    def start(self, timeout: float = 60.0) -> Server:
        """Initialise the cluster on first use, start it, and create the ``hotline`` database."""
        if not (self.data / "PG_VERSION").exists():
            self._initdb()
        if not self.running():
            self._call("pg_ctl", "start", "-D", str(self.data), "-w", "-t", str(int(timeout)),
                       "-l", str(self.home / "server.log"), "-o", f"-p {self.port}")
        self._create_database(timeout)
        return self

    def _create_database(self, timeout: float) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(f"postgresql://{USER}@127.0.0.1:{self.port}/postgres", autocommit=True,
                                     connect_timeout=5) as conn:
                    if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone():
                        conn.execute(f"CREATE DATABASE {DATABASE}")
                    return
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise ServerError(f"PostgreSQL on 127.0.0.1:{self.port} does not answer: {exc}") from None
                time.sleep(0.2)

    def database(self, name: str) -> str:
        """Create an empty database ``name`` (a fresh one for each test) and return its URL."""
        import psycopg

        if not name.isidentifier():
            raise ServerError(f"not a database name: {name!r}")
        with psycopg.connect(f"postgresql://{USER}@127.0.0.1:{self.port}/postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {name}")
        return self._url(name)

    def drop(self, name: str) -> None:
        """Drop a database made by :meth:`database`, closing whatever is still connected to it."""
        import psycopg

        with psycopg.connect(f"postgresql://{USER}@127.0.0.1:{self.port}/postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def dump(self, name: str, path: Path) -> Path:
        """``pg_dump --format=custom`` of a database: the backup README's "Running for a city" describes."""
        self._client("pg_dump", "--format=custom", f"--file={path}", self._url(name))
        return path

    def restore(self, path: Path, name: str) -> str:
        """``pg_restore`` a dump into a new database ``name``; returns its URL."""
        url = self.database(name)
        self._client("pg_restore", "--no-owner", "--exit-on-error", f"--dbname={url}", str(path))
        return url

    def _url(self, name: str) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{name}"

    def _client(self, program: str, *args: str) -> None:
        """Run a client program (any user may: it talks to the server over TCP)."""
        result = subprocess.run([str(bin_dir() / program), *args], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise ServerError(f"{program} failed: {(result.stderr or result.stdout).strip()[:300]}")

    def stop(self) -> None:
        """Stop the server (fast shutdown) if it runs."""
        if self.running():
            self._call("pg_ctl", "stop", "-D", str(self.data), "-m", "fast", "-w", check=False)

    def remove(self) -> None:
        """Stop the server and delete its cluster."""
        self.stop()
        shutil.rmtree(self.home, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hotline.store.pgserver", description="A local PostgreSQL server.")
    parser.add_argument("action", choices=("up", "down", "status"))
    parser.add_argument("--home", type=Path, default=Path(tempfile.gettempdir()) / "hotline-postgresql",
                        help="the cluster's directory (data, log, socket)")
    parser.add_argument("--port", type=int, default=None, help="default: the cluster's own, or 5433 for a new one")
    args = parser.parse_args(argv)
    server = Server(args.home, port=args.port or configured_port(args.home) or 5433)
    try:
        if args.action == "up":
            server.start()
            print(f"PostgreSQL is up (cluster {server.data}); set HOTLINE_STORE to use it:")
            print(server.url)
        elif args.action == "down":
            server.stop()
            print("PostgreSQL stopped")
        else:
            print(f"{server.url}: {'up' if server.running() else 'down'}")
            return 0 if server.running() else 1
    except ServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
