"""hub.db's query helpers: ``pair_in`` matches exact pairs and lets SQLite use the index."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import event

from hub.api.customers import identity_match_query
from hub.db import pair_in, pair_params
from hub.ingest import _duplicates_query, _senders_query

pairs_table = sa.Table("pairs", sa.MetaData(), sa.Column("a", sa.String),
                       sa.Column("b", sa.String))
letters = st.sampled_from("xyz")


@settings(max_examples=60, deadline=None)
@given(stored=st.sets(st.tuples(letters, letters)),
       asked=st.sets(st.tuples(letters, letters), min_size=1))
def test_pair_in_matches_exactly_the_pairs_asked_for(
        stored: set[tuple[str, str]], asked: set[tuple[str, str]]) -> None:
    # ("x", "y") and ("y", "x") asked for must not find ("x", "x"): the per-column lists
    # alone would.
    engine = sa.create_engine("sqlite://")
    with engine.begin() as connection:
        pairs_table.create(connection)
        if stored:
            connection.execute(pairs_table.insert(), [{"a": a, "b": b} for a, b in stored])
        found = connection.execute(
            sa.select(pairs_table.c.a, pairs_table.c.b).where(
                pair_in(pairs_table.c.a, pairs_table.c.b)), pair_params(asked)).all()
    assert set(map(tuple, found)) == stored & asked


def _plan(database: Path, statement: sa.Select, params: dict[str, object]) -> str:
    """SQLite's plan for the statement as SQLAlchemy sends it (lists expanded)."""
    engine = sa.create_engine(f"sqlite:///{database}")
    sent: list[tuple[str, object]] = []
    event.listen(engine, "before_cursor_execute",
                 lambda _c, _cur, sql, parameters, *_: sent.append((sql, parameters)))
    with engine.connect() as connection:
        connection.execute(statement, params).all()
        sql, parameters = sent[-1]
        rows = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, parameters).all()
    engine.dispose()
    return "\n".join(row[-1] for row in rows)


def test_the_ingest_and_customer_lookups_search_their_index(sqlite_template: Path) -> None:
    """A SCAN would read every stored item or identity for each batch or customer view."""
    keys = [("line", "U1"), ("line", "U2"), ("email", "a@example.com")]
    duplicates = _plan(sqlite_template, _duplicates_query(), pair_params(keys))
    senders = _plan(sqlite_template, _senders_query(),
                    {**pair_params(keys), "reopen_cutoff": datetime(2026, 1, 1)})
    matches = _plan(sqlite_template, identity_match_query(7), pair_params(keys))
    assert "SEARCH timeline_items USING INDEX" in duplicates, duplicates
    assert "SCAN timeline_items" not in duplicates
    for plan in (senders, matches):
        assert "SEARCH identities USING INDEX" in plan, plan
        assert "SCAN identities" not in plan
