"""qmgr routes recipients with mta.rewrite's resolver; a table failure defers, never raises."""

from __future__ import annotations

from pathlib import Path

from mta.config.maincf import settings_from_text
from mta.maps import close_tables
from mta.qmgr.resolve import RESOLVE_CACHE_LIFETIME, RESOLVE_CACHE_SIZE, Resolver


def resolver(main_cf: str) -> Resolver:
    return Resolver.from_settings(
        settings_from_text(f"myhostname = mx.example.com\n{main_cf}", "m")
    )


def test_address_classes_and_transport_maps_choose_transport_and_nexthop() -> None:
    routes = resolver(
        "relay_domains = relay.example\n"
        "virtual_alias_domains = alias.example\n"
        "transport_maps = inline:{ special.example=smtp:[gw.example]:2525 }\n"
    )
    assert routes.resolve("root@mx.example.com") == ("local", "mx.example.com")
    assert routes.resolve("root") == ("local", "mx.example.com")
    assert routes.resolve("u@relay.example") == ("relay", "relay.example")
    assert routes.resolve("u@other.example") == ("smtp", "other.example")
    assert routes.resolve("u@special.example") == ("smtp", "[gw.example]:2525")
    assert routes.resolve("u@alias.example") == (
        "error",
        "5.1.1 User unknown in virtual alias table",
    )
    close_tables()


def test_a_table_that_cannot_answer_sends_the_recipient_to_retry(tmp_path: Path) -> None:
    routes = resolver(f"transport_maps = texthash:{tmp_path / 'transport'}\n")
    assert routes.resolve("u@other.example") == ("retry", "address resolver failure")


def test_answers_are_kept_for_a_few_seconds_and_at_most_so_many(tmp_path: Path) -> None:
    table = tmp_path / "transport"
    table.write_text("a.example smtp:[first.example]\n")
    now = [0.0]
    routes = Resolver(resolver(f"transport_maps = texthash:{table}\n").routes, clock=lambda: now[0])
    assert routes.resolve("u@a.example") == ("smtp", "[first.example]")
    table.write_text("a.example smtp:[second.example]\n")
    close_tables()  # the table itself now answers anew
    assert routes.resolve("u@a.example") == ("smtp", "[first.example]")
    now[0] += RESOLVE_CACHE_LIFETIME
    assert routes.resolve("u@a.example") == ("smtp", "[second.example]")
    for number in range(RESOLVE_CACHE_SIZE + 10):
        routes.resolve(f"u{number}@b.example")
    assert len(routes._cache) == RESOLVE_CACHE_SIZE
    close_tables()


def test_a_temporary_failure_is_not_kept(tmp_path: Path) -> None:
    table = tmp_path / "transport"
    routes = resolver(f"transport_maps = texthash:{table}\n")
    assert routes.resolve("u@a.example") == ("retry", "address resolver failure")
    table.write_text("a.example smtp:[gw.example]\n")
    close_tables()
    assert routes.resolve("u@a.example") == ("smtp", "[gw.example]")
    close_tables()
