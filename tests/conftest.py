import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.fixture
def run_cli(tmp_path):
    "Run the `mlkit` command in a subprocess with its logs under tmp_path; returns the CompletedProcess."
    def run(*args, env=None, timeout=300):
        e = dict(os.environ, MLKIT_PATHS_LOG_DIR=str(tmp_path / "logs"), **(env or {}))
        return subprocess.run([str(BIN / "mlkit"), *args], capture_output=True, text=True, cwd=ROOT, env=e, timeout=timeout)
    return run
