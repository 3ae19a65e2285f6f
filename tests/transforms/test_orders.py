"""The orders rules (`transforms.orders`): each check, the duplicates, the stock, the pure
reference and the sample generator; properties with hypothesis. No JVM, no Beam."""

import json
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms import order_samples
from transforms.lines import LineRejected, SourceLine, raw_text
from transforms.orders import (
    MAX_QUANTITY,
    TABLES,
    DuplicateOrder,
    Order,
    StockRow,
    apply_orders_sql,
    insert_order_lines_sql,
    line_outcomes,
    process_files,
    process_lines,
    validate_order,
)


def line(order_id="o-1", **fields) -> bytes:
    obj = {"order_id": order_id, "sku": "sku-1", "warehouse": "wh-1", "quantity": 2}
    obj["kind"] = "sale"
    obj.update(fields)
    return json.dumps(obj).encode()


def reason(raw: bytes) -> str:
    with pytest.raises(LineRejected) as refused:
        validate_order(SourceLine("f", 1, raw))
    return refused.value.reason


def test_a_valid_line_is_a_signed_move():
    assert validate_order(SourceLine("f", 3, line(kind="sale"))) == Order(
        "o-1", "sku-1", "wh-1", "sale", 2, -2, "f", 3
    )
    assert validate_order(SourceLine("f", 4, line(kind="restock", quantity=5))).change == 5
    assert validate_order(SourceLine("f", 5, line(kind="return"))).change == 2
    # 2.0 is a whole number; fields the rule does not know are ignored
    assert (
        validate_order(
            SourceLine(
                "f",
                6,
                b'{"order_id": "o", "sku": "s", "warehouse": '
                b'"w", "quantity": 2.0, "kind": "sale", "x": []}',
            )
        ).quantity
        == 2
    )


@pytest.mark.parametrize(
    "raw, expected",
    [
        (b"", "empty_line"),
        (b"\xff", "invalid_encoding"),
        (b"{", "malformed_json"),
        (b'{"quantity": NaN}', "malformed_json"),
        (b"[]", "not_an_object"),
        (b'{"order_id": "a", "order_id": "b"}', "duplicate_field"),
        (line(kind=None), "missing_field"),
        (line(order_id=7), "mistyped_field"),
        (line(sku=["s"]), "mistyped_field"),
        (line(order_id=" o"), "invalid_identifier"),
        (line(warehouse="w\u0000"), "invalid_identifier"),
        (line(warehouse="w" * 65), "invalid_identifier"),
        (line(quantity=0), "invalid_quantity"),
        (line(quantity=-1), "invalid_quantity"),
        (line(quantity=2.5), "invalid_quantity"),
        (line(quantity="2"), "invalid_quantity"),
        (line(quantity=True), "invalid_quantity"),
        (line(quantity=MAX_QUANTITY + 1), "invalid_quantity"),
        (line(quantity=10**400), "invalid_quantity"),
        (line().replace(b'"quantity": 2', b'"quantity": 1e999999'), "invalid_quantity"),
        (line(kind="theft"), "unknown_kind"),
        (line(kind="Sale"), "unknown_kind"),
        (line(sku="s" * 5000), "line_too_long"),
    ],
)
def test_each_refusal_has_its_reason(raw, expected):
    assert reason(raw) == expected


def test_the_first_line_of_an_order_id_wins_and_later_ones_are_duplicates_whatever_they_hold():
    lines = [line(), line(quantity=9, kind="restock"), b"{", line(), line("o-2", kind="return")]
    outcome = process_lines(lines, source="f")
    assert line_outcomes(lines) == [
        "stock_move",
        "duplicate",
        "malformed_json",
        "duplicate",
        "stock_move",
    ]
    assert outcome.duplicates == [DuplicateOrder("o-1", "f", 2), DuplicateOrder("o-1", "f", 4)]
    assert outcome.stock == [StockRow("sku-1", "wh-1", 0, 2)]
    assert [r.raw for r in outcome.rejected] == ["{"] and outcome.lines == 5


def test_a_rejected_line_does_not_claim_its_order_id():
    outcome = process_lines([line(quantity=0), line(quantity=3)], source="f")
    assert [m.line_number for m in outcome.moves] == [2]


