"""Voice-of-customer export: everything customers said, with their ticket's context.

One row per customer-authored timeline item (messages on every channel, and what callers
said in call transcripts), in the order they were stored, as CSV (UTF-8 with a BOM and
CRLF, which Excel opens correctly in Japanese), XLSX or JSON Lines. Rows are read in
chunks by id, so an export of millions of messages streams in constant memory. Dates are
whole days in the hub's time zone (``OMOHUB_TIMEZONE``), and every row carries both the
UTC time (the API's form) and the local time that a spreadsheet shows. ``mask_pii``
replaces names and the personal data in the text (hub.pii), including what each row's
customer record knows about them (their names and identity values).
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO
from zoneinfo import ZoneInfo

import msgspec
from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hub.hours import local_midnight
from hub.identity import audit, claims_of
from hub.models import Conversation, Customer, Identity, ItemKind, SenderType, TimelineItem
from hub.pii import Term, mask_name, mask_text, personal_terms
from hub.serialize import iso

LOCAL_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"  # what Excel reads as a date and time in CSV
COLUMNS = ("item_id", "created_at", "local_time", "conversation_id", "customer_id",
           "customer_name", "channel", "kind", "text", "product_sku", "store_id", "status",
           "tags", "locale")
MEDIA_TYPES = {"csv": "text/csv", "jsonl": "application/x-ndjson",  # Litestar adds charset
               "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
FORMATS = tuple(MEDIA_TYPES)
CHUNK = 1000
VOICE_KINDS = (ItemKind.MESSAGE, ItemKind.TRANSCRIPT)
# A cell that starts with one of these is a formula to Excel: "=HYPERLINK(...)" written by a
# customer must stay text (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
Progress = Callable[[int, int], None]


class ExportError(ValueError):
    pass


class ExportFileError(ExportError):
    """The export file could not be written (a missing folder, no permission, a full disk)."""


@dataclass(frozen=True)
class VocQuery:
    start: datetime | None = None  # UTC, inclusive
    end: datetime | None = None  # UTC, exclusive
    channel: str | None = None
    mask_pii: bool = False
    timezone: str = "UTC"

    @classmethod
    def for_days(cls, first: date | None, last: date | None, timezone: str,
                 **options: Any) -> VocQuery:
        """``first``..``last`` as whole days in ``timezone``; either end may be open."""
        if first and last and first > last:
            raise ExportError("from must not be after to")
        return cls(start=local_midnight(first, timezone) if first else None,
                   end=local_midnight(last + timedelta(days=1), timezone) if last else None,
                   timezone=timezone, **options)


def audit_export(session: AsyncSession, query: VocQuery, fmt: str, actor_id: int | None,
                 actor_type: str = "agent", **details: Any) -> None:
    """The audit log's record of one export: who, which format, which days and options."""
    audit(session, "export.voc", "export", None, actor_id, actor_type, format=fmt,
          start=query.start.isoformat() if query.start else None,
          end=query.end.isoformat() if query.end else None,
          channel=query.channel, mask_pii=query.mask_pii, **details)


def check_format(name: str) -> str:
    if name not in MEDIA_TYPES:
        raise ExportError(f"format must be one of {', '.join(FORMATS)}")
    return name


# --- reading ---------------------------------------------------------------------------

def _statement(query: VocQuery) -> Any:
    statement = (
        select(TimelineItem.id, TimelineItem.created_at, TimelineItem.conversation_id,
               Conversation.customer_id, Customer.display_name, TimelineItem.channel,
               TimelineItem.kind, TimelineItem.text, Conversation.product_sku,
               Conversation.store_id, Conversation.status, Conversation.tags,
               Conversation.locale)
        .join(Conversation, Conversation.id == TimelineItem.conversation_id)
        .join(Customer, Customer.id == Conversation.customer_id)
        .where(TimelineItem.sender_type == SenderType.CUSTOMER,
               TimelineItem.kind.in_(VOICE_KINDS)))  # type: ignore[attr-defined]
    if query.start is not None:
        statement = statement.where(TimelineItem.created_at >= query.start)
    if query.end is not None:
        statement = statement.where(TimelineItem.created_at < query.end)
    if query.channel:
        statement = statement.where(TimelineItem.channel == query.channel)
    return statement


