"""Where the project keeps what it produces at run time (never committed, see .gitignore)."""

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def var_dir() -> Path:
    """Root of run-time state: `$TPC_VAR_DIR`, else `<project>/var`."""
    path = Path(os.environ.get("TPC_VAR_DIR") or PROJECT_ROOT / "var").resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def sub_dir(*parts: str) -> Path:
    path = var_dir().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
