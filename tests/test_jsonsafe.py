"""JSON-safe conversion: pure rules, then every common type end to end through run_readonly."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from psycopg.types.range import Range

from pg_mcp.core.settings import load_settings
from pg_mcp.core.values import (
    MAX_SAFE_INT,
    dumps,
    iso_duration,
    json_size,
    parse_array_literal,
    row_jsonable,
    to_jsonable,
)
from pg_mcp.db.discovery import database_dsn
from pg_mcp.db.executor import Pools, run_readonly

# --- pure ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (True, True),
        (42, 42),
        (MAX_SAFE_INT, MAX_SAFE_INT),
        (MAX_SAFE_INT + 1, MAX_SAFE_INT + 1),  # one type per column: int8 is always a number
        (-(2**63), -(2**63)),
        (1.25, 1.25),
        (float("nan"), None),  # no JSON number holds them: null (documented loss)
        (float("inf"), None),
        (float("-inf"), None),
        (Decimal("1.50"), "1.50"),  # numeric is always its exact decimal text
        (Decimal("0.1"), "0.1"),
        (Decimal("5"), "5"),
        (Decimal("-0.000001"), "-0.000001"),
        (Decimal("12345678901234567.89"), "12345678901234567.89"),
        (Decimal("0.1000000000000000055511151231257827"), "0.1000000000000000055511151231257827"),
        (Decimal("1E+20"), "100000000000000000000"),
        (Decimal("NaN"), "NaN"),
        (Decimal("Infinity"), "Infinity"),
        (Decimal("-Infinity"), "-Infinity"),
        (dt.date(2024, 2, 29), "2024-02-29"),
        (
            dt.datetime(2024, 1, 2, 3, 4, 5, 500000, tzinfo=dt.UTC),
            "2024-01-02T03:04:05.500000+00:00",
        ),
        (dt.time(8, 0, tzinfo=dt.timezone(dt.timedelta(hours=2))), "08:00:00+02:00"),
        (dt.timedelta(days=1, hours=2, seconds=3, microseconds=500000), "P1DT2H3.5S"),
        (dt.timedelta(0), "PT0S"),
        (b"\xde\xad\xbe\xef", "\\xdeadbeef"),
        (memoryview(b"\x00\x01"), "\\x0001"),
        (uuid.UUID("12345678-1234-5678-1234-567812345678"), "12345678-1234-5678-1234-567812345678"),
        (ipaddress.ip_interface("192.168.1.1/32"), "192.168.1.1"),
        (ipaddress.ip_interface("192.168.1.1/24"), "192.168.1.1/24"),
        (ipaddress.ip_network("10.0.0.0/8"), "10.0.0.0/8"),
        (ipaddress.ip_interface("::1/128"), "::1"),
        ([1, [2, None]], [1, [2, None]]),
        (("1", "a", None), ["1", "a", None]),
        ({"a": Decimal("1.1"), 2: [b"\x01"]}, {"a": "1.1", "2": ["\\x01"]}),
        (Range(1, 5, "[)"), {"lower": 1, "upper": 5, "bounds": "[)"}),
        (
            Range(None, dt.date(2024, 1, 1), "(]"),
            {"lower": None, "upper": "2024-01-01", "bounds": "(]"},
        ),
        (Range(empty=True), {"empty": True}),
        (object, str(object)),
    ],
)
def test_to_jsonable(value: object, expected: object) -> None:
    out = to_jsonable(value)
    assert out == expected and type(out) is type(expected)
    json.dumps(out, allow_nan=False)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("00:00:00", "PT0S"),
        ("1 year 2 mons 3 days 04:05:06.5", "P1Y2M3DT4H5M6.5S"),
        ("1 mon", "P1M"),
        ("-1 days +02:00:00", "P-1DT2H"),
        ("-04:05:06", "PT-4H-5M-6S"),
        ("-00:00:00.25", "PT-0.25S"),
        ("100:00:00", "PT100H"),
        ("-1 years -2 mons +3 days", "P-1Y-2M3D"),
        ("178956970 years 7 mons", "P178956970Y7M"),
        ("00:00:01.000001", "PT1.000001S"),
        ("P1D", "P1D"),
        ("@ 1 day ago", "@ 1 day ago"),
    ],
)
def test_iso_duration(text: str, expected: str) -> None:
    assert iso_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "delim", "expected"),
    [
        ("{}", ",", []),
        ("{happy,sad}", ",", ["happy", "sad"]),
        (
            '{"a b",NULL,"NULL","q\\"x","back\\\\slash"}',
            ",",
            ["a b", None, "NULL", 'q"x', "back\\slash"],
        ),
        ("{{1,2},{3,NULL}}", ",", [["1", "2"], ["3", None]]),
        ('{"(1,x)","(2,\\"y z\\")"}', ",", ["(1,x)", '(2,"y z")']),
        ("[0:1]={a,b}", ",", ["a", "b"]),
        ("{(1,1),(0,0);(2,2),(1,1)}", ";", ["(1,1),(0,0)", "(2,2),(1,1)"]),
        ("not an array", ",", "not an array"),
        ("{unbalanced", ",", "{unbalanced"),
    ],
)
def test_parse_array_literal(text: str, delim: str, expected: object) -> None:
    assert parse_array_literal(text, delim) == expected


def test_row_jsonable_parses_unloaded_arrays_only() -> None:
    assert row_jsonable(("{a,b}", "{a,b}", [1]), {0: ","}) == [["a", "b"], "{a,b}", [1]]


def test_json_size_counts_utf8_bytes() -> None:
    assert dumps(["中"]) == '["中"]'
    assert json_size(["中"]) == 7
    with pytest.raises(ValueError):
        dumps(float("nan"))


# --- end to end: every common type through the real server -------------------------------------


@pytest.fixture
def typed_db(pg_dsn: str, scratch_db: str) -> str:
    with psycopg.connect(database_dsn(pg_dsn, scratch_db), autocommit=True) as conn:
        conn.execute(
            """
            CREATE TYPE mood AS ENUM ('happy', 'sad');
            CREATE TYPE pair AS (a int, b text);
            CREATE DOMAIN posint AS int CHECK (VALUE > 0);
            """
        )
    return scratch_db


@pytest.fixture
def pools(pg_dsn: str, reader_dsn: str, tmp_path: Path) -> Iterator[Pools]:
    s = load_settings(
        env={"PG_MCP_DSN": reader_dsn, "PG_MCP_HOME": str(tmp_path)}, config_path=None
    )
    with Pools(s) as p:
        yield p


CASES: list[tuple[str, str, object]] = [
    ("1.50::numeric", "numeric", "1.50"),
    ("(1::numeric / 3)", "numeric", "0.33333333333333333333"),
    ("0.5::numeric", "numeric", "0.5"),
    ("12345678901234567.89::numeric", "numeric", "12345678901234567.89"),
    ("'NaN'::numeric", "numeric", "NaN"),
    ("9007199254740993::int8", "bigint", 9007199254740993),
    ("42::int2", "smallint", 42),
    ("'Infinity'::float8", "double precision", None),
    ("0.1::float4", "real", 0.1),
    ("date '2024-02-29'", "date", "2024-02-29"),
    ("'infinity'::date", "date", "infinity"),
    ("'-infinity'::timestamp", "timestamp without time zone", "-infinity"),
    ("'infinity'::timestamptz", "timestamp with time zone", "infinity"),
    ("'0044-03-15 BC'::date", "date", "0044-03-15 BC"),
    (
        "timestamp '2024-01-02 03:04:05.25'",
        "timestamp without time zone",
        "2024-01-02T03:04:05.250000",
    ),
    (
        "timestamptz '2024-01-02 03:04:05+00'",
        "timestamp with time zone",
        "2024-01-02T03:04:05+00:00",
    ),
    ("time '13:14:15'", "time without time zone", "13:14:15"),
    ("timetz '12:00+02'", "time with time zone", "12:00:00+02:00"),
    ("interval '1 year 2 mons 3 days 04:05:06.5'", "interval", "P1Y2M3DT4H5M6.5S"),
    ("interval '-1 day +02:00'", "interval", "P-1DT2H"),
    ("interval '0'", "interval", "PT0S"),
    (
        "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid",
        "uuid",
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
    ),
    ("'\\xdeadbeef'::bytea", "bytea", "\\xdeadbeef"),
    ("''::bytea", "bytea", "\\x"),
    ("ARRAY[[1,2],[3,4]]", "integer[]", [[1, 2], [3, 4]]),
    ("ARRAY['a', NULL]::text[]", "text[]", ["a", None]),
    ("ARRAY[1.5, 2]::numeric[]", "numeric[]", ["1.5", "2"]),
    ("ARRAY[date '2024-01-01', 'infinity']", "date[]", ["2024-01-01", "infinity"]),
    ('\'{"a": 1.1, "b": [true, null]}\'::json', "json", {"a": 1.1, "b": [True, None]}),
    (
        '\'{"big": 12345678901234567890.5, "n": 1e2}\'::jsonb',
        "jsonb",
        {"big": "12345678901234567890.5", "n": 100},
    ),
    ("'happy'::mood", "mood", "happy"),
    ("ARRAY['happy', 'sad']::mood[]", "mood[]", ["happy", "sad"]),
    ("ARRAY[NULL, 'sad']::mood[]", "mood[]", [None, "sad"]),
    ("ROW(1, 'x')::pair", "pair", "(1,x)"),
    ("ARRAY[ROW(1, 'x y')::pair]", "pair[]", ['(1,"x y")']),
    ("ARRAY[box '((0,0),(1,1))']", "box[]", ["(1,1),(0,0)"]),
    ("ARRAY['1 day'::interval]", "interval[]", ["P1D"]),
    ("ARRAY['\\x01'::bytea]", "bytea[]", ["\\x01"]),
    ("ROW(1, 'x', NULL)", "record", ["1", "x", None]),
    ("5::posint", "integer", 5),
    ("int4range(1, 5)", "int4range", {"lower": 1, "upper": 5, "bounds": "[)"}),
    ("'empty'::int4range", "int4range", {"empty": True}),
    (
        "'[2024-01-01,infinity)'::daterange",
        "daterange",
        {"lower": "2024-01-01", "upper": "infinity", "bounds": "[)"},
    ),
    ("numrange(1.5, NULL)", "numrange", {"lower": "1.5", "upper": None, "bounds": "[)"}),
    (
        "tstzrange('2024-01-01 00:00+00', '2024-01-02 00:00+00')",
        "tstzrange",
        {
            "lower": "2024-01-01T00:00:00+00:00",
            "upper": "2024-01-02T00:00:00+00:00",
            "bounds": "[)",
        },
    ),
    (
        "'{[1,2),[4,5)}'::int4multirange",
        "int4multirange",
        [{"lower": 1, "upper": 2, "bounds": "[)"}, {"lower": 4, "upper": 5, "bounds": "[)"}],
    ),
    ("'192.168.0.1'::inet", "inet", "192.168.0.1"),
    ("'192.168.0.1/24'::inet", "inet", "192.168.0.1/24"),
    ("'10.0.0.0/8'::cidr", "cidr", "10.0.0.0/8"),
    ("'::1'::inet", "inet", "::1"),
    ("'08:00:2b:01:02:03'::macaddr", "macaddr", "08:00:2b:01:02:03"),
    ("'1234.56'::money", "money", "$1,234.56"),
    ("to_tsvector('simple', 'the quick fox')", "tsvector", "'fox':3 'quick':2 'the':1"),
    ("'fat & rat'::tsquery", "tsquery", "'fat' & 'rat'"),
    ("point(1, 2)", "point", "(1,2)"),
    ("B'101'", "bit", "101"),
    ("'0/16B3748'::pg_lsn", "pg_lsn", "0/16B3748"),
    ("'pg_class'::regclass", "regclass", "pg_class"),
    ("'中文 text'::text", "text", "中文 text"),
    ("true", "boolean", True),
    ("NULL::int", "integer", None),
]


def test_every_common_type_round_trips_json_safe(typed_db: str, pools: Pools) -> None:
    sql = "SELECT " + ", ".join(f"{expr} AS c{i}" for i, (expr, _, _) in enumerate(CASES))
    r = run_readonly(sql, typed_db, pools=pools, validate=False)
    assert r.ok, r
    wire = json.loads(json.dumps(r.to_dict(), allow_nan=False, ensure_ascii=False))
    for i, (expr, type_name, expected) in enumerate(CASES):
        assert wire["columns"][i] == {"name": f"c{i}", "type": type_name}, expr
        assert wire["rows"][0][i] == expected, expr


def test_interval_output_does_not_depend_on_the_session_style(
    pg_dsn: str, typed_db: str, pools: Pools
) -> None:
    with psycopg.connect(database_dsn(pg_dsn, typed_db), autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{typed_db}" SET IntervalStyle = sql_standard')
    r = run_readonly(
        "SELECT interval '1 year 2 mons 3 days'", typed_db, pools=pools, validate=False
    )
    assert r.rows == [["P1Y2M3D"]]
