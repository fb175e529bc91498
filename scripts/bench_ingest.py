#!/usr/bin/env python
"""Benchmark: web-chat messages through omohub's full ingest path, against two baselines.

Three servers, each in its own subprocess on a fresh temporary SQLite database, all served
by the same stack (uvicorn + python-socketio ASGI) and driven by the same client:

* ``echo``  — a bare python-socketio server: ``/webchat`` ``message`` is acknowledged and
  forwarded to every ``/agent`` socket. No database. The transport's ceiling.
* ``naive`` — the same, but each message is first committed as one INSERT in its own
  transaction through the same async SQLAlchemy + aiosqlite stack (the naive design).
* ``full``  — omohub itself (``hub.app.create_app``): dedupe on (channel, external_id),
  identity → customer, ticket attach/open, group commit, then ``message.created`` to agents.

For each server the customer load comes from ``--clients`` processes holding ``--sockets``
python-socketio ``AsyncClient`` connections on ``/webchat`` in total (one visitor each); a
separate process holds the ``/agent`` socket where every message is counted and timed.

1. Throughput: closed loop, every visitor socket sends its next message as soon as the
   previous one is acknowledged; msgs/s = messages that reached the agent socket per second.
2. Latency: open loop at a fixed offered rate (``--rate``, default 500 msgs/s) spread over
   all visitor sockets, sends on a fixed schedule whatever the answers; p50/p99 of the
   time from the customer's emit to the agent socket's receipt (one machine, one clock:
   CLOCK_MONOTONIC is system-wide on Linux).

Prints one line per figure and ends with a one-line JSON summary.

    .venv/bin/python scripts/bench_ingest.py            # ~2.5 minutes
    .venv/bin/python scripts/bench_ingest.py --quick    # under 30 seconds
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
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
MODES = ("echo", "naive", "full")
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
    if mode == "full":
        from hub import db
        from hub.app import create_app
        from hub.demo import create_agent
        from hub.settings import load_settings

        os.environ.update(OMOHUB_DATABASE_URL=database_url, OMOHUB_DATA_DIR=workdir)
        settings = load_settings()
        db.migrate(database_url)
        asyncio.run(create_agent(settings, AGENT_EMAIL, AGENT_PASSWORD, "Bench"))
        app = create_app(settings)
    else:
        app = build_bare_app(mode, database_url)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on",
                access_log=False)


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


def start_server(mode: str) -> Server:
    workdir = tempfile.mkdtemp(prefix=f"omohub-bench-{mode}-")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--serve", mode, "--port", str(port),
         "--workdir", workdir],
        cwd=str(ROOT), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    server = Server(mode, port, workdir, process)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{mode} server exited:\n{process.stderr.read().decode()}")  # type: ignore[union-attr]
        try:
            with urllib.request.urlopen(f"{server.url}/healthz", timeout=1) as response:
                if response.status == 200:
                    return server
        except OSError:
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"{mode} server did not answer /healthz within 60 s")


def start_profiler(server: Server, directory: str | None,
                   seconds: float) -> subprocess.Popen[bytes] | None:
    """py-spy (if installed) samples the server during the measured window."""
    if not directory:
        return None
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    out = Path(directory) / f"{server.mode}.collapsed.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    log(f"{server.mode}: py-spy → {out}")
    return subprocess.Popen([py_spy, "record", "--pid", str(server.process.pid), "--format", "raw",
                             "--duration", str(max(1, int(seconds))), "--rate", "200",
                             "--output", str(out), "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def agent_token(server: Server) -> str:
    if server.mode != "full":
        return "bench"
    request = urllib.request.Request(
        f"{server.url}/api/auth/login",
        data=json.dumps({"email": AGENT_EMAIL, "password": AGENT_PASSWORD}).encode(),
        headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(json.load(response)["token"])


# --------------------------------------------------------------------------- clients


def client_worker(conn: Any, url: str, role: str, index: int, n_sockets: int,
                  token: str) -> None:
    """A client process: ``role`` is ``visitors`` (customer sockets) or ``agent``."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(_client_main(conn, url, role, index, n_sockets, token))


