"""How long a `hotline` command takes to start, against the interpreter alone, in the same run.

Every command paid about a second to import scikit-learn, scipy and the models before it did anything
(`hotline mask` 1.1 s here, 3.3 s on a loaded machine); light commands should start in under half a second.
Median of seven runs each, in a fresh folder with an empty store.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import report

COMMANDS = {
    "baseline: python -c pass": [sys.executable, "-c", "pass"],
    "hotline --help": [sys.executable, "-m", "hotline.cli", "--help"],
    "hotline mask": [sys.executable, "-m", "hotline.cli", "mask"],
    "hotline parse": [sys.executable, "-m", "hotline.cli", "parse"],
    "hotline summary (empty store)": [sys.executable, "-m", "hotline.cli", "summary"],
    "hotline models list (empty registry)": [sys.executable, "-m", "hotline.cli", "models", "list"],
}


def main() -> None:
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="hotline-cli-start-") as tmp:
        env = {"PATH": "/usr/bin:/bin", "HOME": tmp, "HOTLINE_STORE": f"sqlite:///{tmp}/store.db",
               "HOTLINE_MODELS": f"{tmp}/models"}
        for name, command in COMMANDS.items():
            seconds = []
            for _ in range(7):
                started = time.perf_counter()
                subprocess.run(command, input="我叫张三，电话13812345678", capture_output=True, text=True, cwd=tmp,
                               env=env, check=False)
                seconds.append(time.perf_counter() - started)
            figures[f"{name}, median s"] = statistics.median(seconds)
    base = figures["baseline: python -c pass, median s"]
    for name in COMMANDS:
        if not name.startswith("baseline"):
            figures[f"{name}, × the interpreter"] = figures[f"{name}, median s"] / base
    report("cli_start", figures)


if __name__ == "__main__":
    main()
