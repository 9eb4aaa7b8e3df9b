"""`mta start|stop|reload|status`: the postfix(1) lifecycle commands.

    mta -c CONFDIR start [--foreground]   check the configuration, then run the master
    mta -c CONFDIR stop                   SIGTERM to the master; wait until it is gone
    mta -c CONFDIR reload                 SIGHUP to the master (it re-reads both files)
    mta -c CONFDIR status [--json]        services and PIDs, queue sizes, message rates

`start` checks main.cf and master.cf first and refuses a broken one with one line naming the
file and line (`mta: fatal: main.cf, line 7: smtpd_timeout = 5x: bad time value`). It then
detaches (double fork, new session, stdin/stdout on /dev/null) and logs to maillog_file or
$data_directory/maillog; it returns once the master holds its lock and has bound its sockets,
so a port in use is reported here, not only in the log. With --foreground the master stays
attached, logs to stderr (or maillog_file) and exits 0 on SIGTERM or Ctrl-C.

A master is believed running only while it holds $data_directory/master.lock, so a stale
master.pid is never signalled.

Exit status (sysexits): 0; EX_CONFIG (78) for a bad configuration; EX_UNAVAILABLE (69) when
the mail system is not running (stop, reload, status) or already running (start) -- where
postfix(1) exits 1, we keep to sysexits like every other mta command; EX_TEMPFAIL (75) when
the master did not stop in time; EX_OSERR (71) when the master could not be started.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import IO, Any, NoReturn

import click

from mta.cli.context import app_context, emit_json_line
from mta.config.maincf import ConfigError, Settings
from mta.util import maillog
from mta.util.sysexits import EX_CONFIG, EX_OSERR, EX_TEMPFAIL, EX_UNAVAILABLE

STOP_GRACE_SECONDS = 10.0  # on top of master_stop_timeout, for the master's own shutdown
START_TIMEOUT_SECONDS = 30.0
RATE_SAMPLE_SECONDS = 1.1  # qmgr rewrites qmgr.stats about once a second
MAX_STATS_BYTES = 64 * 1024
MAX_START_REPORT_BYTES = 4096
DEFAULT_MAILLOG_NAME = "maillog"


def fatal(message: str, code: int) -> NoReturn:
    """One line on stderr in Postfix's words, `mta: fatal: ...`, and a sysexits code."""
    click.echo(f"mta: fatal: {message}", err=True)
    sys.exit(code)


def _log_path(settings: Settings, foreground: bool) -> Path | None:
    """maillog_file; else $data_directory/maillog in the background, stderr in the foreground."""
    configured = settings.get("maillog_file").strip()
    if configured:
        return Path(configured).absolute()
    return None if foreground else settings.data_directory / DEFAULT_MAILLOG_NAME


@click.command("start")
@click.option("--foreground", is_flag=True, help="Stay attached; log to stderr.")
@click.pass_context
def start_command(ctx: click.Context, foreground: bool) -> None:
    """Start the mail system (postfix start)."""
    from mta.master.control import running_master_pid
    from mta.master.master import load_config

    config_dir = app_context(ctx).config_dir
    maillog.configure("master")  # warnings about the configuration go to the terminal
    try:
        config = load_config(config_dir)
    except ConfigError as error:
        fatal(str(error), EX_CONFIG)
    pid = running_master_pid(config.data_directory)
    if pid is not None:
        fatal(f"the mail system is already running (master pid {pid})", EX_UNAVAILABLE)
    settings = config.settings
    log_path = _log_path(settings, foreground)
    syslog_name = settings.get("syslog_name").strip()
    if foreground:
        sys.exit(_run_master(config, log_path, syslog_name, report=None))
    _daemonize(config, log_path, syslog_name)


def _run_master(config: Any, log_path: Path | None, syslog_name: str, report: int | None) -> int:
    """Run the master in this process; `report` is a pipe told "" (ready) or the error."""
    from mta.master.control import AlreadyRunning
    from mta.master.master import MasterError, start_master

    log_stream: IO[str] | None = None
    if log_path is not None:
        log_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        log_stream = log_path.open("a", encoding="utf-8")
        if report is not None:
            os.dup2(log_stream.fileno(), 2)  # a crash of the detached master is logged too
    maillog.configure("master", path=log_path, syslog_name=syslog_name)
    try:
        master = start_master(config, log_stream)
    except (AlreadyRunning, MasterError) as error:
        if report is None:
            fatal(str(error), EX_UNAVAILABLE if isinstance(error, AlreadyRunning) else EX_OSERR)
        os.write(report, str(error).encode()[:MAX_START_REPORT_BYTES])
        return EX_OSERR
    if report is not None:
        os.close(report)
    return master.serve()


