#!/usr/bin/env python
"""Benchmark: signed LINE webhooks through omohub against a bare Litestar endpoint.

Two servers, each in its own subprocess, served the same way (uvicorn, one process):

* ``bare`` — a Litestar app whose ``POST /webhooks/line`` reads the body and answers 200: no
  signature check, no parsing, no storage. The framework's ceiling on this machine.
* ``hub``  — omohub itself (``hub.app.create_app``, LINE on, bot off, a fresh SQLite file):
  verify the signature with line-bot-sdk, parse, dedupe on webhookEventId, resolve the
  LINE user to a customer and ticket, group-commit, answer 200 after the commit.

One client process drives both with the same load: ``--connections`` keep-alive HTTP/1.1
connections in a closed loop (each sends its next webhook when the previous is answered),
over pre-signed bodies with unique webhookEventIds from a pool of ``--users`` LINE users
(each user is seen once during warm-up, so the measured window is steady state). Both
one-event bodies and 10-event batches are measured; rounds alternate servers so drift in
the machine's load hits both alike.

Prints one line per figure and the ratio, then a one-line JSON summary.

    .venv/bin/python scripts/bench_line.py            # about 1.5 minutes
    .venv/bin/python scripts/bench_line.py --quick    # about 30 seconds
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-channel-secret"
TARGET_RATIO = 0.4


# --- servers (run in subprocesses) ---------------------------------------------------

def bare_app() -> Any:
    from litestar import Litestar, Request, get, post

    @post("/webhooks/line", status_code=200)
    async def webhook(request: Request[Any, Any, Any]) -> dict[str, Any]:
        await request.body()
        return {"ok": True}

    @get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return Litestar([webhook, healthz])


def hub_app(workdir: str) -> Any:
    from hub.app import create_app
    from hub.settings import Settings

    settings = Settings(database_url=f"sqlite+aiosqlite:///{workdir}/omohub.db",
                        secret_key="bench-" + "x" * 40, data_dir=f"{workdir}/data",
                        line_channel_secret=SECRET, line_channel_access_token="bench",
                        # profiles of new users are fetched after the answer; nothing listens
                        line_api_base="http://127.0.0.1:9", line_data_api_base="http://127.0.0.1:9",
                        bot_enabled=False)
    return create_app(settings)


def serve(mode: str, port: int, workdir: str) -> None:
    import logging

    import uvicorn

    logging.basicConfig(level=logging.ERROR)
    app = bare_app() if mode == "bare" else hub_app(workdir)
    from hub.process import SERVER_OPTIONS, tune_for_serving

    tune_for_serving()  # what `omohub serve` does, for both servers alike
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="error", access_log=False,
                lifespan="on", **SERVER_OPTIONS)


# --- load ----------------------------------------------------------------------------

def sign(body: bytes) -> str:
    return base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()


def request_bytes(events: list[dict[str, Any]]) -> bytes:
    body = json.dumps({"destination": "U" + "0" * 32, "events": events},
                      ensure_ascii=False).encode()
    head = (f"POST /webhooks/line HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/json; charset=utf-8\r\n"
            f"X-Line-Signature: {sign(body)}\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


class Bodies:
    """Unique, signed webhook requests; ``per_request`` events each."""

    def __init__(self, users: int, per_request: int, seed: int) -> None:
        self.users = [f"U{n:032x}" for n in range(1, users + 1)]
        self.per_request = per_request
        self.serial = seed * 10**9
        self.random = random.Random(seed)

    def event(self, user: str) -> dict[str, Any]:
        self.serial += 1
        return {"type": "message", "mode": "active", "timestamp": int(time.time() * 1000),
                "source": {"type": "user", "userId": user},
                "webhookEventId": f"01BENCH{self.serial:019d}",
                "deliveryContext": {"isRedelivery": False},
                "replyToken": f"rt{self.serial}",
                "message": {"id": str(self.serial), "type": "text", "quoteToken": "q",
                            "text": "注文した商品がまだ届きません。確認をお願いします。"}}

    def batch(self, count: int) -> list[bytes]:
        out = []
        for _ in range(count):
            users = self.random.sample(self.users, self.per_request)
            out.append(request_bytes([self.event(u) for u in users]))
        return out

    def warmup(self) -> list[bytes]:
        """Every user once, so customers and tickets exist before measuring."""
        chunks = [self.users[i:i + self.per_request]
                  for i in range(0, len(self.users), self.per_request)]
        return [request_bytes([self.event(u) for u in chunk]) for chunk in chunks]


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    request: bytes) -> int:
    writer.write(request)
    status = int((await reader.readline()).split()[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    await reader.readexactly(length)
    return status


async def _connection(port: int, requests: list[bytes], cursor: list[int], stop: float,
                      latencies: list[float], errors: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < stop and cursor[0] < len(requests):
            request = requests[cursor[0]]
            cursor[0] += 1
            started = time.perf_counter()
            status = await _exchange(reader, writer, request)
            latencies.append(time.perf_counter() - started)
            if status != 200:
                errors.append(status)
    finally:
        writer.close()


async def drive(port: int, requests: list[bytes], connections: int,
                seconds: float) -> dict[str, Any]:
    cursor, latencies, errors = [0], [], []
    cpu0, started = time.process_time(), time.perf_counter()
    await asyncio.gather(*(_connection(port, requests, cursor, started + seconds, latencies,
                                       errors) for _ in range(connections)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {"requests": len(latencies), "rps": len(latencies) / elapsed,
            "p50_ms": 1000 * latencies[len(latencies) // 2] if latencies else None,
            "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)] if latencies else None,
            "errors": len(errors), "client_cpu": (time.process_time() - cpu0) / elapsed,
            "exhausted": cursor[0] >= len(requests)}


# --- orchestration -------------------------------------------------------------------

class Server:
    def __init__(self, mode: str, port: int) -> None:
        self.mode, self.port = mode, port
        self.workdir = tempfile.mkdtemp(prefix=f"bench-line-{mode}-")
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve", mode, "--port", str(port),
             "--workdir", self.workdir], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"{mode} server did not start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(server: Server, bodies: Bodies, args: argparse.Namespace,
            expected_rps: float) -> dict[str, Any]:
    requests = bodies.batch(int(expected_rps * args.seconds * 1.5) + 2000)
    cpu = process_cpu(server.process.pid)
    figure = asyncio.run(drive(server.port, requests, args.connections, args.seconds))
    used = process_cpu(server.process.pid) - cpu
    figure["per_cpu_s"] = figure["requests"] / used if used else None
    return figure


def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, list[dict[str, Any]]] = {}
    servers = {mode: Server(mode, free_port()) for mode in ("bare", "hub")}
    try:
        for per_request in (1, 10):
            bodies = {mode: Bodies(args.users, per_request, seed=per_request * 7 + i)
                      for i, mode in enumerate(servers)}
            for mode, server in servers.items():  # warm-up: every user once, JITs, pools
                asyncio.run(drive(server.port, bodies[mode].warmup(), args.connections, 60))
            for _ in range(args.rounds):
                for mode, server in servers.items():
                    guess = 12000 / per_request if mode == "bare" else 4000 / per_request
                    figure = measure(server, bodies[mode], args, guess)
                    results.setdefault(f"{mode}:{per_request}", []).append(figure)
                    print(f"  {mode:4} x{per_request:<2} {figure['rps']:8.0f} req/s "
                          f"p99 {figure['p99_ms']:.1f} ms  {figure['per_cpu_s']:6.0f} req per "
                          f"server CPU-s  errors {figure['errors']}  "
                          f"client cpu {figure['client_cpu']:.0%}", flush=True)
    finally:
        for server in servers.values():
            server.stop()
    return report(results, args)


def report(results: dict[str, list[dict[str, Any]]], args: argparse.Namespace) -> dict[str, Any]:
    summary: dict[str, Any] = {"machine": f"{platform.node()} {os.cpu_count()} cpu "
                               f"{platform.python_version()}",
                               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                               "connections": args.connections, "seconds": args.seconds,
                               "rounds": args.rounds, "load_avg": os.getloadavg()[0]}
    for key, runs in results.items():
        mode, per_request = key.split(":")
        rps = statistics.median(r["rps"] for r in runs)
        p99 = statistics.median(r["p99_ms"] for r in runs)
        summary[f"{mode}_x{per_request}_rps"] = round(rps)
        summary[f"{mode}_x{per_request}_events_per_s"] = round(rps * int(per_request))
        per_cpu = statistics.median(r["per_cpu_s"] or 0 for r in runs)
        summary[f"{mode}_x{per_request}_p99_ms"] = round(p99, 1)
        summary[f"{mode}_x{per_request}_per_cpu_s"] = round(per_cpu)
        print(f"{mode} {per_request}-event webhooks: {rps:.0f} requests/s, "
              f"{rps * int(per_request):.0f} events/s, p99 {p99:.1f} ms, "
              f"{per_cpu:.0f} requests per server CPU-second")
    for per_request in (1, 10):
        hub, bare = summary.get(f"hub_x{per_request}_rps"), summary.get(
            f"bare_x{per_request}_rps")
        if hub and bare:
            ratio = hub / bare
            summary[f"ratio_x{per_request}"] = round(ratio, 3)
            cpu_ratio = (summary[f"hub_x{per_request}_per_cpu_s"]
                         / max(summary[f"bare_x{per_request}_per_cpu_s"], 1))
            summary[f"cpu_ratio_x{per_request}"] = round(cpu_ratio, 3)
            print(f"ratio hub/bare ({per_request}-event): {ratio:.2f}x requests/s, "
                  f"{cpu_ratio:.2f}x per server CPU-second "
                  f"(target >= {TARGET_RATIO}x requests/s for 1-event)")
    print(json.dumps(summary, ensure_ascii=False))
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", choices=["bare", "hub"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--workdir", default="")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve, args.port, args.workdir)
        return 0
    if args.quick:
        args.seconds, args.rounds, args.users = 3.0, 1, 200
    summary = run(args)
    return 0 if summary.get("ratio_x1", 0) >= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
