"""Committed rows as plain attributes: what the ingest pipeline reads, writes and hands back.

A detached ORM instance costs an instance state and a descriptor call on every attribute
read; ingest builds four per message and reads dozens of attributes, so it works on these
instead. They are snapshots: changing one changes nothing in the database, and nothing can
lazy-load or flush through them. ``ItemRow(...).text`` reads like ``TimelineItem.text``."""

from __future__ import annotations

from typing import Any, ClassVar

from hub.models import Conversation, Customer, Identity, TimelineItem


class Row:
    model: ClassVar[type[Any]]

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)

    def __getattr__(self, name: str) -> Any:  # every column is set; this is for type checkers
        raise AttributeError(f"{type(self).__name__} has no column {name!r}")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} id={self.__dict__.get('id')}>"


class ItemRow(Row):
    model = TimelineItem


class TicketRow(Row):
    model = Conversation


class CustomerRow(Row):
    model = Customer


class IdentityRow(Row):
    model = Identity


ROW_OF: dict[type[Any], type[Row]] = {
    row.model: row for row in (ItemRow, TicketRow, CustomerRow, IdentityRow)}
