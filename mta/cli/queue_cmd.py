"""`mta queue`: list, show and manage the mail queue, while the MTA runs (postqueue, postsuper).

  list [--json]                    postqueue -p / -j (mailq): one entry per message
  show [-e] [-h] [-b] ID           postcat -q: envelope, headers, body
  hold|release|delete|requeue ID.. postsuper -h / -H / -d / -r; ID may be ALL, or - to read
                                   ids from standard input
  flush                            postqueue -f: make all deferred mail due now

Works on the queue_directory of main.cf in the -c directory. Listing uses read-only LMDB
transactions (a snapshot; writers are never blocked); changes are short write transactions,
so the daemons keep running. Trusts the queue records no more than any reader does: corrupt
ones are skipped and moved to the corrupt queue. Exit codes follow sysexits: EX_NOINPUT when
there is no queue, EX_NOPERM without permission, EX_DATAERR when no given id matched,
EX_CONFIG for a bad main.cf.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import click

from mta.cli.context import app_context, emit_json_line, fail
from mta.config.maincf import ConfigError, load_settings
from mta.queue import (
    MailQueue,
    QueueAccessError,
    QueuedMessage,
    QueueError,
    QueueName,
    QueueSettings,
    UnknownQueueIdError,
)
from mta.util import sysexits
from mta.util.trigger import FLUSH_DEFERRED, TriggerSender, trigger_path

LISTED_QUEUES = (QueueName.INCOMING, QueueName.ACTIVE, QueueName.DEFERRED, QueueName.HOLD)
QUEUE_MARKERS = {QueueName.ACTIVE: "*", QueueName.HOLD: "!"}
MAX_STDIN_IDS = 1_000_000
MAX_STDIN_LINE_BYTES = 256
RECIPIENT_INDENT = " " * 42
REASON_INDENT = " " * 7
NULL_SENDER = "MAILER-DAEMON"


@click.group("queue")
def queue_group() -> None:
    """List, show and manage the mail queue (postqueue, postsuper, postcat)."""


@contextmanager
def open_queue(ctx: click.Context) -> Iterator[MailQueue]:
    """The instance's queue, or a one-line error and a sysexits code."""
    context = app_context(ctx)
    try:
        directory = context.queue_directory
        settings = QueueSettings.from_parameters(directory, load_settings(context.config_dir).get)
    except (ConfigError, QueueError) as error:
        fail(str(error), sysexits.EX_CONFIG)
    if not directory.is_dir():
        fail(f"queue directory {directory} does not exist", sysexits.EX_NOINPUT)
    try:
        queue = MailQueue(settings, create=False)
    except QueueAccessError as error:
        fail(str(error), sysexits.EX_NOPERM)
    except QueueError as error:
        fail(str(error), sysexits.EX_TEMPFAIL)
    try:
        yield queue
    except QueueAccessError as error:
        fail(str(error), sysexits.EX_NOPERM)
    except UnknownQueueIdError as error:
        fail(str(error), sysexits.EX_DATAERR)
    except QueueError as error:
        fail(str(error), sysexits.EX_TEMPFAIL)
    finally:
        queue.close()


# -- list ---------------------------------------------------------------------------------------


@queue_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="JSON Lines, the fields of postqueue -j.")
@click.pass_context
def list_command(ctx: click.Context, as_json: bool) -> None:
    """List queued mail, like mailq / postqueue -p."""
    with open_queue(ctx) as queue:
        messages = queue.scan(LISTED_QUEUES)
        if as_json:
            for message in messages:
                emit_json_line(json_record(message))
            return
        total_bytes = count = 0
        for message in messages:
            if not count:
                click.echo("-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------")
            click.echo(text_entry(message))
            total_bytes += message.size
            count += 1
        if not count:
            click.echo("Mail queue is empty")
        else:
            plural = "" if count == 1 else "s"
            click.echo(f"-- {(total_bytes + 1023) // 1024} Kbytes in {count} Request{plural}.")


def pending_recipients(message: QueuedMessage) -> list[tuple[str, str, str]]:
    """(address, original address, delay reason) of each recipient not yet delivered."""
    return [
        (state.recipient.address, state.recipient.orig_address, state.reason)
        for state in message.recipients
        if not state.status.final
    ]


