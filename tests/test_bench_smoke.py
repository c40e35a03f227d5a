"""The benchmark runs end to end: `python -m bench --quick --only small-c1` prints its table.

Timing targets are not asserted here (they depend on the machine); only that the run
starts its processes, measures both sides, prints one table and writes the results file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")


def test_quick_small_c1_prints_a_table(tmp_path: Path) -> None:
    results = tmp_path / "results.md"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GEMINI_GATEWAY_")}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "small-c1", "--results", results],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("| case ") and "| target " in lines[0]
    rows = [line for line in lines if line.startswith("| small-c1 ")]
    assert len(rows) == 2  # p50 and p99
    assert all(("| pass " in row) or ("| FAIL " in row) for row in rows)
    written = results.read_text()
    assert f"{os.cpu_count()} CPUs" in written and "| small-c1 " in written
