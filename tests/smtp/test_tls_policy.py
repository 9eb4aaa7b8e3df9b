"""TLS policy values, certificate name matching and match patterns, without a network."""

from __future__ import annotations

import ssl

import pytest

from mta.config.maincf import settings_from_text
from mta.smtp.tls import (
    Level,
    TlsContexts,
    TlsPolicy,
    certificate_names,
    expand_patterns,
    parse_policy,
    verified_name,
)


@pytest.mark.parametrize(
    ("value", "policy"),
    [
        ("may", TlsPolicy(Level.MAY)),
        ("ENCRYPT", TlsPolicy(Level.ENCRYPT)),
        ("dane-only", TlsPolicy(Level.DANE_ONLY)),
        ("secure match=nexthop:.example.com", TlsPolicy(Level.SECURE, ("nexthop", ".example.com"))),
        (
            "verify protocols=>=TLSv1.2",
            TlsPolicy(Level.VERIFY, minimum_version=ssl.TLSVersion.TLSv1_2),
        ),
        (
            "encrypt protocols=!SSLv3:!TLSv1:!TLSv1.1",
            TlsPolicy(
                Level.ENCRYPT,
                minimum_version=ssl.TLSVersion.TLSv1_2,
                maximum_version=ssl.TLSVersion.TLSv1_3,
            ),
        ),
    ],
)
def test_policy_values_in_postfix_syntax(value: str, policy: TlsPolicy) -> None:
    assert parse_policy(value) == policy


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "empty TLS policy"),
        ("paranoid", "unknown TLS security level"),
        ("encrypt ciphers=high", "unsupported TLS policy attribute 'ciphers'"),
        ("fingerprint match=AA:BB", "unknown TLS security level"),
        ("secure match=", "bad match attribute"),
        ("encrypt protocols=TLSv9", "unknown protocol"),
        ("encrypt protocols=!TLSv1:!TLSv1.1:!TLSv1.2:!TLSv1.3", "every protocol is excluded"),
        ("encrypt nonsense", "malformed TLS policy attribute"),
        ("may " + "match=a " * 20, "too many TLS policy attributes"),
    ],
)
def test_unusable_policies_are_refused(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_policy(value)


def test_patterns_stand_for_the_host_and_the_next_hop() -> None:
    patterns = ("hostname", "nexthop", "dot-nexthop", "Other.Example.")
    assert expand_patterns(patterns, "MX1.Example.com.", "example.com") == [
        "mx1.example.com",
        "example.com",
        ".example.com",
        "other.example",
    ]


CERTIFICATE = {
    "subject": ((("commonName", "ignored.example"),),),
    "subjectAltName": (("DNS", "mx.example.com"), ("DNS", "*.mail.example.com"), ("IP", "1.2.3.4")),
}


@pytest.mark.parametrize(
    ("patterns", "matched"),
    [
        (["mx.example.com"], "mx.example.com"),
        (["MX.example.com".lower()], "mx.example.com"),
        (["a.mail.example.com"], "*.mail.example.com"),
        (["a.b.mail.example.com"], None),  # a wildcard is one label
        (["mail.example.com"], None),
        ([".example.com"], "mx.example.com"),  # any subdomain
        ([".mail.example.com"], "*.mail.example.com"),
        (["example.com"], None),
        (["ignored.example"], None),  # the CN does not count when there are DNS names
        (["1.2.3.4"], None),
    ],
)
def test_certificate_names_match_patterns(patterns: list[str], matched: str | None) -> None:
    assert verified_name(CERTIFICATE, patterns) == matched


def test_common_name_counts_only_without_dns_names() -> None:
    only_cn = {"subject": ((("countryName", "XX"),), (("commonName", "MX.Example.com."),))}
    assert certificate_names(only_cn) == ["mx.example.com"]
    assert verified_name(only_cn, ["mx.example.com"]) == "mx.example.com"


def test_the_dane_ta_verify_depth_is_read_per_client() -> None:
    settings = settings_from_text(
        "smtp_tls_scert_verifydepth = 3\nlmtp_tls_scert_verifydepth = 5\n", "main.cf"
    )
    assert TlsContexts.from_settings(settings, "smtp").verify_depth == 3
    assert TlsContexts.from_settings(settings, "lmtp").verify_depth == 5
    assert TlsContexts.from_settings(settings_from_text("", "m"), "smtp").verify_depth == 9
