"""`python -m jobs.new NAME` (jobs/new.py): the names it takes and refuses, what it never
overwrites, `--dry-run`; then, in a copy of the project as a fresh clone has it (the files git
tracks or would track), `python -m jobs.new shipments` writes a job whose files ruff and mypy
accept, whose rules module the pure-modules check finds by itself, and whose generated tests
(pure, Beam, the command on the mini cluster twice, kill -9 mid-stream then the same command, a
sink failure then a restore, and its naive control) pass unchanged.
"""

import subprocess
import sys
from pathlib import Path

import pytest

from jobs import new
from localenv.child_env import child_process_environment
from localenv.paths import PROJECT_ROOT, var_dir
from tests.transforms.test_pure_modules import pure_modules, runner_imports, transforms_modules

NAME = "shipments"
GENERATED = (
    f"transforms/{NAME}.py",
    f"transforms/{NAME}_beam.py",
    f"transforms/{NAME}_samples.py",
    f"jobs/{NAME}.py",
    f"tests/transforms/test_{NAME}.py",
    f"tests/transforms/test_beam_{NAME}.py",
    f"tests/jobs/test_{NAME}_job.py",
)
GENERATED_TESTS = GENERATED[4:]


def bare_root(tmp_path: Path) -> Path:
    for package in ("jobs", "transforms"):
        (tmp_path / package).mkdir()
    return tmp_path


def files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("name", ["shipments", "shop_returns", "a1", "x" * new.MAX_NAME_LENGTH])
def test_a_lowercase_identifier_is_a_name(name):
    assert new.check_name(name) == name


@pytest.mark.parametrize(
    "name, why",
    [
        ("Shipments", "lowercase Python identifier"),
        ("1shipments", "lowercase Python identifier"),
        ("ship-ments", "lowercase Python identifier"),
        ("_ship", "lowercase Python identifier"),
        ("", "lowercase Python identifier"),
        ("ship\u00e9", "lowercase Python identifier"),
        ("class", "keyword"),
        ("match", "keyword"),
        ("x" * (new.MAX_NAME_LENGTH + 1), "at most"),
        ("shipments_beam", "runner layer"),
        ("shipments_flink", "runner layer"),
        ("test_shipments", "starting with test"),
    ],
)
def test_other_names_are_refused_with_the_reason(name, why):
    with pytest.raises(new.NameRefused, match=why):
        new.check_name(name)


@pytest.mark.parametrize("name", ["payments", "orders", "kit", "schema", "new", "lines", "beam"])
def test_a_module_of_the_project_is_never_overwritten(name, capsys):
    before = {path: path.read_bytes() for path in (PROJECT_ROOT / "jobs").glob("*.py")}
    with pytest.raises(new.NameRefused):
        new.plan(name, PROJECT_ROOT, force=True)
    assert new.main([name, "--force", "--dry-run"]) == 2
    assert "python -m jobs.new:" in capsys.readouterr().err
    assert {path: path.read_bytes() for path in (PROJECT_ROOT / "jobs").glob("*.py")} == before


