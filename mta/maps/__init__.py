"""Lookup tables by `type:name`, as Postfix's DATABASE_README describes them.

    from mta.maps import open_table, lookup_address, TableUnavailable
    table = open_table("lmdb:/etc/mta/virtual")
    value = lookup_address(table, "user+foo@example.com", recipient_delimiter="+")

Types: lmdb (built by `mta map build`), inline, static, texthash, cidr, regexp, pcre, sqlite,
pgsql, redis, memcache; each in its own module, all opened through mta.maps.registry. A
table that cannot answer raises TableUnavailable; the caller defers mail with a 4xx and a log
line, as Postfix 2.9 does. mta.maps is a shared layer: it imports mta.config and no service
nor the command-line interface (an import-linter contract checks it).
"""

from mta.maps.address import address_keys, lookup_address
from mta.maps.registry import TABLE_TYPES, close_tables, open_table, split_spec
from mta.maps.table import LookupTable, TableFormatError, TableUnavailable, UnknownTableType

__all__ = [
    "TABLE_TYPES",
    "LookupTable",
    "TableFormatError",
    "TableUnavailable",
    "UnknownTableType",
    "address_keys",
    "close_tables",
    "lookup_address",
    "open_table",
    "split_spec",
]
