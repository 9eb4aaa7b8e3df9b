"""Golden tables, in the style of Postfix's own tests: a table file, a file of queries, and
the expected answer of each query (golden/NAME.ref). To read a failure, diff the two texts.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mta.maps import LookupTable, address_keys, lookup_address, open_table
from mta.maps.lmdb_table import build_lmdb

GOLDEN = Path(__file__).parent / "golden"


def answers(table: LookupTable, queries: Path) -> str:
    lines = []
    for key in queries.read_text().splitlines():
        value = table.lookup(key)
        lines.append(f"{key} => {'(not found)' if value is None else value}")
    return "\n".join(lines) + "\n"


def expected(name: str) -> str:
    return (GOLDEN / f"{name}.ref").read_text()


def test_texthash_golden() -> None:
    table = open_table(f"texthash:{GOLDEN / 'postmap.table'}", shared=False)
    assert answers(table, GOLDEN / "postmap.in") == expected("postmap")


def test_lmdb_golden_answers_as_texthash(tmp_path: Path) -> None:
    source = tmp_path / "postmap.table"
    source.write_bytes((GOLDEN / "postmap.table").read_bytes())
    build_lmdb(source)
    table = open_table(f"lmdb:{source}", shared=False)
    assert answers(table, GOLDEN / "postmap.in") == expected("postmap")
    table.close()


@pytest.mark.parametrize("kind", ["cidr", "regexp", "pcre"])
def test_pattern_table_golden(kind: str) -> None:
    table = open_table(f"{kind}:{GOLDEN / f'{kind}.table'}", shared=False)
    assert answers(table, GOLDEN / f"{kind}.in") == expected(kind)


def test_address_lookup_order_golden() -> None:
    table = open_table(f"texthash:{GOLDEN / 'address.table'}", shared=False)
    lines = []
    for line in (GOLDEN / "address.in").read_text().splitlines():
        if line.startswith("#"):
            continue
        delimiter, locality, address = line.split()
        delimiter = "" if delimiter == "none" else delimiter
        local = locality == "local"
        keys = ", ".join(address_keys(address, delimiter, local))
        value = lookup_address(table, address, delimiter, local)
        lines.append(f"{line}\n    tries {keys}\n    => {value or '(not found)'}")
    assert "\n".join(lines) + "\n" == expected("address")