async def count_rows(sessions: async_sessionmaker[AsyncSession], query: VocQuery) -> int:
    async with sessions() as session:
        subquery = _statement(query).subquery()
        return int((await session.execute(select(func.count()).select_from(subquery)))
                   .scalar_one())


async def chunks(sessions: async_sessionmaker[AsyncSession], query: VocQuery,
                 size: int | None = None) -> AsyncIterator[list[dict[str, Any]]]:
    """The rows, ``size`` at a time, in id order (keyset paging: no OFFSET scans)."""
    zone = ZoneInfo(query.timezone)
    known = KnownTerms() if query.mask_pii else None
    after = 0
    while True:
        async with sessions() as session:
            result = (await session.execute(
                _statement(query).where(TimelineItem.id > after)  # type: ignore[operator]
                .order_by(TimelineItem.id).limit(size or CHUNK))).all()
            if known is not None:
                await known.load(session, {values.customer_id for values in result})
        batch = (_rows(result, zone, None) if known is None  # masking is CPU work: in a thread
                 else await asyncio.to_thread(_rows, result, zone, known))
        if not batch:
            return
        yield batch
        after = batch[-1]["item_id"]


def _rows(result: Iterable[Any], zone: ZoneInfo,
          known: KnownTerms | None) -> list[dict[str, Any]]:
    return [_row(values, zone, known) for values in result]


def _row(values: Any, zone: ZoneInfo, known: KnownTerms | None) -> dict[str, Any]:
    """One row; masked when ``known`` holds what the customers' records know of them."""
    (item_id, created_at, conversation_id, customer_id, name, channel, kind, text, sku,
     store, status, tags, locale) = values
    moment = created_at if created_at.tzinfo else created_at.replace(tzinfo=UTC)
    if known is not None:
        name, text = mask_name(name, customer_id), mask_text(text, known=known.of(customer_id))
    return {
        "item_id": item_id, "created_at": iso(moment),
        "local_time": moment.astimezone(zone).strftime(LOCAL_TIME_FORMAT),
        "conversation_id": conversation_id, "customer_id": customer_id,
        "customer_name": name or "", "channel": channel, "kind": kind, "text": text,
        "product_sku": sku or "", "store_id": store or "", "status": status,
        "tags": list(tags or []), "locale": locale or "",
    }


class KnownTerms:
    """What each customer's record knows of them (``hub.pii.personal_terms``: names and
    identity values, also those of customers merged into them), read once per export for
    the customers each chunk of rows names."""

    LIMIT = 20_000  # customers remembered; past it the cache starts again

    def __init__(self) -> None:
        self._terms: dict[int, tuple[Term, ...]] = {}

    def of(self, customer_id: int) -> tuple[Term, ...]:
        return self._terms.get(customer_id, ())

    async def load(self, session: AsyncSession, customer_ids: set[int]) -> None:
        if len(self._terms) > self.LIMIT:
            self._terms.clear()
        missing = customer_ids - self._terms.keys()
        if not missing:
            return
        people = (await session.execute(select(Customer).where(or_(
            Customer.id.in_(missing), Customer.merged_into_id.in_(missing))))).scalars().all()
        identities = (await session.execute(
            select(Identity.customer_id, Identity.kind, Identity.value)
            .where(Identity.customer_id.in_(missing)))).all()
        terms: dict[int, list[Term]] = {customer_id: [] for customer_id in missing}
        for customer in people:
            owner = customer.id if customer.id in missing else customer.merged_into_id
            terms[owner] += personal_terms(  # type: ignore[index]
                customer.display_name, claims_of(customer))
        for customer_id, kind, value in identities:
            terms[customer_id] += personal_terms(None, [(kind, value)])
        self._terms.update({key: tuple(dict.fromkeys(found)) for key, found in terms.items()})


# --- writing ---------------------------------------------------------------------------

def spreadsheet_cell(value: Any, guard: bool = True) -> Any:
    """What a CSV or XLSX cell holds: lists joined; with ``guard``, text that Excel would run
    as a formula is kept as text by a leading apostrophe (OWASP's advice for CSV)."""
    if isinstance(value, list):
        value = ", ".join(str(v) for v in value)
    if guard and isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_bytes(rows: Iterable[dict[str, Any]], header: bool = False) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)  # QUOTE_MINIMAL, CRLF line ends: what Excel writes
    if header:
        buffer.write("\ufeff")
        writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([spreadsheet_cell(row[column]) for column in COLUMNS])
    return buffer.getvalue().encode("utf-8")


