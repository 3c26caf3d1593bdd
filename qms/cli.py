"""The `qms` command: serve, demo, check-config, report, simulate.

Every failure a user can cause (bad config, unreachable Redis, port in use,
data directory taken) ends as one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import getpass
import json
import logging
import os
import resource
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, timedelta
from importlib.resources import as_file, files
from pathlib import Path

from starlette.applications import Starlette

from dispatcher.policy_sim import output
from dispatcher.policy_sim.day import (
    Day,
    EmptyDay,
    archived_day,
    default_visitors,
    generate_day,
)
from dispatcher.policy_sim.player import play_rules
from dispatcher.policy_sim.rules import (
    RULES,
    UnknownRule,
    config_for_rule,
    with_windows,
)
from dispatcher.policy_sim.stats import RuleOutcome
from displays.gateway import GatewaySettings
from displays.hub import HubSettings
from qms.app import BackgroundTask, create_app
from qms.archiving import ArchiveHandle, one_line
from qms.embedded_keeper import keep_embedded_redis
from qms.embedded_redis import EmbeddedRedis, EmbeddedRedisError
from qms.reporting import ArchiveUnavailable, audit_of_day, parse_day, report_of_day
from qms.server import QmsServer, server_config, tune_gc
from qms.settings import (
    Settings,
    SettingsError,
    archive_url,
    default_archive_url,
    notify_secrets,
    require_id_digest_key,
)
from queue_core.archive import ArchivedTicket, sqlite_path
from queue_core.auth import Credentials
from queue_core.config import MIN_TOKEN_CHARS, ConfigError, HallConfig, load_halls, token_sha256
from queue_core.errors import Invalid, QmsError
from queue_core.operations import Hall
from queue_core.presence import PresenceCaps
from queue_core.redis_client import create_redis, describe_url
from queue_core.report import render_audit_csv, render_csv
from queue_core.store import load_audit_secret

EXIT_FAILURE = 1
EXIT_BAD_CONFIG = 2


class CliError(Exception):
    """A failure explained in one sentence; `main` prints it and exits non-zero."""


class UsageError(CliError):
    """A command line that cannot be right (an unknown hall, a bad date): exit 2."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="qms", description="Queue management for service halls.")
    sub = p.add_subparsers(dest="command", required=True)

    def data_dir_option(sp: argparse.ArgumentParser, holds: str) -> None:
        sp.add_argument("--data-dir", type=Path, default=Path(".qms-data"), help=holds)

    def server_options(sp: argparse.ArgumentParser, port: int) -> None:
        sp.add_argument("--host", default="127.0.0.1", help="address to listen on")
        sp.add_argument("--port", type=int, default=port, help="port to listen on")
        data_dir_option(sp, "embedded Redis data (when QMS_REDIS_URL is unset) and the archive")
        sp.add_argument(
            "--fsync",
            choices=["always", "everysec"],
            default="always",
            help="embedded Redis AOF fsync policy",
        )

    serve = sub.add_parser("serve", help="serve one or more halls")
    serve.add_argument(
        "--config",
        action="append",
        type=Path,
        required=True,
        metavar="HALL.toml",
        help="a hall file, or a directory: every *.toml in it (a mounted ConfigMap)",
    )
    server_options(serve, 8000)

    demo = sub.add_parser("demo", help="run a bundled example hall with simulated visitors")
    server_options(demo, 8000)
    demo.add_argument(
        "--speed",
        type=float,
        default=30.0,
        help="how many times faster than real life the simulated hall runs",
    )
    demo.add_argument(
        "--duration",
        type=float,
        default=None,
        help="stop after this many seconds (default: run until interrupted)",
    )

    check = sub.add_parser("check-config", help="validate hall config files")
    check.add_argument(
        "configs", nargs="+", type=Path, metavar="HALL.toml", help="hall files or directories"
    )

    sub.add_parser(
        "hash-token",
        help="print the token_sha256 of a token read on standard input",
        description="Read one token on standard input (not echoed at a terminal) and print "
        "the token_sha256 value a [[credential]] may give instead of its token.",
    )

    report = sub.add_parser("report", help="write a hall's daily report (CSV)")
    report.add_argument("--config", action="append", type=Path, required=True, metavar="HALL.toml")
    report.add_argument("--hall", help="hall id (may be left out when one config is given)")
    report.add_argument("--date", required=True, metavar="YYYY-MM-DD", help="or today, yesterday")
    report.add_argument("--out", type=Path, metavar="FILE", help="write here (default: stdout)")
    report.add_argument(
        "--audit", action="store_true", help="write the day's audit trail instead of the report"
    )
    data_dir_option(report, "where the default archive is (archive.db)")

    sim = sub.add_parser(
        "simulate",
        help="play a day through each dispatch rule and compare waits",
        description="Play a day (generated, or an archived day's arrivals) through the hall's "
        "own dispatch scripts on a scratch Redis, once per rule, and compare the waits.",
    )
    sim.add_argument("--config", type=Path, required=True, metavar="HALL.toml")
    sim.add_argument("--hall", help="hall id (may be left out when the config holds one hall)")
    sim.add_argument(
        "--rule",
        action="append",
        metavar="RULE",
        help="fifo, strict, credit or ratio; repeat for several (default: all four)",
    )
    sim.add_argument(
        "--windows", metavar="N", help="N windows each serving every group (default: the hall's)"
    )
    sim.add_argument(
        "--visitors",
        metavar="N",
        help="visitors of the generated day (default: enough to keep the windows 85%% busy)",
    )
    sim.add_argument("--seed", default="1", metavar="S", help="seed of the generated day")
    sim.add_argument(
        "--day", metavar="YYYY-MM-DD", help="replay this archived day's arrivals instead"
    )
    sim.add_argument("--json", action="store_true", help="print JSON instead of a table")
    sim.add_argument("--html", type=Path, metavar="PATH", help="also write an HTML report here")
    data_dir_option(sim, "where the default archive is (archive.db), for --day")
    return p


