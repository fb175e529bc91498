"""The ``omohub`` command: serve, demo, create-agent, kb, catalog, export."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from hub import db
from hub.process import SERVER_OPTIONS, tune_for_serving
from hub.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

T = TypeVar("T")

CLI_ACTOR = "cli"  # the audit log's actor type for what a command does (no agent signed in)


def _serve(settings: Settings, host: str, port: int) -> None:
    import uvicorn

    from hub.app import create_app

    _check_mail_listener(settings)
    db.migrate(settings.database_url)
    if "OMOHUB_PUBLIC_URL" not in os.environ and settings.public_url == Settings.public_url:
        # Links, QR codes and Twilio signatures must name where we really listen.
        settings = settings.with_changes(public_url=f"http://{host}:{port}")
    app = create_app(settings)
    tune_for_serving()
    print(f"omohub listening on http://{host}:{port}  (public URL {settings.public_url})",
          flush=True)
    uvicorn.run(app, host=host, port=port, log_level="info", lifespan="on",
                proxy_headers=True, timeout_graceful_shutdown=10, **SERVER_OPTIONS)


def _check_mail_listener(settings: Settings) -> None:
    """Say now, in one line, that the SMTP listener's address is taken: found when the
    hub starts, it would be a traceback from the server's start-up."""
    if not settings.smtp_listen:
        return
    from channels.email.send import split_host_port

    host, port = split_host_port(settings.smtp_listen)
    try:
        socket.create_server((host, port)).close()
    except OSError as exc:
        raise SettingsError(f"OMOHUB_SMTP_LISTEN={settings.smtp_listen!r}: cannot listen "
                            f"there ({exc.strerror or exc})") from exc


def cmd_serve(args: argparse.Namespace) -> int:
    _serve(load_settings(), args.host, args.port)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from hub.demo import seed

    settings = load_settings()
    db.migrate(settings.database_url)
    created = asyncio.run(seed(settings))
    print("demo data " + ("seeded" if created else "already present"))
    asyncio.run(_embed_for_the_bot(settings))
    print(f"open http://{args.host}:{args.port}/  and sign in as agent@example.com / demo-agent"
          f"  (supervisor: lead@example.com / demo-lead)")
    print(f"customer chat: http://{args.host}:{args.port}/chat", flush=True)
    _serve(settings, args.host, args.port)
    return 0


def cmd_create_agent(args: argparse.Namespace) -> int:
    from hub.demo import create_agent

    settings = load_settings()
    db.migrate(settings.database_url)
    try:
        agent_id = asyncio.run(create_agent(settings, args.email, args.password,
                                            args.name or "", args.role))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"agent {args.email} created (id {agent_id}, role {args.role})")
    return 0


def _progress(label: str) -> Callable[[int, int], None]:
    def show(done: int, total: int) -> None:
        width = 30
        filled = int(width * done / max(total, 1))
        end = "\n" if done >= total else ""
        print(f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}", end=end,
              file=sys.stderr, flush=True)

    return show


