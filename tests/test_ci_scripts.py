"""The CI entry points parse: a shell syntax error fails CI in seconds, before any test runs."""

import subprocess
from pathlib import Path

import pytest

CI = Path(__file__).resolve().parents[1] / ".ci"


@pytest.mark.parametrize("script", sorted(p.name for p in CI.iterdir() if p.is_file()))
def test_ci_script_parses(script: str) -> None:
    path = CI / script
    if not path.read_text().startswith("#!/usr/bin/env bash"):
        pytest.skip("not a bash script")
    result = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
