"""Print the runtime requirements of pyproject.toml, plus one extra (gpu or cpu), one per line.

The Dockerfile installs these before copying the source, so the dependency layer is cached.
"""

import sys
import tomllib
from pathlib import Path

project = tomllib.loads(Path("pyproject.toml").read_text())["project"]
extra = sys.argv[1] if len(sys.argv) > 1 else "gpu"
if extra not in project["optional-dependencies"]:
    sys.exit(f"unknown extra {extra!r}; choose from {sorted(project['optional-dependencies'])}")
print("\n".join([*project["dependencies"], *project["optional-dependencies"][extra]]))