lines_strategy = st.lists(
    st.one_of(
        st.builds(
            line,
            st.sampled_from(["o-1", "o-2", "o-3", " o", ""]),
            quantity=st.one_of(st.integers(-2, 30), st.sampled_from([1.5, "1", None, 10**7])),
            kind=st.sampled_from(["sale", "restock", "return", "x"]),
            sku=st.sampled_from(["a", "b", "ß"]),
        ),
        st.binary(max_size=30),
        st.sampled_from(order_samples.BAD_LINES),
    ),
    max_size=30,
)


@given(lines_strategy)
@settings(max_examples=200, deadline=None)
def test_every_line_ends_in_exactly_one_table_and_stock_sums_the_moves(lines):
    outcome = process_lines(lines, source="f")
    assert len(outcome.moves) + len(outcome.duplicates) + len(outcome.rejected) == len(lines)
    numbers = sorted(
        [m.line_number for m in outcome.moves]
        + [d.line_number for d in outcome.duplicates]
        + [r.line_number for r in outcome.rejected]
    )
    assert numbers == list(range(1, len(lines) + 1))
    assert len({m.order_id for m in outcome.moves}) == len(outcome.moves)
    assert {d.order_id for d in outcome.duplicates} <= {m.order_id for m in outcome.moves}
    assert sum(s.quantity for s in outcome.stock) == sum(m.change for m in outcome.moves)
    assert sum(s.moves for s in outcome.stock) == len(outcome.moves)
    for move in outcome.moves:
        assert 1 <= move.quantity <= MAX_QUANTITY and abs(move.change) == move.quantity
    for rejected in outcome.rejected:  # storable: no NUL, no lone surrogates
        assert "\x00" not in rejected.raw
        rejected.raw.encode("utf-8")  # no lone surrogate
        assert rejected.raw_bytes is None or raw_text(rejected.raw_bytes) == rejected.raw


@given(lines_strategy)
@settings(max_examples=50, deadline=None)
def test_a_line_repeated_later_changes_no_table_but_the_duplicates(lines):
    once = process_lines(lines, source="f")
    twice = process_lines(lines + lines, source="f")
    assert twice.moves == once.moves and twice.stock == once.stock
    assert len(twice.duplicates) == 2 * len(once.duplicates) + len(once.moves)


def test_the_sample_generator_is_deterministic_and_has_every_kind_of_line():
    lines = order_samples.generate_lines(3_000, seed=5)
    assert lines == order_samples.generate_lines(3_000, seed=5)
    assert lines != order_samples.generate_lines(3_000, seed=6)
    outcome = process_lines(lines, source="f")
    assert len(outcome.moves) == 3_000
    assert len(outcome.duplicates) == round(3_000 * 0.05) + round(3_000 * 0.01)
    reasons = Counter(r.reason for r in outcome.rejected)
    assert sum(reasons.values()) == round(3_000 * 0.02)
    assert {"invalid_encoding", "duplicate_field", "invalid_quantity"} <= set(reasons)
    every_bad_line = [
        r for outcome_ in [process_lines(order_samples.BAD_LINES)] for r in outcome_.rejected
    ]
    assert len(every_bad_line) == len(order_samples.BAD_LINES)


def test_process_files_names_each_line_by_its_file(tmp_path):
    (tmp_path / "a.jsonl").write_bytes(line("o-1") + b"\n" + line("o-1") + b"\n")
    (tmp_path / "b.jsonl").write_bytes(line("o-1", quantity=3))
    outcome = process_files([str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl")])
    assert [(m.source, m.line_number) for m in outcome.moves] == [("a.jsonl", 1)]
    assert outcome.duplicates == [
        DuplicateOrder("o-1", "a.jsonl", 2),
        DuplicateOrder("o-1", "b.jsonl", 1),
    ]


def test_the_statements_name_only_the_orders_tables():
    statement = apply_orders_sql()
    assert "ON CONFLICT (order_id) DO NOTHING" in statement
    rejects = insert_order_lines_sql(TABLES["order_rejects"])
    for payments_table in ("ledger", "balances", " rejected ", " duplicates "):
        assert payments_table not in statement and payments_table not in rejects
    assert "order_duplicates o" in insert_order_lines_sql(TABLES["order_rejects"])
