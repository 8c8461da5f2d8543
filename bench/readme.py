"""Run every command of README.md's "A first tour" on a demo store, as a new user would after ``make demo``.

A README whose commands fail is the first thing a newcomer meets; this runs
them before each release (``make bench``) and, on a small store, in the tests
(``tests/test_readme.py``). Each line of the tour's shell block runs in bash,
in a working folder of its own with a ``var/`` beside it, against:

- the demo store and registry ``make demo`` left in the repository's ``var/``
  (the default, when they are there), or
- with ``--fresh``: a new store of ``--days`` generated days and a first model
  trained and promoted on it (``hotline demo``, ``hotline retrain --promote``).

Prints one line per command (exit status, seconds, the first line of output)
and a JSON summary last; exits 1 when any command failed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOUR = "## A first tour"


def tour_commands(readme: Path) -> list[str]:
    """The command lines of the first ``sh`` block after the tour's heading."""
    text = readme.read_text(encoding="utf-8")
    start = text.index(TOUR)
    block = re.search(r"```sh\n(.*?)```", text[start:], flags=re.S)
    if block is None:
        raise SystemExit(f"no sh block after {TOUR!r} in {readme}")
    return [line.strip() for line in block.group(1).splitlines() if line.strip() and not line.startswith("#")]


def run(line: str, cwd: Path, env: dict[str, str], timeout: float) -> tuple[int, float, str]:
    started = time.perf_counter()
    try:
        done = subprocess.run(["bash", "-c", f"set -o pipefail; {line}"], cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=timeout, check=False)
        code, output = done.returncode, (done.stdout.strip() or done.stderr.strip())
    except subprocess.TimeoutExpired:
        code, output = 124, f"timed out after {timeout:.0f} s"
    return code, time.perf_counter() - started, output


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fresh", action="store_true", help="a new demo store and model instead of the repository's var/")
    parser.add_argument("--days", type=int, default=400, help="days of demo calls for --fresh")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds one command may take")
    args = parser.parse_args()

    bin_dir = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_") or k == "HOTLINE_CACHE"}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    with tempfile.TemporaryDirectory(prefix="hotline-readme-") as tmp:
        work = Path(tmp)
        (work / "var").mkdir()
        if args.fresh:
            env["HOTLINE_STORE"] = f"sqlite:///{work / 'var' / 'hotline.db'}"
            env["HOTLINE_MODELS"] = str(work / "var" / "models")
            for setup in (f"hotline demo --days {args.days}", "hotline retrain --promote"):
                code, seconds, output = run(setup, work, env, args.timeout * 3)
                print(f"setup  {code:>3} {seconds:7.1f} s  {setup}", file=sys.stderr)
                if code != 0:
                    print(output[-2000:], file=sys.stderr)
                    return 1
        else:
            store, models = ROOT / "var" / "hotline.db", ROOT / "var" / "models"
            if not store.exists() or not (models / "current").exists():
                raise SystemExit("no demo store or active model in var/: run `make demo` first, or pass --fresh")
            env["HOTLINE_STORE"] = f"sqlite:///{store}"
            env["HOTLINE_MODELS"] = str(models)
        results = []
        for line in tour_commands(ROOT / "README.md"):
            code, seconds, output = run(line, work, env, args.timeout)
            first = output.splitlines()[0][:100] if output else ""
            print(f"{'ok' if code == 0 else 'FAILED':>6} {seconds:7.1f} s  {line.split('  #')[0].strip()}\n"
                  f"{'':17}{first}")
            if code != 0:
                print(output[-2000:], file=sys.stderr)
            results.append({"command": line.split("  #")[0].strip(), "exit": code, "seconds": round(seconds, 2)})
    failed = [r for r in results if r["exit"] != 0]
    print(json.dumps({"commands": len(results), "failed": len(failed), "results": results}, ensure_ascii=False))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