async def _in_transaction(settings: Settings,
                          work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """``work`` in one transaction on an engine of its own (a CLI verb's whole life)."""
    engine = db.create_engine(settings.database_url)
    try:
        async with db.session_factory(engine)() as session, session.begin():
            return await work(session)
    finally:
        await engine.dispose()


async def _kb_import(settings: Settings, directory: Path) -> int:
    from hub.knowledge import import_directory

    report = await _in_transaction(settings, lambda session: import_directory(
        session, directory, _progress("importing"), actor_type=CLI_ACTOR))
    for error in report.errors:
        print(f"error: {error}", file=sys.stderr)
    print(f"articles: {report.created} new, {report.updated} updated, "
          f"{report.unchanged} unchanged, {len(report.errors)} with errors")
    await _embed_for_the_bot(settings)
    return 1 if report.errors else 0


async def _embed_for_the_bot(settings: Settings) -> None:
    """Store the published articles' vectors now, so the hub's bot answers from its start
    instead of embedding them on its first question."""
    from hub.knowledge import embed_for_the_bot, published_articles

    articles = await _in_transaction(settings, published_articles)
    await asyncio.to_thread(embed_for_the_bot, articles, settings.data_dir,
                            _progress("embedding for the bot"))


def cmd_kb(args: argparse.Namespace) -> int:
    if args.kb_verb == "eval":
        from kb.eval import eval_command

        return eval_command(args.file, verbose=args.verbose)
    settings = load_settings()
    db.migrate(settings.database_url)
    if args.kb_verb == "import":
        directory = Path(args.directory)
        if not directory.is_dir():
            print(f"error: {directory} is not a directory", file=sys.stderr)
            return 2
        return asyncio.run(_kb_import(settings, directory))
    return asyncio.run(_kb_export(settings, Path(args.directory)))


async def _kb_export(settings: Settings, directory: Path) -> int:
    from hub.knowledge import export_directory

    count = await _in_transaction(settings, lambda session: export_directory(
        session, directory, actor_type=CLI_ACTOR))
    print(f"exported {count} articles to {directory}")
    return 0


async def _catalog_import(settings: Settings, paths: list[Path]) -> int:
    from hub.catalog import import_files

    report = await _in_transaction(settings, lambda session: import_files(
        session, paths, _progress("importing"), actor_type=CLI_ACTOR))
    for error in report.errors:
        print(f"error: {error}", file=sys.stderr)
    for line in report.summary():
        print(line)
    return 2 if report.errors else 0


def cmd_catalog(args: argparse.Namespace) -> int:
    settings = load_settings()
    db.migrate(settings.database_url)
    return asyncio.run(_catalog_import(settings, [Path(name) for name in args.files]))


async def _export_voc(settings: Settings, args: argparse.Namespace) -> int:
    from hub import export

    query = export.VocQuery.for_days(args.from_, args.to, settings.timezone,
                                     channel=args.channel, mask_pii=args.mask_pii)
    engine = db.create_engine(settings.database_url)
    try:
        rows = await export.export_to_file(db.session_factory(engine), query, args.format,
                                           args.out, _progress("exporting"),
                                           actor_type=CLI_ACTOR)
    finally:
        await engine.dispose()
    print(f"exported {rows} rows to {args.out}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from hub.export import ExportError

    settings = load_settings()
    db.migrate(settings.database_url)
    try:
        return asyncio.run(_export_voc(settings, args))
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _day(text: str) -> date | None:
    from hub.hours import parse_day

    try:
        return parse_day(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="omohub", description="omnichannel contact-center hub")
    verbs = parser.add_subparsers(dest="verb", required=True)
    for name, handler in (("serve", cmd_serve), ("demo", cmd_demo)):
        verb = verbs.add_parser(name, help=f"{name} the hub")
        verb.add_argument("--host", default="127.0.0.1")
        verb.add_argument("--port", type=int, default=8000)
        verb.set_defaults(handler=handler)
    agent = verbs.add_parser("create-agent", help="add an agent who can sign in")
    agent.add_argument("--email", required=True)
    agent.add_argument("--password", required=True)
    agent.add_argument("--name")
    agent.add_argument("--role", choices=["agent", "supervisor", "admin"], default="agent")
    agent.set_defaults(handler=cmd_create_agent)
    kb = verbs.add_parser("kb", help="knowledge base: import, export, evaluate")
    kb_verbs = kb.add_subparsers(dest="kb_verb", required=True)
    kb_import = kb_verbs.add_parser("import", help="load Markdown articles into the hub")
    kb_import.add_argument("directory")
    kb_export = kb_verbs.add_parser("export", help="write the hub's articles as Markdown")
    kb_export.add_argument("directory")
    kb_eval = kb_verbs.add_parser("eval", help="measure the bot on a CLINC150-layout file")
    kb_eval.add_argument("file")
    kb_eval.add_argument("--verbose", action="store_true", help="print the confusions")
    kb.set_defaults(handler=cmd_kb)
    catalog = verbs.add_parser("catalog", help="the shop's products and stores")
    catalog_verbs = catalog.add_subparsers(dest="catalog_verb", required=True)
    catalog_import = catalog_verbs.add_parser(
        "import", help="add or update products and stores from CSV or JSON files")
    catalog_import.add_argument("files", nargs="+", metavar="FILE",
                                help="CSV with a sku (products) or id (stores) column, "
                                     'or JSON {"products": [...], "stores": [...]}')
    catalog.set_defaults(handler=cmd_catalog)
    exporter = verbs.add_parser("export", help="exports for supervisors")
    export_verbs = exporter.add_subparsers(dest="export_verb", required=True)
    voc = export_verbs.add_parser("voc", help="what customers said, as CSV, XLSX or JSON Lines")
    voc.add_argument("--format", choices=["csv", "xlsx", "jsonl"], required=True)
    voc.add_argument("--out", type=Path, required=True)
    voc.add_argument("--from", dest="from_", type=_day, help="first day (YYYY-MM-DD)")
    voc.add_argument("--to", type=_day, help="last day, included (YYYY-MM-DD)")
    voc.add_argument("--channel", help="one channel only (web, line, email, phone, sms)")
    voc.add_argument("--mask-pii", action="store_true",
                     help="mask names, addresses, e-mail addresses, phone and card numbers")
    exporter.set_defaults(handler=cmd_export)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except SettingsError as exc:
        print(f"omohub: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
