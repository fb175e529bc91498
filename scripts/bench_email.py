#!/usr/bin/env python
"""Benchmark: mail from SMTP clients into tickets, and the parse cost per message.

1. Parse cost: ``channels.email.parse.parse_message`` over a corpus of real and generated
   mail (the shared Japanese fixtures, CPython's ``test_email`` samples when installed, and
   generated ISO-2022-JP / Shift_JIS / UTF-8 multipart+HTML / quoted-reply mail); mean and
   p99 microseconds per message.
2. Throughput: a client process holding ``--connections`` stdlib ``smtplib`` connections
   sends ``--messages`` mails (closed loop: next mail once the previous got its 250).
   ``bare``  — an aiosmtpd server answering 250 at once and keeping nothing (the ceiling);
   ``omohub`` — the built-in SMTP server: parse, raw + attachments on disk, dedupe,
   identity, ticket, group commit — 250 only after the commit.
   Each mail is unique (own Message-ID), from one of ``--customers`` senders.

Prints one line per figure, the omohub/bare ratio, and a one-line JSON summary.

    .venv/bin/python scripts/bench_email.py            # ~1 minute
    .venv/bin/python scripts/bench_email.py --quick    # ~15 seconds
    .venv/bin/python scripts/bench_email.py --database-url postgresql+asyncpg://...
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import smtplib
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from email.header import Header
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import compat32
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiosmtpd.smtp import SMTP  # noqa: E402

from channels.email import EmailChannel  # noqa: E402
from channels.email.parse import _parsed_header, parse_message  # noqa: E402

SUPPORT = "support@example.com"
CRLF = compat32.clone(linesep="\r\n")
FIXTURES = ROOT.parent / "shared" / "fixtures" / "email"


# --- the corpus ------------------------------------------------------------------------


def _generated(number: int, sender: str) -> bytes:
    kind = number % 4
    subject = f"ご注文 No.{number} について【至急】"
    body = "いつもお世話になっております。\n商品がまだ届いておりません。\n確認をお願いします。\n"
    if kind == 0:
        message: Any = MIMEText("", "plain", "iso-2022-jp")  # Outlook-style: ①②③ in JIS
        message.set_payload("\x1b$B-!-\"-#\x1b(B\n\x1b$B$*4j$$$7$^$9\x1b(B\n")
    elif kind == 1:
        message = MIMEMultipart("alternative")
        message.attach(MIMEText(body, "plain", "utf-8"))
        message.attach(MIMEText(f"<html><body><p>{body}</p><blockquote>以前の文</blockquote>"
                                "</body></html>", "html", "utf-8"))
    elif kind == 2:
        message = MIMEMultipart()
        message.attach(MIMEText(body, "plain", "shift_jis"))
        photo = MIMEApplication(b"\x89PNG\r\n\x1a\n" + bytes(2048), "png")
        photo.add_header("Content-Disposition", "attachment",
                         filename=("utf-8", "", "写真.png"))
        message.attach(photo)
    else:
        quoted = "\n".join(f"> {line}" for line in body.split("\n"))
        header = f"2026年11月20日(金) 10:00 サポート <{SUPPORT}>:"
        reply = f"ありがとうございます。\n\n{header}\n{quoted}"
        message = MIMEText(reply, "plain", "utf-8")
    message["Subject"] = Header(subject, "iso-2022-jp")
    message["From"] = sender
    message["To"] = SUPPORT
    message["Message-ID"] = f"<bench-{number}-{os.getpid()}-{time.time_ns()}@example.jp>"
    return bytes(message.as_bytes(policy=CRLF))


def _samples() -> list[tuple[str, bytes]]:
    found = [(p.name, p.read_bytes()) for p in sorted(FIXTURES.glob("*.eml"))]
    try:
        import test

        data = Path(test.__file__).parent / "test_email" / "data"
        found += [(p.name, p.read_bytes()) for p in sorted(data.glob("msg_*.txt"))]
    except ImportError:
        pass
    return found


# --- parse cost --------------------------------------------------------------------------


def parse_cost(corpus: list[bytes], rounds: int) -> dict[str, float]:
    """Per-message parse time; the first, cold round (no header seen before) apart."""
    _parsed_header.cache_clear()
    start = time.perf_counter()
    for raw in corpus:
        parse_message(raw)
    cold = (time.perf_counter() - start) / len(corpus)
    timings: list[float] = []
    for _ in range(rounds):
        for raw in corpus:
            start = time.perf_counter()
            parse_message(raw)
            timings.append(time.perf_counter() - start)
    timings.sort()
    return {"parse_cold_us": cold * 1e6, "parse_mean_us": statistics.fmean(timings) * 1e6,
            "parse_p99_us": timings[int(len(timings) * 0.99) - 1] * 1e6,
            "parse_messages": len(corpus)}


# --- the client side (a separate process) -------------------------------------------------


def _client(port: int, mails: list[tuple[str, bytes]], results: list[int]) -> None:
    sent = 0
    with smtplib.SMTP("127.0.0.1", port, timeout=60, local_hostname="bench.local") as client:
        for sender, raw in mails:
            try:
                client.sendmail(sender, [SUPPORT], raw)
            except smtplib.SMTPResponseException as exc:
                print(f"refused: {exc.smtp_code} {exc.smtp_error!r}", file=sys.stderr)
                continue
            sent += 1
    results.append(sent)


def run_clients(port: int, mails: list[tuple[str, bytes]], connections: int) -> tuple[int, float]:
    shares = [mails[i::connections] for i in range(connections)]
    results: list[int] = []
    threads = [threading.Thread(target=_client, args=(port, share, results)) for share in shares]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(results), time.perf_counter() - start


def make_mails(count: int, customers: int, samples: list[tuple[str, bytes]]) -> list[
        tuple[str, bytes]]:
    mails = []
    for number in range(count):
        sender = f"customer{number % customers}@example.jp"
        if samples and number % 10 == 9:  # every tenth: a real sample with a fresh id
            raw = samples[number % len(samples)][1]
            raw = re.sub(rb"(?im)^message-id:[^\r\n]*\r?\n", b"", raw)
            raw = f"Message-ID: <sample-{number}-{time.time_ns()}@example.jp>\r\n".encode() + raw
            raw = re.sub(rb"\r?\n", b"\r\n", raw)  # SMTP wants CRLF; the samples are LF
        else:
            raw = _generated(number, sender)
        mails.append((sender, raw))
    return mails


# --- the servers ---------------------------------------------------------------------------


class _Bare:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 OK"


async def measure(port: int, mails: list[tuple[str, bytes]], connections: int) -> float:
    loop = asyncio.get_running_loop()
    with ProcessPoolExecutor(1) as pool:
        sent, elapsed = await loop.run_in_executor(pool, run_clients, port, mails, connections)
    assert sent == len(mails), (sent, len(mails))
    return sent / elapsed


async def bare_rate(mails: list[tuple[str, bytes]], connections: int) -> float:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(_Bare(), hostname="bench.local"),
                                      "127.0.0.1", 0)
    try:
        return await measure(server.sockets[0].getsockname()[1], mails, connections)
    finally:
        server.close()
        await server.wait_closed()


async def omohub_rate(mails: list[tuple[str, bytes]], connections: int,
                      database_url: str | None, workdir: Path) -> tuple[float, int]:
    from sqlalchemy import func, select

    from hub import db
    from hub.app import build_services, stop_services
    from hub.models import TimelineItem
    from hub.settings import Settings

    url = database_url or f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
    await db.migrate_async(url)
    settings = Settings(database_url=url, secret_key="bench-" + "k" * 40,
                        data_dir=str(workdir / "data"), smtp_listen="127.0.0.1:0",
                        support_address=SUPPORT)
    services = build_services(settings)
    channel = services.adapters["email"]
    assert isinstance(channel, EmailChannel)
    await channel.start()
    try:
        assert channel.smtp is not None
        rate = await measure(channel.smtp.port, mails, connections)
        async with services.sessions() as session:
            stored = (await session.execute(select(func.count()).select_from(
                TimelineItem).where(TimelineItem.channel == "email"))).scalar_one()
    finally:
        await stop_services(services)
    return rate, int(stored)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--parse-rounds", type=int, default=20)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.messages, args.parse_rounds = 300, 3
    samples = _samples()
    corpus = [raw for _, raw in samples] + [
        _generated(n, f"c{n}@example.jp") for n in range(40)]
    figures: dict[str, Any] = {"machine": f"{platform.machine()} {os.cpu_count()} cpu, "
                               f"Python {platform.python_version()}",
                               "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}
    figures.update(parse_cost(corpus, args.parse_rounds))
    print(f"parse, first pass: {figures['parse_cold_us']:.0f} µs/message over "
          f"{len(corpus)} messages", flush=True)
    print(f"parse, warm: {figures['parse_mean_us']:.0f} µs/message mean, "
          f"{figures['parse_p99_us']:.0f} µs p99", flush=True)
    bare = await bare_rate(make_mails(args.messages, args.customers, samples), args.connections)
    print(f"bare aiosmtpd (250 at once, nothing kept): {bare:.0f} msgs/s", flush=True)
    with tempfile.TemporaryDirectory(prefix="omohub-bench-email-") as workdir:
        full, stored = await omohub_rate(make_mails(args.messages, args.customers, samples),
                                         args.connections, args.database_url, Path(workdir))
    backend = "postgresql" if args.database_url else "sqlite"
    print(f"omohub SMTP → tickets ({backend}): {full:.0f} msgs/s, {stored} stored", flush=True)
    print(f"ratio omohub/bare: {full / bare:.2f}", flush=True)
    figures.update({"bare_msgs_per_s": round(bare, 1), "omohub_msgs_per_s": round(full, 1),
                    "ratio": round(full / bare, 3), "stored": stored,
                    "messages": args.messages, "connections": args.connections,
                    "backend": backend})
    print(json.dumps(figures, ensure_ascii=False))


if __name__ == "__main__":
    asyncio.run(main())
