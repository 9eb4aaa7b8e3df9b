"""sqlite: tables, configured as in Postfix's sqlite_table(5).

    sqlite:/etc/mta/sqlite-aliases.cf
        dbpath = /var/lib/mta/aliases.sqlite
        query = SELECT forward FROM aliases WHERE address = '%s'

Parameters: dbpath (required), query (required, see mta.maps.sql for %s/%u/%d, result_format
and domain), timeout (default 2s: how long to wait for a locked database, and the longest a
query may run before it is interrupted), cache_ttl (default 10s; 0 caches nothing). The
database is opened read-only when the table is opened and never created; keys are folded to
lower case. Any SQLite error makes the table unavailable (TableUnavailable) for that lookup.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from mta.maps.sql import SQL_PARAMETERS, SqlSettings
from mta.maps.table import (
    DEFAULT_CACHE_SECONDS,
    DEFAULT_TIMEOUT_SECONDS,
    MAX_REPLY_BYTES,
    LookupTable,
    ResultCache,
    fold_key,
)
from mta.maps.tablecf import TableConfig

SQLITE_PARAMETERS = (*SQL_PARAMETERS, "dbpath")
PROGRESS_CHECK_INSTRUCTIONS = 10_000
ROWS_PER_FETCH = 100


class SqliteTable(LookupTable):
    def __init__(self, spec: str, name: str) -> None:
        super().__init__(spec)
        config = TableConfig(spec, name, SQLITE_PARAMETERS)
        self.settings = SqlSettings(spec, config, "?", "%")
        self.timeout = config.seconds("timeout", DEFAULT_TIMEOUT_SECONDS)
        self.cache = ResultCache(config.seconds("cache_ttl", DEFAULT_CACHE_SECONDS))
        database = Path(config.required("dbpath")).absolute()
        try:
            self.connection = sqlite3.connect(
                f"{database.as_uri()}?mode=ro", uri=True, timeout=self.timeout
            )
        except sqlite3.Error as error:
            raise self.unavailable(f"{database}: {error}") from error
        self._deadline = 0.0
        self.connection.set_progress_handler(self._past_deadline, PROGRESS_CHECK_INSTRUCTIONS)

    def _past_deadline(self) -> int:
        return int(time.monotonic() > self._deadline)  # non-zero interrupts the query

    def lookup(self, key: str) -> str | None:
        key = fold_key(key)
        cached, answer = self.cache.get(key)
        if cached:
            return answer
        arguments = self.settings.arguments(key)
        if arguments is None:
            return None
        self._deadline = time.monotonic() + self.timeout
        values: list[object] = []
        try:
            cursor = self.connection.execute(self.settings.query.sql, arguments)
            while rows := cursor.fetchmany(ROWS_PER_FETCH):
                values.extend(row[0] for row in rows)
                if len(values) > MAX_REPLY_BYTES:  # each value takes at least one byte
                    break
        except sqlite3.Error as error:
            raise self.unavailable(str(error)) from error
        answer = self.settings.answer(values, key)
        self.cache.put(key, answer)
        return answer

    def close(self) -> None:
        self.connection.close()
