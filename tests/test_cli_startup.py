"""Every ``journeys`` command pays for what ``starter.cli`` imports: the statistics stack
(statsmodels, scipy, pandas: 1.5 s here) loads only when a report compares arms,
matplotlib only when it draws, and jsonschema only when a decision file is checked."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT

HEAVY = ("statsmodels", "scipy", "pandas", "matplotlib", "jsonschema")


def test_the_cli_starts_without_the_statistics_stack() -> None:
    probe = f"import sys, starter.cli; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    got = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert got.stdout.strip() == ""


def test_comparing_arms_loads_it() -> None:
    probe = (
        "import sys; from journeys.arm_stats import ArmCounts, compare_arms; "
        "compare_arms([ArmCounts(arm='a', control=True, users=10, converted=2), "
        "ArmCounts(arm='b', users=10, converted=5)]); "
        "print('statsmodels' in sys.modules)"
    )
    got = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert got.stdout.strip() == "True"
