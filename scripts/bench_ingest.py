#!/usr/bin/env python
"""Benchmark: web-chat messages through omohub's full ingest path, against two baselines.

Three servers, each in its own subprocess on a fresh temporary SQLite database, all served
by the same stack (uvicorn + python-socketio ASGI) and driven by the same client:

* ``echo``  — a bare python-socketio server: ``/webchat`` ``message`` is acknowledged and
  forwarded to every ``/agent`` socket. No database. The transport's ceiling.
* ``naive`` — the same, but each message is first committed as one INSERT in its own
  transaction through the same async SQLAlchemy + aiosqlite stack (the naive design).
* ``full``  — omohub itself (``hub.app.create_app``): dedupe on (channel, external_id),
  identity → customer, ticket attach/open, group commit, then ``message.created`` to agents;
  the bot is off, so this is ingest alone (``--modes bot`` measures it with the bot on).

For each server the customer load comes from ``--clients`` processes holding ``--sockets``
python-socketio ``AsyncClient`` connections on ``/webchat`` in total (one visitor each); a
separate process holds the ``/agent`` socket where every message is counted and timed.

1. Throughput: closed loop, every visitor socket sends its next message as soon as the
   previous one is acknowledged; msgs/s = messages that reached the agent socket per second.
2. Latency: open loop at a fixed offered rate (``--rate``, default 500 msgs/s) spread over
   all visitor sockets, sends on a fixed schedule whatever the answers; p50/p99 of the
   time from the customer's emit to the agent socket's receipt (one machine, one clock:
   CLOCK_MONOTONIC is system-wide on Linux).

Server CPU time is read from /proc over each measured window, so every run also reports
msgs per server CPU-second, which does not depend on how busy the rest of the machine is.
A full run repeats every mode ``--repeat`` (3) times in rotated order and reports medians.
Every server gets the process settings ``omohub serve`` applies (``hub.process``); set
``BENCH_TUNE=0`` to run all three without them.

Prints one line per figure and ends with a one-line JSON summary; progress goes to stderr.
Results and method: docs/benchmarks.md.

    .venv/bin/python scripts/bench_ingest.py                # ~5 minutes
    .venv/bin/python scripts/bench_ingest.py --quick        # one round, ~20-30 seconds
    .venv/bin/python scripts/bench_ingest.py --nice -10     # on a shared machine (as root)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing as mp
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
AGENT_EMAIL = "bench-agent@example.com"
AGENT_PASSWORD = "bench-agent-password"
MODES = ("echo", "naive", "full", "bot")  # "bot": the full path with the KB bot answering too
DEFAULT_MODES = ("echo", "naive", "full")
TARGETS = {"full_over_echo": 0.4, "full_over_naive": 2.0, "p99_ms": 50.0}


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- servers


def _fallback_app() -> Any:
    """The HTTP side of the bare servers: just /healthz."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        ok = scope["type"] == "http" and scope["path"] == "/healthz"
        body = b'{"status": "ok"}' if ok else b"{}"
        await send({"type": "http.response.start", "status": 200 if ok else 404,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})

    return app


