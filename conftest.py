"""Root conftest: makes the repository importable and loads the harness pytest plugin."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

pytest_plugins = ["harness.bench.pytestplugin"]