async def _client_main(conn: Any, url: str, role: str, index: int, n_sockets: int,
                       token: str) -> None:
    import socketio

    loop = asyncio.get_running_loop()
    clients: list[socketio.AsyncClient] = []
    received: list[tuple[int, int]] = []  # (receive ns, send ns) at the agent

    async def connect(namespace: str, auth: dict[str, Any]) -> socketio.AsyncClient:
        client = socketio.AsyncClient(reconnection=False)
        if role == "agent":
            @client.on("message.created", namespace="/agent")
            def on_created(payload: dict[str, Any]) -> None:
                now = time.monotonic_ns()
                parts = str(payload.get("text", "")).split(" ", 2)
                if len(parts) > 1 and parts[0] == "bench":
                    received.append((now, int(parts[1])))

            @client.on("disconnect", namespace="/agent")
            def on_disconnect(reason: Any = None) -> None:
                log(f"agent socket disconnected ({reason})")
        await client.connect(url, namespaces=[namespace], transports=["websocket"],
                             auth=auth, wait_timeout=30)
        return client

    try:
        if role == "agent":
            clients.append(await connect("/agent", {"token": token}))
        else:
            for start in range(0, n_sockets, 25):
                batch = range(start, min(start + 25, n_sockets))
                clients.extend(await asyncio.gather(*(connect("/webchat", {}) for _ in batch)))
        conn.send(("ready", len(clients)))
        while True:
            command = await loop.run_in_executor(None, conn.recv)
            if command[0] == "stop":
                break
            cpu0 = time.process_time()
            if command[0] == "closed":
                result = await _closed_loop(clients, index, *command[1:])
            elif command[0] == "open":
                result = await _open_loop(clients, index, *command[1:])
            elif command[0] == "collect":
                since, until = command[1], command[2]
                result = {"received": [r for r in received if since <= r[0] < until],
                          "total_cpu_s": time.process_time()}
                received.clear()
            else:
                raise ValueError(command)
            result["cpu_s"] = time.process_time() - cpu0
            conn.send(("result", result))
    finally:
        for client in clients:
            with contextlib.suppress(Exception):
                await client.disconnect()
        conn.close()


async def _sleep_until(moment_ns: int) -> None:
    delay = (moment_ns - time.monotonic_ns()) / 1e9
    if delay > 0:
        await asyncio.sleep(delay)


def _message(index: int, sock: int, seq: int) -> dict[str, Any]:
    client_id = f"{index}-{sock}-{seq}"
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
            if not (isinstance(answer, dict) and answer.get("ok")):
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
            if isinstance(answer, dict) and answer.get("ok"):
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


@dataclass
class Workers:
    visitors: list[tuple[Any, Any]]  # (process, pipe)
    agent: tuple[Any, Any]

    def all(self) -> list[tuple[Any, Any]]:
        return [*self.visitors, self.agent]

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

    def stop(self) -> None:
        for process, pipe in self.all():
            with contextlib.suppress(OSError):
                pipe.send(("stop",))
            process.join(timeout=10)
            if process.is_alive():
                process.terminate()


def start_workers(server: Server, token: str, n_clients: int, n_sockets: int) -> Workers:
    ctx = mp.get_context("spawn")

    def spawn(role: str, index: int, sockets: int) -> tuple[Any, Any]:
        parent, child = ctx.Pipe()
        process = ctx.Process(target=client_worker, daemon=True,
                              args=(child, server.url, role, index, sockets, token))
        process.start()
        return process, parent

    per = [n_sockets // n_clients + (1 if i < n_sockets % n_clients else 0)
           for i in range(n_clients)]
    workers = Workers([spawn("visitors", i, per[i]) for i in range(n_clients)],
                      spawn("agent", n_clients, 1))
    for process, pipe in workers.all():
        if not pipe.poll(120):
            raise RuntimeError(f"client process {process.pid} did not connect")
        kind, _count = pipe.recv()
        assert kind == "ready", kind
    return workers


# --------------------------------------------------------------------------- runs


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return float(sum(values) - idle), float(sum(values))


