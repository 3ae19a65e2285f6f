"""Hypothesis strategies for payment lines (shared by the unit and Beam tiers), and what
their tests check of every result (`storable`)."""

import json

from hypothesis import strategies as st

from tests.corpus import load_corpus
from transforms.currencies import DEFAULT_CURRENCIES

_CODES = sorted(DEFAULT_CURRENCIES)
_SMALL_CORPUS = [c.line for c in load_corpus() if len(c.line) < 4096]

event_ids = st.sampled_from([f"e-{i}" for i in range(12)])
accounts = st.sampled_from(["acc-1", "acc-2", "kontø", "账户", " pad", ""])
amounts = st.one_of(
    st.decimals(min_value=-10, max_value=10**6, places=3, allow_nan=False).map(str),
    st.integers(min_value=-5, max_value=2**64).map(str),
    st.sampled_from(["NaN", "1e400", "0.001", "abc", "", "1.10", "1e99999999999999999999"]),
)
timestamps = st.one_of(
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.datetimes().map(lambda d: d.isoformat()),
    st.sampled_from(["2024-01-01T00:00:00Z", "2024-02-30T00:00:00Z", "x"]),
)


@st.composite
def payment_objects(draw):
    obj = {
        "event_id": draw(event_ids),
        "account_id": draw(accounts),
        "type": draw(st.sampled_from(["charge", "refund", "other"])),
        "amount": draw(amounts),
        "currency": draw(st.sampled_from(_CODES + ["XXX", "usd"])),
        "occurred_at": draw(timestamps),
    }
    for field in draw(st.lists(st.sampled_from(sorted(obj)), max_size=2)):
        choice = draw(st.sampled_from(["drop", "null", "int", "bool"]))
        obj[field] = {"drop": ..., "null": None, "int": 7, "bool": True}[choice]
    return {k: v for k, v in obj.items() if v is not ...}


def _line_from(obj, as_number: bool) -> bytes:
    text = json.dumps(obj, ensure_ascii=False)
    if as_number and isinstance(obj.get("amount"), str):
        text = text.replace(json.dumps(obj["amount"]), obj["amount"] or '""', 1)
    return text.encode("utf-8")


fresh_lines = st.one_of(
    st.builds(_line_from, payment_objects(), st.booleans()),
    st.binary(max_size=60),
    st.text(max_size=60).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.sampled_from(_SMALL_CORPUS),
)


@st.composite
def line_streams(draw, max_size=40):
    """Lists of raw lines where some lines repeat earlier ones (exact duplicates)."""
    lines = []
    for _ in range(draw(st.integers(min_value=0, max_value=max_size))):
        if lines and draw(st.integers(0, 4)) == 0:
            lines.append(draw(st.sampled_from(lines)))
        else:
            lines.append(draw(fresh_lines))
    return lines


# --------------------------------------------------------------------------- hostile strings

#: Code points that broke the job, or could: NUL, lone surrogates, noncharacters, the last
#: code point, a BOM, line and paragraph separators, DEL, C1 controls.
EDGE_CODE_POINTS = [
    "\x00",
    "\ud800",
    "\udbff",
    "\udc00",
    "\udfff",
    "\ufffe",
    "\uffff",
    "\U0010ffff",
    "\U0001f4b8",
    "\ufeff",
    "\u2028",
    "\u2029",
    "\x7f",
    "\x85",
    "\\",
    '"',
    "\n",
    "\r",
]

#: Any code point at all, surrogates included (hypothesis leaves out category Cs by default).
any_text = st.text(
    alphabet=st.characters(codec=None, categories=None, exclude_categories=()), max_size=12
)
hostile_text = st.one_of(
    any_text,
    st.lists(st.sampled_from(EDGE_CODE_POINTS), min_size=1, max_size=4).map("".join),
    st.integers(min_value=200, max_value=3000).map(lambda n: "x" * n),  # very long values
)


@st.composite
def hostile_payment_objects(draw):
    """A payment object, valid or not, with hostile strings in any field or key."""
    obj = {
        "event_id": f"h-{draw(st.integers(0, 30))}",
        "account_id": "acc-1",
        "type": "charge",
        "amount": "1.00",
        "currency": "EUR",
        "occurred_at": "2024-01-01T00:00:00Z",
    }
    for field in draw(st.lists(st.sampled_from(sorted(obj)), max_size=3, unique=True)):
        text = draw(hostile_text)
        obj[field] = draw(st.sampled_from([text, obj[field] + text, text + obj[field]]))
    if draw(st.booleans()):
        obj[draw(hostile_text)] = draw(hostile_text)  # an unknown key: ignored if valid
    return obj


def _json_line(obj, ensure_ascii: bool, duplicate_key: bool) -> bytes:
    """JSON with ensure_ascii escapes every non-ASCII code point (a lone surrogate then reaches
    the parser as a valid ``\\ud800`` escape); without it, raw UTF-8 where a lone surrogate
    becomes bytes that are not UTF-8."""
    text = json.dumps(obj, ensure_ascii=ensure_ascii)
    if duplicate_key:
        key = json.dumps(next(iter(obj)), ensure_ascii=ensure_ascii)
        text = text[:-1] + f", {key}: 1}}"
    return text.encode("utf-8", "surrogatepass")


#: Lines of hostile JSON: about one in four repeats its first key.
hostile_lines = st.builds(
    _json_line,
    hostile_payment_objects(),
    st.booleans(),
    st.sampled_from([False, False, False, True]),
)


def storable(text: str) -> bool:
    """What PostgreSQL text (and the UTF-8 boundary between Python and Java) can hold."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text
