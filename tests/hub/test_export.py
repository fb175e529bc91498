"""The VOC export: what customers said, for supervisors only, audited, Excel-safe."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from openpyxl import load_workbook
from sqlalchemy import select, update

from channels.base import Inbound
from hub import cli, export
from hub.identity import merge_customers
from hub.models import AuditEvent, Customer, TimelineItem
from tests.conftest import RunningHub

FORMULA = '=HYPERLINK("http://evil.example","click")'


async def _history(hub: RunningHub) -> int:
    """A web and a LINE customer; an agent reply, a note and a system item that are not VOC."""
    ingest = hub.services.ingestor.ingest
    web = await ingest(Inbound(channel="web", identity_kind="web", identity_value="v1",
                               text="電話は090-1234-5678、メールは taro@example.com です"))
    await ingest(Inbound(channel="web", identity_kind="web", identity_value="v1", text=FORMULA))
    await ingest(Inbound(channel="line", identity_kind="line", identity_value="U" + "1" * 32,
                         text="LINEから失礼します", display_name="山田 花子"))
    tickets = hub.services.tickets
    await tickets.reply(web.conversation.id, "お調べします", agent_id=None)  # type: ignore[arg-type]
    await tickets.reply(web.conversation.id, "内部メモ", agent_id=None,  # type: ignore[arg-type]
                        internal=True)
    async with hub.services.sessions() as session, session.begin():
        await session.execute(update(Customer).where(Customer.id == web.customer.id)
                              .values(display_name="佐藤 一郎"))
    return web.conversation.id  # type: ignore[return-value]


async def _get(hub: RunningHub, query: str, who: str = "lead") -> bytes:
    token = await (hub.login("lead@example.com", "lead-password") if who == "lead"
                   else hub.login())
    response = await hub.api("GET", f"/api/export/voc?{query}", token)
    assert response.status_code == 200, response.text
    assert "attachment" in response.headers["content-disposition"]
    return response.content


async def test_csv_has_a_bom_every_customer_message_and_nothing_else(hub: RunningHub) -> None:
    await _history(hub)
    lead = await hub.login("lead@example.com", "lead-password")
    response = await hub.api("GET", "/api/export/voc?format=csv", lead)
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    body = response.content
    assert body.startswith("\ufeff".encode())
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))
    assert [r["text"] for r in rows] == [
        "電話は090-1234-5678、メールは taro@example.com です", "'" + FORMULA, "LINEから失礼します"]
    assert [r["channel"] for r in rows] == ["web", "web", "line"]
    assert rows[0]["customer_name"] == "佐藤 一郎" and rows[2]["customer_name"] == "山田 花子"
    assert rows[0]["created_at"].endswith("Z") and rows[0]["status"] == "open"
    assert b"\r\n" in body  # Excel's line ends


async def test_masking_keeps_the_words_and_drops_the_person(hub: RunningHub) -> None:
    await _history(hub)
    body = await _get(hub, "format=jsonl&mask_pii=true")
    rows = [msgspec.json.decode(line) for line in body.splitlines()]
    assert body == await _get(hub, "format=jsonl&mask_pii=true&from=&to=&channel=")  # blanks
    assert rows[0]["text"] == "電話は[phone]、メールは [email] です"
    assert {r["customer_name"] for r in rows} == {f"#{r['customer_id']}" for r in rows}
    assert "山田" not in body.decode() and "佐藤" not in body.decode()


async def test_xlsx_opens_with_the_same_rows_and_text_stays_text(hub: RunningHub,
                                                                  tmp_path: Path) -> None:
    await _history(hub)
    path = tmp_path / "voc.xlsx"
    path.write_bytes(await _get(hub, "format=xlsx&channel=web"))
    sheet = load_workbook(path).active
    assert sheet is not None
    header, *rows = list(sheet.iter_rows(values_only=True))
    text = header.index("text")
    assert [row[text] for row in rows] == [
        "電話は090-1234-5678、メールは taro@example.com です", FORMULA]
    assert sheet.cell(row=3, column=text + 1).data_type == "s"  # not a formula
    # the local time is a date cell (filterable by day in Excel), equal to the CSV's text
    local = header.index("local_time")
    csv_rows = list(csv.DictReader(io.StringIO(
        (await _get(hub, "format=csv&channel=web")).decode("utf-8-sig"))))
    assert [row[local] for row in rows] == [
        datetime.strptime(r["local_time"], "%Y-%m-%d %H:%M:%S") for r in csv_rows]
    assert sheet.cell(row=2, column=local + 1).is_date


async def test_days_are_the_hubs_local_days(hub: RunningHub) -> None:
    await _history(hub)
    # 15:30 UTC on 1 March is 00:30 on 2 March in Tokyo (the default time zone)
    moment = datetime(2026, 3, 1, 15, 30, tzinfo=UTC)
    async with hub.services.sessions() as session, session.begin():
        first = (await session.execute(select(TimelineItem.id).order_by(TimelineItem.id)
                                       .limit(1))).scalar_one()
        await session.execute(update(TimelineItem).where(TimelineItem.id == first)
                              .values(created_at=moment))
    march_2 = await _get(hub, "format=jsonl&from=2026-03-02&to=2026-03-02")
    [row] = [msgspec.json.decode(line) for line in march_2.splitlines()]
    assert row["item_id"] == first and row["local_time"] == "2026-03-02 00:30:00"
    assert await _get(hub, "format=jsonl&from=2026-03-01&to=2026-03-01") == b""


async def test_only_supervisors_export_and_every_export_is_audited(hub: RunningHub) -> None:
    await _history(hub)
    agent = await hub.login()
    assert (await hub.api("GET", "/api/export/voc", agent)).status_code == 403
    assert (await hub.http.get("/api/export/voc")).status_code == 401
    lead = await hub.login("lead@example.com", "lead-password")
    for bad in ("format=pdf", "channel=fax", "from=2026-02-01&to=2026-01-01", "to=soon"):
        response = await hub.api("GET", f"/api/export/voc?{bad}", lead)
        assert response.status_code == 400 and "error" in response.json()
    await _get(hub, "format=csv&mask_pii=true")
    async with hub.services.sessions() as session:
        events = (await session.execute(select(AuditEvent).where(
            AuditEvent.action == "export.voc"))).scalars().all()
    assert len(events) == 1 and events[0].actor_id is not None
    assert events[0].data["mask_pii"] is True and events[0].data["format"] == "csv"


async def test_large_exports_stream_in_chunks(hub: RunningHub,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from hub import export

    monkeypatch.setattr(export, "CHUNK", 7)
    sizes: list[int] = []
    real_chunks = export.chunks

    async def counted(*args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        async for batch in real_chunks(*args, **kwargs):  # type: ignore[arg-type]
            sizes.append(len(batch))
            yield batch

    monkeypatch.setattr(export, "chunks", counted)
    ingest = hub.services.ingestor.ingest
    await asyncio.gather(*(ingest(Inbound(channel="web", identity_kind="web",
                                          identity_value=f"v{n % 5}", text=f"message {n}"))
                           for n in range(40)))
    rows = (await _get(hub, "format=jsonl")).splitlines()
    ids = [msgspec.json.decode(line)["item_id"] for line in rows]
    assert len(ids) == 40 and ids == sorted(set(ids))
    assert sizes == [7] * 5 + [5]


def test_cli_writes_the_file_with_progress(database_url: str, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("OMOHUB_DATABASE_URL", database_url)
    monkeypatch.setenv("OMOHUB_DATA_DIR", str(tmp_path / "data"))
    asyncio.run(_seed_two(database_url))
    out = tmp_path / "voc.csv"
    today = (datetime.now(UTC) + timedelta(hours=9)).date().isoformat()
    assert cli.main(["export", "voc", "--format", "csv", "--out", str(out), "--mask-pii",
                     "--from", today, "--to", today]) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text("utf-8-sig"))))
    assert [r["text"] for r in rows] == ["[email] に返信ください", "two"]
    captured = capsys.readouterr()
    assert "2/2" in captured.err and "exported 2 rows" in captured.out
    assert cli.main(["export", "voc", "--format", "csv", "--out", str(out),
                     "--from", "2026-02-01", "--to", "2026-01-01"]) == 2


async def _seed_two(url: str) -> None:
    from hub.app import build_services, stop_services
    from hub.settings import Settings

    services = build_services(Settings(database_url=url, secret_key="s" * 40))
    for n, text in enumerate(["hanako@example.jp に返信ください", "two"]):
        await services.ingestor.ingest(Inbound(channel="web", identity_kind="web",
                                               identity_value=f"cli{n}", text=text))
    await stop_services(services)


# --- what each customer's record knows of them is masked in their text (D2) ------------

async def test_masking_knows_each_customers_own_names_and_addresses(hub: RunningHub) -> None:
    ingest = hub.services.ingestor.ingest
    line = await ingest(Inbound(
        channel="line", identity_kind="line", identity_value="U" + "2" * 32,
        display_name="山田 花子",
        text="山田花子です。住所は東京都渋谷区渋谷2-21-1、電話は (415) 555-2671 です"))
    web = await ingest(Inbound(channel="web", identity_kind="web", identity_value="v-js",
                               text="This is John Smith, 1600 Amphitheatre Parkway, "
                                    "Mountain View, CA 94043. Tell 山田花子 hi"))
    mail = await ingest(Inbound(channel="email", identity_kind="email",
                                identity_value="ichiro@example.jp", display_name="佐藤 一郎",
                                text="佐藤です"))
    async with hub.services.sessions() as session, session.begin():
        await session.execute(update(Customer).where(Customer.id == web.customer.id)
                              .values(display_name="John Smith"))
        await merge_customers(session, line.customer.id, mail.customer.id, actor_id=None)
    rows = [msgspec.json.decode(line) for line in
            (await _get(hub, "format=jsonl&mask_pii=true")).splitlines()]
    assert [r["text"] for r in rows] == [
        "[name]です。住所は[address]、電話は [phone] です",
        "This is [name], [address]. Tell 山田花子 hi",  # another customer's name: not theirs
        "[name]です",  # the name of a customer merged into them is theirs too
    ]


# --- only an export that was written is audited; a bad path is a clear error (D11) -----

async def _export_audits(services: Any) -> list[AuditEvent]:
    async with services.sessions() as session:
        return list((await session.execute(select(AuditEvent).where(
            AuditEvent.action == "export.voc"))).scalars())


async def test_an_export_that_could_not_be_written_is_not_audited(services: Any,
                                                                   tmp_path: Path) -> None:
    await services.ingestor.ingest(Inbound(channel="web", identity_kind="web",
                                           identity_value="v1", text="hello"))
    query = export.VocQuery(mask_pii=True)
    with pytest.raises(export.ExportFileError, match=r"cannot write .*voc\.csv"):
        await export.export_to_file(services.sessions, query, "csv",
                                    tmp_path / "missing" / "voc.csv")
    assert await _export_audits(services) == []

    out = tmp_path / "voc.csv"
    assert await export.export_to_file(services.sessions, query, "csv", out) == 1
    [event] = await _export_audits(services)
    assert event.data["rows"] == 1 and event.data["out"] == str(out)
    assert event.actor_type == "cli" and event.data["mask_pii"] is True


async def test_a_write_that_fails_halfway_leaves_no_half_file(services: Any, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    await services.ingestor.ingest(Inbound(channel="web", identity_kind="web",
                                           identity_value="v1", text="hello"))

    def disk_full(*_: object) -> bytes:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(export, "_encode", disk_full)
    out = tmp_path / "voc.jsonl"
    with pytest.raises(export.ExportFileError, match="No space left on device"):
        await export.export_to_file(services.sessions, export.VocQuery(), "jsonl", out)
    assert not out.exists() and await _export_audits(services) == []


def _cli_env(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMOHUB_DATABASE_URL", database_url)
    monkeypatch.setenv("OMOHUB_DATA_DIR", str(tmp_path / "data"))


def test_cli_bad_out_path_is_a_one_line_error(database_url: str, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    _cli_env(database_url, tmp_path, monkeypatch)
    bad = tmp_path / "no-such-folder" / "voc.csv"
    assert cli.main(["export", "voc", "--format", "csv", "--out", str(bad)]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert error[-1] == f"error: cannot write {bad}: No such file or directory"
    assert not any("Traceback" in line for line in error)


def test_cli_audits_only_an_export_it_wrote(database_url: str, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    _cli_env(database_url, tmp_path, monkeypatch)
    bad = tmp_path / "no-such-folder" / "voc.csv"
    assert cli.main(["export", "voc", "--format", "csv", "--out", str(bad)]) == 2
    assert asyncio.run(_audited_exports(database_url)) == 0


async def _audited_exports(url: str) -> int:
    from hub import db

    engine = db.create_engine(url)
    try:
        async with db.session_factory(engine)() as session:
            return len((await session.execute(select(AuditEvent).where(
                AuditEvent.action == "export.voc"))).all())
    finally:
        await engine.dispose()
