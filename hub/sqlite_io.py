"""Ingest's statements on SQLite, straight through the DBAPI cursor.

For these statements SQLAlchemy Core spent more per batch than SQLite did: an execution
context, every row's parameters built as a dict and run through each type's processor one
call at a time, a multi-row VALUES rendered anew, a Result around the rows. Here the SQL
text comes from the table's metadata (or is compiled once from the Core statement), and each
value goes through its column type's own bind or result processor, so what is stored and
read back is exactly what Core would store and read.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, Select, Table
from sqlalchemy.engine import Dialect


class _TableSql:
    """One table's column names, quoted, and the converter each column's values go through."""

    def __init__(self, table: Table, dialect: Dialect) -> None:
        quote = dialect.identifier_preparer.quote
        self.name = quote(table.name)
        self.quoted = {column.name: quote(column.name) for column in table.c}
        self.bind: dict[str, Callable[[Any], Any] | None] = {
            column.name: column.type.dialect_impl(dialect).bind_processor(dialect)
            for column in table.c}

    def values(self, row: dict[str, Any], names: Sequence[str]) -> list[Any]:
        bind = self.bind
        return [row[name] if bind[name] is None else bind[name](row[name])  # type: ignore[misc]
                for name in names]


@functools.lru_cache(maxsize=64)
def _table_sql(table: Table, dialect: Dialect) -> _TableSql:
    return _TableSql(table, dialect)


class _SelectSql:
    """A Core SELECT compiled once for SQLite: its text split around expanding parameters
    (lists of values or tuples), and the processors of its parameters and columns."""

    def __init__(self, statement: Select[Any], dialect: Dialect) -> None:
        self.compiled = statement.compile(dialect=dialect)
        self.parts = re.split(r"__\[POSTCOMPILE_(\w+)\]", self.compiled.string)
        self.expanding = {name: index for index, name in enumerate(self.parts) if index % 2}
        self.order = list(self.compiled.positiontup or ())
        self.bind = {name: bind.type.dialect_impl(dialect).bind_processor(dialect)
                     for name, bind in self.compiled.binds.items() if not bind.expanding}
        self.read = [column.type.dialect_impl(dialect).result_processor(dialect, None)
                     for column in statement.selected_columns]

    def text_and_parameters(self, params: dict[str, Any]) -> tuple[str, list[Any]]:
        values = self.compiled.construct_params(params)
        text = list(self.parts)
        parameters: list[Any] = []
        for name in self.order:
            value = values[name]
            if name in self.expanding:  # one placeholder (or a row of them) per item
                text[self.expanding[name]] = _placeholders(value)
                parameters.extend(v for item in value for v in (
                    item if isinstance(item, tuple) else (item,)))
            else:
                bind = self.bind[name]
                parameters.append(value if bind is None else bind(value))
        return "".join(text), parameters


def _placeholders(items: Sequence[Any]) -> str:
    if isinstance(items[0], tuple):
        group = f"({', '.join('?' * len(items[0]))})"
        return f"VALUES {', '.join([group] * len(items))}"
    return ", ".join("?" * len(items))


@functools.lru_cache(maxsize=64)
def _select_sql(statement: Select[Any], dialect: Dialect) -> _SelectSql:
    return _SelectSql(statement, dialect)


class SqliteStatements:
    """The statements of one transaction on a connection to SQLite."""

    def __init__(self, connection: Connection) -> None:
        self._dialect = connection.dialect
        self.dbapi_connection = connection.connection.dbapi_connection
        self._cursor = self.dbapi_connection.cursor()  # type: ignore[union-attr]

    def data_version(self) -> int:
        """Changes whenever another connection commits (not for this one's own commits)."""
        return int(self._cursor.execute("PRAGMA data_version").fetchone()[0])

    def select(self, statement: Select[Any], **params: Any) -> list[list[Any]]:
        """The rows of a Core SELECT (built once, e.g. under functools.cache), as lists of
        column values in the statement's order; expanding parameters must not be empty."""
        sql = _select_sql(statement, self._dialect)
        text, parameters = sql.text_and_parameters(params)
        read = sql.read
        return [[value if convert is None else convert(value)
                 for convert, value in zip(read, row, strict=True)]
                for row in self._cursor.execute(text, parameters).fetchall()]

    def insert(self, table: Table, rows: list[dict[str, Any]],
               skip_conflicts_on: tuple[str, ...] = ()) -> list[int]:
        """One multi-row INSERT … RETURNING id; the ids in SQLite's order, not the rows'.
        With ``skip_conflicts_on``, rows that would break that unique key are left out."""
        sql = _table_sql(table, self._dialect)
        names = list(rows[0])
        group = f"({', '.join('?' * len(names))})"
        conflict = (f" ON CONFLICT ({', '.join(sql.quoted[n] for n in skip_conflicts_on)})"
                    " DO NOTHING" if skip_conflicts_on else "")
        statement = (f"INSERT INTO {sql.name} ({', '.join(sql.quoted[n] for n in names)}) "
                     f"VALUES {', '.join([group] * len(rows))}{conflict} RETURNING id")
        parameters = [value for row in rows for value in sql.values(row, names)]
        return [id_ for (id_,) in self._cursor.execute(statement, parameters).fetchall()]

    def update(self, table: Table, names: tuple[str, ...],
               changes: list[tuple[int, dict[str, Any]]]) -> None:
        """Set the columns ``names`` of each (id, values) in ``changes``."""
        sql = _table_sql(table, self._dialect)
        assignments = ", ".join(f"{sql.quoted[name]} = ?" for name in names)
        self._cursor.executemany(
            f"UPDATE {sql.name} SET {assignments} WHERE {sql.quoted['id']} = ?",
            [[*sql.values(values, names), id_] for id_, values in changes])
