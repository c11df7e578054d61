"""Issue 15: mutated bytes of the real slides and annotation files never give a
traceback, a hang or a crash; only a clean result or a clean one-line error.

The cases are seeded (`tests/razn/fuzz_worker.py`, seed 0) and run in one
subprocess for at most `BUDGET_S` seconds, so the suite stays bounded; how
many cases that is depends on the machine (docs/user-guide.md gives the count
measured here). A crash shows as the worker's negative exit code, a hang as
its watchdog's traceback, an escaped exception as the case's traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

ROOT_FROM_TESTS = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: Wall-clock budget of the fuzzing, and the most cases it runs.
BUDGET_S, MAX_CASES = 45, 400
#: Fewer cases than this in the budget would not be a meaningful run.
MIN_CASES = 40


def test_mutated_real_files_fail_cleanly(shared_data, tmp_path):
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    env.setdefault("PYTHONPATH", os.pathsep.join(sys.path))
    command = [sys.executable, "-m", "tests.razn.fuzz_worker", str(shared_data), str(tmp_path),
               "--seed", "0", "--budget-s", str(BUDGET_S), "--max-cases", str(MAX_CASES),
               "--case-timeout", "30"]  # fmt: skip
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=BUDGET_S + 120,
        cwd=ROOT_FROM_TESTS,
        env=env,
    )
    lines = done.stdout.strip().splitlines()
    last_case = lines[-2] if len(lines) > 1 else ""
    assert done.returncode == 0, (
        f"{last_case}\n{lines[-1] if lines else ''}\n{done.stderr[-3000:]}"
    )
    summary = json.loads(lines[-1])
    assert summary["cases"] >= MIN_CASES, summary
    assert summary["ok"] + summary["error"] == summary["cases"]
    print(f"fuzzed {summary['cases']} cases in {summary['seconds']} s: {summary}")