def json_record(message: QueuedMessage) -> dict[str, object]:
    recipients: list[dict[str, str]] = []
    for address, orig_address, reason in pending_recipients(message):
        entry = {"address": address}
        if orig_address and orig_address != address:
            entry["orig_address"] = orig_address
        if reason:
            entry["delay_reason"] = reason
        recipients.append(entry)
    return {
        "queue_name": message.queue_name,
        "queue_id": message.queue_id,
        "arrival_time": int(message.arrival_time),
        "message_size": message.size,
        "forced_expire": message.forced_expire,
        "sender": message.sender,
        "recipients": recipients,
    }


def text_entry(message: QueuedMessage) -> str:
    marker = QUEUE_MARKERS.get(QueueName(message.queue_name), " ")
    arrival = time.strftime("%a %b %e %H:%M:%S", time.localtime(message.arrival_time))
    lines = [
        f"{message.queue_id}{marker} {message.size:>8} {arrival:<20}  "
        f"{message.sender or NULL_SENDER}"
    ]
    last_reason = ""
    for address, _, reason in pending_recipients(message):
        if reason and reason != last_reason:
            lines.append(f"{REASON_INDENT}({reason})")
        last_reason = reason
        lines.append(f"{RECIPIENT_INDENT}{address}")
    return "\n".join(lines) + "\n"


# -- show ---------------------------------------------------------------------------------------


@queue_group.command("show", context_settings={"help_option_names": ["--help"]})
@click.option("-e", "--envelope", is_flag=True, help="Show the envelope.")
@click.option("-h", "--headers", is_flag=True, help="Show the headers.")
@click.option("-b", "--body", is_flag=True, help="Show the body.")
@click.argument("queue_id")
@click.pass_context
def show_command(
    ctx: click.Context, queue_id: str, envelope: bool, headers: bool, body: bool
) -> None:
    """Show one queued message, like postcat -q (all parts unless some are picked)."""
    if not (envelope or headers or body):
        envelope = headers = body = True
    with open_queue(ctx) as queue:
        message = queue.get(queue_id)
        content = queue.content(queue_id) if headers or body else b""
    where = f"{message.queue_name}/{message.queue_id}"
    out = sys.stdout.buffer
    if envelope:
        out.write(f"*** ENVELOPE RECORDS {where} ***\n".encode())
        out.write(envelope_text(message).encode("utf-8", "surrogateescape"))
    head, separator, rest = content.partition(b"\r\n\r\n")
    if headers:
        out.write(f"*** MESSAGE CONTENTS {where} ***\n".encode())
        out.write(as_local_lines(head + b"\r\n" if separator else head))
    if body:
        if headers:
            out.write(b"\n" if separator else b"")
        else:
            out.write(f"*** MESSAGE CONTENTS {where} ***\n".encode())
        out.write(as_local_lines(rest if separator else b""))
    out.write(f"*** MESSAGE FILE END {where} ***\n".encode())
    out.flush()


def envelope_text(message: QueuedMessage) -> str:
    arrival = time.strftime("%a %b %e %H:%M:%S %Y", time.localtime(message.arrival_time))
    lines = [
        f"message_size: {message.size}",
        f"message_arrival_time: {arrival}",
        f"sender: {message.sender}",
    ]
    lines += [f"named_attribute: {name}={value}" for name, value in message.extras.items()]
    if message.envid:
        lines.append(f"dsn_envid: {message.envid}")
    if message.dsn_ret:
        lines.append(f"dsn_ret: {message.dsn_ret.name}")
    if message.body_type:
        lines.append(f"body_type: {message.body_type.name}")
    if message.smtputf8:
        lines.append("smtputf8: yes")
    for state in message.recipients:
        recipient = state.recipient
        if recipient.orig_address:
            lines.append(f"original_recipient: {recipient.orig_address}")
        if recipient.orcpt:
            lines.append(f"dsn_orig_rcpt: {recipient.orcpt}")
        if recipient.notify:
            lines.append(f"dsn_notify: {recipient.notify.name}")
        status = "" if state.status.name == "PENDING" else f" ({state.status.name.lower()})"
        lines.append(f"recipient: {recipient.address}{status}")
    return "".join(line.replace("\r", "\\r").replace("\n", "\\n") + "\n" for line in lines)


def as_local_lines(content: bytes) -> bytes:
    """Content with CRLF line ends as the local newline, as postcat prints it."""
    return content.replace(b"\r\n", b"\n")


# -- hold, release, delete, requeue (postsuper) -------------------------------------------------


