"""Maven, run the way every Maven call of this project runs: offline from the local repository
first, online once when that fails (`offline_first`), and a failure explained (`explain_failure`).

Also jars from Maven Central, resolved by Maven into `var/`: `copy_dependencies(pom, out_dir)`.
A small pom names what to fetch (the local Kafka broker: `localenv/kafka/pom.xml`; the Kafka
connector jobs ship: `sinks/kafka/pom.xml`); Maven's dependency plugin copies the jars and their
runtime dependencies into a directory of `var/`, once per pom content (a stamp file beside the
jars), one resolution at a time per directory.

Goals are named by their plugin's full coordinates (`DEPENDENCY_PLUGIN`), never by a prefix
such as `dependency:`: a prefix is looked up in group metadata that only an online run fetches,
so offline on an empty local repository it fails with a message of its own (issue 22).
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
from typing import Callable, Optional, TextIO

# The version comes from the pom's <build><plugins>, so the pom stays the one place it is set.
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin"

# Maven's words when a run got past resolution to a verdict on the code itself: going online
# cannot change it. Anything else that fails offline is tried online once; a verdict missing
# from this list only costs that second run.
CODE_VERDICT = re.compile(r"COMPILATION ERROR|There are test failures|format violations")
# ... when the network would not give what Maven asked for (no answer, or no such host) ...
UNREACHABLE = re.compile(
    r"Unknown host|UnknownHost|Name or service not known|Temporary failure in name resolution|"
    r"Connect to \S+ .*failed|Connection refused|[Cc]onnect timed out|Read timed out|"
    r"Network is unreachable|No route to host|status code: (?:401|403|407|5\d\d)"
)
# ... and when the repository answered that it has no such thing.
NOT_FOUND = re.compile(r"Could not find artifact|was not found in")
# ... and when a goal was named by a plugin prefix that no known plugin group lists.
UNKNOWN_PREFIX = re.compile(r"No plugin found for prefix")
# Every failure to get a plugin, a dependency or metadata, whatever the cause.
UNRESOLVED = re.compile(
    r"could not be resolved|Could not resolve|Could not transfer|Failed to read artifact "
    r"descriptor|offline mode|has not been downloaded|"
    + NOT_FOUND.pattern
    + "|"
    + UNKNOWN_PREFIX.pattern
)
# Where Maven's settings say how it reaches the network: a mirror or a proxy.
SETTINGS_HINT = (
    "Maven downloads each artifact once from Maven Central into its local repository "
    "(~/.m2/repository, or -Dmaven.repo.local=DIR in MAVEN_OPTS). Check that this machine "
    "reaches Maven Central; behind a proxy or with a mirror of your own, put it in "
    "~/.m2/settings.xml (<proxies> or <mirrors>)."
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


def output(result: subprocess.CompletedProcess) -> str:
    return (result.stdout or "") + (result.stderr or "")


def tail(result: subprocess.CompletedProcess, lines: int = 30) -> str:
    """The last lines of Maven's output, without colours (3.8 colours even in batch mode)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", output(result))
    return "\n".join(text.strip().splitlines()[-lines:])


def offline_first(
    run: Callable[[bool], subprocess.CompletedProcess], note: str, stream: TextIO = sys.stderr
) -> tuple[subprocess.CompletedProcess, bool]:
    """`run(offline=True)` from the local repository; when that fails for any reason but a
    verdict on the code (a compile error, a failed test, a format violation), once more online
    after printing `note`. Which words Maven uses for "not in the local repository" depends on
    what was missing (a plugin prefix, a plugin, a dependency, metadata), so none is relied on.
    Returns the last result and whether it went online."""
    result = run(True)
    if result.returncode == 0 or CODE_VERDICT.search(output(result)):
        return result, False
    print(note, file=stream, flush=True)
    return run(False), True


def first_error(result: subprocess.CompletedProcess) -> str:
    """Maven's first [ERROR] line that says what it could not get (else its first [ERROR]
    line), without the prefix and the "-> [Help 1]" tail."""
    errors = [
        re.sub(r"\s*-> \[Help \d+\]$", "", re.sub(r"^(\[ERROR\] ?)+", "", line).strip())
        for line in tail(result, 400).splitlines()
        if line.startswith("[ERROR]")
    ]
    errors = [line for line in errors if line]
    return next((line for line in errors if UNRESOLVED.search(line)), None) or next(
        iter(errors), "(Maven printed no error line)"
    )


def explain_failure(result: subprocess.CompletedProcess, what: str) -> Optional[str]:
    """A message saying what happened and what to do, when `result` failed because Maven could
    not get a plugin, a dependency or metadata (`what` names what was being resolved); None when
    it failed for another reason (the caller reports that one)."""
    text = output(result)
    if result.returncode == 0 or CODE_VERDICT.search(text) or not UNRESOLVED.search(text):
        return None
    if UNREACHABLE.search(text):
        cause = "Maven Central (or the mirror in Maven's settings) could not be reached."
    elif UNKNOWN_PREFIX.search(text):
        cause = (
            "A goal was named by a plugin prefix (such as `dependency:`) that Maven could not look "
            "up: name the plugin by its full coordinates (groupId:artifactId:goal)."
        )
    elif NOT_FOUND.search(text):
        cause = (
            "The repository answered that it has no such artifact: check the coordinates and "
            "the version in the pom."
        )
    else:
        cause = "Maven could not resolve it."
    return (
        f"Maven could not resolve {what}: {first_error(result)}\n{cause} {SETTINGS_HINT}\n"
        f"Maven said:\n{tail(result)}"
    )


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
                    f"{DEPENDENCY_PLUGIN}:copy-dependencies",
                    "-DincludeScope=runtime",
                    f"-DoutputDirectory={tmp}",
                ]
                return subprocess.run(
                    command, capture_output=True, text=True, cwd=pom.parent, timeout=timeout
                )

            result, _ = offline_first(
                run,
                f"localenv.maven: downloading {what} into Maven's local repository (once)",
                sys.stdout,
            )
            if result.returncode != 0:
                raise MavenError(
                    explain_failure(result, f"{what} ({pom})")
                    or f"Maven failed on {pom} ({what}). Maven said:\n{tail(result)}"
                )
            old = out_dir.with_name(out_dir.name + ".old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out_dir, old)
            os.replace(tmp, out_dir)
            os.makedirs(tmp)  # TemporaryDirectory removes it again
            shutil.rmtree(old, ignore_errors=True)
        stamp.write_text(digest + "\n")
    return jars()
