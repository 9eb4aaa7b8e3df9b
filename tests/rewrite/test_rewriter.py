"""Limits, loops, table failures and the cost of the default configuration."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mta.config.maincf import ConfigError, settings_from_text
from mta.maps import close_tables
from mta.rewrite import AddressRewriter, Route, TemporaryFailure, UserUnknown


@pytest.fixture(autouse=True)
def fresh_tables() -> Iterator[None]:
    yield
    close_tables()


def rewriter(main_cf: str) -> AddressRewriter:
    return AddressRewriter.from_settings(
        settings_from_text(f"myhostname = mx.example.com\nmydomain = example.com\n{main_cf}", "t")
    )


def chain_aliases(length: int) -> str:
    entries = ", ".join(f"a{n}@example.com=a{n + 1}@example.com" for n in range(length))
    return f"virtual_alias_maps = inline:{{ {entries} }}\n"


def test_default_configuration_changes_nothing_and_returns_at_once() -> None:
    default = rewriter("")
    assert not default.changes_envelope
    assert default.sender("user@example.net") == "user@example.net"
    assert default.recipient("user@example.net") == ("user@example.net",)


def test_recursion_limit_allows_a_chain_that_fits() -> None:
    limited = rewriter(chain_aliases(5) + "virtual_alias_recursion_limit = 6\n")
    assert limited.recipient("a0@example.com") == ("a5@example.com",)


def test_recursion_limit_defers_a_chain_one_too_deep() -> None:
    limited = rewriter(chain_aliases(6) + "virtual_alias_recursion_limit = 6\n")
    result = limited.recipient("a0@example.com")
    assert isinstance(result, TemporaryFailure)
    assert "nesting" in result.reason


def test_expansion_limit_is_inclusive() -> None:
    targets = ", ".join(f"u{n}@example.net" for n in range(1000))
    big = f"virtual_alias_maps = inline:{{ {{list@example.com = {targets}}} }}\n"
    assert len(rewriter(big).recipient("list@example.com")) == 1000  # type: ignore[arg-type]
    over = rewriter(big.replace("u0@", "u1000@example.net, u0@"))
    result = over.recipient("list@example.com")
    assert isinstance(result, TemporaryFailure)
    assert "expansion size" in result.reason


def test_mutual_aliases_loop_until_the_recursion_limit() -> None:
    looping = rewriter(
        "virtual_alias_maps = inline:{ a@example.com=b@example.com, b@example.com=a@example.com }"
    )
    assert isinstance(looping.recipient("a@example.com"), TemporaryFailure)


def test_alias_to_itself_and_others_keeps_itself_once() -> None:
    selfish = rewriter(
        "virtual_alias_maps = inline:{ {a@example.com = a@example.com, A@example.com, b@x.org} }"
    )
    assert selfish.recipient("a@example.com") == ("a@example.com", "b@x.org")


def test_missing_table_defers_and_does_not_raise(tmp_path: Path) -> None:
    missing = tmp_path / "virtual"
    broken = rewriter(
        f"virtual_alias_maps = texthash:{missing}\ncanonical_maps = texthash:{missing}"
    )
    for result in (broken.sender("a@example.net"), broken.recipient("a@example.net")):
        assert isinstance(result, TemporaryFailure)
        assert str(missing) in result.reason


def test_a_table_that_comes_back_is_used_again(tmp_path: Path) -> None:
    table = tmp_path / "virtual"
    recovering = rewriter(f"virtual_alias_maps = texthash:{table}")
    assert isinstance(recovering.recipient("a@example.com"), TemporaryFailure)
    table.write_text("a@example.com b@example.net\n")
    assert recovering.recipient("a@example.com") == ("b@example.net",)


def test_resolver_defers_when_transport_maps_fail(tmp_path: Path) -> None:
    broken = rewriter(f"transport_maps = texthash:{tmp_path / 'transport'}")
    result = broken.resolver.route("a@example.net")
    assert isinstance(result, TemporaryFailure)
    assert result.reason.startswith("address resolver lookup problem for a@example.net")


def test_virtual_alias_domain_table_failure_defers_rcpt(tmp_path: Path) -> None:
    broken = rewriter(f"virtual_alias_domains = texthash:{tmp_path / 'domains'}")
    assert isinstance(broken.recipient("a@example.org"), TemporaryFailure)


def test_unknown_user_of_an_alias_domain_is_refused() -> None:
    domains = rewriter("virtual_alias_domains = example.org\n")
    assert domains.recipient("nobody@example.org") == UserUnknown("nobody@example.org")


def test_a_local_domain_is_not_an_alias_domain() -> None:
    both = rewriter("virtual_alias_domains = mx.example.com\n")
    assert both.recipient("root@mx.example.com") == ("root@mx.example.com",)
    assert both.resolver.route("root@mx.example.com") == Route(
        "local", "local", "mx.example.com", "root@mx.example.com"
    )


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("canonical_maps = nosuchtype:/x", "unsupported table type"),
        ("masquerade_classes = envelope_sender, everything", "unknown value 'everything'"),
        ("relay_domains = /etc/relay_domains", "/file entries are not supported"),
        ("relay_transport = bad/transport", "expected transport or transport:nexthop"),
    ],
)
def test_configuration_errors_name_the_parameter(setting: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        rewriter(setting)
