"""Scaffold a new job: `python -m jobs.new NAME [--force] [--dry-run] [--root DIR]`.

Writes the skeleton of a job named NAME, modelled on the orders job but minimal, from the
templates in `jobs/new_templates/` (string.Template, ``${name}`` and ``${Name}``):

    transforms/NAME.py                  the rule, its tables, the apply statement, the reference
    transforms/NAME_beam.py             the Beam step over the rule
    transforms/NAME_samples.py          sample input for the fault campaign and the benchmarks
    jobs/NAME.py                        the wiring on the kit: config, flags, graph, main
    tests/transforms/test_NAME.py       fast pure tests
    tests/transforms/test_beam_NAME.py  the Beam step equals the reference (`beam`)
    tests/jobs/test_NAME_job.py         the command equals the reference, twice (`minicluster`)

Its generated tests pass unchanged. Everything the job names in a shared database starts with
NAME: its tables (``NAME_rows``, ``NAME_duplicates``, ``NAME_rejects``) and its sink id
(``NAME-rows``, under the default ``--sink-id-prefix NAME``), so that two jobs share one
database safely. A file is overwritten only with --force, and only if the scaffold wrote it: a
module of the project (payments, orders, the kit ...) never. See NEW_JOB.md.
"""

import argparse
import keyword
import re
import subprocess
import sys
from pathlib import Path
from string import Template
from typing import NamedTuple

__all__ = ["NameRefused", "Planned", "check_name", "main", "marker", "plan", "write"]

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = Path(__file__).resolve().parent / "new_templates"


def marker(name: str) -> str:
    """In every file the scaffold writes for job `name`: what `--force` may overwrite."""
    return f"`python -m jobs.new {name}`"


#: Long enough for a sensible name; table names (``NAME_duplicates``) stay well within
#: PostgreSQL's 63 characters, the sink id within the sink's 64, the generated lines within 100.
MAX_NAME_LENGTH = 20
NAME = re.compile(r"[a-z][a-z0-9_]*\Z")
#: Modules whose name ends so are runner layers (tests/transforms/test_pure_modules.py).
RUNNER_SUFFIXES = ("_beam", "_flink")

#: Template -> where it goes, relative to the project root.
FILES = (
    ("rules.py.tmpl", "transforms/{name}.py"),
    ("beam.py.tmpl", "transforms/{name}_beam.py"),
    ("samples.py.tmpl", "transforms/{name}_samples.py"),
    ("job.py.tmpl", "jobs/{name}.py"),
    ("test_rules.py.tmpl", "tests/transforms/test_{name}.py"),
    ("test_beam.py.tmpl", "tests/transforms/test_beam_{name}.py"),
    ("test_job.py.tmpl", "tests/jobs/test_{name}_job.py"),
)


class NameRefused(ValueError):
    """NAME cannot name a new job; the message says why."""


class Planned(NamedTuple):
    path: Path
    text: str
    exists: bool


def check_name(name: str) -> str:
    """NAME, or `NameRefused`: a lowercase Python identifier, no keyword, not too long, not
    ending as a runner layer's module does."""
    if not NAME.match(name):
        raise NameRefused(
            f"{name!r}: a job's name is a lowercase Python identifier "
            "(letters, digits and _, starting with a letter), e.g. shipments"
        )
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        raise NameRefused(f"{name!r} is a Python keyword")
    if len(name) > MAX_NAME_LENGTH:
        raise NameRefused(f"{name!r}: at most {MAX_NAME_LENGTH} characters")
    if name.endswith(RUNNER_SUFFIXES) or name.startswith("test"):
        raise NameRefused(
            f"{name!r}: a name ending in {' or '.join(RUNNER_SUFFIXES)} (a runner layer's "
            "module) or starting with test is taken by the conventions"
        )
    return name


def camel(name: str) -> str:
    """``shop_returns`` -> ``ShopReturns``."""
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def render(template: str, name: str) -> str:
    return Template((TEMPLATES / template).read_text()).substitute(name=name, Name=camel(name))


def plan(name: str, root: Path = ROOT, force: bool = False) -> list[Planned]:
    """The files of job `name` under `root`, rendered; `NameRefused` if any would overwrite a
    file the scaffold did not write, or, without `force`, any file at all."""
    check_name(name)
    for package in ("jobs", "transforms"):
        if not (root / package).is_dir():
            raise NameRefused(f"{root} is not the project's root: it has no {package}/")
        if (root / package / name).is_dir():
            raise NameRefused(f"{package}/{name}/ is a package of the project")
    planned = []
    for template, target in FILES:
        path = root / target.format(name=name)
        exists = path.exists()
        if exists and marker(name) not in path.read_text(errors="replace"):
            raise NameRefused(
                f"{target.format(name=name)} exists and the scaffold did not write it: "
                "choose another name"
            )
        if exists and not force:
            raise NameRefused(
                f"{target.format(name=name)} exists (scaffolded earlier): --force overwrites"
            )
        planned.append(Planned(path, render(template, name), exists))
    return planned


def write(planned: list[Planned], root: Path) -> bool:
    """Write the files, then sort their imports and format them with the project's ruff (where
    the job's own modules sort depends on its name); False if ruff is not installed."""
    for item in planned:
        item.path.parent.mkdir(parents=True, exist_ok=True)
        item.path.write_text(item.text)
    paths = [str(item.path) for item in planned]
    for command in (["check", "--fix", "--select", "I"], ["format"]):
        done = subprocess.run(
            [sys.executable, "-m", "ruff", *command, "--quiet", "--no-cache", *paths],
            cwd=root,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            return False
    return True


def next_steps(name: str) -> str:
    tests = " ".join(target.format(name=name) for template, target in FILES if "test" in template)
    return "\n".join(
        [
            "Next:",
            f"  1. run its tests:  python -m pytest {tests}",
            f"  2. edit the rule:  validate() in transforms/{name}.py, its row and tables, "
            "and the tests' lines",
            f"  3. run the job:    python -m jobs.{name} --input DIR --db-url URL",
            "  4. read NEW_JOB.md: the audit's tampered-row control still to write, and the traps",
        ]
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m jobs.new",
        description="Write the skeleton of a new exactly-once job, with passing tests.",
    )
    parser.add_argument("name", help="the job's name: a lowercase Python identifier")
    parser.add_argument(
        "--force", action="store_true", help="overwrite files the scaffold wrote earlier"
    )
    parser.add_argument("--dry-run", action="store_true", help="list the files, write nothing")
    parser.add_argument("--root", type=Path, default=ROOT, help="the project's root")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    try:
        planned = plan(args.name, root, args.force)
    except NameRefused as refused:
        print(f"python -m jobs.new: {refused}", file=sys.stderr)
        return 2
    if not args.dry_run and not write(planned, root):
        print("(ruff is not installed: sort the imports and format the files before committing)")
    verb = "Would write" if args.dry_run else "Wrote"
    print(f"{verb} the {args.name} job (tables {args.name}_*, sink id {args.name}-rows):")
    for item in planned:
        note = " (overwritten)" if item.exists else ""
        print(f"  {item.path.relative_to(root).as_posix()}{note}")
    print(next_steps(args.name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
