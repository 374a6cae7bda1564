"""The embedded Ray is closed to the network (issue 17, finding 2): every listening socket of the Ray it
starts is on 127.0.0.1, and its processes run with token authentication."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PROBE = """
import json, os, subprocess
from search.cluster import ensure_ray
ensure_ray(num_cpus=1)
import ray

@ray.remote
def f():
    return os.environ.get("RAY_AUTH_MODE")

mode_in_task = ray.get(f.remote())
def parent(pid):
    try:
        return int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
    except OSError:
        return 0
def ours(pid):
    while pid > 1:
        if pid == os.getpid():
            return True
        pid = parent(pid)
    return False
listen = []
for line in subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout.splitlines():
    local = line.split()[3]
    for part in line.split("pid=")[1:]:
        if ours(int(part.split(",")[0])):
            listen.append(local)
print(json.dumps({"mode": mode_in_task, "listen": listen}))
ray.shutdown()
"""


def test_embedded_ray_listens_on_loopback_only_with_token_auth() -> None:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "RAY_AUTH_MODE": "disabled", "HOME": "/root"}
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=180,
                         cwd=REPO)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["mode"] == "token"  # even when the environment asked for none
    assert len(got["listen"]) >= 3, got  # GCS, raylet, workers...
    for address in got["listen"]:
        host = address.rsplit(":", 1)[0].strip("[]")
        assert host in ("127.0.0.1", "::ffff:127.0.0.1", "::1"), f"Ray listens on {address}"
