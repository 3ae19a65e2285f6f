"""Jars from Maven Central, resolved by Maven into `var/`: `copy_dependencies(pom, out_dir)`.

A small pom names what to fetch (the local Kafka broker: `localenv/kafka/pom.xml`; the Kafka
connector jobs ship: `sinks/kafka/pom.xml`); `mvn dependency:copy-dependencies` puts the jars
and their runtime dependencies into a directory of `var/`. Like the sink's build: offline from
`~/.m2` first, online only when something was never downloaded, once per pom content (a stamp
file beside the jars), one resolution at a time per directory.
"""

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, TextIO

# Maven's words when ~/.m2 lacks something (first run) ...
OFFLINE_MISS = re.compile(r"offline mode|has not been downloaded from it before")
# ... and when the network would not give it.
UNREACHABLE = re.compile(
    r"Could not transfer|Unknown host|UnknownHost|Connect to .* failed|"
    r"Connection refused|timed out|Network is unreachable|"
    r"No route to host|Could not resolve"
)


class MavenError(RuntimeError):
    """Maven is missing or could not resolve the jars; the message says what to do."""


@contextmanager
def locked(path: Path):
    """One process at a time per `path` (a lock file), across processes."""
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def tail(result: subprocess.CompletedProcess, lines: int = 30) -> str:
    """The last lines of Maven's output, without colours (3.8 colours even in batch mode)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)
    return "\n".join(text.strip().splitlines()[-lines:])


def offline_first(
    run: Callable[[bool], subprocess.CompletedProcess], note: str, stream: TextIO = sys.stderr
) -> tuple[subprocess.CompletedProcess, bool]:
    """`run(offline=True)` from `~/.m2`; again online, after printing `note`, only when Maven
    says something was never downloaded. Returns the last result and whether it went online."""
    result = run(True)
    if result.returncode == 0 or not OFFLINE_MISS.search(result.stdout + result.stderr):
        return result, False
    print(note, file=stream, flush=True)
    return run(False), True


def copy_dependencies(pom: Path, out_dir: Path, what: str, timeout: float = 900.0) -> list[Path]:
    """The jars `pom` depends on (runtime scope), in `out_dir`; resolved unless already there
    for this pom's content. `what` names them in messages ("the Kafka broker")."""
    pom = Path(pom).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = out_dir / ".pom.sha256"
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()

    def jars():
        return sorted(out_dir.glob("*.jar"))

    if stamp.is_file() and stamp.read_text().strip() == digest and jars():
        return jars()
    with locked(out_dir.parent / (out_dir.name + ".lock")):
        if stamp.is_file() and stamp.read_text().strip() == digest and jars():
            return jars()
        mvn = shutil.which("mvn")
        if not mvn:
            raise MavenError(
                f"{what} is resolved by Maven (`mvn`), which is not installed. "
                "Install it (Debian: `apt-get install maven`) or run "
                "`bash .ci/setup`."
            )
        # Into a fresh directory beside the target, then swapped in: a jar of an older pom
        # never stays, and a concurrent reader never sees half a directory.
        with tempfile.TemporaryDirectory(prefix=out_dir.name + "-", dir=out_dir.parent) as tmp:

            def run(offline: bool) -> subprocess.CompletedProcess:
                command = [
                    mvn,
                    "-B",
                    "-q",
                    *(["-o"] if offline else []),
                    "-f",
                    str(pom),
                    "dependency:copy-dependencies",
                    "-DincludeScope=runtime",
                    f"-DoutputDirectory={tmp}",
                ]
                return subprocess.run(
                    command, capture_output=True, text=True, cwd=pom.parent, timeout=timeout
                )

            result, _ = offline_first(
                run, f"localenv.maven: downloading {what} into ~/.m2 (once)", sys.stdout
            )
            if result.returncode != 0:
                hint = (
                    "Check that Maven Central is reachable from this machine (a proxy or "
                    "mirror goes in ~/.m2/settings.xml). "
                    if UNREACHABLE.search(result.stdout + result.stderr)
                    else ""
                )
                raise MavenError(
                    f"Maven could not resolve {what} from {pom}. {hint}Maven said:\n" + tail(result)
                )
            old = out_dir.with_name(out_dir.name + ".old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out_dir, old)
            os.replace(tmp, out_dir)
            os.makedirs(tmp)  # TemporaryDirectory removes it again
            shutil.rmtree(old, ignore_errors=True)
        stamp.write_text(digest + "\n")
    return jars()
