"""The modules of `transforms/` that hold rules import neither Beam nor Flink.

Rules are plain functions that every runner calls unchanged (the pure reference, Beam, the
PyFlink job), and their unit tests run in seconds without a JVM. The modules are discovered,
not listed: a new rules module (say `transforms/orders.py`) is checked as soon as it exists.
The runner layers are the only exceptions, each with its reason.
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: Modules of `transforms/` that are runner layers on top of the rules, and why.
RUNNER_LAYERS = {
    "transforms.beam": "the Beam layer: DoFns, CombineFn and PTransforms over the rules",
    "transforms.pipeline": "the Beam batch pipeline (python -m transforms.pipeline)",
    "transforms.flink_adapters": "runs the Beam DoFns and CombineFns inside PyFlink",
    "transforms.payments_flink": "the payments job's PyFlink row types and steps",
    "transforms.beam_lines": "the Beam DoFn of any job's per-line validate function",
    "transforms.orders_beam": "the Beam layer over the orders rules",
    "transforms.jvm_operators": "PyFlink operators that run on the JVM",
}

RUNNERS = ("apache_beam", "pyflink")


def transforms_modules() -> list[str]:
    """Every module of the `transforms` package, subpackages included, as a dotted name."""
    names = []
    for path in sorted((ROOT / "transforms").rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names.append(".".join(parts))
    return names


def pure_modules() -> list[str]:
    return [name for name in transforms_modules() if name not in RUNNER_LAYERS]


def test_discovery_finds_the_rules_and_every_exception_still_exists():
    found = transforms_modules()
    assert {"transforms", "transforms.payments", "transforms.lines"} <= set(pure_modules())
    # a renamed or deleted runner layer must not leave an exception that covers nothing
    assert set(RUNNER_LAYERS) <= set(found), set(RUNNER_LAYERS) - set(found)


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
