"""`python -m mta.qmgr -c CONFDIR [--service NAME]`: the queue manager, until SIGTERM.

The master may hand down listening sockets (`--listen-fd`) and `--max-use`/`--max-idle`, as
to every child; qmgr takes its wake-ups on $queue_directory/qmgr.trigger instead, so it closes
those sockets, and it never retires on its own. Exit status follows sysexits.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from dataclasses import replace
from pathlib import Path

from mta.config.maincf import ConfigError, load_settings
from mta.config.mastercf import load_services
from mta.qmgr.manager import Qmgr
from mta.qmgr.settings import QmgrSettings
from mta.queue import MailQueue, QueueError, QueueSettings
from mta.util import maillog
from mta.util.sysexits import EX_CONFIG, EX_OSERR, EX_SOFTWARE


async def serve(qmgr: Qmgr) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await qmgr.run(stop)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mta.qmgr", description=__doc__)
    parser.add_argument("-c", "--config-dir", type=Path, default=Path("."))
    parser.add_argument("--service", default="qmgr")
    parser.add_argument("--listen-fd", action="append", type=int, default=[], metavar="FD")
    parser.add_argument("--max-use", type=int, default=0)
    parser.add_argument("--max-idle", type=float, default=0)
    args = parser.parse_args(argv)
    maillog.configure(args.service)
    for descriptor in args.listen_fd:
        os.close(descriptor)
    try:
        settings = load_settings(args.config_dir)
        qmgr_settings = QmgrSettings.from_settings(settings, load_services(args.config_dir))
        # qmgr's commits may be undone by a crash at no cost (QueueSettings.metasync): one
        # fdatasync per commit instead of two, and smtpd's durable commits wait less for
        # LMDB's writer lock.
        queue_settings = replace(
            QueueSettings.from_parameters(settings.queue_directory, settings.get), metasync=False
        )
        with MailQueue(queue_settings) as queue:
            qmgr = Qmgr(qmgr_settings, queue)
            try:
                import uvloop
            except ImportError:
                asyncio.run(serve(qmgr))
            else:
                uvloop.run(serve(qmgr))
    except ConfigError as error:
        print(f"mta/{args.service}: fatal: {error}", file=sys.stderr)
        return EX_CONFIG
    except QueueError as error:
        print(f"mta/{args.service}: fatal: {error}", file=sys.stderr)
        return EX_SOFTWARE
    except OSError as error:
        print(f"mta/{args.service}: fatal: {error}", file=sys.stderr)
        return EX_OSERR
    return 0


if __name__ == "__main__":
    sys.exit(main())
