"""Which files a run reads: one rule for the Flink job's file source, the Beam pipeline, the
reference and the checks of a run (`jobs.reconcile`, `jobs.audit`).

The rule is Flink's, because the job's `FileSource` applies it and cannot be told otherwise:
it enumerates the input path recursively and leaves out every file or directory whose name
starts with ``.`` or ``_`` (Flink's `DefaultFileFilter`: hidden files, and the ``_SUCCESS`` /
``_temporary`` marks other tools leave), at every level, the given path itself included. Empty
files are read (they have no lines). Pure Python: no Flink, no Beam.

An entry no run can read (`input_faults`: a name that is not UTF-8, no permission, a FIFO or
device, a looping or dangling link, a file named compressed that is not) stops a run before it
starts, with every such entry named exactly (`shown`) and what to do. The job's file source
says the same of what goes bad after that (`dev.tpc.source.InputFileFault`), failing the job at
once: no retry can read such a file, so none is tried.
"""

import errno
import os
import stat
from typing import NamedTuple, Optional


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


# -- files no run can read ---------------------------------------------------------------------
# What is wrong, and what to do: the same kinds, in the same words, as the job's file source
# says them when a file goes bad after the start (sinks/java dev.tpc.source.InputFileFault).
FAULTS = {
    "name_not_utf8": (
        "its name is not valid UTF-8, and Flink opens files by name as text",
        "rename it to a UTF-8 name",
    ),
    "name_unsupported": (
        "its name holds a character Flink's paths cannot carry (a backslash is read as a "
        "directory separator)",
        "rename it",
    ),
    "unreadable_file": (
        "the user running the job may not read it",
        "grant read permission (chmod a+r) or move it out of the input",
    ),
    "unreadable_directory": (
        "a directory the user running the job may not list (it needs read and execute permission)",
        "grant them (chmod a+rx) or move it out of the input",
    ),
    "not_regular_file": (
        "not a regular file: reading it would block or never end",
        "move it out of the input",
    ),
    "symlink_loop": (
        "a symbolic link that loops (or a link back to a directory above it)",
        "remove the link",
    ),
    "dangling_symlink": (
        "a symbolic link to a file that does not exist",
        "restore its target or remove the link",
    ),
    "vanished": (
        "it was listed, then removed or renamed before it was read",
        "restore it, or start the job again: it resumes from what the database applied",
    ),
    "not_compressed": (
        "its name says compressed, but its content is not in that format",
        "rename it without the extension if it is plain text, or replace it",
    ),
    "corrupt_compressed": (
        "its compressed data is truncated or corrupt (a file still being written looks like "
        "this: write it under a name starting with '.' or '_' and rename it when complete)",
        "replace it with the complete file and start the job again: it resumes from what the "
        "database applied",
    ),
}

# The first bytes of each compressed format Flink's file source decompresses by extension.
_MAGIC = {
    (".gz", ".gzip"): (b"\x1f\x8b",),
    (".bz2",): (b"BZh",),
    (".xz",): (b"\xfd7zXZ\x00",),
    (".deflate",): tuple(bytes([0x78, second]) for second in (0x01, 0x5E, 0x9C, 0xDA)),
}

_FILE_TYPES = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


class InputFault(NamedTuple):
    """An entry of the input that no run can read: `path` as the OS names it (bytes that are
    not UTF-8 kept as surrogates, see `os.fsdecode`), `kind` a key of FAULTS."""

    path: str
    kind: str
    detail: str = ""

    def describe(self) -> str:
        problem, remedy = FAULTS[self.kind]
        detail = f" ({self.detail})" if self.detail else ""
        return f"{shown(self.path)}: {problem}{detail}. {remedy[0].upper()}{remedy[1:]}."


class UnreadableInput(ValueError):
    """The input holds entries no run can read; nothing was started."""

    def __init__(self, faults: list[InputFault]):
        self.faults = faults
        listed = "\n".join(f"  {fault.describe()}" for fault in faults)
        super().__init__(
            f"{len(faults)} input {'entry' if len(faults) == 1 else 'entries'} cannot be "
            f"read; nothing was started:\n{listed}"
        )


def shown(path: str) -> str:
    """`path` as text a user can see and paste into a shell: as it is if it needs no quoting,
    else in bash's $'...' quoting, which gives back the exact bytes (\\xNN for a byte that is
    not UTF-8, \\n and \\t, \\\\ and \\' for themselves)."""
    raw = os.fsencode(path)
    text = raw.decode("utf-8", errors="surrogateescape")
    if all(c.isprintable() and c not in "\\'\"$`!*?[]{}()<>|&;# " for c in text):
        return text
    out = []
    for char in text:
        code = ord(char)
        if 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8
            out.append(f"\\x{code - 0xDC00:02x}")
        elif char in "\\'":
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif not char.isprintable():
            out.append("".join(f"\\x{b:02x}" for b in char.encode("utf-8")))
        else:
            out.append(char)
    return "$'" + "".join(out) + "'"


def input_faults(input_path: str) -> list[InputFault]:
    """Every entry under `input_path` that the job's file source could not read, by the rules
    of `input_files` (hidden names are not looked at), sorted by path. Cheap: it lists, stats
    and reads a few bytes of each file; a compressed file's data is checked as it is read."""
    root = os.path.abspath(input_path)
    if hidden(os.path.basename(root)):
        return []
    faults: list[InputFault] = []
    _check_entry(root, set(), faults)
    return sorted(faults, key=lambda fault: os.fsencode(fault.path))


def _check_entry(path: str, ancestors: set[tuple[int, int]], faults: list[InputFault]) -> None:
    name = os.path.basename(path)
    try:
        os.fsencode(name).decode("utf-8")
    except UnicodeDecodeError:
        faults.append(InputFault(path, "name_not_utf8"))
        return
    if "\\" in name:
        faults.append(InputFault(path, "name_unsupported"))
        return
    try:
        status = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            faults.append(InputFault(path, "dangling_symlink", f"to {shown(os.readlink(path))}"))
        return  # else removed while listing: as if never listed
    except PermissionError:
        faults.append(InputFault(os.path.dirname(path), "unreadable_directory"))
        return
    except OSError as error:
        if error.errno == errno.ELOOP:
            faults.append(InputFault(path, "symlink_loop"))
            return
        raise
    if stat.S_ISDIR(status.st_mode):
        key = (status.st_dev, status.st_ino)
        if key in ancestors:
            faults.append(InputFault(path, "symlink_loop"))
            return
        try:
            names = os.listdir(path)
        except PermissionError:
            faults.append(InputFault(path, "unreadable_directory"))
            return
        for child in names:
            if not hidden(child):
                _check_entry(os.path.join(path, child), ancestors | {key}, faults)
    elif stat.S_ISREG(status.st_mode):
        fault = _check_file(path)
        if fault:
            faults.append(fault)
    else:
        kind = _FILE_TYPES.get(stat.S_IFMT(status.st_mode), f"mode {oct(status.st_mode)}")
        faults.append(InputFault(path, "not_regular_file", kind))


def _check_file(path: str) -> Optional[InputFault]:
    lower = path.lower()
    magic = next((m for ext, m in _MAGIC.items() if lower.endswith(ext)), None)
    try:
        with open(path, "rb") as f:
            head = f.read(6) if magic else b""
    except PermissionError:
        return InputFault(path, "unreadable_file")
    if magic and not head.startswith(magic):
        return InputFault(path, "not_compressed", "empty" if not head else "")
    return None
