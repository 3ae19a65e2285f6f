"""Fault injection for tests and drills: slowing the stream down and raising once (`FailOnce`),
either as a Python map of its own after a job's file source (`throttled_lines`), or inside the
job's own Python operator, its parse (`faults_in_parse`, any kit job), which leaves the job's
graph as it is.

The failure fires in the first Python worker that, after `after_seconds` and `after_records`
records of its own (and, with `armed_by`, once that file exists), manages to create
`marker` (O_EXCL), so exactly one attempt fails even though workers restart after it.
`armed_by` lets a driver choose the moment from outside (the fault campaign arms it when a
share of the input is committed): a record count of a worker's own starts again at every
restore, and may never be reached after one.
"""

import copy
import os
import time
from contextlib import contextmanager
from typing import Optional

from pyflink.datastream import MapFunction, RuntimeContext


class InjectedFailure(RuntimeError):
    """Raised on purpose by `FailOnce`."""


class FailOnce(MapFunction):
    def __init__(
        self,
        marker: Optional[str] = None,
        after_seconds: float = 2.0,
        throttle_every: int = 0,
        throttle_ms: float = 1.0,
        after_records: int = 0,
        armed_by: Optional[str] = None,
    ):
        self.marker = marker
        self.armed_by = armed_by
        self.armed_checked = 0.0
        self.after_seconds = after_seconds
        self.after_records = after_records
        self.throttle_every = throttle_every
        self.throttle_ms = throttle_ms
        self.seen = 0
        self.started = 0.0  # set in open()

    def open(self, runtime_context: RuntimeContext):
        self.started = time.monotonic()

    def map(self, value):
        if not self.started:  # inside a DoFn (see with_fault): no open()
            self.started = time.monotonic()
        self.seen += 1
        if self.throttle_every and self.seen % self.throttle_every == 0:
            time.sleep(self.throttle_ms / 1000.0)
        if (
            self.marker
            and self.seen >= self.after_records
            and time.monotonic() - self.started > self.after_seconds
            and self._armed()
            and self._claim()
        ):
            raise InjectedFailure(f"injected failure after {self.seen} records")
        return value

    def _armed(self) -> bool:
        if not self.armed_by:
            return True
        now = time.monotonic()
        if now - self.armed_checked < 0.05:  # a stat per record would slow the parse down
            return False
        self.armed_checked = now
        return os.path.exists(self.armed_by)

    def _claim(self) -> bool:
        if not self.marker:
            return False
        try:
            os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return False
        return True


def throttled_lines(
    lines,
    marker: Optional[str] = None,
    after_seconds: float = 3,
    after_records: int = 5_000,
    throttle_every: int = 20,
    throttle_ms: float = 3,
):
    """A job's line stream (its real file source, e.g. `jobs.payments.file_lines`), slowed down
    (and failing once if `marker` is given, see `FailOnce`) by a Python map of its own, so that
    a run spans many checkpoints. `faults_in_parse` does the same inside the job's own parse."""
    from jobs.kit.line_sources import LINE_TYPE

    if not marker and not throttle_every:
        return lines  # the job's own graph, nothing added
    return lines.map(
        FailOnce(
            marker,
            after_seconds=after_seconds,
            after_records=after_records,
            throttle_every=throttle_every,
            throttle_ms=throttle_ms,
        ),
        output_type=LINE_TYPE,
    ).name("fault-injection")


def with_fault(dofn, fault: FailOnce):
    """`dofn`, each element first through `fault.map` (slowed down, raising once): an instance
    of a subclass of its own class, so that the PyFlink adapter sees the same lifecycle
    (`finish_bundle` overridden or not) and the same process() signature."""
    base = type(dofn)

    def process(self, element):
        self.fault.map(element)
        return base.process(self, element)

    faulty = copy.copy(dofn)
    faulty.__class__ = type(f"Faulty{base.__name__}", (base,), {"process": process})
    faulty.fault = fault
    return faulty


@contextmanager
def faults_in_parse(fault: FailOnce):
    """While it is open, the jobs built in this process run their parse (the rule of
    `transforms.flink_adapters.parse_lines`, any kit job's one Python operator) through
    `with_fault`: the same operator as the job's, slowed down and raising once. A Python map of
    its own (`throttled_lines`) would add a second Python operator to the source's chain, a
    graph no user runs (and one whose failovers kill TaskManagers more often, see
    tests/jobs/support.py)."""
    from transforms import flink_adapters

    original = flink_adapters.rule_dofn
    flink_adapters.rule_dofn = lambda rule, rejected_tag: with_fault(  # type: ignore[assignment]
        original(rule, rejected_tag), fault
    )
    try:
        yield
    finally:
        flink_adapters.rule_dofn = original  # type: ignore[assignment]
