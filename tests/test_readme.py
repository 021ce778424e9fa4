"""README.md and .ci/run stay in step: CI runs the README's own commands."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _blocks() -> list[str]:
    return re.findall(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), re.S)


def test_readme_opens_with_the_two_commands() -> None:
    first, second = _blocks()[:2]
    assert "pip install -e ." in first and "cnnlab " in first
    assert "pytest" in second


def test_ci_runs_the_readme_test_command() -> None:
    test_command = [line for line in _blocks()[1].splitlines() if not line.startswith("#")][0]
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert test_command in ci