def test_dry_run_lists_the_files_and_writes_nothing(tmp_path, capsys):
    root = bare_root(tmp_path)
    assert new.main([NAME, "--dry-run", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Would write the {NAME} job (tables {NAME}_*, sink id {NAME}-rows)")
    assert all(f"  {path}\n" in out for path in GENERATED)
    assert files_under(root) == set()


def test_a_scaffolded_job_is_overwritten_only_with_force(tmp_path, capsys):
    root = bare_root(tmp_path)
    assert new.main([NAME, "--root", str(root)]) == 0
    assert files_under(root) == set(GENERATED)
    assert all(new.marker(NAME) in (root / path).read_text() for path in GENERATED)
    capsys.readouterr()

    assert new.main([NAME, "--root", str(root)]) == 2
    assert "--force overwrites" in capsys.readouterr().err
    rules = root / GENERATED[0]
    rules.write_text(rules.read_text() + "# edited\n")
    assert new.main([NAME, "--root", str(root), "--force"]) == 0
    assert "(overwritten)" in capsys.readouterr().out
    assert not rules.read_text().endswith("# edited\n")

    # a file the scaffold did not write (its marker gone): never, --force or not
    rules.write_text("RULES = 1\n")
    assert new.main([NAME, "--root", str(root), "--force"]) == 2
    assert "the scaffold did not write it" in capsys.readouterr().err
    assert rules.read_text() == "RULES = 1\n"


def test_tables_and_sink_ids_carry_the_name(tmp_path):
    planned = new.plan(NAME, bare_root(tmp_path))
    rendered = {path: item.text for path, item in zip(GENERATED, planned)}
    rules = rendered[f"transforms/{NAME}.py"]
    for table in ("rows", "duplicates", "rejects"):
        assert f'"{NAME}_{table}"' in rules
    job = rendered[f"jobs/{NAME}.py"]
    assert f'sink_id_prefix: str = "{NAME}"' in job
    assert f'"{NAME}-sink"' in job and f'"{NAME}-dedupe"' in job


# --------------------------------------------------------------------------- in a fresh clone


def run(command, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    env = child_process_environment({"PYTHONPATH": str(cwd), "TPC_VAR_DIR": str(var_dir())})
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    """A copy of the project's files as a clone has them (what git tracks, and new files it
    does not ignore), then `python -m jobs.new shipments` in it. The sink jar and the JVM
    archive come from this checkout's var/ (TPC_VAR_DIR), as a clone's first build would make
    them."""
    root = tmp_path_factory.mktemp("clone")
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        check=True,
    ).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = PROJECT_ROOT / name
        if source.is_file():  # a file deleted but not yet staged is listed
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(source.read_bytes())
    scaffolded = run([sys.executable, "-m", "jobs.new", NAME], root)
    assert scaffolded.returncode == 0, scaffolded.stderr
    return root, scaffolded.stdout


def test_the_command_prints_the_files_and_the_next_steps(clone):
    root, out = clone
    assert out.startswith(f"Wrote the {NAME} job")
    assert [line.strip() for line in out.splitlines()[1 : 1 + len(GENERATED)]] == list(GENERATED)
    assert f"python -m pytest {' '.join(GENERATED_TESTS)}" in out
    assert f"validate() in transforms/{NAME}.py" in out
    assert all((root / path).is_file() for path in GENERATED)


def test_ruff_and_mypy_accept_the_generated_files(clone):
    root, _ = clone
    for command in (["ruff", "check"], ["ruff", "format", "--check"]):
        linted = run([sys.executable, "-m", *command, *GENERATED], root)
        assert linted.returncode == 0, linted.stdout + linted.stderr
    typed = run([sys.executable, "-m", "mypy", *GENERATED[:3]], root)
    assert typed.returncode == 0, typed.stdout + typed.stderr


def test_the_pure_modules_check_finds_the_new_rules_by_itself(clone):
    root, _ = clone
    assert f"transforms.{NAME}" in pure_modules(root)
    assert f"transforms.{NAME}_beam" in set(transforms_modules(root)) - set(pure_modules(root))
    checked = runner_imports(pure_modules(root), root)
    assert checked.returncode == 0, checked.stderr[-2000:]


@pytest.mark.minicluster
def test_its_generated_tests_pass_unchanged(clone):
    """The pure tests, the Beam test, the job on the mini cluster (the command equals the
    reference, the same command twice changes nothing) and its fault drills (tests/jobs/drills:
    kill -9 mid-stream, a sink failure, the naive control), and the project's checks that read
    every module (pure rules, tiers, import cycles, floors), in the clone."""
    root, _ = clone
    checks = ["tests/transforms/test_pure_modules.py", "tests/test_layout.py"]
    checks += ["tests/test_imports.py", "tests/test_package_floors.py"]
    tests = [*GENERATED_TESTS, *checks]
    result = run([sys.executable, "-m", "pytest", *tests, "-q", "-p", "no:warnings"], root, 900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "skipped" not in result.stdout