def hash_token() -> int:
    """`qms hash-token`: the token is read, hashed and dropped; only its
    digest is printed, and no message quotes it."""
    if sys.stdin.isatty():
        raw = getpass.getpass("token (not shown): ", stream=sys.stderr)
    else:
        raw = sys.stdin.read()
    token = raw.strip()
    if not token:
        raise CliError("no token on standard input")
    if "\n" in token or "\r" in token:
        raise CliError("one token on one line, please: standard input held several lines")
    if len(token) < MIN_TOKEN_CHARS:
        raise CliError(
            f"that token is too short: use at least {MIN_TOKEN_CHARS} characters "
            "(openssl rand -hex 24 makes a good one)"
        )
    print(token_sha256(token))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "check-config":
            return check_config(hall_files(args.configs))
        if args.command == "serve":
            settings = Settings.from_env(
                configs=hall_files(args.config), host=args.host, port=args.port,
                data_dir=args.data_dir, fsync=args.fsync,
            )  # fmt: skip
            return serve(settings, load_halls(settings.configs))
        if args.command == "demo":
            return demo(args)
        if args.command == "hash-token":
            return hash_token()
        if args.command == "report":
            return report(args)
        if args.command == "simulate":
            return simulate(args)
    except UsageError as exc:
        print(f"qms: {exc}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    except (CliError, SettingsError) as exc:
        print(f"qms: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except ConfigError as exc:
        print(f"qms: {_config_summary(exc)}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    except KeyboardInterrupt:
        return 130
    raise AssertionError(args.command)


def hall_files(paths: Sequence[Path]) -> tuple[Path, ...]:
    """The hall files named, a directory standing for every `*.toml` in it
    (sorted; hidden entries skipped, such as a mounted ConfigMap's `..data`).
    A path that does not exist stays as given: loading it reports it."""
    found: list[Path] = []
    for path in paths:
        if not path.is_dir():
            found.append(path)
            continue
        inside = sorted(
            p for p in path.glob("*.toml") if not p.name.startswith(".") and p.is_file()
        )
        if not inside:
            raise UsageError(f"{path}: no hall file (*.toml) in this directory")
        found.extend(inside)
    return tuple(found)


def check_config(paths: Sequence[Path]) -> int:
    try:
        halls = load_halls(paths)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_BAD_CONFIG
    for hall in halls:
        print(f"{hall.source}: ok: hall {hall.id} ({hall.name}), {len(hall.windows)} windows, "
              f"{len(hall.services)} services")  # fmt: skip
    return 0


def _config_summary(exc: ConfigError) -> str:
    first = exc.problems[0]
    more = len(exc.problems) - 1
    tail = f" (and {more} more; `qms check-config` lists them all)" if more else ""
    return f"invalid config: {first}{tail}"


def serve(
    settings: Settings,
    configs: Sequence[HallConfig],
    background: Sequence[BackgroundTask] = (),
    *,
    clock: Callable[[], float] | None = None,
    clock_rate: float = 1.0,
) -> int:
    """Serve the halls; `clock` and `clock_rate` as `create_app` takes them
    (the demo's simulated clock)."""
    require_id_digest_key(configs, settings.id_digest_key)  # before anything starts
    notify_keys = notify_secrets(configs, os.environ)
    _raise_open_files_limit()
    sock = _bind(settings.host, settings.port)
    embedded: EmbeddedRedis | None = None
    exiting = threading.Event()
    try:
        if settings.redis_url is None:
            try:
                embedded = EmbeddedRedis.start(settings.data_dir, fsync=settings.fsync)
            except EmbeddedRedisError as exc:
                raise CliError(str(exc)) from None
            redis_url = embedded.url
            background = (*background, _keeper(embedded, settings.metrics_interval_s, exiting))
        else:
            redis_url = settings.redis_url
        _check_redis(redis_url)
        app = create_app(
            configs,
            redis_url,
            redis_max_connections=settings.redis_max_connections,
            redis_min_replicas=settings.redis_min_replicas,
            redis_wait_ms=settings.redis_wait_ms,
            stream_maxlen=settings.stream_maxlen,
            metrics_interval_s=settings.metrics_interval_s,
            estimate_max_age_s=settings.estimate_max_age_s,
            gateway_settings=GatewaySettings(
                hub=HubSettings(
                    queue_frames=settings.ws_queue_frames, heartbeat_s=settings.ws_heartbeat_s
                ),
                presence_caps=PresenceCaps(
                    per_hall=settings.screens_per_hall,
                    per_credential=settings.screens_per_credential,
                ),
            ),
            background=background,
            clock=clock,
            clock_rate=clock_rate,
            archive_url=settings.archive_url,
            archive_interval_s=settings.archive_interval_s,
            id_digest_key=settings.id_digest_key,
            notify_secrets=notify_keys,
            cors_origins=settings.cors_origins,
            metrics_token=settings.metrics_token,
            max_in_flight=settings.max_in_flight,
        )
        host, port = sock.getsockname()[:2]
        for c in configs:
            print(f"qms: serving hall {c.id} ({c.name}) at http://{_url_host(host)}:{port}"
                  f"/api/v1/halls/{c.id}", file=sys.stderr, flush=True)  # fmt: skip
        _run_uvicorn(app, sock, settings.access_log, settings.trusted_proxies, exiting)
    finally:
        sock.close()
        if embedded is not None:
            embedded.stop()
    return 0


def _keeper(server: EmbeddedRedis, interval_s: float, exiting: threading.Event) -> BackgroundTask:
    """The app's task that starts the embedded redis-server again when it
    ends, unless qms is stopping: a Ctrl-C or a SIGTERM to the process group
    stops both, and redis-server's end is then no failure."""

    async def keep(halls: Mapping[str, Hall]) -> None:
        await keep_embedded_redis(server, interval_s=interval_s, stopping=exiting.is_set)

    return keep


def _run_uvicorn(
    app: Starlette,
    sock: socket.socket,
    access_log: bool,
    trusted_proxies: Sequence[str] = (),
    exiting: threading.Event | None = None,
) -> None:
    config = server_config(app, access_log=access_log, trusted_proxies=trusted_proxies)
    server = QmsServer(config, app, exiting)
    # uvicorn re-raises the signal it caught once it has shut down; make
    # SIGTERM unwind through our `finally` (stopping Redis) rather than
    # ending the process on the spot.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    tune_gc()
    # server.run picks the fastest loop installed (uvloop) and httptools.
    server.run(sockets=[sock])


def _raise_open_files_limit() -> None:
    """Every screen holds a socket: lift the soft limit (often 1,024) to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted connections
    # only when the listening socket names its protocol. Without it every
    # response (headers and body are two writes) waits ~40 ms on delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise CliError(f"port {port} on {host} is already in use") from None
        raise CliError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    # Room for every screen of a replica reconnecting at once (the kernel
    # caps it at net.core.somaxconn).
    sock.listen(8192)
    sock.set_inheritable(True)
    return sock


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _check_redis(url: str) -> None:
    async def ping() -> None:
        client = create_redis(url, max_connections=1, pool_timeout=3.0, socket_timeout=3.0)
        try:
            await client.ping()
        finally:
            await client.aclose()

    try:
        asyncio.run(ping())
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CliError(f"cannot reach Redis at {describe_url(url)}: {reason}") from None


def report(args: argparse.Namespace) -> int:
    """`qms report`: the CSV of one hall's day, from the archive and, with
    `QMS_REDIS_URL` set, the day's finished tickets still in Redis; with
    `--audit`, the day's audit trail from the same two sources."""
    settings = Settings.from_env(configs=hall_files(args.config), data_dir=args.data_dir)
    config = _pick_hall(load_halls(settings.configs), args.hall)
    day = _report_day(args.date, config)
    path = sqlite_path(settings.archive_url)
    if settings.redis_url is None and path is not None and not Path(path).exists():
        # A report of zeros would hide a wrong --data-dir or QMS_ARCHIVE_URL.
        raise CliError(
            f"no archive at {path} and QMS_REDIS_URL is unset: nothing to report from "
            "(check --data-dir or QMS_ARCHIVE_URL)"
        )
    if settings.redis_url is not None:
        _check_redis(settings.redis_url)
    data = asyncio.run(_report_csv(settings, config, day, audit=args.audit))
    if args.out is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return 0
    try:
        args.out.write_bytes(data)
    except OSError as exc:
        raise CliError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    return 0


def _pick_hall(configs: Sequence[HallConfig], hall: str | None) -> HallConfig:
    ids = ", ".join(c.id for c in configs)
    if hall is None:
        if len(configs) > 1:
            raise UsageError(f"the configs hold several halls ({ids}): name one with --hall")
        return configs[0]
    for c in configs:
        if c.id == hall:
            return c
    raise UsageError(f"no hall {hall!r} in the configs given (halls: {ids})")


def _report_day(raw: str, config: HallConfig) -> date:
    today = datetime.fromtimestamp(time.time(), config.timezone).date()
    relative = {"today": today, "yesterday": today - timedelta(days=1)}
    if raw in relative:
        return relative[raw]
    try:
        return parse_day(raw)
    except Invalid:
        raise UsageError(
            f"--date {raw!r} is not a day: use YYYY-MM-DD (e.g. 2026-11-21), today or yesterday"
        ) from None


async def _report_csv(
    settings: Settings, config: HallConfig, day: date, *, audit: bool = False
) -> bytes:
    archive = ArchiveHandle(settings.archive_url)
    redis = None
    if settings.redis_url is not None:
        redis = create_redis(
            settings.redis_url, max_connections=2, pool_timeout=10.0, socket_timeout=10.0
        )
    try:
        # The deployment's key relabels credential ids of old archive rows;
        # from the archive alone an unnamed credential's is its role.
        secret = None if redis is None else await load_audit_secret(redis)
        credentials = Credentials(config.credentials, secret)
        if audit:
            entries = await audit_of_day(config, day, archive, redis, credentials)
            return render_audit_csv(entries, config.timezone)
        report = await report_of_day(config, day, archive, redis, credentials)
    except ArchiveUnavailable as exc:
        raise CliError(f"cannot read the archive at {archive}: {exc.reason}") from None
    except QmsError as exc:  # Redis lost after the check above
        raise CliError(f"cannot read Redis at {describe_url(settings.redis_url or '')}: "
                       f"{one_line(exc.__cause__ or exc)}") from None  # fmt: skip
    finally:
        if redis is not None:
            await redis.aclose()
        archive.close()
    return render_csv(report)


def demo(args: argparse.Namespace) -> int:
    """`qms demo`: the bundled hall, served on a simulated clock that runs
    `--speed` times faster than life, with simulated visitors and clerks."""
    import dataclasses

    from dispatcher.simulator import HallSimulator, SimulatedClock, demo_start

    if not 0 < args.speed < float("inf"):
        raise UsageError(f"--speed {args.speed:g} is not a speed: give a positive number")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    source = files("qms") / "demo_hall.toml"
    with as_file(source) as path:
        configs = load_halls([path])
    settings = Settings.from_env(
        configs=(), host=args.host, port=args.port, data_dir=args.data_dir, fsync=args.fsync
    )
    # A read of the hall reused for estimates is as old on the hall's clock
    # as in life (at 30x, 2 s would be a simulated minute).
    settings = dataclasses.replace(
        settings, estimate_max_age_s=settings.estimate_max_age_s / args.speed
    )
    hall = configs[0]
    # The whole app lives on the demo's clock, so waits are estimated and
    # measured on the time the visitors live in. It starts now if the hall
    # issues now, else at its next opening.
    now = time.time()
    clock = SimulatedClock(demo_start(hall, now), args.speed)
    started = datetime.fromtimestamp(clock.start, hall.timezone)
    when = "now" if clock.start == now else "the hall's next opening"
    base = f"http://{_url_host(settings.host)}:{settings.port}"
    api = f"{base}/api/v1/halls/{hall.id}"
    print(
        f"qms demo: {hall.name}, {len(hall.windows)} windows, simulated at {args.speed:g}x speed\n"
        f"  clock:          simulated, {args.speed:g}x real time, from "
        f"{started:%a %Y-%m-%d %H:%M} {hall.timezone.key} ({when});\n"
        "                  once the hall stops issuing and is empty, it skips to the next opening\n"
        f"  hall screen:    {base}/halls/{hall.id}/display?token=demo-display\n"
        f"  window strip:   {base}/halls/{hall.id}/windows/1/strip?token=demo-display\n"
        f"  kiosk:          {base}/halls/{hall.id}/kiosk?token=demo-kiosk\n"
        f"  clerk console:  {base}/halls/{hall.id}/windows/1?token=demo-clerk-1\n"
        f"  phone ticket:   {base}/halls/{hall.id}/remote\n"
        f"  dashboard:      {base}/halls/{hall.id}/dashboard?token=demo-manager\n"
        f"  live events:    ws://{_url_host(settings.host)}:{settings.port}"
        f"/ws/halls/{hall.id}/display?token=demo-display\n"
        f"  hall snapshot:  curl -H 'Authorization: Bearer demo-display' {api}/snapshot\n"
        f"  take a ticket:  curl -X POST -H 'Authorization: Bearer demo-kiosk' "
        f'-d \'{{"service": "social-security"}}\' {api}/tickets\n'
        f"  metrics:        {base}/metrics\n"
        f"  health:         {base}/healthz\n"
        "  stop with Ctrl-C",
        file=sys.stderr,
        flush=True,
    )
    simulator = HallSimulator(clock=clock)

    async def simulate(halls: Mapping[str, Hall]) -> None:
        if args.duration is None:
            await simulator.run(halls)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(simulator.run(halls), args.duration)
        # The path of `kill`: uvicorn shuts down gracefully, then re-raises
        # SIGTERM, which `_run_uvicorn` turns into a normal exit (0).
        os.kill(os.getpid(), signal.SIGTERM)

    return serve(settings, configs, background=[simulate], clock=clock, clock_rate=args.speed)


def simulate(args: argparse.Namespace) -> int:
    """`qms simulate`: one day played through the hall's scripts once per
    rule, on a scratch redis-server of its own (never the hall's Redis)."""
    config = _pick_hall(load_halls(hall_files([args.config])), args.hall)
    rules = list(dict.fromkeys(args.rule or RULES))
    for rule in rules:
        try:
            config_for_rule(config, rule)
        except UnknownRule as exc:
            raise UsageError(str(exc)) from None
    windows = None if args.windows is None else _count(args.windows, "--windows", "windows")
    visitors = None if args.visitors is None else _count(args.visitors, "--visitors", "visitors")
    seed = _integer(args.seed, "--seed")
    hall = config if windows is None else with_windows(config, windows)
    served_by = (
        f"the hall's {len(config.windows)} windows"
        if windows is None
        else f"{windows} windows, each serving every group"
    )
    try:
        if args.day is not None:
            if visitors is not None:
                raise UsageError("--visitors is for a generated day: leave it out with --day")
            on = _simulate_day(args.day)
            tickets = _archived_tickets(args.data_dir, config, on)
            day = archived_day(config, on, tickets, seed)
            source = f"the archived day's {len(day.arrivals)} tickets"
            if day.left_out:
                source += f" ({day.left_out} cancelled or of services gone, left out)"
        else:
            on = _open_day(config)
            count = visitors if visitors is not None else default_visitors(config, on)
            day = generate_day(config, on, count, seed)
            source = f"{count} generated visitors, seed {seed}"
    except EmptyDay as exc:
        raise CliError(str(exc)) from None
    with tempfile.TemporaryDirectory(prefix="qms-simulate-") as scratch:
        try:
            server = EmbeddedRedis.start(Path(scratch), fsync="everysec")
        except EmbeddedRedisError as exc:
            raise CliError(f"cannot start a scratch Redis: {exc}") from None
        try:
            outcomes, seconds = asyncio.run(_play(server.url, hall, day, rules))
        finally:
            server.stop()
    report = output.Report(
        hall=f"{config.id} ({config.name})",
        day=on,
        source=source,
        windows=served_by,
        outcomes=outcomes,
        seconds=seconds,
    )
    if args.html is not None:
        try:
            args.html.write_text(output.render_html(report), encoding="utf-8")
        except OSError as exc:
            raise CliError(f"cannot write {args.html}: {exc.strerror or exc}") from None
    if args.json:
        print(json.dumps(output.to_json(report), ensure_ascii=False, indent=2))
    else:
        print(output.render_table(report), end="")
    for rule, s in seconds.items():
        print(f"qms: {rule}: {len(day.arrivals)} visitors played in {s:.1f} s", file=sys.stderr)
    return 0


async def _play(
    url: str, config: HallConfig, day: Day, rules: Sequence[str]
) -> tuple[dict[str, RuleOutcome], dict[str, float]]:
    redis = create_redis(url, max_connections=2)
    try:
        return await play_rules(redis, config, day, rules)
    except QmsError as exc:
        raise CliError(f"the scratch Redis failed: {one_line(exc.__cause__ or exc)}") from None
    finally:
        await redis.aclose()


def _count(raw: str, flag: str, what: str) -> int:
    """A whole number of at least 1 given on the command line."""
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise UsageError(f"{flag} {raw!r} is not a number of {what}: give a whole number from 1")
    return value


def _integer(raw: str, flag: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise UsageError(f"{flag} {raw!r} is not a whole number") from None


def _simulate_day(raw: str) -> date:
    try:
        return parse_day(raw)
    except Invalid:
        raise UsageError(f"--day {raw!r} is not a day: use YYYY-MM-DD (e.g. 2026-11-21)") from None


def _open_day(config: HallConfig) -> date:
    """The day a generated day falls on: the hall's today, or the next day it issues."""
    today = datetime.fromtimestamp(time.time(), config.timezone).date()
    for offset in range(14):
        on = today + timedelta(days=offset)
        if config.hours is None or config.hours.spans_on(on):
            return on
    raise CliError(f"hall {config.id} does not open in the next two weeks: nothing to simulate")


def _archived_tickets(data_dir: Path, config: HallConfig, on: date) -> list[ArchivedTicket]:
    """The hall's archived tickets of a day, where `qms report` finds them
    (without the rest of the serving settings: a scratch Redis needs none)."""
    url = archive_url(os.environ.get("QMS_ARCHIVE_URL") or default_archive_url(data_dir))
    archive = ArchiveHandle(url)
    try:
        return archive.day(config.id, on.isoformat())
    except Exception as exc:
        raise CliError(f"cannot read the archive at {archive}: {one_line(exc)}") from None
    finally:
        archive.close()