@dataclass(frozen=True)
class QueueAction:
    """One postsuper-like action: what it does to a set of ids, and how it reports."""

    summary: str
    """The postsuper summary, e.g. "Deleted"."""
    sources: tuple[QueueName, ...]
    """The queues ALL takes ids from."""
    apply: Callable[[MailQueue, list[str]], list[str]]


def moving(summary: str, sources: tuple[QueueName, ...], target: QueueName) -> QueueAction:
    """An action that moves messages from the queues of sources (only) to target."""
    return QueueAction(
        summary, sources, lambda queue, ids: queue.move(ids, target, only_from=sources)
    )


ACTIONS = {
    "hold": moving(
        "Placed on hold",
        (QueueName.INCOMING, QueueName.ACTIVE, QueueName.DEFERRED),
        QueueName.HOLD,
    ),
    "release": moving("Released from hold", (QueueName.HOLD,), QueueName.DEFERRED),
    "delete": QueueAction("Deleted", tuple(QueueName), lambda queue, ids: queue.delete(ids)),
    "requeue": moving(
        "Requeued",
        (QueueName.ACTIVE, QueueName.DEFERRED, QueueName.HOLD),
        QueueName.INCOMING,
    ),
}
ACTION_HELP = {
    "hold": "Put messages on hold (postsuper -h).",
    "release": "Release held messages, due now (postsuper -H).",
    "delete": "Delete messages (postsuper -d).",
    "requeue": "Send messages through the queue manager again (postsuper -r).",
}


def read_stdin_ids() -> list[str]:
    """Queue ids from standard input, one per line (the first word), bounded."""
    ids = []
    for number, raw in enumerate(sys.stdin.buffer, start=1):
        if number > MAX_STDIN_IDS:
            fail(f"more than {MAX_STDIN_IDS} queue ids on standard input", sysexits.EX_DATAERR)
        words = raw[:MAX_STDIN_LINE_BYTES].decode("ascii", "replace").split()
        if words:
            ids.append(words[0].rstrip("*!"))
    return ids


def is_queued(queue: MailQueue, queue_id: str) -> bool:
    """Whether queue_id names a queued message; warns as postsuper does when it does not."""
    try:
        found = queue.locate(queue_id) is not None
    except UnknownQueueIdError:
        found = False
    if not found:
        click.echo(f"postsuper: warning: {queue_id}: no such message", err=True)
    return found


def run_action(ctx: click.Context, name: str, queue_ids: tuple[str, ...]) -> None:
    action = ACTIONS[name]
    wanted: list[str] = []
    for queue_id in queue_ids:
        wanted.extend(read_stdin_ids() if queue_id == "-" else [queue_id])
    with open_queue(ctx) as queue:
        if "ALL" in wanted:
            valid = [qid for source in action.sources for qid in queue.queue_ids(source)]
        else:
            valid = [qid for qid in dict.fromkeys(wanted) if is_queued(queue, qid)]
        done = action.apply(queue, valid) if valid else []
    if done:
        plural = "" if len(done) == 1 else "s"
        click.echo(f"postsuper: {action.summary}: {len(done)} message{plural}", err=True)
    elif wanted and "ALL" not in queue_ids:
        fail("no message matched", sysexits.EX_DATAERR)


def make_action_command(name: str) -> click.Command:
    @click.pass_context
    def command(ctx: click.Context, queue_ids: tuple[str, ...]) -> None:
        run_action(ctx, name, queue_ids)

    command.__doc__ = ACTION_HELP[name] + " IDs may be ALL, or - to read them from stdin."
    return click.command(name)(
        click.argument("queue_ids", nargs=-1, required=True, metavar="ID...|ALL|-")(command)
    )


for _action in ACTIONS:
    queue_group.add_command(make_action_command(_action))


# -- flush --------------------------------------------------------------------------------------


@queue_group.command("flush")
@click.pass_context
def flush_command(ctx: click.Context) -> None:
    """Make all deferred mail due now and wake the qmgr, like postqueue -f."""
    with open_queue(ctx) as queue:
        due = flush(queue)
    click.echo(f"mta: flush: {due} deferred message{'' if due == 1 else 's'} due now", err=True)


def flush(queue: MailQueue) -> int:
    """Mark deferred mail due now, then tell a running qmgr (if any) to look at once."""
    due = queue.flush_deferred()
    sender = TriggerSender(trigger_path(queue.settings.directory))
    try:
        sender.send(FLUSH_DEFERRED)
    finally:
        sender.close()
    return due
