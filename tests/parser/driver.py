"""A scripted client-and-policy driver for the SMTP engine, shared by the parser tests.

`Session` plays the adapter: it feeds bytes, drains events and answers each event that
awaits a reply with a scripted reply (250 by default, 354 to DATA, 334 then 235 to AUTH, the
event's own code to a ProtocolError...). Tests then look at the events and the bytes written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from hotpath.events import (
    Auth,
    AuthResponse,
    Data,
    DataChunk,
    EndOfChunk,
    EndOfData,
    Event,
    Hello,
    InputOverflow,
    ProtocolError,
    Quit,
    ServerLimits,
    StartTls,
)

Replier = Callable[[Event], tuple[int, str, str | None]]

ENVELOPE = (
    b"EHLO client.example\r\nMAIL FROM:<sender@example.com>\r\nRCPT TO:<rcpt@example.net>\r\n"
)


def scripted_reply(event: Event) -> tuple[int, str, str | None]:
    """The reply a permissive server gives: (code, text, enhanced status)."""
    if isinstance(event, ProtocolError):
        return event.code, event.text, event.status
    if isinstance(event, Data):
        return 354, "End data with <CR><LF>.<CR><LF>", None
    if isinstance(event, Auth):
        return 334, "", None
    if isinstance(event, AuthResponse):
        return 235, "Authentication successful", "2.7.0"
    if isinstance(event, Quit):
        return 221, "Bye", "2.0.0"
    if isinstance(event, StartTls):
        return 220, "Ready to start TLS", "2.0.0"
    if isinstance(event, Hello):
        return 250, "mx.example", None
    if isinstance(event, EndOfData | EndOfChunk):
        return 250, "Ok: queued", "2.0.0"
    return 250, "Ok", "2.0.0"


def reply_with(overrides: dict[type[Event], int]) -> Replier:
    """scripted_reply, except the given event types get the given codes."""

    def replier(event: Event) -> tuple[int, str, str | None]:
        code = overrides.get(type(event))
        if code is None:
            return scripted_reply(event)
        return code, "scripted", None

    return replier


@dataclass
class Session:
    """One engine with its scripted policy; `events` is everything next_event() returned."""

    impl: ModuleType
    limits: ServerLimits | None = None
    replier: Replier = scripted_reply
    greeting: int = 220
    events: list[Event] = field(default_factory=list)
    output: bytearray = field(default_factory=bytearray)
    engine: Any = None

    def __post_init__(self) -> None:
        limits = self.limits if self.limits is not None else self.impl.DEFAULT_LIMITS
        self.engine = self.impl.ServerEngine(limits)
        self.engine.reply(self.greeting, "mx.example ESMTP")
        self.output += self.engine.data_to_send()

    def feed(self, data: bytes) -> list[Event]:
        """receive_data, then drain; the events this produced."""
        self.engine.receive_data(data)
        return self.drain()

    def feed_all(self, pieces: Iterable[bytes]) -> list[Event]:
        new: list[Event] = []
        for piece in pieces:
            new += self.feed(piece)
        return new

    def close(self) -> list[Event]:
        return self.feed(b"")

    def drain(self) -> list[Event]:
        new: list[Event] = []
        engine = self.engine
        while not engine.closed:
            event = engine.next_event()
            if event is None:
                break
            new.append(event)
            if engine.awaiting_reply:
                code, text, status = self.replier(event)
                engine.reply(code, text, status)
        self.events += new
        self.output += engine.data_to_send()
        return new

    @property
    def replies(self) -> list[str]:
        """Each reply line written so far (the greeting included), without CRLF."""
        return bytes(self.output).decode("utf-8").split("\r\n")[:-1]

    @property
    def last_reply(self) -> str:
        return self.replies[-1]

    @property
    def content(self) -> bytes:
        return b"".join(e.data for e in self.events if isinstance(e, DataChunk))


def run(
    impl: ModuleType,
    data: bytes,
    limits: ServerLimits | None = None,
    replier: Replier = scripted_reply,
) -> Session:
    """A session fed `data` in one piece."""
    session = Session(impl, limits, replier)
    session.feed(data)
    return session


def merge_chunks(events: Sequence[Event]) -> list[Event]:
    """Events with consecutive DataChunk payloads concatenated (split points may vary)."""
    merged: list[Event] = []
    for event in events:
        if isinstance(event, DataChunk) and merged and isinstance(merged[-1], DataChunk):
            merged[-1] = DataChunk(merged[-1].data + event.data)
        else:
            merged.append(event)
    return merged


def split_at(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    """data cut at the given offsets (taken modulo len(data) + 1, sorted)."""
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    pieces: list[bytes] = []
    start = 0
    for point in [*points, len(data)]:
        if point > start:
            pieces.append(data[start:point])
            start = point
    return pieces


def events_of(
    impl: ModuleType,
    pieces: Iterable[bytes],
    limits: ServerLimits | None = None,
    replier: Replier = scripted_reply,
) -> tuple[list[Event], bytes]:
    """Merged events and output of a session fed `pieces` then end of input."""
    session = Session(impl, limits, replier)
    for piece in pieces:
        if piece:
            session.feed(piece)
    session.close()
    return merge_chunks(session.events), bytes(session.output)


def state_of(engine: Any) -> tuple[Any, ...]:
    """The public state of an engine, to compare two implementations."""
    return (
        engine.state,
        engine.closed,
        engine.awaiting_reply,
        engine.in_transaction,
        engine.recipient_count,
        engine.buffered,
        engine.greeted,
        engine.tls_active,
        engine.authenticated,
        engine.improper_pipelining,
        engine.discarded_after_starttls,
    )


__all__ = [
    "ENVELOPE",
    "InputOverflow",
    "Replier",
    "Session",
    "events_of",
    "merge_chunks",
    "reply_with",
    "run",
    "scripted_reply",
    "split_at",
    "state_of",
]
