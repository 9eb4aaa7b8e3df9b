"""master.cf in Postfix syntax: fields, defaults, overrides, listeners; errors name file, line."""

from __future__ import annotations

from pathlib import Path

import pytest

from mta.config.maincf import ConfigError
from mta.config.mastercf import (
    DEFAULT_MASTER_CF_ORIGIN,
    Service,
    load_services,
    parse_master_cf,
)

# master.cf line -> (name, type, private, unprivileged, wakeup, maxproc, command, overrides)
GOLDEN = [
    (
        "127.0.0.1:2525 inet n - n - - smtpd",
        ("127.0.0.1:2525", "inet", False, True, 0, None, "smtpd", ()),
    ),
    ("smtp inet n - - - 4 smtpd", ("smtp", "inet", False, True, 0, 4, "smtpd", ())),
    ("[::1]:2525 inet n - n - - smtpd", ("[::1]:2525", "inet", False, True, 0, None, "smtpd", ())),
    ("qmgr unix n - n 300 1 qmgr", ("qmgr", "unix", False, True, 300, 1, "qmgr", ())),
    ("qmgr fifo n - n 300? 1 qmgr", ("qmgr", "fifo", False, True, 300, 1, "qmgr", ())),
    ("local unix - n n - - local", ("local", "unix", True, False, 0, None, "local", ())),
    (
        "discard unix - - n - - discard -o syslog_name=mta/discard -omax_use=5",
        (
            "discard",
            "unix",
            True,
            True,
            0,
            None,
            "discard",
            (("syslog_name", "mta/discard"), ("max_use", "5")),
        ),
    ),
    ("error unix y y n - 0 error", ("error", "unix", True, True, 0, 0, "error", ())),
]


def summary(service: Service) -> tuple[object, ...]:
    return (
        service.name,
        service.type,
        service.private,
        service.unprivileged,
        service.wakeup,
        service.maxproc,
        service.command,
        service.overrides,
    )


@pytest.mark.parametrize(("line", "expected"), GOLDEN, ids=[line for line, _ in GOLDEN])
def test_golden_master_cf_lines(line: str, expected: tuple[object, ...]) -> None:
    [service] = parse_master_cf(line + "\n", "master.cf")
    assert summary(service) == expected
    assert service.origin == "master.cf, line 1"


# master.cf text -> the error, which names the file and the line of the entry
ERRORS = [
    ("a unix - - n - - discard\nb bogus - - n - - discard\n", "line 2: service type 'bogus'"),
    ("x unix - - n - - nosuch\n", "line 1: unknown command 'nosuch'"),
    ("x unix - - n - -\n", "line 1: expected 8 fields"),
    ("x unix maybe - n - - discard\n", "line 1: private field 'maybe'"),
    ("x unix - - y - - discard\n", "line 1: chroot y is not supported"),
    ("x unix - - n - many discard\n", "line 1: maxproc field 'many'"),
    ("x unix - - n - 5000 discard\n", "line 1: maxproc field '5000': more than 1000"),
    ("qmgr unix n - n 300 2 qmgr\n", "line 1: qmgr must run as exactly one process"),
    ("x unix - - n - - discard -v\n", "line 1: unsupported argument '-v'"),
    ("x unix - - n - - discard -o\n", "line 1: -o without name=value"),
    ("x unix - - n - - discard -o novalue\n", "line 1: -o 'novalue': expected name=value"),
    ("127.0.0.1:99999 inet n - n - - smtpd\n", "line 1: inet service '127.0.0.1:99999': port"),
    ("::1:25 inet n - n - - smtpd\n", "expected host:port or \\[ipv6\\]:port"),
    ("nosuchport inet n - n - - smtpd\n", "unknown port name 'nosuchport'"),
    ("a/b unix - - n - - discard\n", "line 1: unix service name 'a/b' must be a plain word"),
    ("  stray continuation\n", "line 1: continuation line without a service"),
    (
        "# c\nx unix - - n - - discard\n\nx unix - - n - - error\n",
        "line 4: duplicate service x/unix, first defined at master.cf, line 2",
    ),
]


@pytest.mark.parametrize(("text", "message"), ERRORS, ids=[m for _, m in ERRORS])
def test_errors_name_file_and_line(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=r"^master\.cf, .*" + message):
        parse_master_cf(text, "master.cf")


def test_continuation_lines_and_comments() -> None:
    text = "# header\n\nsmtp inet n - n - - smtpd\n  -o smtpd_banner=hello\n\t-o x=1\n"
    [service] = parse_master_cf(text, "master.cf")
    assert service.overrides == (("smtpd_banner", "hello"), ("x", "1"))


def test_several_listeners_for_one_command() -> None:
    text = "127.0.0.1:2525 inet n - n - - smtpd\n127.0.0.1:2526 inet n - n - - smtpd\n"
    services = parse_master_cf(text, "master.cf")
    assert [s.inet_endpoint() for s in services] == [("127.0.0.1", 2525), ("127.0.0.1", 2526)]


def test_inet_endpoints() -> None:
    text = "smtp inet n - n - - smtpd\n[::1]:2525 inet n - n - - smtpd\n2526 inet n - n - - smtpd\n"
    services = parse_master_cf(text, "master.cf")
    assert [s.inet_endpoint() for s in services] == [(None, 25), ("::1", 2525), (None, 2526)]


def test_missing_master_cf_means_the_builtin_table(tmp_path: Path) -> None:
    services = load_services(tmp_path)
    assert [(s.name, s.command) for s in services] == [
        ("127.0.0.1:2525", "smtpd"),
        ("qmgr", "qmgr"),
        ("discard", "discard"),
        ("error", "error"),
        ("retry", "error"),
        ("local", "local"),
        ("smtp", "smtp"),
        ("relay", "smtp"),
        ("lmtp", "lmtp"),
    ]
    assert all(s.builtin and s.origin.startswith(DEFAULT_MASTER_CF_ORIGIN) for s in services)
    assert [s.module for s in services[1:]] == [
        "mta.qmgr",
        "mta.agents.discard",
        "mta.agents.error",
        "mta.agents.error",
        "mta.agents.local",
        "mta.agents.smtp",
        "mta.agents.smtp",
        "mta.agents.lmtp",
    ]


def test_master_cf_file_errors_name_its_path(tmp_path: Path) -> None:
    (tmp_path / "master.cf").write_text("x unix - - n - - discard\nbad\n")
    with pytest.raises(ConfigError, match=rf"^{tmp_path}/master\.cf, line 2: expected 8 fields"):
        load_services(tmp_path)
