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

from mta.maps.sql import SQL_PARAMETERS, SqlTable, first_columns
from mta.maps.tablecf import TableConfig

SQLITE_PARAMETERS = (*SQL_PARAMETERS, "dbpath")
PROGRESS_CHECK_INSTRUCTIONS = 10_000


class SqliteTable(SqlTable):
    def __init__(self, spec: str, name: str) -> None:
        config = TableConfig(spec, name, SQLITE_PARAMETERS)
        super().__init__(spec, config, "?", "%")
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

    def run_query(self, arguments: tuple[str, ...]) -> list[object]:
        self._deadline = time.monotonic() + self.timeout
        try:
            return first_columns(self.connection.execute(self.settings.query.sql, arguments))
        except sqlite3.Error as error:
            raise self.unavailable(str(error)) from error

    def close(self) -> None:
        self.connection.close()
