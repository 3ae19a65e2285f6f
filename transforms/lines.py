"""Raw input lines: the checks every job's lines go through, and how to store a refused one.

No Beam and no Flink import here, and nothing of any one job: a job's rules module (such as
`transforms.payments`) calls these functions first, then checks its own fields. Each check
raises `LineRejected` with a stable reason code (`LineReason`) and a short human detail; the
rules module turns it into its rejected row, so that every job names the same fault the same
way.

A line whose records are JSON objects goes through, in this order:

1. `decode_line`: ``empty_line`` (empty or only whitespace), ``line_too_long`` (more bytes
   than the job allows, in UTF-8), ``invalid_encoding`` (bytes that are not UTF-8, or a
   ``str`` with a lone surrogate, which no UTF-8 text can hold);
2. `parse_json_object`: ``malformed_json`` (not JSON, including ``NaN``/``Infinity``, control
   characters inside strings, nesting too deep for the parser and numbers whose exponent is
   beyond `Decimal`'s range), ``duplicate_field`` (a key
   twice in any object of the line, nested ones too), ``not_an_object`` (valid JSON, but an
   array, a string, a number, ...). Numbers come back as `Decimal`, never ``float``: an amount
   is never rounded on the way in;
3. the job's field checks, with the helpers here: `require_fields` (``missing_field``),
   `require_strings` (``mistyped_field``), `check_identifier` (``invalid_identifier``).

A refused line is stored twice, so that it is both readable and lossless:

* `raw_text(line)`, text PostgreSQL can store: UTF-8 decoded with ``errors="backslashreplace"``
  (an invalid byte 0xFF becomes the four characters ``\\xff``, a lone surrogate ``\\ud800``)
  and NUL written as ``\\x00``. Everything else, including other control characters and
  non-ASCII text, is kept as is.
* `exact_bytes(line)`, the line's exact bytes when ``raw_text`` had to escape something, else
  ``None``. The line is always those bytes if set, else ``raw_text`` in UTF-8.

Every detail is made storable the same way (`storable_text`): a detail may quote the offending
value, and PostgreSQL text holds neither NUL nor lone surrogates. `rejected_line(line, refusal)`
is a refused `SourceLine` (a line with its source and number) as a rejected table stores it, a
`RejectedLine`.
"""

import json
import os
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple, NoReturn, Optional, Union

#: A line as read: ``bytes`` (files are read as bytes) or ``str``.
RawLine = Union[bytes, str]


class SourceLine(NamedTuple):
    """A raw line with its position: what the file readers produce."""

    source: Optional[str]
    line_number: Optional[int]
    line: RawLine


class RejectedLine(NamedTuple):
    """A refused line as a job's rejected table stores it (the columns of the payments job's
    ``rejected`` table): see `rejected_line`."""

    reason: str
    raw: str
    source: Optional[str] = None
    line_number: Optional[int] = None
    detail: str = ""
    raw_bytes: Optional[bytes] = None  # the exact line when `raw` is not (see exact_bytes)


class LineReason:
    """The reason codes of the checks in this module. They are stored in the jobs' rejected
    tables: never rename one (a job's own reason class repeats them, in its check order)."""

    EMPTY_LINE = "empty_line"
    LINE_TOO_LONG = "line_too_long"
    INVALID_ENCODING = "invalid_encoding"
    MALFORMED_JSON = "malformed_json"
    NOT_AN_OBJECT = "not_an_object"
    DUPLICATE_FIELD = "duplicate_field"
    MISSING_FIELD = "missing_field"
    MISTYPED_FIELD = "mistyped_field"
    INVALID_IDENTIFIER = "invalid_identifier"


class LineRejected(Exception):
    """A line that cannot be a record: ``reason`` is a stable code for machines (a
    `LineReason`, or a job's own), ``detail`` a short hint for humans (often the field name;
    not a stable value), already made storable by `storable_text`.

    Raise it from a job's own checks too: the job turns every one into its rejected row.
    """

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = storable_text(detail)


# --------------------------------------------------------------------------- storable forms


