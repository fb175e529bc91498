"""CPU per message of the ingest pipeline alone, in-process (no sockets): ``--visitors``
web visitors each send one message per round, concurrently, into a fresh SQLite file; the
figure is the process's CPU time (every thread) per message, events included.

For counts that do not depend on the machine's load, run it under valgrind twice and take
the difference, so start-up cancels out:

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        .venv/bin/python scripts/bench_ingest_cpu.py --rounds 5     # then --rounds 25
    # (instructions(25) - instructions(5)) / (20 * visitors) = instructions per message
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from channels.base import Inbound
from hub import db, events
from hub.ingest import Ingestor


async def measure(visitors: int, rounds: int) -> float:
    url = f"sqlite+aiosqlite:///{tempfile.mkdtemp(prefix='omohub-ingest-cpu-')}/omohub.db"
    await db.migrate_async(url)
    engine = db.create_engine(url)
    ingestor = Ingestor(db.session_factory(engine), events.EventBus(),
                        writer=db.SqliteWriter(url))
    names = [f"visitor-{n:04d}-bench" for n in range(visitors)]

    async def send(visitor: str, serial: int) -> None:
        await ingestor.ingest(Inbound(
            channel="web", identity_kind="web", identity_value=visitor,
            text=f"message {serial} from {visitor}", external_id=f"{visitor}:{serial}"))

    await asyncio.gather(*(send(v, 0) for v in names))  # customers and tickets exist
    started = time.process_time()
    for serial in range(1, rounds + 1):
        await asyncio.gather(*(send(v, serial) for v in names))
    cpu = time.process_time() - started
    await ingestor.stop()
    await engine.dispose()
    return cpu / (visitors * rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--visitors", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=60)
    args = parser.parse_args()
    per_message = asyncio.run(measure(args.visitors, args.rounds))
    print(f"{per_message * 1e6:.0f} us of CPU per message "
          f"({args.visitors} visitors x {args.rounds} rounds)")


if __name__ == "__main__":
    main()
