"""The Beam DoFn any job's rule runs in when it is one per-line validate function: generic,
nothing of any one job (`transforms.flink_adapters.parse_lines` runs it in PyFlink, a job's
Beam layer, e.g. `transforms.orders_beam`, in Beam)."""

from collections.abc import Iterator
from typing import Any, Callable

import apache_beam as beam
from apache_beam import pvalue

from transforms.lines import LineRejected, SourceLine, rejected_line, strip_line_terminator

__all__ = ["ValidateLineFn"]


class ValidateLineFn(beam.DoFn):
    """A rule as one per-line function, run as a DoFn (`parse_lines` wraps a function in it).

    ``validate(line)`` gets the `SourceLine` without its line terminator and returns the line's
    row, or raises `LineRejected`: the line then goes to the ``rejected_tag`` output as a
    `transforms.lines.RejectedLine` (storable and lossless). Any other exception fails the
    task: the rule decides every line, nothing is dropped."""

    def __init__(
        self, validate: Callable[[SourceLine], Any], rejected_tag: str = "rejected"
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.validate = validate
        self.rejected_tag = rejected_tag

    def process(self, element: SourceLine) -> Iterator[Any]:
        item = SourceLine(element.source, element.line_number, strip_line_terminator(element.line))
        try:
            row = self.validate(item)
        except LineRejected as refusal:
            yield pvalue.TaggedOutput(self.rejected_tag, rejected_line(item, refusal))
        else:
            yield row
