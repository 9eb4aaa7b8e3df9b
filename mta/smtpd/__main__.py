"""Standalone smtpd: `python -m mta.smtpd -c CONFDIR --listen 127.0.0.1:PORT [--workers N]`.

Until the master exists this runs smtpd on its own: it reads CONFDIR/main.cf, opens the queue
under queue_directory and serves until SIGTERM or SIGINT. `--listen` may be repeated;
`--listen-fd N` serves an already-open listening socket. Exit status follows sysexits.
The master runs it as `-c CONFDIR --service NAME --listen-fd N... [-o name=value...]
[--max-use N] [--max-idle SECONDS]`; `-o` overrides a main.cf parameter for this service, as
in master.cf; --max-use and --max-idle retire each worker (mta.smtpd.worker), exit status 0.
"""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path

from mta.config.maincf import ConfigError, Settings, load_settings
from mta.queue import QueueError
from mta.smtpd.worker import Retirement, parse_address, run
from mta.util import maillog
from mta.util.sysexits import EX_CONFIG, EX_OSERR, EX_SOFTWARE, EX_USAGE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mta.smtpd", description=__doc__)
    parser.add_argument("-c", "--config-dir", type=Path, default=Path("."))
    parser.add_argument("--listen", action="append", default=[], metavar="HOST:PORT")
    parser.add_argument("--listen-fd", action="append", type=int, default=[], metavar="FD")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--service", default="smtpd", help="the master.cf service name")
    parser.add_argument("-o", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--max-use", type=int, default=0, metavar="N")
    parser.add_argument("--max-idle", type=float, default=0.0, metavar="SECONDS")
    args = parser.parse_args(argv)
    maillog.configure("smtpd")
    try:
        addresses = [parse_address(text) for text in args.listen]
    except ValueError as error:
        print(f"mta/smtpd: --listen {error}", file=sys.stderr)
        return EX_USAGE
    if (not addresses and not args.listen_fd) or args.workers < 1:
        print("mta/smtpd: give --listen or --listen-fd, and --workers >= 1", file=sys.stderr)
        return EX_USAGE
    if args.max_use < 0 or args.max_idle < 0:
        print("mta/smtpd: --max-use and --max-idle must not be negative", file=sys.stderr)
        return EX_USAGE
    retirement = Retirement(max_use=args.max_use, max_idle=args.max_idle)
    try:
        settings = load_settings(args.config_dir)
        overrides = dict(setting.partition("=")[::2] for setting in args.o)
        if overrides:
            origins = {k: v for k, v in settings.origins.items() if k not in overrides}
            settings = Settings({**settings.parameters, **overrides}, origins)
        inherited = [socket.socket(fileno=fd) for fd in args.listen_fd]
        return run(settings, addresses, args.workers, inherited, retirement)
    except (ConfigError, QueueError) as error:
        print(f"mta/smtpd: fatal: {error}", file=sys.stderr)
        return EX_CONFIG if isinstance(error, ConfigError) else EX_SOFTWARE
    except OSError as error:
        print(f"mta/smtpd: fatal: {error}", file=sys.stderr)
        return EX_OSERR


if __name__ == "__main__":
    sys.exit(main())
