"""texthash: a postmap source file read into memory when the table is opened; no build step.

    texthash:/etc/mta/virtual      (the file itself, `key value` lines as for mta map build)

Keys are case-insensitive. The whole file is read at open (bounded by MAX_TABLE_FILE_BYTES)
and the table is its own cache; as in Postfix, a process sees a changed file when it reopens
the table. Duplicate keys keep the first value.
"""

from __future__ import annotations

from pathlib import Path

from mta.maps.source import parse_key_value, read_table_file
from mta.maps.table import LookupTable, fold_key


class TextHashTable(LookupTable):
    def __init__(self, spec: str, name: str) -> None:
        super().__init__(spec)
        path = Path(name)
        self.entries = parse_key_value(read_table_file(path, spec), str(path)).entries

    def lookup(self, key: str) -> str | None:
        return self.entries.get(fold_key(key))
