"""Benchmark of lookup tables: lookups per second for lmdb, cidr and regexp tables.

Tables of the sizes the hot path meets: an lmdb table of 10,000 addresses (virtual_alias_maps),
a cidr table of 2,000 networks (client access), a regexp table of 1,000 patterns
(header_checks-like). For each, hits and misses on distinct keys. Where caching applies:
  lmdb    "kept open" is a process's shared table (one read transaction per lookup);
          "open per lookup" opens the file, looks up and closes, as postmap -q does.
  cidr, regexp
          in-memory tables are their own cache; "behind a ResultCache" shows what a per-key
          answer cache (the one network tables use) gives when the same 100 keys repeat.

Usage: python bench/maps_bench.py [--seconds S] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from mta.maps import LookupTable, open_table  # noqa: E402
from mta.maps.lmdb_table import build_lmdb  # noqa: E402
from mta.maps.table import ResultCache  # noqa: E402

LMDB_KEYS = 10_000
CIDR_NETWORKS = 2_000
REGEXPS = 1_000
REPEATED_KEYS = 100


def rate(lookup: Callable[[str], object], keys: Sequence[str], seconds: float) -> float:
    """Lookups per second, cycling through keys for about `seconds`."""
    done, started = 0, time.perf_counter()
    while True:
        for key in keys:
            lookup(key)
        done += len(keys)
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            return done / elapsed


def cached(table: LookupTable) -> Callable[[str], object]:
    cache = ResultCache(seconds=3600, entries=10_000)

    def lookup(key: str) -> object:
        hit, answer = cache.get(key)
        if hit:
            return answer
        answer = table.lookup(key)
        cache.put(key, answer)
        return answer

    return lookup


def lmdb_rates(directory: Path, seconds: float) -> dict[str, float]:
    source = directory / "virtual"
    source.write_text(
        "".join(f"user{n}@example.com mailbox{n}@example.net\n" for n in range(LMDB_KEYS))
    )
    started = time.perf_counter()
    build_lmdb(source)
    build_seconds = time.perf_counter() - started
    spec = f"lmdb:{source}"
    table = open_table(spec, shared=False)
    hits = [f"user{n}@example.com" for n in range(0, LMDB_KEYS, 7)]
    misses = [f"other{n}@example.com" for n in range(len(hits))]

    def open_per_lookup(key: str) -> object:
        fresh = open_table(spec, shared=False)
        try:
            return fresh.lookup(key)
        finally:
            fresh.close()

    figures = {
        "build 10k keys (s)": build_seconds,
        "kept open, hits": rate(table.lookup, hits, seconds),
        "kept open, misses": rate(table.lookup, misses, seconds),
    }
    table.close()  # otherwise every open would reuse this table's environment
    figures["open per lookup, hits"] = rate(open_per_lookup, hits[:200], seconds)
    return figures


def cidr_rates(directory: Path, seconds: float) -> dict[str, float]:
    lines = []
    for n in range(CIDR_NETWORKS):
        if n % 4 == 3:
            lines.append(f"2001:db8:{n:x}::/48 v6-{n}\n")
        elif n % 4 == 2:
            lines.append(f"{10 + n // 256}.{n % 256}.0.0/16 net16-{n}\n")
        else:
            lines.append(f"172.{16 + n // 256 % 16}.{n % 256}.0/24 net24-{n}\n")
    path = directory / "clients.cidr"
    path.write_text("".join(lines))
    table = open_table(f"cidr:{path}", shared=False)
    hits = [f"172.{16 + n // 256 % 16}.{n % 256}.9" for n in range(0, CIDR_NETWORKS, 4)]
    misses = [f"192.0.2.{n % 256}" for n in range(len(hits))]
    return {
        "hits": rate(table.lookup, hits, seconds),
        "misses": rate(table.lookup, misses, seconds),
        "behind a ResultCache, 100 keys": rate(cached(table), hits[:REPEATED_KEYS], seconds),
    }


def regexp_rates(directory: Path, seconds: float) -> dict[str, float]:
    path = directory / "checks.regexp"
    path.write_text(
        "".join(f"/^Subject: .*offer{n}\\b(.*)$/ REJECT offer {n}: $1\n" for n in range(REGEXPS))
    )
    table = open_table(f"regexp:{path}", shared=False)
    middle = [
        f"Subject: a special offer{n} for you" for n in range(REGEXPS // 2, REGEXPS // 2 + 50)
    ]
    misses = [f"Subject: meeting notes {n}" for n in range(50)]
    return {
        "hits (rule ~500 of 1000)": rate(table.lookup, middle, seconds),
        "misses (all 1000 rules)": rate(table.lookup, misses, seconds),
        "behind a ResultCache, 50 keys": rate(cached(table), misses, seconds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mta-maps-bench-") as name:
        directory = Path(name)
        results = {
            f"lmdb ({LMDB_KEYS} keys)": lmdb_rates(directory, arguments.seconds),
            f"cidr ({CIDR_NETWORKS} networks)": cidr_rates(directory, arguments.seconds),
            f"regexp ({REGEXPS} patterns)": regexp_rates(directory, arguments.seconds),
        }
    for table, figures in results.items():
        print(table)
        for name, value in figures.items():
            shown = f"{value:.2f}" if name.endswith("(s)") else f"{value:,.0f} lookups/s"
            print(f"  {name:34} {shown}")
    if arguments.json:
        arguments.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
