"""The catalog from a shop's own files: products and stores, as CSV or JSON.

A CSV file (UTF-8, with or without the BOM Excel writes) holds one kind, named by its
header: a ``sku`` column makes it products, an ``id`` column stores; the other columns are
the model's (any subset, any order). A ``.json`` file is ``{"products": [...],
"stores": [...]}`` with the same fields. Rows are upserted by sku / store id: a field the
file leaves out keeps its stored value, and nothing is ever deleted. A bad row is refused
with its file, line (or JSON item) and field while the other rows are imported; a file
that cannot be read as a whole (not UTF-8, bad JSON, an unknown column) is refused whole.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy import inspect, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel

from hub.identity import audit
from hub.models import Product, Store

Progress = Callable[[int, int], None]
Value = str | int

KEY = re.compile(r"[A-Za-z0-9_.\-]{1,64}")  # what /chat?product=&store= and /qr/{sku} accept
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
PRICE = re.compile(r"\d+|\d{1,3}(?:,\d{3})+")  # Excel writes 1,280 when the cell shows it so
MAX_PRICE = 2**31 - 1  # the price column is a 32-bit integer on PostgreSQL
CURRENCY = re.compile(r"[A-Za-z]{3}")
UNSAFE_URL = re.compile(r"[\s\\]")  # a browser reads "/\host" or "/\t/host" as "//host"
CHUNK = 500  # rows looked up per query


class RowError(ValueError):
    """A value that cannot be stored: the field, and why."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"'{name}' {message}")


class FileRefused(ValueError):
    def __init__(self, message: str, where: str = "") -> None:
        super().__init__(message)
        self.where = where


@dataclass(frozen=True)
class Kind:
    name: str  # as in the JSON file and the summary: "products"
    model: type[SQLModel]
    key: str
    required: tuple[str, ...]  # to create a row

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(inspect(self.model).columns.keys())

    def max_length(self, column: str) -> int | None:
        return getattr(inspect(self.model).columns[column].type, "length", None)


PRODUCTS = Kind("products", Product, "sku", ("sku", "name"))
STORES = Kind("stores", Store, "id", ("id", "name"))
KINDS = (PRODUCTS, STORES)


@dataclass(frozen=True)
class Row:
    kind: Kind
    where: str  # a CSV line ("12") or a JSON item ("products[3]")
    values: Mapping[str, object]
    problem: str = ""  # why the row cannot be read at all


@dataclass
class Counts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    refused: int = 0


@dataclass
class Batch:
    """One file's rows, checked, and what became of them."""

    path: Path
    counts: dict[str, Counts] = field(default_factory=dict)  # by kind name
    rows: list[tuple[int, Row, dict[str, Value]]] = field(default_factory=list)  # to store
    errors: list[tuple[int, str]] = field(default_factory=list)  # (row's place, message)

    def count(self, row: Row) -> Counts:
        return self.counts.setdefault(row.kind.name, Counts())

    def refuse(self, place: int, row: Row, message: str) -> None:
        self.count(row).refused += 1
        self.errors.append((place, f"{self.path}:{row.where}: {message}"))


@dataclass
class ImportReport:
    counts: dict[str, Counts] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    files_refused: int = 0

    def add(self, batch: Batch) -> None:
        for name, counts in batch.counts.items():
            total = self.counts.setdefault(name, Counts())
            for key, number in asdict(counts).items():
                setattr(total, key, getattr(total, key) + number)
        self.errors.extend(message for _, message in sorted(batch.errors, key=lambda e: e[0]))

    def summary(self) -> list[str]:
        lines = [f"{name}: {c.created} created, {c.updated} updated, {c.unchanged} unchanged, "
                 f"{c.refused} refused" for name, c in self.counts.items()]
        if self.files_refused:
            lines.append(f"{self.files_refused} file(s) refused")
        return lines or ["nothing to import"]


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# --- reading -----------------------------------------------------------------------------

