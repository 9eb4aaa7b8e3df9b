"""sqlite:, pgsql:, redis: and memcache: tables against real servers on 127.0.0.1.

The servers come from conftest.py (one each per session). Each test proves one property: the
lookup semantics of the table type, that keys travel as parameters and never as SQL, that the
answer cache behaves as documented, and that a server that is down or misbehaves makes the
table unavailable (TableUnavailable, for the caller to defer) instead of crashing.
"""

from __future__ import annotations

import re
import socket
import sqlite3
from pathlib import Path

import pytest

from mta.maps import TableFormatError, TableUnavailable, open_table
from mta.maps.netclient import LineClient, ProtocolError
from mta.maps.redis import command, read_reply
from mta.maps.sql import compile_query

from .conftest import Postgres, Server, start_memcached, start_redis

# -- the SQL query template ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "sql", "fields"),
    [
        ("SELECT v FROM t WHERE k='%s'", "SELECT v FROM t WHERE k=?", ("s",)),
        ("SELECT v FROM t WHERE k=%s", "SELECT v FROM t WHERE k=?", ("s",)),
        (
            "SELECT v FROM t WHERE u='%u' AND d='%d'",
            "SELECT v FROM t WHERE u=? AND d=?",
            ("u", "d"),
        ),
        (
            "SELECT v FROM t WHERE k='%u@example.com'",
            "SELECT v FROM t WHERE k=(? || '@example.com')",
            ("u",),
        ),
        ("SELECT 'it''s %%' FROM t WHERE k='%s'", "SELECT 'it''s %' FROM t WHERE k=?", ("s",)),
    ],
)
def test_query_template_becomes_placeholders(query: str, sql: str, fields: tuple[str, ...]) -> None:
    compiled = compile_query(query, "?", "%", "q.cf")
    assert (compiled.sql, compiled.fields) == (sql, fields)


def test_unsupported_query_expansion_is_refused() -> None:
    with pytest.raises(TableFormatError, match=r"q.cf, line 2: query: unsupported %1"):
        compile_query("SELECT v FROM t WHERE k='%1'", "?", "%", "q.cf, line 2")


# -- sqlite: ------------------------------------------------------------------------------------


@pytest.fixture
def sqlite_config(tmp_path: Path) -> Path:
    database = tmp_path / "aliases.sqlite"
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE aliases (address TEXT, forward TEXT)")
        connection.executemany(
            "INSERT INTO aliases VALUES (?, ?)",
            [
                ("user@example.com", "user@example.net"),
                ("list@example.com", "a@example.net"),
                ("list@example.com", "b@example.net"),
                ("list@example.com", None),
                ("postmaster", "root"),
                ("sales", "team@relay.example"),
            ],
        )
    config = tmp_path / "sqlite.cf"
    config.write_text(
        f"# sqlite_table(5)\ndbpath = {database}\n"
        "query = SELECT forward FROM aliases\n    WHERE address = '%s'\ncache_ttl = 0\n"
    )
    return config


def test_sqlite_answers_and_joins_rows_with_commas(sqlite_config: Path) -> None:
    table = open_table(f"sqlite:{sqlite_config}", shared=False)
    assert table.lookup("USER@example.com") == "user@example.net"
    assert table.lookup("list@example.com") == "a@example.net,b@example.net"
    assert table.lookup("nobody@example.com") is None


def test_sqlite_key_is_a_parameter_not_sql(sqlite_config: Path) -> None:
    table = open_table(f"sqlite:{sqlite_config}", shared=False)
    assert table.lookup("x' OR '1'='1") is None
    assert table.lookup("x'; DROP TABLE aliases; --") is None
    assert table.lookup("user@example.com") == "user@example.net"


def test_sqlite_local_part_domain_and_result_format(sqlite_config: Path, tmp_path: Path) -> None:
    database = tmp_path / "aliases.sqlite"
    config = tmp_path / "parts.cf"
    config.write_text(
        f"dbpath = {database}\nquery = SELECT forward FROM aliases WHERE address = '%u'\n"
        "result_format = smtp:[%d]\ndomain = example.org\n"
    )
    table = open_table(f"sqlite:{config}", shared=False)
    assert table.lookup("Sales@example.org") == "smtp:[relay.example]"
    # %u of postmaster@example.org is postmaster; root has no domain, so %d skips it.
    assert table.lookup("postmaster@example.org") is None
    assert table.lookup("postmaster@example.com") is None  # not a listed domain
    assert table.lookup("postmaster") is None  # not user@domain


