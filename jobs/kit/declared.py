"""What a job declares about itself for the tools that check a run after the fact
(`jobs.audit`, `jobs.reconcile`): its tables, its pure reference, its sink id, and the sums its
tables must agree on. A job module exposes one as ``JOB``; the tools find it by `load_job`.

    JOB = DeclaredJob(
        name="orders",
        tables=TABLES,                  # the `Table`s `jobs.schema --tables` creates
        line_tables=LINE_TABLES,        # the tables an input line ends in, exactly one each
        reference=expected_tables,      # lines -> {table name: expected rows}
        sink="stock",                   # its sink id is <--sink-id-prefix>-stock
        invariants=(Invariant(...),),   # e.g. stock = the sum of the moves
        sample_lines=generate_lines,    # (records, seed=, id_prefix=) -> sample input lines
    )

The reference's rows are tuples of each table's written columns in order (`Table.field_names`),
as the job's own NamedTuples are. A job whose tables need more than an exact comparison (the
payments job: events contested across sources, dead letters that explain a shortfall) passes
its own `audit` and `reconcile` instead of a reference.

The tools that make input and run the job themselves (the fault campaign `tests.campaign`)
also read its `sample_lines` (a generator of sample input, duplicates and bad lines included)
and its `scopes` (the flags of each way the job can commit, its default first).
"""

import argparse
import importlib
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from transforms.lines import SourceLine
from transforms.tables import Table

__all__ = [
    "DeclaredJob",
    "Invariant",
    "add_job_arguments",
    "job_module",
    "job_of",
    "load_job",
]

#: lines (each a `SourceLine` named by the file's absolute path, as the job names them) -> the
#: rows each table must hold, by table name.
Reference = Callable[[Iterable[SourceLine]], Mapping[str, Iterable[tuple]]]

#: (records, seed=, id_prefix=, duplicate_share=, conflict_share=, bad_share=) -> input lines
#: (bytes, each ending in a newline): `records` records named ``<id_prefix>-<n>`` (n from 1,
#: maybe zero-padded) and, mixed in, those shares of copies, copies with other content, and
#: bad lines. The same arguments give the same lines.
SampleLines = Callable[..., list[bytes]]


@dataclass(frozen=True)
class Invariant:
    """Two queries that must return the same rows, e.g. a running total and the sum of what it
    totals. Their first `key_columns` columns name a row in the report; the rest are compared."""

    name: str
    left: str
    right: str
    key_columns: int = 1
    #: What each side is, as a differing row is shown: ``moves (-104, 53), stock (-103, 53)``.
    sides: tuple[str, str] = ("left", "right")


@dataclass(frozen=True)
class DeclaredJob:
    name: str
    tables: Mapping[str, Table]
    line_tables: Sequence[Table]
    #: The suffix of its sink id, ``<prefix>-<sink>``: the sink that keeps its source positions.
    sink: str
    reference: Optional[Reference] = None
    invariants: Sequence[Invariant] = ()
    #: The job's own full checks, in place of the generic ones: audit(conn, input_dir,
    #: sink_id_prefix, control_schema, max_examples, **options) -> a report with `.clean` and
    #: `.render(max_diff)`; reconcile(conn, input_dir, sink_id_prefix, control_schema) -> one
    #: with `.books_balance` and `.report()`.
    audit: Optional[Callable[..., Any]] = None
    reconcile: Optional[Callable[..., Any]] = None
    sample_lines: Optional[SampleLines] = None
    #: The job's commit scopes by name, each with the flags that select it; the first is what
    #: the job does without flags (checkpoint scope, the kit's `tables_sink`).
    scopes: Mapping[str, Sequence[str]] = field(default_factory=lambda: {"checkpoint": ()})

    def __post_init__(self):
        if self.reference is None and self.audit is None:
            raise ValueError(f"job {self.name!r}: declare a reference (or an audit of its own)")
        strays = [t.name for t in self.line_tables if self.tables.get(t.name) is not t]
        if strays:
            raise ValueError(f"job {self.name!r}: line tables {strays} are not among its tables")

    def lines_applied(self, conn) -> int:
        """The input lines the job's tables hold so far: each line ends in exactly one of
        `line_tables` (0 before the job made its schema). `conn`: a psycopg connection."""
        return self.rows_in(conn, self.line_tables)

    def rows_in(self, conn, tables: Sequence[Table]) -> int:
        """The rows of `tables` together, 0 before the job made its schema (the first of them
        does not exist yet). `conn`: a psycopg connection."""
        from psycopg import sql

        if not conn.execute("SELECT to_regclass(%s)", (tables[0].name,)).fetchone()[0]:
            return 0
        counts = sql.SQL(" + ").join(
            sql.SQL("(SELECT count(*) FROM {})").format(sql.Identifier(table.name))
            for table in tables
        )
        return int(conn.execute(sql.SQL("SELECT ") + counts).fetchone()[0])

    def sink_id(self, sink_id_prefix: Optional[str] = None) -> str:
        """The sink id under `sink_id_prefix` (default: the job's name, as its flag defaults)."""
        return f"{sink_id_prefix or self.name}-{self.sink}"


def job_module(spec: str) -> str:
    """The module of the job `spec` names (see `load_job`): the one its command runs."""
    module_name = spec.partition(":")[0]
    return module_name if "." in module_name else f"jobs.{module_name}"


def load_job(spec: str) -> DeclaredJob:
    """The `DeclaredJob` named by `spec`: a job of the project by name (``orders``: the ``JOB``
    of `jobs.orders`), a module (``my_jobs.shipments``: its ``JOB``) or ``MODULE:NAME``."""
    module_name = job_module(spec)
    attribute = spec.partition(":")[2] or "JOB"
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise SystemExit(
            f"--job {spec!r}: {error} (a job module declares its tables and reference as "
            "JOB = jobs.kit.declared.DeclaredJob(...): see NEW_JOB.md)"
        ) from error
    if not isinstance(found, DeclaredJob):
        raise SystemExit(f"--job {spec!r}: {module_name}.{attribute} is no DeclaredJob")
    return found


def add_job_arguments(parser: argparse.ArgumentParser, default_job: str) -> None:
    """The flags that name the job a run was of, and where its sink left its work: the job,
    its sink ids' prefix, the sink's control schema."""
    parser.add_argument(
        "--job",
        default=default_job,
        help="the job: a job of the project by name (payments, orders), a module declaring "
        "JOB = jobs.kit.declared.DeclaredJob(...), or MODULE:NAME",
    )
    parser.add_argument(
        "--sink-id-prefix",
        help="the job's --sink-id-prefix (default: the job's name); its sink ids, dead "
        "letters and source positions are found by it",
    )
    parser.add_argument(
        "--control-schema", default="public", help="schema of the sink's control tables"
    )


def job_of(tool: str, args: argparse.Namespace) -> Optional[DeclaredJob]:
    """The job `args.job` names, its `args.input` a directory; else None, having said why on
    stderr (the tool then exits 2, a usage error)."""
    if not os.path.isdir(args.input):
        print(f"{tool}: input directory not found: {args.input}", file=sys.stderr)
        return None
    try:
        return load_job(args.job)
    except SystemExit as refused:
        print(f"{tool}: {refused}", file=sys.stderr)
        return None
