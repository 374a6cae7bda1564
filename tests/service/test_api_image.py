"""The API's image carries no Ray (Dockerfile target ``api``): serving the API and the dashboard, and the
command line, must not import it."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys
from fastapi.testclient import TestClient
from autodistiller import cli, serve
from service.app import create_app
from store.settings import Settings
app = create_app(Settings(home=sys.argv[1], database_url="sqlite:///" + sys.argv[1] + "/db.sqlite"))
with TestClient(app) as client:
    assert client.get("/v1/health").status_code == 200
    assert client.get("/ui/login").status_code == 200
loaded = sorted(m for m in sys.modules if m == "ray" or m.startswith(("ray.", "workers")))
print(loaded)
"""


def test_serving_the_api_imports_no_ray(tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
