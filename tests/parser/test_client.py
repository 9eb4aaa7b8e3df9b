"""Client side: ReplyParser and DotStuffer / dot_stuff, with a round trip through the engine."""

from __future__ import annotations

import re
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotpath.events import EndOfData, Reply, ReplySyntaxError, ServerLimits

from .driver import ENVELOPE, run, split_at
from .strategies import cuts


def replies(impl: ModuleType, data: bytes, **options: int) -> list[Reply]:
    parser = impl.ReplyParser(**options)
    parser.receive_data(data)
    out: list[Reply] = []
    while (reply := parser.next_reply()) is not None:
        out.append(reply)
    return out


# -- ReplyParser ---------------------------------------------------------------------------


def test_single_line_reply_with_enhanced_status(impl: ModuleType) -> None:
    assert replies(impl, b"250 2.1.0 Ok\r\n") == [Reply(250, "2.1.0", ("Ok",))]


def test_reply_without_enhanced_status(impl: ModuleType) -> None:
    assert replies(impl, b"220 mx.example ESMTP\r\n") == [Reply(220, None, ("mx.example ESMTP",))]


def test_multi_line_reply(impl: ModuleType) -> None:
    data = b"250-mx.example\r\n250-PIPELINING\r\n250 CHUNKING\r\n"
    assert replies(impl, data) == [Reply(250, None, ("mx.example", "PIPELINING", "CHUNKING"))]


def test_multi_line_reply_with_enhanced_status_on_every_line(impl: ModuleType) -> None:
    data = b"550-5.1.1 No such user\r\n550 5.1.1 here\r\n"
    assert replies(impl, data) == [Reply(550, "5.1.1", ("No such user", "here"))]


def test_enhanced_status_of_another_class_is_text(impl: ModuleType) -> None:
    assert replies(impl, b"250 5.1.1 odd\r\n") == [Reply(250, None, ("5.1.1 odd",))]


def test_code_only_reply_line(impl: ModuleType) -> None:
    assert replies(impl, b"250\r\n") == [Reply(250, None, ("",))]


def test_bare_lf_reply_line_is_tolerated(impl: ModuleType) -> None:
    assert replies(impl, b"250-a\n250 b\n") == [Reply(250, None, ("a", "b"))]


def test_several_replies_in_one_read(impl: ModuleType) -> None:
    assert [r.code for r in replies(impl, b"250 a\r\n354 go\r\n")] == [250, 354]


def test_incomplete_reply_waits_for_more(impl: ModuleType) -> None:
    parser = impl.ReplyParser()
    parser.receive_data(b"250-a\r\n250 b")
    assert parser.next_reply() is None
    parser.receive_data(b"\r\n")
    assert parser.next_reply() == Reply(250, None, ("a", "b"))


def test_mismatched_codes_in_a_multi_line_reply_are_refused(impl: ModuleType) -> None:
    with pytest.raises(ReplySyntaxError):
        replies(impl, b"250-a\r\n251 b\r\n")


def test_malformed_reply_lines_are_refused(impl: ModuleType) -> None:
    for line in (b"25 x\r\n", b"abc x\r\n", b"650 x\r\n", b"150 x\r\n", b"250x\r\n", b"\r\n"):
        with pytest.raises(ReplySyntaxError):
            replies(impl, line)


def test_over_long_reply_line_is_refused(impl: ModuleType) -> None:
    assert replies(impl, b"250 " + b"x" * 94 + b"\r\n", line_limit=100)[0].code == 250
    with pytest.raises(ReplySyntaxError):
        replies(impl, b"250 " + b"x" * 95 + b"\r\n", line_limit=100)


def test_over_long_reply_line_without_lf_is_refused_at_once(impl: ModuleType) -> None:
    parser = impl.ReplyParser(line_limit=100)
    with pytest.raises(ReplySyntaxError):
        parser.receive_data(b"250 " + b"x" * 200)


def test_over_long_reply_line_after_a_complete_reply_is_refused(impl: ModuleType) -> None:
    parser = impl.ReplyParser(line_limit=100)
    parser.receive_data(b"250 ok\r\n" + b"x" * 1000)
    assert parser.next_reply() == Reply(250, None, ("ok",))
    with pytest.raises(ReplySyntaxError):
        parser.next_reply()


def test_partial_reply_line_of_exactly_the_limit_is_refused(impl: ModuleType) -> None:
    parser = impl.ReplyParser(line_limit=100)
    parser.receive_data(b"250 " + b"x" * 96)
    with pytest.raises(ReplySyntaxError):
        parser.next_reply()


def test_too_many_reply_lines_are_refused(impl: ModuleType) -> None:
    at_limit = b"250-x\r\n" * 9 + b"250 x\r\n"
    assert len(replies(impl, at_limit, max_lines=10)[0].lines) == 10
    with pytest.raises(ReplySyntaxError):
        replies(impl, b"250-x\r\n" * 10 + b"250 x\r\n", max_lines=10)


@settings(max_examples=100, deadline=None)
@given(
    lines=st.lists(
        st.tuples(st.sampled_from([220, 250, 354, 421, 550]), st.text(max_size=30)), max_size=6
    ),
    cut_points=cuts,
)
def test_reply_parser_is_split_invariant(
    impl: ModuleType, lines: list[tuple[int, str]], cut_points: list[int]
) -> None:
    data = b"".join(
        f"{code}-{text}\r\n{code} end\r\n".encode()
        for code, text in lines
        if not re.search(r"[\r\n]", text)
    )
    whole = replies(impl, data)
    parser = impl.ReplyParser()
    pieces: list[Reply] = []
    for piece in split_at(data, cut_points):
        parser.receive_data(piece)
        while (reply := parser.next_reply()) is not None:
            pieces.append(reply)
    assert pieces == whole


