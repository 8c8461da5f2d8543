"""Every command of README.md's first tour works on a fresh demo store (bench/readme.py on a small one)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_every_command_of_the_readme_tour_exits_zero() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "readme.py"), "--fresh", "--days", "60",
                           "--timeout", "300"], capture_output=True, text=True, timeout=1500, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["commands"] >= 10 and summary["failed"] == 0


def test_the_tour_is_read_from_the_readme() -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    from readme import tour_commands

    commands = tour_commands(ROOT / "README.md")
    assert commands and all(c.split()[0] in {"hotline", "echo"} for c in commands)
    assert any("hotline route" in c for c in commands) and any("--from today-30" in c for c in commands)