def _item_payload(item_id: int | None, data: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The shape omohub sends to agents (hub.serialize.item_json + conversation_id), so the
    baselines put the same bytes on the wire."""
    return {"id": item_id, "conversation_id": None, "type": "message", "channel": "web",
            "direction": "inbound", "sender_type": "customer", "agent_id": None,
            "text": data["text"], "attachments": [], "data": {}, "internal": False,
            "delivery_status": "received", "error": None,
            "created_at": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}


def build_bare_app(mode: str, database_url: str) -> Any:
    """The echo or naive server: same socket server settings as omohub (hub.realtime)."""
    import socketio

    from hub import realtime

    sio = realtime.create_server(None)
    insert_row: Any = None
    if mode == "naive":
        insert_row = _naive_store(database_url)
    counter = 0

    class Visitor(socketio.AsyncNamespace):
        async def on_connect(self, sid: str, environ: Any, auth: Any = None) -> None:
            await self.save_session(sid, {"visitor_id": f"v{sid}"})

        async def on_message(self, sid: str, data: Any) -> dict[str, Any]:
            nonlocal counter
            if not isinstance(data, dict) or not isinstance(data.get("text"), str):
                return {"ok": False, "error": {"code": "bad_payload"}}
            now = datetime.now(UTC)
            if insert_row is not None:
                session = await self.get_session(sid)
                item_id = await insert_row(session["visitor_id"], data, now)
            else:
                counter += 1
                item_id = counter
            await sio.emit("message.created", _item_payload(item_id, data, now),
                           room="agents", namespace="/agent")
            return {"ok": True, "id": item_id, "conversation_id": None,
                    "created_at": now.isoformat(), "duplicate": False}

    class Agent(socketio.AsyncNamespace):
        async def on_connect(self, sid: str, environ: Any, auth: Any = None) -> None:
            await self.enter_room(sid, "agents")

    sio.register_namespace(Visitor("/webchat"))
    sio.register_namespace(Agent("/agent"))
    return socketio.ASGIApp(sio, other_asgi_app=_fallback_app(), socketio_path="socket.io")


def _naive_store(database_url: str) -> Any:
    """One transaction per message: open a session, INSERT one row, COMMIT."""
    import sqlalchemy as sa

    from hub import db

    metadata = sa.MetaData()
    table = sa.Table(
        "messages", metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("external_id", sa.String(255)),
        sa.Column("visitor", sa.String(64), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("channel", "external_id"),
    )
    sync_url = database_url.replace("+aiosqlite", "")
    engine = sa.create_engine(sync_url)
    metadata.create_all(engine)
    engine.dispose()
    async_engine = db.create_engine(database_url)
    sessions = db.session_factory(async_engine)

    async def insert_row(visitor: str, data: dict[str, Any], now: datetime) -> int:
        client_id = data.get("client_id")
        async with sessions() as session:
            result = await session.execute(table.insert().values(
                channel="web", external_id=f"{visitor}:{client_id}" if client_id else None,
                visitor=visitor, text=data["text"], created_at=now))
            await session.commit()
            return int(result.inserted_primary_key[0])

    return insert_row


def serve(mode: str, port: int, workdir: str) -> None:
    """Run one server in this process (called in a subprocess by the orchestrator)."""
    sys.path.insert(0, str(ROOT))
    import uvicorn

    database_url = f"sqlite+aiosqlite:///{workdir}/omohub.db"
    if mode in {"full", "bot"}:
        from hub import db
        from hub.app import create_app
        from hub.demo import create_agent
        from hub.settings import load_settings

        # The ingest path alone; the bot (a subscriber that answers every customer message
        # with a knowledge-base lookup and a reply) is measured separately as mode "bot".
        os.environ.update(OMOHUB_DATABASE_URL=database_url, OMOHUB_DATA_DIR=workdir,
                          OMOHUB_BOT_ENABLED="1" if mode == "bot" else "0")
        settings = load_settings()
        db.migrate(database_url)
        asyncio.run(create_agent(settings, AGENT_EMAIL, AGENT_PASSWORD, "Bench"))
        app = create_app(settings)
    else:
        app = build_bare_app(mode, database_url)
    from hub.process import SERVER_OPTIONS, tune_for_serving

    if os.environ.get("BENCH_TUNE", "1") == "1":
        tune_for_serving()  # what `omohub serve` does, for every mode alike
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on",
                access_log=False, **SERVER_OPTIONS)


@dataclass
class Server:
    mode: str
    port: int
    workdir: str
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu_seconds(self) -> float:
        """utime + stime of the server process, from /proc."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return float("nan")
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def launch_server(mode: str) -> Server:
    workdir = tempfile.mkdtemp(prefix=f"omohub-bench-{mode}-")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--serve", mode, "--port", str(port),
         "--workdir", workdir],
        cwd=str(ROOT), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return Server(mode, port, workdir, process)


def wait_ready(server: Server, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.mode} server exited:\n"
                               f"{server.process.stderr.read().decode()}")  # type: ignore[union-attr]
        try:
            with urllib.request.urlopen(f"{server.url}/healthz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{server.mode} server did not answer /healthz within {timeout:g} s")


