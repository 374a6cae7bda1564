"""The cluster mode, run (issue 17, finding 11): a Ray head and a second node on loopback with token auth and
PostgreSQL; trials on both nodes; the second node killed mid-trial; nothing finished is lost, the job ends."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pg import pg_server  # noqa: F401  (session fixture)

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_two_nodes_one_killed_mid_trial(pg_server, tiny_teacher: Path, tmp_path: Path) -> None:  # noqa: F811
    url = pg_server.create_database()
    cmd = [sys.executable, "-m", "bench.cluster_drill", "--database-url", url, "--teacher", str(tiny_teacher),
           "--home", str(tmp_path / "home"), "--trials", "6"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO), "AUTODISTILLER_PRIORS": "none", "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, cwd=REPO, env=env)
    assert out.returncode == 0, out.stderr[-4000:]
    obs = json.loads(out.stdout.strip().splitlines()[-1])
    assert obs["auth"] == "token"
    assert obs["trials_on_both_nodes"], obs
    assert obs["killed_node_mid_trial"] and obs["finished_before_kill"] >= 1, obs
    assert obs["lost"] == [] and obs["repeated"] == 0, obs
    assert obs["job_state"] == "finished", obs
    assert obs["trials_done"] == obs["budget"], obs
