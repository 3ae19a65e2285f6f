"""A bounded DataStream of any picklable Python objects from a collection: what the adapter
tests feed a DoFn with (raw lines, `SourceLine`s, reference rows). Flink runs `_load_item`, so
this is a harness module, not a test file."""

import base64
import pickle
from collections.abc import Iterable
from typing import Any

from pyflink.common import Types
from pyflink.datastream import DataStream

from transforms.flink_adapters import PICKLED

__all__ = ["source_lines_stream"]


def source_lines_stream(env: Any, lines: Iterable[Any], name: str = "SourceLines") -> DataStream:
    """A bounded DataStream of raw lines or `SourceLine`s (any picklable objects whose
    classes the workers can import) from a Python collection.

    ``from_collection`` cannot ship arbitrary Python objects (the Java side unpickles them),
    so each item travels as base64 text of its pickle and is unpickled by the first Python
    operator. Source and decoding run at parallelism 1; apply the next operator with
    ``parallelism=1`` to keep the collection order.
    """
    blobs = [base64.b64encode(pickle.dumps(item)).decode("ascii") for item in lines]
    return (
        env.from_collection(blobs, type_info=Types.STRING())
        .map(_load_item, output_type=PICKLED)
        .name(name)
        .set_parallelism(1)
    )


def _load_item(blob: str) -> Any:
    """Inverse of the encoding in `source_lines_stream`."""
    return pickle.loads(base64.b64decode(blob))
