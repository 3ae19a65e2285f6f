"""The input files of the payments job, as its file source sees them.

A module of its own so that the checks of a run (`jobs.reconcile`, `jobs.audit`) and
`jobs.produce` share it without importing each other.
"""

from pathlib import Path


def input_files(input_dir: str) -> list[Path]:
    """The files the job reads: every file below the directory except hidden ones ('.', '_'),
    as Flink's FileSource enumerates them."""
    return sorted(
        p
        for p in Path(input_dir).rglob("*")
        if p.is_file()
        and not any(part.startswith((".", "_")) for part in p.relative_to(input_dir).parts)
    )