def read_rows(path: Path) -> list[Row]:
    """The file's rows as written; ``FileRefused`` when it cannot be read as a whole."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FileRefused('is not UTF-8 text (in Excel, save as "CSV UTF-8")') from exc
    except OSError as exc:
        raise FileRefused(f"cannot be read: {exc.strerror or exc}") from exc
    return _json_rows(text) if path.suffix.lower() == ".json" else _csv_rows(text)


def _csv_rows(text: str) -> list[Row]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [cell.strip().lower() for cell in next(reader, [])]
    kind = _kind_of(header)
    rows: list[Row] = []
    line = reader.line_num + 1
    for cells in reader:
        if any(cell.strip() for cell in cells):  # Excel leaves empty rows at the end
            rows.append(_csv_row(kind, str(line), header, cells))
        line = reader.line_num + 1
    return rows


def _csv_row(kind: Kind, where: str, header: list[str], cells: list[str]) -> Row:
    if len(cells) != len(header):
        return Row(kind, where, {}, f"has {len(cells)} cells, the header {len(header)}")
    # a column without a name is one Excel wrote past the table's end: its cells are ignored
    return Row(kind, where, {name: cell for name, cell in zip(header, cells, strict=True)
                             if name})


def _kind_of(header: list[str]) -> Kind:
    kind = PRODUCTS if "sku" in header else STORES if "id" in header else None
    if kind is None:
        raise FileRefused("the header names neither a 'sku' column (products) nor an 'id' "
                          "column (stores)", "1")
    named = [name for name in header if name]
    if unknown := [name for name in named if name not in kind.columns]:
        raise FileRefused(f"unknown column {', '.join(map(_shown, unknown))} for "
                          f"{kind.name} (the columns are {', '.join(kind.columns)})", "1")
    if twice := sorted({name for name in named if named.count(name) > 1}):
        raise FileRefused(f"column {', '.join(map(_shown, twice))} appears twice", "1")
    return kind


def _json_rows(text: str) -> list[Row]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FileRefused(f"is not JSON: {exc.msg}", str(exc.lineno)) from exc
    names = {kind.name for kind in KINDS}
    if not isinstance(data, dict) or not set(data) <= names:
        raise FileRefused('must be one object: {"products": [...], "stores": [...]}')
    rows: list[Row] = []
    for kind in KINDS:
        items = data.get(kind.name, [])
        if not isinstance(items, list):
            raise FileRefused(f"'{kind.name}' must be a list of objects")
        rows.extend(_json_row(kind, f"{kind.name}[{index}]", item)
                    for index, item in enumerate(items))
    return rows


def _json_row(kind: Kind, where: str, item: object) -> Row:
    if not isinstance(item, dict):
        return Row(kind, where, {}, f"must be an object, not {_shown(item)}")
    if unknown := [name for name in item if name not in kind.columns]:
        return Row(kind, where, {}, f"unknown field {', '.join(map(_shown, unknown))} "
                                    f"(the fields are {', '.join(kind.columns)})")
    return Row(kind, where, item)


# --- checking ----------------------------------------------------------------------------

def clean(kind: Kind, values: Mapping[str, object]) -> dict[str, Value]:
    """The row's values as they are stored; ``RowError`` for the first that cannot be."""
    if kind.key not in values:
        raise RowError(kind.key, "is missing")
    return {name: _clean_value(kind, name, value) for name, value in values.items()}


def _clean_value(kind: Kind, name: str, value: object) -> Value:
    text = _text(name, value)
    if CONTROL.search(text):
        raise RowError(name, f"holds a control character: {_shown(text)}")
    cleaned = CHECKS.get(name, _any_text)(name, text)
    limit = kind.max_length(name)
    if isinstance(cleaned, str) and limit is not None and len(cleaned) > limit:
        raise RowError(name, f"is longer than {limit} characters ({len(cleaned)})")
    return cleaned