_jsonl = msgspec.json.Encoder()


def jsonl_bytes(rows: Iterable[dict[str, Any]]) -> bytes:
    return b"".join(_jsonl.encode(row) + b"\n" for row in rows)


def _encode(batch: list[dict[str, Any]], fmt: str) -> bytes:
    return csv_bytes(batch) if fmt == "csv" else jsonl_bytes(batch)


async def stream(sessions: async_sessionmaker[AsyncSession], query: VocQuery,
                 fmt: str) -> AsyncIterator[bytes]:
    """CSV or JSON Lines, chunk by chunk (XLSX is a zip: see ``write_file``)."""
    if fmt == "csv":
        yield csv_bytes((), header=True)
    async for batch in chunks(sessions, query):
        yield _encode(batch, fmt)


async def write_file(sessions: async_sessionmaker[AsyncSession], query: VocQuery, fmt: str,
                     path: Path, progress: Progress | None = None) -> int:
    """Write the export to ``path``; returns the number of rows. A file that cannot be
    written raises ``ExportFileError``; what was written of it is removed."""
    try:
        out = path.open("wb")
    except OSError as exc:
        raise _cannot_write(path, exc) from exc
    try:
        with out:
            return await _write(sessions, query, fmt, out, progress)
    except BaseException as exc:
        _discard(path)  # half an export of personal data helps nobody
        if isinstance(exc, OSError):
            raise _cannot_write(path, exc) from exc
        raise


async def export_to_file(sessions: async_sessionmaker[AsyncSession], query: VocQuery,
                         fmt: str, path: Path, progress: Progress | None = None, *,
                         actor_id: int | None = None, actor_type: str = "cli") -> int:
    """``write_file``, then the audit log's record of it: only an export that was written
    is recorded (with its file and row count)."""
    rows = await write_file(sessions, query, fmt, path, progress)
    async with sessions() as session, session.begin():
        audit_export(session, query, fmt, actor_id, actor_type, out=str(path), rows=rows)
    return rows


async def _write(sessions: async_sessionmaker[AsyncSession], query: VocQuery, fmt: str,
                 out: BinaryIO, progress: Progress | None) -> int:
    total = await count_rows(sessions, query) if progress else 0
    done = 0
    book = _XlsxBook() if fmt == "xlsx" else None
    if fmt == "csv":
        out.write(csv_bytes((), header=True))
    async for batch in chunks(sessions, query):
        if book is not None:  # openpyxl is CPU work: off the event loop
            await asyncio.to_thread(book.append, batch)
        else:
            out.write(_encode(batch, fmt))
        done += len(batch)
        if progress:
            progress(done, total)
    if book is not None:
        await asyncio.to_thread(book.save, out)
    if progress and total == 0:
        progress(0, 0)
    return done


def _cannot_write(path: Path, exc: OSError) -> ExportFileError:
    return ExportFileError(f"cannot write {path}: {exc.strerror or exc}")


def _discard(path: Path) -> None:
    path.unlink(missing_ok=True)


class _XlsxBook:
    """openpyxl's write-only mode: rows go to disk as they come, not into a cell grid."""

    def __init__(self) -> None:
        from openpyxl import Workbook

        self.book = Workbook(write_only=True)
        self.sheet = self.book.create_sheet("VOC")
        self.sheet.freeze_panes = "A2"
        self.sheet.append(list(COLUMNS))

    def append(self, rows: Iterable[dict[str, Any]]) -> None:
        from openpyxl.cell import WriteOnlyCell

        for row in rows:
            cells = []
            for column in COLUMNS:
                if column == "local_time":  # a date Excel can filter, group and sort by
                    cell = WriteOnlyCell(self.sheet, value=datetime.strptime(
                        row[column], LOCAL_TIME_FORMAT))
                    cell.number_format = "yyyy-mm-dd hh:mm:ss"
                else:
                    cell = WriteOnlyCell(self.sheet, value=spreadsheet_cell(row[column], False))
                if isinstance(cell.value, str):
                    cell.data_type = "s"  # a string cell, never a formula, whatever it says
                cells.append(cell)
            self.sheet.append(cells)

    def save(self, out: BinaryIO) -> None:
        self.book.save(out)
