#!/usr/bin/env python
"""Benchmark: signed Twilio webhooks through omohub's phone/SMS channel, against a baseline.

Two servers, each in its own subprocess on a fresh temporary SQLite database, served by
uvicorn and driven by the same httpx client:

* ``bare`` — a Litestar app whose one route checks ``X-Twilio-Signature`` with twilio's
  ``RequestValidator`` and commits one INSERT of the form (async SQLAlchemy + aiosqlite),
  then answers an empty ``<Response/>``. The least a correct webhook can do (one
  transaction per webhook, on the hub's engine settings: WAL, busy_timeout).
* ``hub``  — omohub (``hub.app.create_app``): signature, parsing, E.164 normalisation,
  dedupe, identity → customer → ticket, group commit, events; status callbacks go through
  ``hub.calls.update_call`` (sequence order, once per CallSid + status).

Figures (closed loop, ``--concurrency`` requests in flight):

1. inbound SMS webhooks/s and p50/p99 latency, hub vs bare;
2. call status callbacks/s (three per call, on call items created first), hub vs bare.

Prints one line per figure and ends with a one-line JSON summary.

    .venv/bin/python scripts/bench_phone.py            # about a minute
    .venv/bin/python scripts/bench_phone.py --quick    # a few seconds
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from litestar import Litestar, Request, Response, post
from twilio.request_validator import RequestValidator

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from hub.db import create_engine

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT = "AC" + "b" * 32
TOKEN = "bench-twilio-token"
PUBLIC = "https://bench.example.com"
SUPPORT = "+81312345678"


# --------------------------------------------------------------------------- servers


def bare_app(database_url: str) -> Any:
    """Signature check + one INSERT per webhook: the baseline."""
    engine = create_engine(database_url)  # the hub's engine: same WAL + busy_timeout pragmas
    table = sa.Table("hooks", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("sid", sa.String(64)), sa.Column("form", sa.JSON))
    validator = RequestValidator(TOKEN)

    @post("/webhooks/twilio/{name:str}", status_code=200)
    async def hook(name: str, request: Request[Any, Any, Any]) -> Response[str]:
        form = await request.form()
        url = PUBLIC + request.url.path
        if not validator.validate(url, form, request.headers.get("x-twilio-signature", "")):
            return Response("forbidden", status_code=403)
        fields = dict(form.items())
        async with engine.begin() as connection:
            await connection.execute(table.insert().values(
                sid=fields.get("MessageSid") or fields.get("CallSid"), form=fields))
        return Response("<Response/>", media_type="text/xml")

    async def create_table() -> None:
        async with engine.begin() as connection:
            await connection.run_sync(table.metadata.create_all)

    return Litestar([hook], on_startup=[create_table])


def hub_app(database_url: str, data_dir: str) -> Any:
    from hub import db
    from hub.app import create_app
    from hub.settings import Settings

    db.migrate(database_url)
    return create_app(Settings(
        database_url=database_url, secret_key="bench-" + "k" * 40, data_dir=data_dir,
        public_url=PUBLIC, twilio_account_sid=ACCOUNT, twilio_auth_token=TOKEN,
        twilio_phone_number=SUPPORT, twilio_api_base="http://127.0.0.1:9", bot_enabled=False))


def serve(mode: str, port: int, directory: str) -> None:
    import uvicorn

    sys.path.insert(0, str(ROOT))
    database_url = f"sqlite+aiosqlite:///{directory}/{mode}.db"
    app = bare_app(database_url) if mode == "bare" else hub_app(database_url, directory)
    from hub.process import SERVER_OPTIONS

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on",
                **SERVER_OPTIONS)


# --------------------------------------------------------------------------- client


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    def __init__(self, mode: str, directory: str) -> None:
        self.mode = mode
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve", mode, str(self.port), directory],
            cwd=ROOT)
        self.url = f"http://127.0.0.1:{self.port}"

    async def ready(self, http: httpx.AsyncClient) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                await http.post(f"{self.url}/webhooks/twilio/sms", data={})
                return
            except httpx.TransportError:
                await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.mode} server did not start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def signed(path: str, form: dict[str, str]) -> dict[str, str]:
    return {"X-Twilio-Signature": RequestValidator(TOKEN).compute_signature(PUBLIC + path,
                                                                            form)}


def sms_form(i: int) -> dict[str, str]:
    return {"AccountSid": ACCOUNT, "MessageSid": f"SM{i:032d}", "From": f"+8190{i % 500:08d}",
            "To": SUPPORT, "Body": f"荷物はいつ届きますか {i}", "NumMedia": "0"}


def status_form(call: int, status: str, sequence: int) -> dict[str, str]:
    return {"AccountSid": ACCOUNT, "CallSid": f"CA{call:032d}", "CallStatus": status,
            "SequenceNumber": str(sequence), "From": f"+8180{call % 500:08d}", "To": SUPPORT,
            "Direction": "inbound", "CallDuration": "30"}


async def run_load(http: httpx.AsyncClient, base: str,
                   requests: list[tuple[str, dict[str, str]]],
                   concurrency: int) -> tuple[float, list[float]]:
    """Closed loop: ``concurrency`` workers post the requests in order; (req/s, latencies)."""
    queue: asyncio.Queue[tuple[str, dict[str, str]]] = asyncio.Queue()
    for request in requests:
        queue.put_nowait(request)
    latencies: list[float] = []

    async def worker() -> None:
        while not queue.empty():
            path, form = queue.get_nowait()
            started = time.perf_counter()
            response = await http.post(base + path, data=form, headers=signed(path, form))
            latencies.append(time.perf_counter() - started)
            if response.status_code != 200:
                raise RuntimeError(f"{path}: {response.status_code} {response.text[:200]}")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return len(requests) / (time.perf_counter() - started), latencies


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000 if len(
        values) > 1 else values[0] * 1000


async def measure(mode: str, directory: str, n: int, concurrency: int) -> dict[str, float]:
    server = Server(mode, directory)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    try:
        async with httpx.AsyncClient(timeout=30, limits=limits) as http:
            await server.ready(http)
            warmup = [("/webhooks/twilio/sms", sms_form(10**6 + i)) for i in range(20)]
            await run_load(http, server.url, warmup, concurrency)
            sms = [("/webhooks/twilio/sms", sms_form(i)) for i in range(n)]
            sms_rate, sms_lat = await run_load(http, server.url, sms, concurrency)
            calls = n // 3
            created = [("/webhooks/twilio/status", status_form(c, "completed", 3))
                       for c in range(calls)]
            await run_load(http, server.url, created, concurrency)
            updates = [("/webhooks/twilio/status", status_form(c, status, seq))
                       for c in range(calls)
                       for status, seq in (("ringing", 0), ("in-progress", 2), ("completed", 3))]
            status_rate, status_lat = await run_load(http, server.url, updates, concurrency)
    finally:
        server.stop()
    return {"sms_per_s": sms_rate, "sms_p50_ms": percentile(sms_lat, 50),
            "sms_p99_ms": percentile(sms_lat, 99), "status_per_s": status_rate,
            "status_p50_ms": percentile(status_lat, 50),
            "status_p99_ms": percentile(status_lat, 99)}


async def main(args: argparse.Namespace) -> None:
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-phone-") as directory:
        for mode in ("bare", "hub"):
            results[mode] = await measure(mode, directory, args.n, args.concurrency)
            for name, value in results[mode].items():
                print(f"{mode:5} {name:14} {value:10.1f}")
    ratios = {f"hub_over_bare_{k}": results["hub"][k] / results["bare"][k]
              for k in ("sms_per_s", "status_per_s")}
    for name, value in ratios.items():
        print(f"ratio {name:27} {value:6.2f}")
    print(json.dumps({"date": datetime.now(UTC).isoformat(timespec="seconds"),
                      "machine": f"{platform.machine()} {os.cpu_count()} cpu "
                                 f"{platform.python_version()}",
                      "n": args.n, "concurrency": args.concurrency, **results, **ratios}))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve(sys.argv[2], int(sys.argv[3]), sys.argv[4])
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="SMS webhooks per server")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--quick", action="store_true", help="--n 300")
    parsed = parser.parse_args()
    if parsed.quick:
        parsed.n = 300
    asyncio.run(main(parsed))