def _daemonize(config: Any, log_path: Path | None, syslog_name: str) -> NoReturn:
    """Double fork; the parent returns when the master reports that it is running."""
    read_end, write_end = os.pipe()
    first = os.fork()
    if first == 0:
        os.close(read_end)
        os.setsid()
        if os.fork() != 0:
            os._exit(0)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.close(null)
        code = 1
        try:
            code = _run_master(config, log_path, syslog_name, report=write_end)
        finally:
            os._exit(code)
    os.close(write_end)
    os.waitpid(first, 0)
    report = b""
    with os.fdopen(read_end, "rb") as pipe:
        report = pipe.read(MAX_START_REPORT_BYTES)  # EOF: ready (or the master died)
    if report:
        fatal(report.decode(errors="replace"), EX_OSERR)
    from mta.master.control import running_master_pid

    if running_master_pid(config.data_directory) is None:
        fatal(f"the master did not start; see {log_path}", EX_OSERR)
    click.echo("mta: starting the mail system", err=True)
    sys.exit(0)


def _settings(ctx: click.Context) -> Settings:
    from mta.config.maincf import load_settings

    try:
        return load_settings(app_context(ctx).config_dir)
    except ConfigError as error:
        fatal(str(error), EX_CONFIG)


def _running_pid(settings: Settings) -> int:
    from mta.master.control import running_master_pid

    pid = running_master_pid(settings.data_directory)
    if pid is None:
        fatal("the mail system is not running", EX_UNAVAILABLE)
    return pid


@click.command("stop")
@click.pass_context
def stop_command(ctx: click.Context) -> None:
    """Stop the mail system (postfix stop): children finish, then the master exits."""
    from mta.config.values import duration
    from mta.master.control import running_master_pid

    settings = _settings(ctx)
    pid = _running_pid(settings)
    try:
        timeout = duration(settings, "master_stop_timeout") + STOP_GRACE_SECONDS
    except ConfigError as error:
        fatal(str(error), EX_CONFIG)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while running_master_pid(settings.data_directory) is not None:
        if time.monotonic() > deadline:
            fatal(f"the master (pid {pid}) did not stop within {timeout:.0f}s", EX_TEMPFAIL)
        time.sleep(0.05)
    click.echo("mta: stopping the mail system", err=True)


@click.command("reload")
@click.pass_context
def reload_command(ctx: click.Context) -> None:
    """Re-read main.cf and master.cf (postfix reload); a broken one is refused and logged."""
    from mta.master.master import load_config

    settings = _settings(ctx)
    pid = _running_pid(settings)
    maillog.configure("reload")
    try:
        load_config(app_context(ctx).config_dir)  # say so here too, not only in the log
    except ConfigError as error:
        fatal(f"{error}; the running configuration is kept", EX_CONFIG)
    os.kill(pid, signal.SIGHUP)
    click.echo("mta: refreshing the mail system", err=True)


def _read_stats(path: Path) -> dict[str, Any] | None:
    try:
        with path.open("rb") as handle:
            stats = json.loads(handle.read(MAX_STATS_BYTES))
    except (OSError, ValueError):
        return None
    return stats if isinstance(stats, dict) else None


def _rates(data_directory: Path) -> dict[str, float] | None:
    """Messages per second received and delivered, from two qmgr.stats samples."""
    path = data_directory / "qmgr.stats"
    first = _read_stats(path)
    if first is None:
        return None
    time.sleep(RATE_SAMPLE_SECONDS)
    second = _read_stats(path) or first
    elapsed = max(float(second.get("time", 0)) - float(first.get("time", 0)), 0.0)
    rates = {}
    for counter in ("received", "delivered"):
        change = int(second.get(counter, 0)) - int(first.get(counter, 0))
        rates[counter] = round(change / elapsed, 1) if elapsed else 0.0
    return rates


def _queue_sizes(settings: Settings) -> dict[str, int] | None:
    from mta.queue import MailQueue, QueueError, QueueName, QueueSettings

    try:
        queue_settings = QueueSettings.from_parameters(settings.queue_directory, settings.get)
        with MailQueue(queue_settings, create=False) as queue:
            return {name.value: queue.count(name) for name in QueueName}
    except QueueError:
        return None


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@click.pass_context
def status_command(ctx: click.Context, as_json: bool) -> None:
    """Show the services with their PIDs, the queue sizes and message rates (postfix status)."""
    from mta.master.control import read_status

    settings = _settings(ctx)
    pid = _running_pid(settings)
    master = read_status(settings.data_directory) or {"pid": pid, "services": []}
    record = {
        "running": True,
        "pid": pid,
        "generation": master.get("generation"),
        "started": master.get("started"),
        "services": master.get("services", []),
        "queue": _queue_sizes(settings),
        "rates": _rates(settings.data_directory),
    }
    if as_json:
        emit_json_line(record)
        return
    click.echo(f"mta: the mail system is running: master pid {pid}")
    for service in record["services"]:
        pids = " ".join(str(process["pid"]) for process in service.get("processes", []))
        listen = " ".join(service.get("listen", []))
        click.echo(f"  {service['name']:<20} {service['type']:<5} {pids or '-'}  {listen}")
    if record["queue"] is not None:
        sizes = ", ".join(f"{name} {count}" for name, count in record["queue"].items())
        click.echo(f"  queue: {sizes}")
    if record["rates"] is not None:
        rates = record["rates"]
        click.echo(f"  rates: {rates['received']} received/s, {rates['delivered']} delivered/s")


LIFECYCLE_COMMANDS = (start_command, stop_command, reload_command, status_command)