def strip_line_terminator(line: RawLine) -> RawLine:
    """Remove one trailing ``\\n`` (and a ``\\r`` before it), as file readers leave them."""
    if isinstance(line, bytes):
        if line.endswith(b"\n"):
            line = line[:-1]
            if line.endswith(b"\r"):
                line = line[:-1]
    elif line.endswith("\n"):
        line = line[:-1]
        if line.endswith("\r"):
            line = line[:-1]
    return line


def raw_text(line: RawLine) -> str:
    """The line as readable text for a ``raw`` column, storable in PostgreSQL (lossless
    together with `exact_bytes`).

    Bytes are decoded as UTF-8 with ``errors="backslashreplace"``; NUL becomes ``\\x00``.
    A ``str`` is taken as is (lone surrogates are backslash-escaped, NUL as above).
    """
    if isinstance(line, (bytes, bytearray, memoryview)):
        return bytes(line).decode("utf-8", errors="backslashreplace").replace("\x00", "\\x00")
    return storable_text(line)


def storable_text(text: str) -> str:
    """``text`` as PostgreSQL text can hold it: NUL written ``\\x00``, lone surrogates
    ``\\udXXX`` (they cannot be encoded in UTF-8, so no database or JVM could take them)."""
    if text.isascii():
        return text.replace("\x00", "\\x00")
    return text.encode("utf-8", errors="backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def exact_bytes(line: RawLine, raw: Optional[str] = None) -> Optional[bytes]:
    """The line's exact bytes when its `raw_text` is not exactly the line in UTF-8, else None.

    A ``str`` line is taken as UTF-8 with its lone surrogates (``surrogatepass``), which is
    how Python reads such bytes back."""
    data = (
        bytes(line)
        if isinstance(line, (bytes, bytearray, memoryview))
        else line.encode("utf-8", errors="surrogatepass")
    )
    text = raw_text(line) if raw is None else raw
    return None if text.encode("utf-8") == data else data


def rejected_line(item: SourceLine, refusal: LineRejected) -> RejectedLine:
    """``item`` refused by ``refusal``, storable and lossless (`raw_text`, `exact_bytes`)."""
    raw = raw_text(item.line)
    return RejectedLine(
        refusal.reason,
        raw,
        item.source,
        item.line_number,
        refusal.detail,
        exact_bytes(item.line, raw),
    )


# --------------------------------------------------------------------------- the checks


def decode_line(line: RawLine, max_bytes: int) -> str:
    """The text of one line (without its terminator, see `strip_line_terminator`), strictly.

    Raises `LineRejected`: ``empty_line``, ``line_too_long`` when the line has more than
    ``max_bytes`` bytes in UTF-8 (checked before decoding: a huge line costs nothing more),
    ``invalid_encoding`` (the detail names the first bad byte's offset).
    """
    # "Only whitespace" is bytes.strip()'s ASCII whitespace for bytes and str.strip()'s Unicode
    # whitespace for str: a str of U+3000 is empty, its UTF-8 bytes are malformed JSON. Stored
    # reasons depend on it, so both stay as they were when payments held this check.
    if isinstance(line, bytes):
        if not line.strip():
            raise LineRejected(LineReason.EMPTY_LINE)
        if len(line) > max_bytes:
            raise LineRejected(LineReason.LINE_TOO_LONG, f"{len(line)} bytes")
        try:
            return line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise LineRejected(LineReason.INVALID_ENCODING, f"byte {exc.start}") from None
    if not line.strip():
        raise LineRejected(LineReason.EMPTY_LINE)
    try:
        size = len(line.encode("utf-8"))
    except UnicodeEncodeError:
        raise LineRejected(LineReason.INVALID_ENCODING, "lone surrogate") from None
    if size > max_bytes:
        raise LineRejected(LineReason.LINE_TOO_LONG, f"{size} bytes")
    return line


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def _exact_number(text: str) -> Decimal:
    # Decimal refuses an exponent beyond its range (1e99999999999999999999) with
    # InvalidOperation, which is no ValueError: the line would stop the job instead of being
    # rejected. Only numbers with an exponent (parse_float) can be out of range.
    try:
        return Decimal(text)
    except InvalidOperation:
        raise ValueError(f"number out of range: {text[:40]}") from None


def _object_without_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise LineRejected(LineReason.DUPLICATE_FIELD, key)
        obj[key] = value
    return obj


# One decoder for every line: json.loads with these options would build a new one per call.
# The duplicate-key hook runs for every object as it closes, nested ones included, so a key
# twice anywhere in the line refuses it, even when the line turns out not to be an object.
_STRICT_JSON = json.JSONDecoder(
    parse_float=_exact_number,
    parse_int=Decimal,
    parse_constant=_refuse_constant,
    object_pairs_hook=_object_without_duplicate_keys,
)


def parse_json_object(text: str) -> dict[str, Any]:
    """The JSON object of one line, strictly: numbers are `Decimal` (never ``float``), and
    ``NaN``, ``Infinity`` and a key twice in any object are refused.

    Raises `LineRejected`: ``malformed_json`` (the detail is the parser's message, cut to 80
    characters), ``duplicate_field`` (the detail is the key), ``not_an_object`` (the detail is
    the Python type of what the line holds: ``list``, ``str``, ``Decimal``, ``NoneType``...).
    """
    try:
        obj = _STRICT_JSON.decode(text)
    except (ValueError, RecursionError) as exc:
        raise LineRejected(LineReason.MALFORMED_JSON, str(exc)[:80]) from None
    if not isinstance(obj, dict):
        raise LineRejected(LineReason.NOT_AN_OBJECT, type(obj).__name__)
    return obj


def require_fields(obj: Mapping[str, Any], fields: Iterable[str]) -> None:
    """Raise `LineRejected` ``missing_field`` (detail: the field) for the first of ``fields``
    that ``obj`` lacks or holds as ``null``."""
    for field in fields:
        if obj.get(field) is None:
            raise LineRejected(LineReason.MISSING_FIELD, field)


def require_strings(obj: Mapping[str, Any], fields: Iterable[str]) -> None:
    """Raise `LineRejected` ``mistyped_field`` (detail: the field) for the first of ``fields``
    that is not a JSON string (run `require_fields` first: an absent field is mistyped too)."""
    for field in fields:
        if not isinstance(obj.get(field), str):
            raise LineRejected(LineReason.MISTYPED_FIELD, field)


def check_identifier(field: str, value: str, max_length: int) -> str:
    """``value`` if it can be an identifier (a key the job's tables store and join on), else
    `LineRejected` ``invalid_identifier`` naming ``field``.

    An identifier is not empty, has no leading or trailing whitespace (``" e-1"`` would be
    another key than ``"e-1"`` that looks the same), at most ``max_length`` characters, and no
    control characters (category Cc, NUL included) or lone surrogates (Cs): PostgreSQL text
    holds neither NUL nor surrogates, and a stored key is never escaped.
    """
    if not value or value.strip() != value:
        raise LineRejected(
            LineReason.INVALID_IDENTIFIER, f"{field} empty or padded with whitespace"
        )
    if len(value) > max_length:
        raise LineRejected(LineReason.INVALID_IDENTIFIER, f"{field} longer than {max_length}")
    for ch in value:
        if unicodedata.category(ch) in ("Cc", "Cs"):
            raise LineRejected(LineReason.INVALID_IDENTIFIER, f"{field} has control characters")
    return value


def read_lines(
    path: Union[str, "os.PathLike[str]"], source: Optional[str] = None
) -> Iterator[SourceLine]:
    """The lines of a JSON-lines file as bytes, numbered from 1.

    Lines end at ``\\n`` only (a ``\\r`` before it is dropped by the parser); a final line
    without ``\\n`` counts, an empty remainder after the last ``\\n`` does not.
    ``source`` defaults to the file's base name.
    """
    name = source if source is not None else os.path.basename(os.fspath(path))
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            yield SourceLine(name, number, line)


__all__ = [
    "LineReason",
    "LineRejected",
    "RawLine",
    "RejectedLine",
    "SourceLine",
    "check_identifier",
    "decode_line",
    "exact_bytes",
    "parse_json_object",
    "raw_text",
    "read_lines",
    "rejected_line",
    "require_fields",
    "require_strings",
    "storable_text",
    "strip_line_terminator",
]