def start_profiler(server: Server, directory: str | None,
                   seconds: float) -> subprocess.Popen[bytes] | None:
    """py-spy (if installed) samples the server during the measured window."""
    if not directory:
        return None
    py_spy = Path(sys.executable).parent / "py-spy"
    if not py_spy.exists():
        found = shutil.which("py-spy")
        if found is None:
            log("--profile: py-spy is not installed (.venv/bin/pip install py-spy); skipped")
            return None
        py_spy = Path(found)
    out = Path(directory) / f"{server.mode}.collapsed.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    log(f"{server.mode}: py-spy → {out}")
    command = [str(py_spy), "record", "--pid", str(server.process.pid), "--format", "raw",
               "--duration", str(max(1, int(seconds))), "--rate", "200", "--gil",
               "--output", str(out), "--nonblocking"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def agent_token(server: Server) -> str:
    if server.mode not in {"full", "bot"}:
        return "bench"
    request = urllib.request.Request(
        f"{server.url}/api/auth/login",
        data=json.dumps({"email": AGENT_EMAIL, "password": AGENT_PASSWORD}).encode(),
        headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(json.load(response)["token"])


# --------------------------------------------------------------------------- clients


def client_worker(conn: Any, role: str, index: int) -> None:
    """A client process: ``role`` is ``visitors`` (customer sockets) or ``agent``."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(_client_main(conn, role, index))


async def _client_main(conn: Any, role: str, index: int) -> None:
    import socketio

    loop = asyncio.get_running_loop()
    clients: list[socketio.AsyncClient] = []
    received: list[tuple[int, int]] = []  # (receive ns, send ns) at the agent

    def on_created(payload: dict[str, Any]) -> None:
        now = time.monotonic_ns()
        parts = str(payload.get("text", "")).split(" ", 2)
        if len(parts) > 1 and parts[0] == "bench":
            received.append((now, int(parts[1])))

    async def connect(url: str, namespace: str, auth: dict[str, Any]) -> socketio.AsyncClient:
        client = socketio.AsyncClient(reconnection=False)
        if role == "agent":
            client.on("message.created", on_created, namespace="/agent")
        await client.connect(url, namespaces=[namespace], transports=["websocket"],
                             auth=auth, wait_timeout=30)
        return client

    async def disconnect() -> None:
        for client in clients:
            with contextlib.suppress(Exception):
                await client.disconnect()
        clients.clear()
        received.clear()

    conn.send(("ready", None))
    try:
        while True:
            command = await loop.run_in_executor(None, conn.recv)
            cpu0 = time.process_time()
            _PHASE[0] += 1
            if command[0] == "stop":
                break
            if command[0] == "connect":
                url, token, n_sockets = command[1:]
                if role == "agent":
                    clients.append(await connect(url, "/agent", {"token": token}))
                else:
                    for start in range(0, n_sockets, 25):
                        batch = range(start, min(start + 25, n_sockets))
                        clients.extend(await asyncio.gather(
                            *(connect(url, "/webchat", {}) for _ in batch)))
                result: dict[str, Any] = {"connected": len(clients)}
            elif command[0] == "disconnect":
                await disconnect()
                result = {}
            elif command[0] == "closed":
                result = await _closed_loop(clients, index, *command[1:])
            elif command[0] == "open":
                result = await _open_loop(clients, index, *command[1:])
            elif command[0] == "collect":
                since, until = command[1], command[2]
                result = {"received": [r for r in received if since <= r[0] < until]}
                received.clear()
            else:
                raise ValueError(command)
            result["cpu_s"] = time.process_time() - cpu0
            conn.send(("result", result))
    finally:
        await disconnect()
        conn.close()


async def _sleep_until(moment_ns: int) -> None:
    delay = (moment_ns - time.monotonic_ns()) / 1e9
    if delay > 0:
        await asyncio.sleep(delay)


_PHASE = [0]


def _message(index: int, sock: int, seq: int) -> dict[str, Any]:
    """A new message; the client_id (the idempotency key) is unique per run and phase."""
    client_id = f"p{_PHASE[0]}-{index}-{sock}-{seq}"
    return {"text": f"bench {time.monotonic_ns()} {client_id} hello, is anyone there?",
            "client_id": client_id}


async def _closed_loop(clients: list[Any], index: int, start_ns: int, measure_ns: int,
                       end_ns: int) -> dict[str, Any]:
    """Every socket: send, wait for the ack, send again — until ``end_ns``."""
    acked = 0
    failed = 0
    ack_latency: list[float] = []

    async def visitor(sock: int, client: Any) -> None:
        nonlocal acked, failed
        await _sleep_until(start_ns)
        seq = 0
        while time.monotonic_ns() < end_ns:
            seq += 1
            sent = time.monotonic_ns()
            try:
                answer = await client.call("message", _message(index, sock, seq),
                                           namespace="/webchat", timeout=60)
            except Exception:
                failed += 1
                continue
            done = time.monotonic_ns()
            if not (isinstance(answer, dict) and answer.get("ok")) or answer.get("duplicate"):
                failed += 1
            elif measure_ns <= done < end_ns:
                acked += 1
                ack_latency.append((done - sent) / 1e6)

    await asyncio.gather(*(visitor(i, c) for i, c in enumerate(clients)))
    return {"acked": acked, "failed": failed, "ack_ms": ack_latency}


async def _open_loop(clients: list[Any], index: int, start_ns: int, end_ns: int,
                     rate: float) -> dict[str, Any]:
    """Send at ``rate`` msgs/s on a fixed schedule, round-robin over the sockets."""
    interval_ns = int(1e9 / rate)
    acked = 0
    failed = 0
    lag_ms: list[float] = []
    ack_ms: list[float] = []
    pending: set[asyncio.Future[Any]] = set()
    loop = asyncio.get_running_loop()

    def on_ack(sent: int, future: asyncio.Future[Any]) -> Any:
        def callback(answer: Any = None) -> None:
            nonlocal acked, failed
            if isinstance(answer, dict) and answer.get("ok") and not answer.get("duplicate"):
                acked += 1
                ack_ms.append((time.monotonic_ns() - sent) / 1e6)
            else:
                failed += 1
            if not future.done():
                future.set_result(None)
        return callback

    n = 0
    seq = 0
    due = start_ns
    while due < end_ns:
        await _sleep_until(due)
        sock = n % len(clients)
        if sock == 0:
            seq += 1
        sent = time.monotonic_ns()
        lag_ms.append((sent - due) / 1e6)
        future = loop.create_future()
        pending.add(future)
        await clients[sock].emit("message", _message(index, sock, seq), namespace="/webchat",
                                 callback=on_ack(sent, future))
        n += 1
        due = start_ns + n * interval_ns
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*pending), timeout=30)
    return {"sent": n, "acked": acked, "failed": failed + (n - acked - failed),
            "lag_ms": lag_ms, "ack_ms": ack_ms}


class Workers:
    """The client processes, started once and pointed at one server after another."""

    def __init__(self, n_clients: int) -> None:
        ctx = mp.get_context("spawn")
        self.visitors: list[tuple[Any, Any]] = []
        for index in range(n_clients + 1):
            parent, child = ctx.Pipe()
            role = "agent" if index == n_clients else "visitors"
            process = ctx.Process(target=client_worker, args=(child, role, index), daemon=True)
            process.start()
            if role == "agent":
                self.agent = (process, parent)
            else:
                self.visitors.append((process, parent))
        for process, pipe in self.all():
            if not pipe.poll(120):
                raise RuntimeError(f"client process {process.pid} did not start")
            pipe.recv()

    def all(self) -> list[tuple[Any, Any]]:
        return [*self.visitors, self.agent]

    @property
    def visitor_pipes(self) -> list[Any]:
        return [pipe for _, pipe in self.visitors]

    @property
    def agent_pipes(self) -> list[Any]:
        return [self.agent[1]]

    def ask(self, pipes: list[Any], command: tuple[Any, ...]) -> list[dict[str, Any]]:
        self.tell(pipes, command)
        return self.answers(pipes)

    @staticmethod
    def tell(pipes: list[Any], command: tuple[Any, ...]) -> None:
        for pipe in pipes:
            pipe.send(command)

    @staticmethod
    def answers(pipes: list[Any]) -> list[dict[str, Any]]:
        results = []
        for pipe in pipes:
            if not pipe.poll(300):
                raise RuntimeError("a client process did not answer")
            kind, result = pipe.recv()
            assert kind == "result", kind
            results.append(result)
        return results

    def connect(self, server: Server, token: str, n_sockets: int) -> None:
        n = len(self.visitors)
        per = [n_sockets // n + (1 if i < n_sockets % n else 0) for i in range(n)]
        for pipe, count in zip(self.visitor_pipes, per, strict=True):
            pipe.send(("connect", server.url, token, count))
        self.agent[1].send(("connect", server.url, token, 1))
        self.answers([*self.visitor_pipes, *self.agent_pipes])

    def disconnect(self) -> None:
        self.ask([*self.visitor_pipes, *self.agent_pipes], ("disconnect",))

    def stop(self) -> None:
        for _process, pipe in self.all():
            with contextlib.suppress(OSError):
                pipe.send(("stop",))
        for process, _ in self.all():
            process.join(timeout=10)
            if process.is_alive():
                process.terminate()


# --------------------------------------------------------------------------- runs


def set_priority(nice: int) -> None:
    """Give this run's processes (servers and clients inherit it) a scheduling priority.

    With Linux's autogroup scheduling, nice only ranks processes inside one session, so the
    session's autogroup gets the same nice value; then a shared machine's other work
    cannot starve the run (it still competes)."""
    os.setpriority(os.PRIO_PROCESS, 0, nice)
    autogroup = Path("/proc/self/autogroup")
    with contextlib.suppress(OSError):
        if Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1":
            autogroup.write_text(str(nice))
    log(f"priority: nice {nice}"
        + (f", {autogroup.read_text().strip()}" if autogroup.exists() else ""))



def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, all cores."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return float(sum(values) - idle), float(sum(values))


def throughput(server: Server, workers: Workers, args: argparse.Namespace) -> dict[str, Any]:
    """Closed loop: every visitor socket sends its next message when the last is acked."""
    start = time.monotonic_ns() + 200_000_000
    measure = start + int(args.warmup * 1e9)
    end = measure + int(args.duration * 1e9)
    workers.tell(workers.visitor_pipes, ("closed", start, measure, end))
    time.sleep(max(0.0, (measure - time.monotonic_ns()) / 1e9))
    profiler = start_profiler(server, args.profile, args.duration)
    cpu0, (busy0, total0) = server.cpu_seconds(), machine_cpu()
    time.sleep(max(0.0, (end - time.monotonic_ns()) / 1e9))
    cpu1, (busy1, total1) = server.cpu_seconds(), machine_cpu()
    results = workers.answers(workers.visitor_pipes)
    if profiler is not None:
        profiler.wait(timeout=60)
    time.sleep(0.3)  # the agent socket drains
    agent = workers.ask(workers.agent_pipes, ("collect", measure, end))[0]
    seconds = (end - measure) / 1e9
    msgs = len(agent["received"]) / seconds
    server_cpu = (cpu1 - cpu0) / seconds
    client_cpu = sum(r["cpu_s"] for r in results) / ((end - start) / 1e9)
    machine = (busy1 - busy0) / max(1.0, total1 - total0) * (os.cpu_count() or 1)
    return {
        "msgs_per_s": msgs,
        "acked_per_s": sum(r["acked"] for r in results) / seconds,
        "failed": sum(r["failed"] for r in results),
        "server_cores": server_cpu,
        "visitor_client_cores": client_cpu,
        "machine_cores_busy": machine,
        "msgs_per_server_cpu_s": msgs / server_cpu if server_cpu > 0 else float("nan"),
    }


def latency(workers: Workers, args: argparse.Namespace) -> dict[str, Any]:
    """Open loop at a fixed offered rate; customer emit → agent socket receipt."""
    start = time.monotonic_ns() + 200_000_000
    end = start + int(args.latency_duration * 1e9)
    results = workers.ask(workers.visitor_pipes,
                          ("open", start, end, args.rate / len(workers.visitors)))
    time.sleep(0.3)
    agent = workers.ask(workers.agent_pipes, ("collect", start, time.monotonic_ns()))[0]
    sent = sum(r["sent"] for r in results)
    return {
        "samples_ms": [(recv - sent_ns) / 1e6 for recv, sent_ns in agent["received"]],
        "sent": sent,
        "offered_per_s": args.rate,
        "achieved_send_per_s": sent / ((end - start) / 1e9),
        "failed": sum(r["failed"] for r in results),
        "ack_ms": [x for r in results for x in r["ack_ms"]],
        "client_lag_ms": [x for r in results for x in r["lag_ms"]],
    }


def run_mode(server: Server, workers: Workers, args: argparse.Namespace,
             with_latency: bool) -> dict[str, Any]:
    token = agent_token(server)
    workers.connect(server, token, args.sockets)
    try:
        log(f"{server.mode}: throughput, {args.sockets} visitor sockets, closed loop, "
            f"{args.warmup:g} s warm-up + {args.duration:g} s")
        figures = throughput(server, workers, args)
        log(f"{server.mode}: {figures['msgs_per_s']:.0f} msgs/s; server "
            f"{figures['server_cores']:.2f} cores, visitor clients "
            f"{figures['visitor_client_cores']:.2f} cores, whole machine "
            f"{figures['machine_cores_busy']:.2f}/{os.cpu_count()} cores busy")
        if with_latency:
            log(f"{server.mode}: latency, open loop at {args.rate:g} msgs/s for "
                f"{args.latency_duration:g} s")
            figures["latency"] = latency(workers, args)
            lat = figures["latency"]
            log(f"{server.mode}: p50 {pct(lat['samples_ms'], 50):.1f} ms, p99 "
                f"{pct(lat['samples_ms'], 99):.1f} ms, {len(lat['samples_ms'])}/{lat['sent']} "
                f"received")
    finally:
        workers.disconnect()
    return figures


def summarise(mode: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median over repeats for rates; latency samples pooled over repeats."""
    out: dict[str, Any] = {"runs": len(runs)}
    for key in ("msgs_per_s", "server_cores", "visitor_client_cores", "machine_cores_busy",
                "msgs_per_server_cpu_s"):
        out[key] = statistics.median(r[key] for r in runs)
    out["msgs_per_s_each"] = [round(r["msgs_per_s"]) for r in runs]
    out["failed"] = sum(r["failed"] for r in runs)
    lats = [r["latency"] for r in runs if "latency" in r]
    if lats:
        samples = [x for lat in lats for x in lat["samples_ms"]]
        out["latency"] = {
            "offered_per_s": lats[0]["offered_per_s"],
            "sent": sum(lat["sent"] for lat in lats),
            "received": len(samples),
            "failed": sum(lat["failed"] for lat in lats),
            "p50_ms": pct(samples, 50), "p99_ms": pct(samples, 99),
            "max_ms": max(samples, default=float("nan")),
            "p99_ms_each": [round(pct(lat["samples_ms"], 99), 1) for lat in lats],
            "ack_p99_ms": pct([x for lat in lats for x in lat["ack_ms"]], 99),
            "client_lag_p99_ms": pct([x for lat in lats for x in lat["client_lag_ms"]], 99),
        }
    return out


def report(figures: dict[str, dict[str, Any]], args: argparse.Namespace,
           load_before: tuple[float, float, float], began: float) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "machine": f"{os.cpu_count()} cores, {platform.machine()}, Python "
                   f"{platform.python_version()}",
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "quick": args.quick, "repeat": args.repeat, "sockets": args.sockets,
        "client_processes": args.clients, "duration_s": args.duration,
        "loadavg_1m_before": round(load_before[0], 2), "nice": args.nice,
    }
    for mode, fig in figures.items():
        print(f"{mode:5s} throughput: {fig['msgs_per_s']:7.0f} msgs/s customer→agent "
              f"(median of {fig['runs']}: {fig['msgs_per_s_each']}; server "
              f"{fig['server_cores']:.2f} cores, {fig['msgs_per_server_cpu_s']:.0f} msgs per "
              f"server CPU-second; failed {fig['failed']})")
        summary[f"{mode}_msgs_per_s"] = round(fig["msgs_per_s"], 1)
        summary[f"{mode}_server_cores"] = round(fig["server_cores"], 2)
        summary[f"{mode}_msgs_per_server_cpu_s"] = round(fig["msgs_per_server_cpu_s"], 1)
    for base in ("echo", "naive"):
        if base in figures and "full" in figures:
            ratio = figures["full"]["msgs_per_s"] / figures[base]["msgs_per_s"]
            cpu_ratio = (figures["full"]["msgs_per_server_cpu_s"]
                         / figures[base]["msgs_per_server_cpu_s"])
            target = TARGETS[f"full_over_{base}"]
            summary[f"full_over_{base}"] = round(ratio, 3)
            summary[f"full_over_{base}_per_cpu"] = round(cpu_ratio, 3)
            print(f"ratio full/{base}: {ratio:.2f}x msgs/s (target ≥ {target:g}x: "
                  f"{'met' if ratio >= target else 'MISSED'}); per server CPU-second "
                  f"{cpu_ratio:.2f}x")
    for mode, fig in figures.items():
        lat = fig.get("latency")
        if not lat:
            continue
        ok = lat["p99_ms"] < TARGETS["p99_ms"] and lat["received"] == lat["sent"]
        print(f"{mode:5s} latency at {lat['offered_per_s']:.0f} msgs/s offered: "
              f"p50 {lat['p50_ms']:.1f} ms, p99 {lat['p99_ms']:.1f} ms"
              + (f" (target < {TARGETS['p99_ms']:g} ms: {'met' if ok else 'MISSED'})"
                 if mode == "full" else "")
              + f"; max {lat['max_ms']:.1f} ms, {lat['received']}/{lat['sent']} received; "
              f"customer's ack p99 {lat['ack_p99_ms']:.1f} ms; client schedule lag p99 "
              f"{lat['client_lag_p99_ms']:.1f} ms")
        summary[f"{mode}_p50_ms"] = round(lat["p50_ms"], 2)
        summary[f"{mode}_p99_ms"] = round(lat["p99_ms"], 2)
        summary[f"{mode}_latency_received"] = lat["received"]
        summary[f"{mode}_latency_sent"] = lat["sent"]
        summary[f"{mode}_ack_p99_ms"] = round(lat["ack_p99_ms"], 2)
        summary[f"{mode}_client_lag_p99_ms"] = round(lat["client_lag_p99_ms"], 2)
    if all(k in summary for k in ("full_over_echo", "full_over_naive", "full_p99_ms")):
        summary["targets_met"] = bool(
            summary["full_over_echo"] >= TARGETS["full_over_echo"]
            and summary["full_over_naive"] >= TARGETS["full_over_naive"]
            and summary["full_p99_ms"] < TARGETS["p99_ms"]
            and summary["full_latency_received"] == summary["full_latency_sent"])
    summary["loadavg_1m_after"] = round(os.getloadavg()[0], 2)
    summary["elapsed_s"] = round(time.monotonic() - began, 1)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run (under 30 s)")
    parser.add_argument("--sockets", type=int, default=100, help="visitor sockets in total")
    parser.add_argument("--clients", type=int, default=2, help="visitor client processes")
    parser.add_argument("--duration", type=float, help="measured closed-loop seconds")
    parser.add_argument("--warmup", type=float, help="closed-loop warm-up seconds")
    parser.add_argument("--rate", type=float, default=500.0, help="offered msgs/s for latency")
    parser.add_argument("--latency-duration", type=float, help="open-loop seconds")
    parser.add_argument("--repeat", type=int, help="rounds over the modes (median reported)")
    parser.add_argument("--modes", default=",".join(DEFAULT_MODES),
                        help=f"comma-separated, of {', '.join(MODES)}")
    parser.add_argument("--latency-modes", help="modes to measure latency for "
                        "(default: all; only full with --quick)")
    parser.add_argument("--nice", type=int, default=0,
                        help="scheduling priority for this run's processes (e.g. -10 on a "
                             "shared machine; below 0 needs root)")
    parser.add_argument("--profile", metavar="DIR",
                        help="record py-spy samples of each server into DIR")
    parser.add_argument("--serve", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve, args.port, args.workdir)
        return 0
    quick = args.quick
    args.duration = args.duration or (2.0 if quick else 10.0)
    args.warmup = args.warmup if args.warmup is not None else (0.5 if quick else 2.0)
    args.latency_duration = args.latency_duration or (3.0 if quick else 15.0)
    args.repeat = args.repeat or (1 if quick else 3)
    modes = [m for m in args.modes.split(",") if m]
    if unknown := set(modes) - set(MODES):
        parser.error(f"unknown modes: {', '.join(sorted(unknown))}")
    latency_modes = set((args.latency_modes or ("full" if quick else ",".join(modes)))
                        .split(","))

    if args.nice:
        set_priority(args.nice)
    began = time.monotonic()
    load_before = os.getloadavg()
    log(f"load average {load_before[0]:.2f} on {os.cpu_count()} cores; starting "
        f"{', '.join(modes)} servers and {args.clients}+1 client processes")
    servers = {mode: launch_server(mode) for mode in modes}
    workers: Workers | None = None
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
    try:
        workers = Workers(args.clients)
        for server in servers.values():
            wait_ready(server)
        for round_ in range(args.repeat):
            order = modes[round_ % len(modes):] + modes[:round_ % len(modes)]
            for mode in order:
                if args.repeat > 1:
                    log(f"round {round_ + 1}/{args.repeat}: {mode}")
                runs[mode].append(run_mode(servers[mode], workers, args,
                                           mode in latency_modes))
    finally:
        if workers is not None:
            workers.stop()
        for server in servers.values():
            server.stop()
    figures = {mode: summarise(mode, mode_runs) for mode, mode_runs in runs.items()}
    print(json.dumps(report(figures, args, load_before, began)), flush=True)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
