"""pgsql: tables, configured as in Postfix's pgsql_table(5), queried with psycopg.

    pgsql:/etc/mta/pgsql-aliases.cf
        hosts = 127.0.0.1:5432 unix:/run/postgresql
        user = mail
        password = secret
        dbname = mail
        query = SELECT forward FROM aliases WHERE address = '%s'

Parameters: hosts (tried in order: host, host:port, inet:host:port, [ipv6]:port or
unix:/socket/directory; port 5432 by default), user, password, dbname (required), query
(required; %s/%u/%d, result_format and domain as in mta.maps.sql), timeout (default 2s: the
connect timeout and the server-side statement_timeout), cache_ttl (default 10s; 0: none).

One connection per table, opened at the first lookup and kept; a lookup that fails on a kept
connection reconnects once (the server may have restarted), and then the table is
unavailable for that lookup (TableUnavailable; the caller defers). Keys are folded to lower
case and passed as query parameters. Needs psycopg (`pip install mta[pgsql]`).

Security: the password is in the table's file, readable by whoever can read it; the
connection is made with autocommit and runs only the configured query.
"""

from __future__ import annotations

import math

import psycopg
from psycopg.conninfo import make_conninfo

from mta.maps.netclient import parse_endpoint
from mta.maps.sql import SQL_PARAMETERS, SqlTable, first_columns
from mta.maps.table import first_line
from mta.maps.tablecf import TableConfig

PGSQL_PARAMETERS = (*SQL_PARAMETERS, "hosts", "user", "password", "dbname")
DEFAULT_PORT = 5432


class PgsqlTable(SqlTable):
    def __init__(self, spec: str, name: str) -> None:
        config = TableConfig(spec, name, PGSQL_PARAMETERS)
        super().__init__(spec, config, "%s", "%%")
        self.credentials = {
            "user": config.text("user"),
            "password": config.text("password"),
            "dbname": config.required("dbname"),
        }
        self.hosts = [
            parse_endpoint(host, DEFAULT_PORT, config.where("hosts"))
            for host in config.words("hosts") or ["127.0.0.1"]
        ]
        self.connection: psycopg.Connection[tuple[object, ...]] | None = None

    def _connect(self) -> psycopg.Connection[tuple[object, ...]]:
        failures = []
        for host in self.hosts:
            address = (
                {"host": host} if isinstance(host, str) else {"host": host[0], "port": host[1]}
            )
            try:
                conninfo = make_conninfo(
                    **address,
                    **self.credentials,
                    connect_timeout=max(1, math.ceil(self.timeout)),
                    options=f"-c statement_timeout={int(self.timeout * 1000)}",
                )
                return psycopg.connect(conninfo, autocommit=True)
            except psycopg.Error as error:
                failures.append(first_line(error))
        raise self.unavailable("; ".join(failures) or "no hosts")

    def _run(self, arguments: tuple[str, ...]) -> list[object]:
        if self.connection is None:
            self.connection = self._connect()
        with self.connection.cursor() as cursor:
            cursor.execute(self.settings.query.sql, arguments)
            return first_columns(cursor)

    def run_query(self, arguments: tuple[str, ...]) -> list[object]:
        try:
            return self._run(arguments)
        except psycopg.Error:
            self.close()  # a kept connection may be stale: reconnect and try once more
            try:
                return self._run(arguments)
            except psycopg.Error as error:
                self.close()
                raise self.unavailable(first_line(error)) from error

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None
