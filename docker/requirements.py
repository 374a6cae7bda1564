"""Print the project's dependencies (pyproject.toml), one a line, but those named on the command line:
the Dockerfile's api image installs them without torch (its CPU wheel comes first) and without Ray."""

import re
import sys
import tomllib
from pathlib import Path

skip = set(sys.argv[1:])
deps = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())["project"]
print("\n".join(d for d in deps["dependencies"] if re.split(r"[\[<>=~! ;]", d)[0] not in skip))
