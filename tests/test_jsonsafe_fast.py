"""The fast conversion paths agree with the exact ones they replace."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from pg_mcp.core.values import _decimal, numeric_from_text, rows_jsonable, to_jsonable

# PostgreSQL prints numerics in plain positional notation, never with an exponent.
numerics = st.decimals(allow_nan=False, allow_infinity=False, places=None).map(
    lambda d: format(d, "f")
)


@settings(max_examples=2000, deadline=None, derandomize=True)
@given(numerics)
def test_numeric_from_text_matches_the_decimal_path(text: str) -> None:
    fast, exact = numeric_from_text(text), _decimal(Decimal(text))
    assert type(fast) is type(exact) and fast == exact, (text, fast, exact)


def test_numeric_from_text_special_values() -> None:
    for text in ("NaN", "Infinity", "-Infinity", "0", "-0.0", "1.50", "123456789012345678901234.5"):
        assert numeric_from_text(text) == _decimal(Decimal(text))


values = st.one_of(
    st.none(),
    st.integers(min_value=-(2**60), max_value=2**60),
    st.floats(allow_nan=False),
    st.text(max_size=5),
    st.booleans(),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.dates(),
    st.datetimes(timezones=st.just(dt.UTC)),
    st.uuids(),
    st.binary(max_size=4),
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    st.integers(min_value=1, max_value=4).flatmap(
        lambda n: st.lists(st.tuples(*[values] * n), max_size=6)
    )
)
def test_rows_jsonable_matches_value_by_value(rows: list[tuple[object, ...]]) -> None:
    assert rows_jsonable(rows) == [[to_jsonable(v) for v in r] for r in rows]


def test_rows_jsonable_mixed_column_types() -> None:
    rows = [
        (1, Decimal("2.50"), None),
        ("a", None, uuid.UUID(int=1)),
        (None, Decimal("1e30"), b"\x00"),
    ]
    assert rows_jsonable(rows) == [[to_jsonable(v) for v in r] for r in rows]
