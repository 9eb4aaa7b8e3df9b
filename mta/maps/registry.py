"""open_table("type:name"): the one place that knows every table type (DATABASE_README).

    table = open_table("lmdb:/etc/mta/virtual")
    table.lookup("user@example.com")

TABLE_TYPES maps each type to what opens it. By default an opened table is shared by the
whole process, keyed by its spec, as Postfix's dict_open shares one handle per table: files
are read and connections made once. A table that fails to open raises TableUnavailable (or
TableFormatError, naming the file and line) and is not remembered, so the next open tries
again. close_tables() closes every shared table (at exit, or in tests).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from mta.maps.cidr import CidrTable
from mta.maps.inline import InlineTable, StaticTable
from mta.maps.lmdb_table import LmdbTable
from mta.maps.memcache import MemcacheTable
from mta.maps.redis import RedisTable
from mta.maps.regexp import RegexpTable
from mta.maps.sqlite import SqliteTable
from mta.maps.table import LookupTable, TableFormatError, TableUnavailable, UnknownTableType
from mta.maps.texthash import TextHashTable


def _open_pgsql(spec: str, name: str) -> LookupTable:
    """psycopg is an optional dependency: imported only when a pgsql: table is opened."""
    try:
        from mta.maps.pgsql import PgsqlTable
    except ImportError as error:
        raise TableUnavailable(
            f"table {spec} is unavailable: pgsql: tables need psycopg ({error})"
        ) from error
    return PgsqlTable(spec, name)


TABLE_TYPES: dict[str, Callable[[str, str], LookupTable]] = {
    "lmdb": LmdbTable,
    "inline": InlineTable,
    "static": StaticTable,
    "texthash": TextHashTable,
    "cidr": CidrTable,
    "regexp": RegexpTable,
    "pcre": partial(RegexpTable, pcre=True),
    "sqlite": SqliteTable,
    "pgsql": _open_pgsql,
    "redis": RedisTable,
    "memcache": MemcacheTable,
}

_shared: dict[str, LookupTable] = {}


def split_spec(spec: str) -> tuple[str, str]:
    """("type", "name") of "type:name"; TableFormatError when it is not of that form."""
    kind, colon, name = spec.partition(":")
    if not colon or not kind or not name:
        raise TableFormatError(f"{spec!r}: expected a table as type:name")
    if kind not in TABLE_TYPES:
        raise UnknownTableType(
            f"{spec!r}: unsupported table type {kind!r} (known: {', '.join(TABLE_TYPES)})"
        )
    return kind, name


def open_table(spec: str, shared: bool = True) -> LookupTable:
    """The table named by spec, opened once per process unless shared is False."""
    if shared and spec in _shared:
        return _shared[spec]
    kind, name = split_spec(spec)
    table = TABLE_TYPES[kind](spec, name)
    if shared:
        _shared[spec] = table
    return table


def close_tables() -> None:
    while _shared:
        _spec, table = _shared.popitem()
        table.close()