def run_mode(mode: str, args: argparse.Namespace) -> dict[str, Any]:
    log(f"{mode}: starting server")
    server = start_server(mode)
    try:
        token = agent_token(server)
        log(f"{mode}: connecting {args.sockets} visitor sockets in {args.clients} processes "
            f"+ 1 agent socket")
        workers = start_workers(server, token, args.clients, args.sockets)
        visitor_pipes = [pipe for _, pipe in workers.visitors]
        agent_pipe = [workers.agent[1]]
        try:
            figures: dict[str, Any] = {"mode": mode}
            # 1. throughput, closed loop
            start = time.monotonic_ns() + 300_000_000
            measure = start + int(args.warmup * 1e9)
            end = measure + int(args.duration * 1e9)
            log(f"{mode}: throughput, closed loop, {args.warmup:g} s warm-up + "
                f"{args.duration:g} s")
            workers.tell(visitor_pipes, ("closed", start, measure, end))
            time.sleep(max(0.0, (measure - time.monotonic_ns()) / 1e9))
            profiler = start_profiler(server, args.profile, args.duration)
            cpu0, (busy0, total0) = server.cpu_seconds(), machine_cpu()
            time.sleep(max(0.0, (end - time.monotonic_ns()) / 1e9))
            cpu1, (busy1, total1) = server.cpu_seconds(), machine_cpu()
            results = workers.answers(visitor_pipes)
            if profiler is not None:
                profiler.wait(timeout=60)
            time.sleep(0.5)  # the agent socket drains
            agent = workers.ask(agent_pipe, ("collect", measure, end))[0]
            seconds = (end - measure) / 1e9
            figures["msgs_per_s"] = len(agent["received"]) / seconds
            figures["closed_loop_agent_p50_ms"] = pct(
                [(recv - sent) / 1e6 for recv, sent in agent["received"]], 50)
            log(f"{mode}: closed loop customer→agent p50 {figures['closed_loop_agent_p50_ms']:.0f}"
                f" ms, agent process cpu {agent['total_cpu_s']:.1f} s")
            figures["acked_per_s"] = sum(r["acked"] for r in results) / seconds
            figures["failed"] = sum(r["failed"] for r in results)
            figures["ack_p50_ms"] = pct([x for r in results for x in r["ack_ms"]], 50)
            figures["server_cpu"] = (cpu1 - cpu0) / seconds
            figures["machine_cpu"] = (busy1 - busy0) / max(1.0, total1 - total0) * os.cpu_count()
            figures["client_cpu"] = (sum(r["cpu_s"] for r in results) + agent["cpu_s"]) / (
                (end - start) / 1e9)
            log(f"{mode}: {figures['msgs_per_s']:.0f} msgs/s; server {figures['server_cpu']:.2f}"
                f" cores, clients {figures['client_cpu']:.2f} cores, machine "
                f"{figures['machine_cpu']:.2f}/{os.cpu_count()} cores")
            # 2. latency, open loop at a fixed rate
            if mode in args.latency_modes:
                log(f"{mode}: latency, open loop at {args.rate:g} msgs/s for "
                    f"{args.latency_duration:g} s")
                start = time.monotonic_ns() + 300_000_000
                end = start + int(args.latency_duration * 1e9)
                per_client = args.rate / args.clients
                results = workers.ask(visitor_pipes, ("open", start, end, per_client))
                time.sleep(0.5)
                agent = workers.ask(agent_pipe, ("collect", start, time.monotonic_ns()))[0]
                latencies = [(recv - sent) / 1e6 for recv, sent in agent["received"]]
                sent_total = sum(r["sent"] for r in results)
                figures["latency"] = {
                    "offered_per_s": args.rate,
                    "achieved_send_per_s": sent_total / ((end - start) / 1e9),
                    "sent": sent_total, "received": len(latencies),
                    "failed": sum(r["failed"] for r in results),
                    "p50_ms": pct(latencies, 50), "p99_ms": pct(latencies, 99),
                    "max_ms": max(latencies, default=float("nan")),
                    "ack_p99_ms": pct([x for r in results for x in r["ack_ms"]], 99),
                    "client_lag_p99_ms": pct([x for r in results for x in r["lag_ms"]], 99),
                }
                lat = figures["latency"]
                log(f"{mode}: sent {[r['sent'] for r in results]} acked "
                    f"{[r['acked'] for r in results]} failed {[r['failed'] for r in results]}")
                log(f"{mode}: ack p99 {lat['ack_p99_ms']:.1f} ms; p50 {lat['p50_ms']:.1f} ms, "
                    f"p99 {lat['p99_ms']:.1f} ms, "
                    f"{lat['received']}/{lat['sent']} received")
        finally:
            workers.stop()
    finally:
        server.stop()
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run (under 30 s)")
    parser.add_argument("--sockets", type=int, default=100, help="visitor sockets in total")
    parser.add_argument("--clients", type=int, default=2, help="visitor client processes")
    parser.add_argument("--duration", type=float, default=None, help="throughput seconds")
    parser.add_argument("--warmup", type=float, default=None)
    parser.add_argument("--rate", type=float, default=500.0, help="offered msgs/s for latency")
    parser.add_argument("--latency-duration", type=float, default=None)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--latency-modes", help="modes to measure latency for "
                        "(default: all; only full with --quick)")
    parser.add_argument("--profile", metavar="DIR",
                        help="record py-spy collapsed stacks of each server into DIR")
    parser.add_argument("--serve", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve, args.port, args.workdir)
        return 0
    if args.duration is None:
        args.duration = 3.0 if args.quick else 15.0
    if args.warmup is None:
        args.warmup = 1.0 if args.quick else 3.0
    if args.latency_duration is None:
        args.latency_duration = 4.0 if args.quick else 20.0
    modes = [m for m in args.modes.split(",") if m]
    if args.latency_modes is None:
        args.latency_modes = "full" if args.quick else ",".join(modes)
    args.latency_modes = set(args.latency_modes.split(","))

    began = time.monotonic()
    figures = {mode: run_mode(mode, args) for mode in modes}
    summary: dict[str, Any] = {
        "machine": f"{os.cpu_count()} cores, {platform.machine()}, Python "
                   f"{platform.python_version()}",
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "quick": args.quick, "sockets": args.sockets, "client_processes": args.clients,
        "duration_s": args.duration,
    }
    for mode, fig in figures.items():
        print(f"{mode:5s} throughput: {fig['msgs_per_s']:8.0f} msgs/s customer→agent "
              f"(server {fig['server_cpu']:.2f} cores, clients {fig['client_cpu']:.2f} cores, "
              f"failed {fig['failed']})")
        summary[f"{mode}_msgs_per_s"] = round(fig["msgs_per_s"], 1)
        summary[f"{mode}_server_cpu"] = round(fig["server_cpu"], 2)
    if "echo" in figures and "full" in figures:
        ratio = figures["full"]["msgs_per_s"] / figures["echo"]["msgs_per_s"]
        summary["full_over_echo"] = round(ratio, 3)
        print(f"ratio full/echo:  {ratio:.2f}x (target ≥ {TARGETS['full_over_echo']}x)")
    if "naive" in figures and "full" in figures:
        ratio = figures["full"]["msgs_per_s"] / figures["naive"]["msgs_per_s"]
        summary["full_over_naive"] = round(ratio, 3)
        print(f"ratio full/naive: {ratio:.2f}x (target ≥ {TARGETS['full_over_naive']}x)")
    for mode, fig in figures.items():
        lat = fig.get("latency")
        if not lat:
            continue
        print(f"{mode:5s} latency at {lat['offered_per_s']:.0f} msgs/s offered: "
              f"p50 {lat['p50_ms']:.1f} ms, p99 {lat['p99_ms']:.1f} ms, max {lat['max_ms']:.1f} ms "
              f"({lat['received']}/{lat['sent']} received, client lag p99 "
              f"{lat['client_lag_p99_ms']:.1f} ms)")
        summary[f"{mode}_p50_ms"] = round(lat["p50_ms"], 2)
        summary[f"{mode}_p99_ms"] = round(lat["p99_ms"], 2)
        summary[f"{mode}_latency_received"] = lat["received"]
        summary[f"{mode}_latency_sent"] = lat["sent"]
    if "full_p99_ms" in summary and "full_over_echo" in summary and "full_over_naive" in summary:
        summary["targets_met"] = bool(
            summary["full_over_echo"] >= TARGETS["full_over_echo"]
            and summary["full_over_naive"] >= TARGETS["full_over_naive"]
            and summary["full_p99_ms"] < TARGETS["p99_ms"]
            and summary["full_latency_received"] == summary["full_latency_sent"])
    summary["elapsed_s"] = round(time.monotonic() - began, 1)
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
