"""Fixtures for the SMTP/LMTP client tests: quiet aiosmtpd logs, a throwaway CA and server
certificates."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.certs import Issued, make_ca, make_leaf


@pytest.fixture(autouse=True)
def quiet_aiosmtpd() -> Iterator[None]:
    logger = logging.getLogger("mail.log")
    level = logger.level
    logger.setLevel(logging.WARNING)
    yield
    logger.setLevel(level)


@dataclass
class Pki:
    directory: Path
    ca: Issued
    ca_file: Path

    def server_context(self, names: list[str], issuer: Issued | None = None) -> ssl.SSLContext:
        """A server-side context with a certificate for `names` (signed by our CA)."""
        leaf = make_leaf(names, issuer or self.ca)
        stem = "-".join(names) or "anonymous"
        certificate, key = leaf.write(self.directory, stem)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certificate, key)
        return context


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca = make_ca("mta test root")
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca.pem)
    return Pki(directory, ca, ca_file)
