"""The import contracts in pyproject.toml (`[tool.importlinter]`) hold.

The app is the composition root above `web/` (which sees the worker only
through `web/context.Worker`), and bridges, tables and the domain rules never
reach up into the worker or the HTTP layer; `tables/` holds no HTTP code; the
development broker (`devkafka/`) is imported only by the CLI commands that
start one. An import that breaks a layer fails here, with import-linter's
account of the offending chain.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_are_kept() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint_imports), str(ROOT / "pyproject.toml"), "--no-cache", "--no-logo"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout, result.stdout
