"""Column profiles and exact small domains, against a real database with no comments: units,
formats and ranges the data shows, value lists complete after ANALYZE, big tables on
statistics (said so), and the budget."""

from __future__ import annotations

import psycopg

from pg_mcp.ask.context import render_table
from pg_mcp.core.settings import Settings
from pg_mcp.db.discovery import database_dsn
from pg_mcp.db.introspect import introspect
from pg_mcp.db.profiles import TableInput, profile
from pg_mcp.refs.render import render_database

UNDOCUMENTED = """
CREATE TABLE flight (flight_no text, departure_time bigint, arrival_ms bigint, seats int);
INSERT INTO flight SELECT 'F' || g, 1700000000 + g * 3600, (1700000000 + g * 3600) * 1000::bigint,
  CASE WHEN g % 4 = 0 THEN NULL ELSE 100 + g % 50 END FROM generate_series(1, 300) g;
CREATE TABLE concomitant_meds (id int, start_dt text, dose text);
INSERT INTO concomitant_meds SELECT g, to_char(date '2024-01-01' + g, 'YYYY-MM-DD'), (g % 7)::text
  FROM generate_series(1, 200) g;
CREATE TABLE doctors (id int, specialty text, year_reg int);
INSERT INTO doctors SELECT g, CASE WHEN g = 1 THEN 'oncology' ELSE (ARRAY['cardiology','surgery'])[g % 2 + 1] END,
  1990 + g % 30 FROM generate_series(1, 400) g;
CREATE TABLE events (id bigint, happened_at timestamptz, kind text);
INSERT INTO events SELECT g, timestamptz '2024-01-01' + g * interval '1 minute', 'k' || (g % 3)
  FROM generate_series(1, 30000) g;
CREATE INDEX ON events (happened_at);
ANALYZE;
"""


def _db(pg_dsn: str, scratch_db: str, settings: Settings | None = None):  # type: ignore[no-untyped-def]
    dsn = database_dsn(pg_dsn, scratch_db)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(UNDOCUMENTED)
    return introspect(dsn, scratch_db, settings or Settings())


def test_profiles_show_units_formats_ranges_and_complete_domains(
    pg_dsn: str, scratch_db: str
) -> None:
    db = _db(pg_dsn, scratch_db)
    flight = db.table("flight")
    dep = flight.column("departure_time")
    assert dep.epoch_unit == "seconds" and flight.column("arrival_ms").epoch_unit == "milliseconds"
    assert flight.profile_basis == "all rows" and flight.row_estimate == 300
    assert flight.column("seats").null_share == 0.25
    assert flight.column("flight_no").unique_observed

    meds = db.table("concomitant_meds").column("start_dt")
    assert meds.value_format == "YYYY-MM-DD"
    assert (meds.min_value, meds.max_value) == ("2024-01-02", "2024-07-19")
    assert db.table("concomitant_meds").column("dose").value_format == "integer"

    # seen once, so ANALYZE's most-common values drop it: the exact DISTINCT keeps it
    specialty = db.table("doctors").column("specialty")
    assert specialty.samples == ["cardiology", "oncology", "surgery"]
    assert specialty.samples_complete
    year = db.table("doctors").column("year_reg")
    assert (year.min_value, year.max_value, year.epoch_unit) == ("1990", "2019", None)

    events = db.table("events")  # big: statistics, and the indexed timestamp's exact range
    assert events.profile_basis == "statistics"
    happened = events.column("happened_at")
    assert happened.min_value.startswith("2024-01-01 00:01:00")
    assert happened.max_value.startswith("2024-01-21 20:00:00")
    assert not events.column("kind").samples_complete

    text = render_database(db)[f"{scratch_db}.md"]
    assert "Unix epoch seconds: 2023-11-14 23:13 … 2023-11-27 10:13 (UTC)" in text
    assert "text as YYYY-MM-DD: 2024-01-02 … 2024-07-19" in text
    assert "values: 'cardiology', 'oncology', 'surgery'" in text
    assert "nulls 25 %" in text and "unique (observed)" in text
    assert "profiled on planner statistics (approximate)" in text
    assert "300 rows (counted)" in text

    prompt = render_table(db.table("flight"))
    assert "departure_time bigint  -- Unix epoch seconds; range 2023-11-14 23:13 .." in prompt


def test_no_budget_no_profiles(pg_dsn: str, scratch_db: str) -> None:
    db = _db(pg_dsn, scratch_db, Settings(data_budget=0))
    assert all(t.profile_basis is None for t in db.tables)
    assert db.table("flight").column("departure_time").epoch_unit is None


def test_the_deadline_stops_profiling() -> None:
    from pg_mcp.core.model import Column, Table

    t = Table("public", "t", "table", [Column("a", "integer")], row_estimate=5)
    asked: list[str] = []
    done = profile(
        [TableInput(t, [])],
        lambda sql: asked.append(sql) or None,
        n_values=10,
        deadline=0.0,
        clock=lambda: 1.0,
    )
    assert done == 0 and asked == []