def test_sqlite_unknown_parameter_names_file_and_line(tmp_path: Path) -> None:
    config = tmp_path / "bad.cf"
    config.write_text("dbpath = /x\nquery = SELECT 1\nhots = 1\n")
    with pytest.raises(TableFormatError, match=rf"{config}, line 3: unknown parameter 'hots'"):
        open_table(f"sqlite:{config}", shared=False)


def test_sqlite_missing_database_is_unavailable(tmp_path: Path) -> None:
    config = tmp_path / "missing.cf"
    config.write_text(f"dbpath = {tmp_path / 'none.sqlite'}\nquery = SELECT 1 WHERE 1=%s\n")
    with pytest.raises(TableUnavailable, match=r"table sqlite:.* is unavailable"):
        open_table(f"sqlite:{config}", shared=False)
    assert not (tmp_path / "none.sqlite").exists()  # opened read-only, never created


def test_sqlite_bad_query_is_unavailable_at_lookup(sqlite_config: Path, tmp_path: Path) -> None:
    config = tmp_path / "badquery.cf"
    config.write_text(f"dbpath = {tmp_path / 'aliases.sqlite'}\nquery = SELECT x FROM nope\n")
    table = open_table(f"sqlite:{config}", shared=False)
    with pytest.raises(TableUnavailable, match="no such table: nope"):
        table.lookup("user@example.com")


# -- pgsql: -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pgsql_config(postgres_server: Postgres, tmp_path_factory: pytest.TempPathFactory) -> Path:
    postgres_server.psql("CREATE DATABASE mail")
    postgres_server.psql("CREATE USER mailreader PASSWORD 'secret'")
    import psycopg

    with psycopg.connect(
        host=str(postgres_server.socket_directory),
        port=postgres_server.port,
        user="postgres",
        dbname="mail",
        autocommit=True,
    ) as connection:
        connection.execute("CREATE TABLE aliases (address text, forward text)")
        connection.execute(
            "INSERT INTO aliases VALUES ('user@example.com', 'user@example.net'),"
            " ('list@example.com', 'a@example.net'), ('list@example.com', 'b@example.net'),"
            " ('100%@example.com', 'percent')"
        )
        connection.execute("GRANT SELECT ON aliases TO mailreader")
    config = tmp_path_factory.mktemp("pgsql") / "pgsql.cf"
    config.write_text(
        f"hosts = 127.0.0.1:{postgres_server.port}\nuser = mailreader\npassword = secret\n"
        "dbname = mail\nquery = SELECT forward FROM aliases WHERE address = '%s'\n"
        "cache_ttl = 0\n"
    )
    return config


def test_pgsql_answers_and_joins_rows(pgsql_config: Path) -> None:
    table = open_table(f"pgsql:{pgsql_config}", shared=False)
    assert table.lookup("User@Example.com") == "user@example.net"
    assert table.lookup("list@example.com") == "a@example.net,b@example.net"
    assert table.lookup("100%@example.com") == "percent"
    assert table.lookup("nobody@example.com") is None
    table.close()


def test_pgsql_key_is_a_parameter_not_sql(pgsql_config: Path) -> None:
    table = open_table(f"pgsql:{pgsql_config}", shared=False)
    assert table.lookup("x' OR '1'='1") is None
    assert table.lookup("%s %d'; DROP TABLE aliases; --") is None
    assert table.lookup("user@example.com") == "user@example.net"
    table.close()


def test_pgsql_partial_literal_with_local_part(pgsql_config: Path, tmp_path: Path) -> None:
    config = tmp_path / "u.cf"
    config.write_text(pgsql_config.read_text().replace("'%s'", "'%u@example.com'"))
    table = open_table(f"pgsql:{config}", shared=False)
    assert table.lookup("user@elsewhere.example") == "user@example.net"
    table.close()


