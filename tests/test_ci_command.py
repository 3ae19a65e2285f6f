"""CI runs exactly the test command the README gives (README, "Two commands")."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def command_lines(text: str) -> list[str]:
    """The lines of the test command (its first line and its continuations)."""
    starts = ("bash .ci/setup", "  &&")
    return [line.strip() for line in text.splitlines() if line.startswith(starts)]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.DOTALL)
    test_command = next(block for block in blocks if "pytest" in block)
    ci_run = (ROOT / ".ci" / "run").read_text()
    assert command_lines(test_command) == command_lines(ci_run)
    assert "ruff check" in test_command and "ruff format --check" in test_command
