"""The bad-input corpus: raw lines (bytes) with their expected outcome.

Files (regenerate both with ``python tests/corpus/make_corpus.py``, where each case is named):

* ``corpus.jsonl``  the lines, as bytes (it holds invalid UTF-8, NUL and control characters:
  always open it in binary mode);
* ``expected.tsv``  ``line_number  name  expected`` per line, where ``expected`` is ``ledger``,
  ``duplicate`` or a reason code of `transforms.payments.Reason`.

`load_corpus()` also appends the 1 MB line (``huge_line_1mb``, expected ``line_too_long``),
built in memory so the repository does not store a 1 MB file. Expected outcomes assume the
lines are processed in corpus order from the start (duplicates refer to earlier lines).

    from tests.corpus import load_corpus, corpus_lines, write_corpus
    for case in load_corpus():
        case.name, case.line, case.expected
"""

from collections import Counter
from pathlib import Path
from typing import NamedTuple, Union

HERE = Path(__file__).resolve().parent
CORPUS_FILE = HERE / "corpus.jsonl"
EXPECTED_FILE = HERE / "expected.tsv"

LEDGER = "ledger"
DUPLICATE = "duplicate"

HUGE_LINE_BYTES = 1024 * 1024


class CorpusCase(NamedTuple):
    line_number: int  # 1-based position in the full corpus
    name: str
    line: bytes  # without the trailing newline
    expected: str  # "ledger", "duplicate" or a reason code


def huge_line() -> bytes:
    """A syntactically valid payment padded to 1 MB with an extra field."""
    head = (
        b'{"event_id": "huge-1", "account_id": "acc-1", "type": "charge", '
        b'"amount": "1.00", "currency": "USD", "occurred_at": "2024-01-01T00:00:00Z", '
        b'"padding": "'
    )
    tail = b'"}'
    return head + b"x" * (HUGE_LINE_BYTES - len(head) - len(tail)) + tail


def load_corpus() -> list[CorpusCase]:
    lines = CORPUS_FILE.read_bytes().split(b"\n")
    assert lines[-1] == b"", "corpus.jsonl must end with a newline"
    lines = lines[:-1]
    rows = [row.split("\t") for row in EXPECTED_FILE.read_text("utf-8").splitlines()[1:]]
    assert len(rows) == len(lines), "corpus.jsonl and expected.tsv disagree; regenerate them"
    cases = [
        CorpusCase(int(number), name, line, expected)
        for (number, name, expected), line in zip(rows, lines)
    ]
    cases.append(CorpusCase(len(cases) + 1, "huge_line_1mb", huge_line(), "line_too_long"))
    return cases


def corpus_lines() -> list[bytes]:
    """The corpus lines (bytes, no newline), in order."""
    return [case.line for case in load_corpus()]


def expected_counts() -> dict[str, int]:
    """How many lines end in each place: ``ledger``, ``duplicate`` and each reason code."""
    return dict(Counter(case.expected for case in load_corpus()))


def write_corpus(directory: Union[str, Path], name: str = "corpus.jsonl") -> Path:
    """Write the full corpus (incl. the 1 MB line) as one JSON-lines file; returns its path."""
    path = Path(directory) / name
    with open(path, "wb") as f:
        for case in load_corpus():
            f.write(case.line + b"\n")
    return path