def test_pgsql_reconnects_after_the_server_drops_the_connection(
    pgsql_config: Path, postgres_server: Postgres
) -> None:
    table = open_table(f"pgsql:{pgsql_config}", shared=False)
    assert table.lookup("user@example.com") == "user@example.net"
    postgres_server.psql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'mailreader'"
    )
    assert table.lookup("user@example.com") == "user@example.net"
    table.close()


def test_pgsql_without_a_server_is_unavailable(pgsql_config: Path, tmp_path: Path) -> None:
    config = tmp_path / "down.cf"
    text = re.sub(
        r"(?m)^hosts = .*$", "hosts = 127.0.0.1:1\ntimeout = 1s", pgsql_config.read_text()
    )
    config.write_text(text)
    table = open_table(f"pgsql:{config}", shared=False)
    with pytest.raises(TableUnavailable, match=r"table pgsql:.* is unavailable: .*127\.0\.0\.1"):
        table.lookup("user@example.com")


def test_pgsql_wrong_password_is_unavailable(pgsql_config: Path, tmp_path: Path) -> None:
    config = tmp_path / "password.cf"
    config.write_text(pgsql_config.read_text().replace("secret", "wrong"))
    table = open_table(f"pgsql:{config}", shared=False)
    with pytest.raises(TableUnavailable, match="password authentication failed"):
        table.lookup("user@example.com")


# -- redis: -------------------------------------------------------------------------------------


