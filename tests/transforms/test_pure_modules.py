"""The modules of `transforms/` that hold rules import neither Beam nor Flink.

Rules are plain functions that every runner calls unchanged (the pure reference, Beam, the
PyFlink job), and their unit tests run in seconds without a JVM. The modules are discovered,
not listed: a new rules module (say `transforms/shipments.py`, as `python -m jobs.new
shipments` writes it) is checked as soon as it exists. The runner layers are the exceptions: a
job's own, named by the convention (`transforms/<job>_beam.py`, `transforms/<job>_flink.py`,
`jobs.new.RUNNER_SUFFIXES`), and the shared ones below, each with its reason.
"""

import subprocess
import sys
from pathlib import Path

from jobs.new import RUNNER_SUFFIXES

ROOT = Path(__file__).resolve().parents[2]

#: Modules of `transforms/` shared by every job that are runner layers on top of the rules,
#: and why.
SHARED_RUNNER_LAYERS = {
    "transforms.beam": "the Beam layer: DoFns, CombineFn and PTransforms over the rules",
    "transforms.pipeline": "the Beam batch pipeline (python -m transforms.pipeline)",
    "transforms.flink_adapters": "runs the Beam DoFns and CombineFns inside PyFlink",
    "transforms.beam_lines": "the Beam DoFn of any job's per-line validate function",
    "transforms.jvm_operators": "PyFlink operators that run on the JVM",
}

RUNNERS = ("apache_beam", "pyflink")


def transforms_modules(root: Path = ROOT) -> list[str]:
    """Every module of the `transforms` package, subpackages included, as a dotted name."""
    names = []
    for path in sorted((root / "transforms").rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names.append(".".join(parts))
    return names


def is_runner_layer(name: str) -> bool:
    """A shared runner layer, or a job's own by its name (``transforms.orders_beam``)."""
    return name in SHARED_RUNNER_LAYERS or name.endswith(RUNNER_SUFFIXES)


def pure_modules(root: Path = ROOT) -> list[str]:
    return [name for name in transforms_modules(root) if not is_runner_layer(name)]


def test_discovery_finds_the_rules_and_every_exception_still_exists():
    found = transforms_modules()
    pure = set(pure_modules())
    assert {"transforms", "transforms.payments", "transforms.lines", "transforms.orders"} <= pure
    # the jobs' own runner layers are found by their names, not listed
    assert {"transforms.payments_flink", "transforms.orders_beam"} <= set(found) - pure
    # a renamed or deleted shared layer must not leave an exception that covers nothing
    assert set(SHARED_RUNNER_LAYERS) <= set(found), set(SHARED_RUNNER_LAYERS) - set(found)


def runner_imports(modules: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Import ``modules`` one by one in a fresh interpreter (this test process has imported
    Beam already); exit non-zero naming the first one after which a runner is loaded."""
    code = (
        "import importlib, sys\n"
        f"runners = {RUNNERS!r}\n"
        "for name in sys.argv[1:]:\n"
        "    importlib.import_module(name)\n"
        "    bad = sorted(m for m in sys.modules if m.split('.')[0] in runners)\n"
        "    if bad:\n"
        "        sys.exit(f'{name} imports {bad[:3]}')\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *modules], cwd=cwd, capture_output=True, text=True
    )


def test_no_beam_or_flink_in_pure_modules():
    result = runner_imports(pure_modules(), ROOT)
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_check_names_the_module_that_imports_a_runner(tmp_path):
    # a stand-in `pyflink` (the working directory comes first on sys.path): no JVM, no wait
    (tmp_path / "pyflink").mkdir()
    (tmp_path / "pyflink" / "__init__.py").write_text("")
    (tmp_path / "pure_rules.py").write_text("import json\n")
    (tmp_path / "orders_rules.py").write_text("import pyflink\n")
    result = runner_imports(["pure_rules", "orders_rules"], tmp_path)
    assert result.returncode != 0
    assert "orders_rules imports ['pyflink']" in result.stderr