# -- DotStuffer ----------------------------------------------------------------------------

STUFFING = [
    (b"", b".\r\n"),
    (b"a", b"a\r\n.\r\n"),
    (b"a\r\n", b"a\r\n.\r\n"),
    (b".", b"..\r\n.\r\n"),
    (b".a\r\n.b\r\n", b"..a\r\n..b\r\n.\r\n"),
    (b"a\r\n.\r\nb", b"a\r\n..\r\nb\r\n.\r\n"),
    (b"a\nb\n", b"a\r\nb\r\n.\r\n"),
    (b"a\rb\r", b"a\r\nb\r\n.\r\n"),
    (b"a\n.\nb", b"a\r\n..\r\nb\r\n.\r\n"),
    (b"a\r\r\nb", b"a\r\n\r\nb\r\n.\r\n"),
    (b"\x00\xff\r\n", b"\x00\xff\r\n.\r\n"),
]


def test_dot_stuff_table(impl: ModuleType) -> None:
    for content, sent in STUFFING:
        assert impl.dot_stuff(content) == sent, content


def test_smuggling_sequences_in_content_are_neutralised(impl: ModuleType) -> None:
    assert impl.dot_stuff(b"x\n.\nMAIL") == b"x\r\n..\r\nMAIL\r\n.\r\n"
    assert impl.dot_stuff(b"x\r.\rMAIL") == b"x\r\n..\r\nMAIL\r\n.\r\n"


def test_long_lines_are_folded_with_crlf_space(impl: ModuleType) -> None:
    assert impl.dot_stuff(b"abcdefghij", 4) == b"abcd\r\n efg\r\n hij\r\n.\r\n"
    assert impl.dot_stuff(b"abcd", 4) == b"abcd\r\n.\r\n"
    assert impl.dot_stuff(b"x" * 998 + b"\r\n") == b"x" * 998 + b"\r\n.\r\n"
    assert impl.dot_stuff(b"x" * 999) == b"x" * 998 + b"\r\n x\r\n.\r\n"


def test_line_limit_zero_never_folds(impl: ModuleType) -> None:
    assert impl.dot_stuff(b"y" * 5000, 0) == b"y" * 5000 + b"\r\n.\r\n"


def test_line_limit_below_two_is_refused(impl: ModuleType) -> None:
    with pytest.raises(ValueError):
        impl.DotStuffer(1)


def test_cr_split_from_its_lf_across_feeds_is_one_line_end(impl: ModuleType) -> None:
    stuffer = impl.DotStuffer()
    out = stuffer.feed(b"a\r") + stuffer.feed(b"\n.b") + stuffer.finish()
    assert out == b"a\r\n..b\r\n.\r\n"


def test_dot_stuffer_is_reusable_after_finish(impl: ModuleType) -> None:
    stuffer = impl.DotStuffer()
    first = stuffer.feed(b".a") + stuffer.finish()
    assert stuffer.feed(b".a") + stuffer.finish() == first


content_bytes = st.binary(max_size=300) | st.lists(
    st.sampled_from([b"\r", b"\n", b".", b"..", b"x", b"\r\n", b"\x00"]), max_size=60
).map(b"".join)


def _lines_are_clean(sent: bytes, line_limit: int) -> bool:
    body = sent.split(b"\r\n")
    return (sent.endswith(b"\r\n.\r\n") or sent == b".\r\n") and all(
        b"\r" not in line and b"\n" not in line and (not line_limit or len(line) <= line_limit)
        for line in body
    )


@settings(max_examples=200, deadline=None)
@given(content=content_bytes, line_limit=st.sampled_from([0, 2, 5, 998]))
def test_dot_stuff_never_emits_a_bare_cr_or_lf(
    impl: ModuleType, content: bytes, line_limit: int
) -> None:
    sent = impl.dot_stuff(content, line_limit)
    assert _lines_are_clean(sent, line_limit)
    # Only the terminator is a line of a lone dot.
    assert sent.split(b"\r\n").count(b".") == 1


@settings(max_examples=200, deadline=None)
@given(content=content_bytes, cut_points=cuts, line_limit=st.sampled_from([0, 3, 998]))
def test_chunked_feed_equals_whole_feed(
    impl: ModuleType, content: bytes, cut_points: list[int], line_limit: int
) -> None:
    stuffer = impl.DotStuffer(line_limit)
    chunked = b"".join(stuffer.feed(piece) for piece in split_at(content, cut_points))
    assert chunked + stuffer.finish() == impl.dot_stuff(content, line_limit)


def _normalised(content: bytes) -> bytes:
    text = content.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    return text if not text or text.endswith(b"\r\n") else text + b"\r\n"


@settings(max_examples=200, deadline=None)
@given(content=content_bytes)
def test_engine_reads_back_what_dot_stuff_sent(impl: ModuleType, content: bytes) -> None:
    limits = ServerLimits(message_size_limit=0)
    session = run(impl, ENVELOPE + b"DATA\r\n" + impl.dot_stuff(content, 0), limits)
    expected = _normalised(content)
    assert session.content == expected
    assert session.events[-1] == EndOfData(len(expected), 0)


def test_dot_stuffer_refuses_a_line_limit_that_leaves_no_room_to_fold(impl: ModuleType) -> None:
    with pytest.raises(ValueError, match="line_limit"):
        impl.DotStuffer(1)
    stuffer = impl.DotStuffer(998)
    with pytest.raises(ValueError, match="line_limit"):
        stuffer.line_limit = 1
    assert stuffer.line_limit == 998