def _text(name: str, value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise RowError(name, f"must be text or a whole number, not {_shown(value)}")
    return str(value).strip()


def _any_text(name: str, text: str) -> Value:
    return text


def _key(name: str, text: str) -> Value:
    if not KEY.fullmatch(text):
        raise RowError(name, "must be 1 to 64 letters, digits, '-', '_' or '.' "
                             f"(it goes into QR codes and chat links), not {_shown(text)}")
    return text


def _name(name: str, text: str) -> Value:
    if not text:
        raise RowError(name, "must not be empty")
    return text


def _price(name: str, text: str) -> Value:
    if not PRICE.fullmatch(text):
        raise RowError(name, f"must be a whole number, 0 or more, not {_shown(text)}")
    price = int(text.replace(",", ""))
    if price > MAX_PRICE:
        raise RowError(name, f"must be at most {MAX_PRICE:,}, not {_shown(text)}")
    return price


def _currency(name: str, text: str) -> Value:
    if not CURRENCY.fullmatch(text):
        raise RowError(name, f"must be a three-letter code such as JPY, not {_shown(text)}")
    return text.upper()


def _image_url(name: str, text: str) -> Value:
    """Only what is safe in ``<img src>`` and what the chat page's CSP (img-src 'self'
    https:) loads: an https:// address or a path on this site."""
    if not text or (text.startswith("/") and not text.startswith("//")
                    and not UNSAFE_URL.search(text)):
        return text
    try:
        parts = urlsplit(text)
    except ValueError:
        parts = None
    if parts and parts.scheme == "https" and parts.hostname and not UNSAFE_URL.search(text):
        return text
    raise RowError(name, "must be an https:// address or a path on this site starting with / "
                         f"(the chat page shows no other images), not {_shown(text)}")


CHECKS: dict[str, Callable[[str, str], Value]] = {
    "sku": _key, "id": _key, "name": _name, "price": _price, "currency": _currency,
    "image_url": _image_url}


def check_file(path: Path) -> tuple[Batch, bool]:
    """The file's rows that may be stored, the others refused; False when the whole file
    was refused."""
    batch = Batch(path)
    try:
        rows = read_rows(path)
    except FileRefused as exc:
        where = f":{exc.where}" if exc.where else ""
        batch.errors.append((0, f"{path}{where}: {exc}"))
        return batch, False
    for place, row in enumerate(rows):
        batch.count(row)
        if row.problem:
            batch.refuse(place, row, row.problem)
            continue
        try:
            batch.rows.append((place, row, clean(row.kind, row.values)))
        except RowError as exc:
            batch.refuse(place, row, str(exc))
    _refuse_duplicates(batch)
    return batch, True


def _refuse_duplicates(batch: Batch) -> None:
    seen: defaultdict[tuple[str, Value], list[Row]] = defaultdict(list)
    for _, row, values in batch.rows:
        seen[row.kind.name, values[row.kind.key]].append(row)
    kept = []
    for place, row, values in batch.rows:
        same = seen[row.kind.name, values[row.kind.key]]
        if len(same) == 1:
            kept.append((place, row, values))
            continue
        others = ", ".join(f"{batch.path}:{other.where}" for other in same if other is not row)
        batch.refuse(place, row, f"duplicate {row.kind.key} {_shown(values[row.kind.key])}, "
                                 f"also at {others}: none of these rows is imported")
    batch.rows = kept


# --- storing -----------------------------------------------------------------------------

async def import_files(session: AsyncSession, paths: Sequence[Path],
                       progress: Progress | None = None,
                       actor_type: str = "agent", actor_id: int | None = None) -> ImportReport:
    """Check every file, then upsert the good rows, each file audited as
    ``catalog.import``."""
    report = ImportReport()
    checked = [check_file(path) for path in paths]
    total, done = sum(len(batch.rows) for batch, _ in checked), 0
    for batch, readable in checked:
        if readable:
            for start in range(0, len(batch.rows), CHUNK):
                chunk = batch.rows[start:start + CHUNK]
                await _store(session, batch, chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)
            audit(session, "catalog.import", "catalog", None, actor_id, actor_type,
                  file=str(batch.path), **{name: asdict(c) for name, c in batch.counts.items()})
        else:
            report.files_refused += 1
        report.add(batch)
    return report


async def _store(session: AsyncSession, batch: Batch,
                 rows: list[tuple[int, Row, dict[str, Value]]]) -> None:
    for kind in KINDS:
        mine = [entry for entry in rows if entry[1].kind is kind]
        if not mine:
            continue
        column = getattr(kind.model, kind.key)
        keys = [values[kind.key] for _, _, values in mine]
        stored = {getattr(existing, kind.key): existing for existing in (
            await session.execute(select(kind.model).where(column.in_(keys)))).scalars()}
        for place, row, values in mine:
            _upsert(session, batch, place, row, values, stored.get(values[kind.key]))
    await session.flush()


def _upsert(session: AsyncSession, batch: Batch, place: int, row: Row,
            values: dict[str, Value], existing: SQLModel | None) -> None:
    counts = batch.count(row)
    if existing is None:
        if missing := [name for name in row.kind.required if name not in values]:
            batch.refuse(place, row, f"'{missing[0]}' is missing, and a new "
                                     f"{row.kind.name[:-1]} needs it")
            return
        session.add(row.kind.model(**values))
        counts.created += 1
        return
    changed = {name: value for name, value in values.items() if getattr(existing, name) != value}
    for name, value in changed.items():
        setattr(existing, name, value)
    if changed:
        counts.updated += 1
    else:
        counts.unchanged += 1


# --- showing -----------------------------------------------------------------------------

# Symbols for the currencies a shop here is likely to price in; any other is shown by its
# code. Prices are whole units of the currency (as the agent UI's Intl.NumberFormat reads).
CURRENCY_SYMBOLS = {"JPY": "¥", "USD": "$", "EUR": "€", "GBP": "£", "CNY": "CN¥",
                    "KRW": "₩", "TWD": "NT$", "HKD": "HK$", "SGD": "S$", "THB": "฿"}


def price_label(price: int, currency: str) -> str:
    """``¥5,980``, ``$12``, ``CHF 40``: what the customer's product card shows."""
    code = (currency or "JPY").upper()
    symbol = CURRENCY_SYMBOLS.get(code)
    return f"{symbol}{price:,}" if symbol else f"{code} {price:,}"
