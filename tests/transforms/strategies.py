"""Hypothesis strategies for payment lines (shared by the unit and Beam tiers)."""
import json

from hypothesis import strategies as st

from tests.corpus import load_corpus
from transforms.currencies import DEFAULT_CURRENCIES

_CODES = sorted(DEFAULT_CURRENCIES)
_SMALL_CORPUS = [c.line for c in load_corpus() if len(c.line) < 4096]

event_ids = st.sampled_from([f"e-{i}" for i in range(12)])
accounts = st.sampled_from(["acc-1", "acc-2", "kontø", "账户", " pad", ""])
amounts = st.one_of(
    st.decimals(min_value=-10, max_value=10 ** 6, places=3, allow_nan=False).map(str),
    st.integers(min_value=-5, max_value=2 ** 64).map(str),
    st.sampled_from(["NaN", "1e400", "0.001", "abc", "", "1.10"]),
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
