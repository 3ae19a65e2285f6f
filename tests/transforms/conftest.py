"""Unit tier of `transforms/`: pure Python, no JVM, no Beam runner.

The project root (for `transforms` and `tests.corpus`) is importable through pytest.ini's
`pythonpath = .`, whether pytest runs as `pytest` or as `python -m pytest`.
"""
