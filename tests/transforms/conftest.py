"""Unit tier of `transforms/`: pure Python, no JVM, no Beam runner.

Makes the project root importable (for `transforms` and `tests.corpus`) when pytest is run
as `pytest` rather than `python -m pytest`.
"""
import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[2])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