def redis_call(port: int, *arguments: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as connection:
        connection.sendall(command(*arguments))
        return connection.recv(65536)


def redis_config(tmp_path: Path, port: int, extra: str = "") -> Path:
    config = tmp_path / f"redis-{port}.cf"
    config.write_text(f"host = 127.0.0.1\nport = {port}\ntimeout = 1s\n{extra}")
    return config


def test_redis_get_with_a_key_prefix_and_database(redis_server: Server, tmp_path: Path) -> None:
    with socket.create_connection(("127.0.0.1", redis_server.port)) as connection:
        connection.sendall(command(b"SELECT", b"2") + command(b"SET", b"alias:a@x", b"b@y"))
        connection.recv(100)
    config = redis_config(tmp_path, redis_server.port, "db = 2\nkey_format = alias:%s\n")
    table = open_table(f"redis:{config}", shared=False)
    assert table.lookup("A@X") == "b@y"
    assert table.lookup("missing@x") is None
    table.close()


def test_redis_cache_keeps_answers_for_cache_ttl(redis_server: Server, tmp_path: Path) -> None:
    redis_call(redis_server.port, b"SET", b"cached", b"old")
    cached = open_table(f"redis:{redis_config(tmp_path, redis_server.port)}", shared=False)
    fresh_config = redis_config(tmp_path, redis_server.port, "cache_ttl = 0\n")
    fresh_config = fresh_config.rename(tmp_path / "fresh.cf")
    fresh = open_table(f"redis:{fresh_config}", shared=False)
    assert cached.lookup("cached") == fresh.lookup("cached") == "old"
    redis_call(redis_server.port, b"SET", b"cached", b"new")
    assert (cached.lookup("cached"), fresh.lookup("cached")) == ("old", "new")


def test_redis_value_of_the_wrong_type_is_unavailable(redis_server: Server, tmp_path: Path) -> None:
    redis_call(redis_server.port, b"LPUSH", b"alist", b"x")
    table = open_table(f"redis:{redis_config(tmp_path, redis_server.port)}", shared=False)
    with pytest.raises(TableUnavailable, match="WRONGTYPE"):
        table.lookup("alist")


def test_redis_stopped_server_is_unavailable_and_restarted_one_is_used(tmp_path: Path) -> None:
    server = start_redis(tmp_path)
    redis_call(server.port, b"SET", b"k", b"v")
    table = open_table(
        f"redis:{redis_config(tmp_path, server.port, 'cache_ttl = 0')}", shared=False
    )
    assert table.lookup("k") == "v"
    server.stop()
    with pytest.raises(
        TableUnavailable, match=rf"table redis:.* is unavailable: 127.0.0.1:{server.port}"
    ):
        table.lookup("k")
    with pytest.raises(TableUnavailable):
        table.lookup("k")  # still down: the table answers again, with the same error
    restarted = start_redis(tmp_path)
    try:
        moved = open_table(
            f"redis:{redis_config(tmp_path, restarted.port, 'cache_ttl = 0')}", shared=False
        )
        assert moved.lookup("k") is None  # a new, empty server; no crash, no stale state
    finally:
        restarted.stop()


@pytest.mark.parametrize(
    ("address", "error"),
    [
        ("127.0.0.1:\u00b2", "bad server address"),
        ("127.0.0.1:\u0661\u0662", "bad server address"),
        ("127.0.0.1:" + "9" * 5000, "bad port"),
        ("127.0.0.1:65536", "bad port"),
    ],
)
def test_memcache_bad_server_port_is_a_format_error(
    tmp_path: Path, address: str, error: str
) -> None:
    config = tmp_path / "memcache.cf"
    config.write_text(f"memcache = {address}\n")
    with pytest.raises(TableFormatError, match=error):
        open_table(f"memcache:{config}", shared=False)


@pytest.mark.parametrize("reply", [b"$--5\r\n", b"$-\r\n", b"$1x\r\n", b"*1\r\n"])
def test_redis_malformed_reply_is_a_protocol_error(reply: bytes) -> None:
    # a scripted server on loopback: nothing a real Redis would send, so no real Redis here
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = LineClient(("127.0.0.1", listener.getsockname()[1]), 2.0)
        peer, _ = listener.accept()
        with peer:
            peer.sendall(reply)
            with pytest.raises(ProtocolError):
                read_reply(client)
        client.close()


# -- memcache: ----------------------------------------------------------------------------------


def memcache_set(port: int, key: bytes, value: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as connection:
        connection.sendall(b"set %s 0 0 %d\r\n%s\r\n" % (key, len(value), value))
        assert connection.recv(100) == b"STORED\r\n"


def memcache_config(tmp_path: Path, port: int, extra: str = "") -> Path:
    config = tmp_path / f"memcache-{port}.cf"
    config.write_text(f"memcache = inet:127.0.0.1:{port}\ntimeout = 1s\n{extra}")
    return config


def test_memcache_get_with_key_format(memcached_server: Server, tmp_path: Path) -> None:
    memcache_set(memcached_server.port, b"alias:example.com", b"relay:[mx.example.net]")
    config = memcache_config(tmp_path, memcached_server.port, "key_format = alias:%d\n")
    table = open_table(f"memcache:{config}", shared=False)
    assert table.lookup("Joe@Example.COM") == "relay:[mx.example.net]"
    assert table.lookup("joe@example.org") is None
    assert table.lookup("no-domain") is None  # %d of a key without a domain: not looked up
    table.close()


def test_memcache_key_it_cannot_hold_is_not_found(memcached_server: Server, tmp_path: Path) -> None:
    table = open_table(f"memcache:{memcache_config(tmp_path, memcached_server.port)}", shared=False)
    assert table.lookup("has space") is None
    assert table.lookup("k" * 251) is None
    assert table.lookup("line\r\nbreak") is None  # no command injection into the protocol
    table.close()


def test_memcache_value_over_data_size_limit_is_unavailable(
    memcached_server: Server, tmp_path: Path
) -> None:
    memcache_set(memcached_server.port, b"big", b"x" * 200)
    config = memcache_config(tmp_path, memcached_server.port, "data_size_limit = 100\n")
    table = open_table(f"memcache:{config}", shared=False)
    with pytest.raises(TableUnavailable, match="data_size_limit"):
        table.lookup("big")


def test_memcache_stopped_server_is_unavailable(tmp_path: Path) -> None:
    server = start_memcached(tmp_path)
    memcache_set(server.port, b"k", b"v")
    table = open_table(
        f"memcache:{memcache_config(tmp_path, server.port, 'cache_ttl = 0')}", shared=False
    )
    assert table.lookup("k") == "v"
    server.stop()
    with pytest.raises(
        TableUnavailable, match=rf"memcache:.* is unavailable: 127.0.0.1:{server.port}"
    ):
        table.lookup("k")
