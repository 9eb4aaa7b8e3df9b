"""peer_chain against a real TLS server on loopback: the chain as sent, leaf first, from a
blocking SSLSocket and from asyncio's SSLObject, and the fallbacks for other Pythons."""

from __future__ import annotations

import _ssl
import asyncio
import contextlib
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.certs import Issued, make_ca, make_leaf

from mta.smtp.dane import TlsaRecord, dane_verify, peer_chain

NAME = "chain.example.test"
TIMEOUT = 10.0
ACCEPT_POLL = 0.05  # how soon the server thread notices close()


class TlsServer:
    """Accepts TLS connections on 127.0.0.1 in a thread until closed; sends its chain."""

    def __init__(self, certificate: Path, key: Path) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(certificate, key)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(ACCEPT_POLL)
        self.port: int = self.listener.getsockname()[1]
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                connection, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                with self.context.wrap_socket(connection, server_side=True) as tls:
                    tls.settimeout(TIMEOUT)
                    tls.recv(1)  # until the client closes
            except OSError:
                continue

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(TIMEOUT)
        self.listener.close()


def client_context() -> ssl.SSLContext:
    # DANE does its own matching: no PKIX verification, as the SMTP client sets it up
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


@contextlib.contextmanager
def connected(port: int) -> Iterator[ssl.SSLSocket]:
    """A blocking TLS connection to 127.0.0.1:port, the handshake done."""
    with (
        socket.create_connection(("127.0.0.1", port), TIMEOUT) as raw,
        client_context().wrap_socket(raw, server_hostname=NAME) as tls,
    ):
        yield tls


@pytest.fixture(scope="module")
def pki() -> tuple[Issued, Issued, Issued]:
    root = make_ca("Chain Root")
    intermediate = make_ca("Chain Intermediate", issuer=root)
    return root, intermediate, make_leaf([NAME], issuer=intermediate)


@pytest.fixture(scope="module")
def server(
    pki: tuple[Issued, Issued, Issued], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TlsServer]:
    _root, intermediate, leaf = pki
    certificate, key = leaf.write(tmp_path_factory.mktemp("tls"), "server", chain=[intermediate])
    running = TlsServer(certificate, key)
    yield running
    running.close()


def test_the_chain_from_a_blocking_socket(
    server: TlsServer, pki: tuple[Issued, Issued, Issued]
) -> None:
    root, intermediate, leaf = pki
    with connected(server.port) as tls:
        chain = peer_chain(tls)
    assert chain == [leaf.der, intermediate.der]
    assert dane_verify(chain, [TlsaRecord.from_text(root.tlsa(2, 1, 0))], [NAME]) is None


def test_the_chain_from_an_asyncio_connection(
    server: TlsServer, pki: tuple[Issued, Issued, Issued]
) -> None:
    _root, intermediate, leaf = pki

    async def fetch() -> list[bytes]:
        _reader, writer = await asyncio.open_connection(
            "127.0.0.1", server.port, ssl=client_context(), server_hostname=NAME
        )
        try:
            ssl_object = writer.get_extra_info("ssl_object")
            assert isinstance(ssl_object, ssl.SSLObject)
            return peer_chain(ssl_object)
        finally:
            writer.close()
            await writer.wait_closed()

    assert asyncio.run(asyncio.wait_for(fetch(), TIMEOUT)) == [leaf.der, intermediate.der]


class Python313Api:
    """What Python 3.13's SSLSocket offers: a public get_unverified_chain() of DER bytes."""

    def __init__(self, real: ssl.SSLSocket) -> None:
        self.real = real

    def get_unverified_chain(self) -> list[bytes]:
        sslobj: Any = self.real._sslobj  # type: ignore[attr-defined]
        return [cert.public_bytes(_ssl.ENCODING_DER) for cert in sslobj.get_unverified_chain()]

    def getpeercert(self, binary_form: bool = False) -> Any:
        return self.real.getpeercert(binary_form)


class LeafOnlyApi:
    """A Python with neither method: only getpeercert()."""

    def __init__(self, real: ssl.SSLSocket) -> None:
        self.real = real

    def getpeercert(self, binary_form: bool = False) -> Any:
        return self.real.getpeercert(binary_form)


def test_the_public_method_is_used_when_present_else_the_leaf_alone(
    server: TlsServer, pki: tuple[Issued, Issued, Issued]
) -> None:
    _root, intermediate, leaf = pki
    with connected(server.port) as tls:
        assert peer_chain(Python313Api(tls)) == [leaf.der, intermediate.der]  # type: ignore[arg-type]
        assert peer_chain(LeafOnlyApi(tls)) == [leaf.der]  # type: ignore[arg-type]


def test_the_whole_chain_when_the_server_sends_its_root(
    pki: tuple[Issued, Issued, Issued], tmp_path: Path
) -> None:
    root, intermediate, leaf = pki
    certificate, key = leaf.write(tmp_path, "full", chain=[intermediate, root])
    full = TlsServer(certificate, key)
    try:
        with connected(full.port) as tls:
            assert peer_chain(tls) == [leaf.der, intermediate.der, root.der]
    finally:
        full.close()
