"""ServerEngine.reply() and data_to_send(): formatting, refusals, one write per group."""

from __future__ import annotations

from types import ModuleType

import pytest

from .driver import Session


def _ready(impl: ModuleType) -> Session:
    session = Session(impl)
    session.engine.data_to_send()
    session.engine.receive_data(b"NOOP\r\n")
    session.engine.next_event()
    return session


def test_single_line_reply_with_enhanced_status(impl: ModuleType) -> None:
    session = _ready(impl)
    session.engine.reply(250, "Ok", "2.0.0")
    assert session.engine.data_to_send() == b"250 2.0.0 Ok\r\n"


def test_single_line_reply_without_enhanced_status(impl: ModuleType) -> None:
    session = _ready(impl)
    session.engine.reply(250, "Ok")
    assert session.engine.data_to_send() == b"250 Ok\r\n"


def test_multi_line_reply_repeats_code_and_status(impl: ModuleType) -> None:
    session = _ready(impl)
    session.engine.reply(250, ["mx.example", "PIPELINING", "SIZE 10240000"], "2.0.0")
    assert session.engine.data_to_send() == (
        b"250-2.0.0 mx.example\r\n250-2.0.0 PIPELINING\r\n250 2.0.0 SIZE 10240000\r\n"
    )


def test_empty_text_reply(impl: ModuleType) -> None:
    session = _ready(impl)
    session.engine.reply(334, "")
    assert session.engine.data_to_send() == b"334 \r\n"


def test_reply_text_with_cr_lf_or_nul_is_refused(impl: ModuleType) -> None:
    for text in ("a\r\n250 forged", "a\nb", "a\rb", "a\x00b"):
        session = _ready(impl)
        with pytest.raises(ValueError):
            session.engine.reply(250, text)
        with pytest.raises(ValueError):
            session.engine.reply(250, ["ok", text])
        assert session.engine.data_to_send() == b""
        assert session.engine.awaiting_reply


def test_reply_line_over_512_octets_is_refused(impl: ModuleType) -> None:
    session = _ready(impl)
    with pytest.raises(ValueError):
        session.engine.reply(250, "x" * 507)
    session.engine.reply(250, "x" * 506)
    assert len(session.engine.data_to_send()) == 512


def test_reply_code_out_of_range_is_refused(impl: ModuleType) -> None:
    for code in (199, 600, 0):
        session = _ready(impl)
        with pytest.raises(ValueError):
            session.engine.reply(code, "x")


def test_reply_with_no_lines_is_refused(impl: ModuleType) -> None:
    session = _ready(impl)
    with pytest.raises(ValueError):
        session.engine.reply(250, [])


def test_replying_when_nothing_awaits_is_refused(impl: ModuleType) -> None:
    session = _ready(impl)
    session.engine.reply(250, "Ok")
    with pytest.raises(RuntimeError):
        session.engine.reply(250, "again")


def test_replying_to_a_bdat_event_is_refused(impl: ModuleType) -> None:
    session = Session(impl)
    session.feed(b"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n")
    session.engine.receive_data(b"BDAT 3\r\nab")
    session.engine.next_event()
    with pytest.raises(RuntimeError):
        session.engine.reply(250, "Ok")


def test_replying_after_close_is_refused(impl: ModuleType) -> None:
    session = Session(impl)
    session.feed(b"QUIT\r\n")
    with pytest.raises(RuntimeError):
        session.engine.reply(250, "Ok")


def test_data_to_send_returns_every_queued_reply_in_one_write(impl: ModuleType) -> None:
    engine = impl.ServerEngine()
    engine.reply(220, "hi")
    engine.receive_data(b"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nRCPT TO:<e@f>\r\n")
    for _ in range(4):
        engine.next_event()
        engine.reply(250, "ok")
    assert engine.data_to_send() == b"220 hi\r\n" + b"250 ok\r\n" * 4
    assert engine.data_to_send() == b""


def test_utf8_reply_text_is_encoded(impl: ModuleType) -> None:
    session = _ready(impl)
    session.engine.reply(250, "d\u00e9j\u00e0")
    assert session.engine.data_to_send() == "250 d\u00e9j\u00e0\r\n".encode()
