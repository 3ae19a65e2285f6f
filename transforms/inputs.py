"""Which files a run reads: one rule for the Flink job's file source, the Beam pipeline, the
reference and the checks of a run (`jobs.reconcile`, `jobs.audit`).

The rule is Flink's, because the job's `FileSource` applies it and cannot be told otherwise:
it enumerates the input path recursively and leaves out every file or directory whose name
starts with ``.`` or ``_`` (Flink's `DefaultFileFilter`: hidden files, and the ``_SUCCESS`` /
``_temporary`` marks other tools leave), at every level, the given path itself included. Empty
files are read (they have no lines). Pure Python: no Flink, no Beam.
"""

import os


def hidden(name: str) -> bool:
    """A file or directory name Flink's file source skips."""
    return name.startswith((".", "_"))


def input_files(input_path: str) -> list[str]:
    """The files a run over ``input_path`` reads, sorted by path: a file is itself, a directory
    every file below it, recursively, except where a name on the way is `hidden` (see above).

    Sorted by path is the order the reference and the audit replay them in (within one file the
    job keeps the file's order; across files it interleaves them, see `transforms.reference`)."""
    if hidden(os.path.basename(os.path.abspath(input_path))):
        return []
    if not os.path.isdir(input_path):
        return [input_path] if os.path.isfile(input_path) else []
    found: list[str] = []
    # Flink's local file system follows links to directories; so does this walk.
    for directory, subdirectories, files in os.walk(input_path, followlinks=True):
        subdirectories[:] = [d for d in subdirectories if not hidden(d)]
        found.extend(os.path.join(directory, f) for f in files if not hidden(f))
    return sorted(found, key=lambda path: path.split(os.sep))
