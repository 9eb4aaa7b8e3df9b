"""cidr: tables of IPv4 and IPv6 networks, first match wins (Postfix cidr_table(5), 3.2 syntax).

    network_address/prefix_length   result
    network_address                 result      (one host)
    !network_address/prefix_length  result      (matches every address outside the network)
    if network_address/prefix_length            (the rules up to the matching endif apply only
    if !network_address/prefix_length            to addresses inside, or with !, outside it)
    endif

IPv6 addresses may be written in brackets, `[2001:db8::]/32`. The query key is one IP address
(the SMTP client's); anything else is not found. A rule of the other address family never
matches, negated or not, and an `if` of the other family skips its block, as in Postfix. A
network with host bits set, an unbalanced if/endif, or a rule without a result is an error
naming the file and line.

The file is read when the table is opened and kept in memory. Runs of plain rules are
indexed by prefix length, so a lookup costs one dictionary probe per distinct prefix length
in a run rather than one comparison per rule, and the earliest matching rule still wins.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from mta.maps.source import logical_lines, read_table_file
from mta.maps.table import (
    MAX_ENTRIES,
    MAX_IF_NESTING,
    MAX_MATCH_INPUT_BYTES,
    LookupTable,
    TableFormatError,
)

Address = tuple[int, int]  # (IP version, address as an integer)


@dataclass(frozen=True)
class Network:
    version: int
    address: int
    mask: int
    negated: bool

    def matches(self, version: int, address: int) -> bool:
        if version != self.version:
            return False
        return ((address & self.mask) == self.address) != self.negated


@dataclass
class IndexedRules:
    """Consecutive plain rules: per (version, prefix length), network → (rule number, result)."""

    by_prefix: dict[tuple[int, int], dict[int, tuple[int, str]]] = field(default_factory=dict)
    masks: list[tuple[int, int, int]] = field(default_factory=list)  # (version, length, mask)

    def add(
        self, number: int, network: ipaddress.IPv4Network | ipaddress.IPv6Network, result: str
    ) -> None:
        prefix = (network.version, network.prefixlen)
        if prefix not in self.by_prefix:
            self.by_prefix[prefix] = {}
            self.masks.append((network.version, network.prefixlen, int(network.netmask)))
        self.by_prefix[prefix].setdefault(int(network.network_address), (number, result))

    def lookup(self, version: int, address: int) -> str | None:
        best: tuple[int, str] | None = None
        for rule_version, length, mask in self.masks:
            if rule_version != version:
                continue
            hit = self.by_prefix[(version, length)].get(address & mask)
            if hit is not None and (best is None or hit[0] < best[0]):
                best = hit
        return None if best is None else best[1]


@dataclass
class NegatedRule:
    network: Network
    result: str

    def lookup(self, version: int, address: int) -> str | None:
        return self.result if self.network.matches(version, address) else None


@dataclass
class IfBlock:
    condition: Network
    body: list[Rule] = field(default_factory=list)

    def lookup(self, version: int, address: int) -> str | None:
        if not self.condition.matches(version, address):
            return None
        return first_match(self.body, version, address)


Rule = IndexedRules | NegatedRule | IfBlock


def first_match(rules: list[Rule], version: int, address: int) -> str | None:
    for rule in rules:
        result = rule.lookup(version, address)
        if result is not None:
            return result
    return None


def parse_network(
    text: str, where: str
) -> tuple[bool, ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """(negated, network) from `[!]address[/length]`, IPv6 optionally in brackets."""
    negated = text.startswith("!")
    pattern = text[1:] if negated else text
    address, slash, length = pattern.partition("/")
    if address.startswith("[") and address.endswith("]"):
        address = address[1:-1]
    try:
        network = ipaddress.ip_network(f"{address}/{length}" if slash else address)
    except ValueError as error:
        if "host bits set" in str(error):
            raise TableFormatError(f"{where}: non-null host address bits in {pattern!r}") from None
        raise TableFormatError(f"{where}: bad network pattern {pattern!r}") from None
    return negated, network


def parse_cidr(text: str, origin: str) -> list[Rule]:
    top: list[Rule] = []
    stack: list[tuple[list[Rule], int]] = [(top, 0)]  # (rule list, line of its `if`)
    entries = 0
    for number, line in logical_lines(text, origin):
        where = f"{origin}, line {number}"
        words = line.split(None, 1)
        rules = stack[-1][0]
        entries += 1
        if entries > MAX_ENTRIES:
            raise TableFormatError(f"{where}: more than {MAX_ENTRIES} rules")
        if words[0].lower() == "endif":
            if len(stack) == 1:
                raise TableFormatError(f"{where}: endif without if")
            stack.pop()
            continue
        if words[0].lower() == "if":
            if len(words) < 2 or len(words[1].split()) != 1:
                raise TableFormatError(f"{where}: expected 'if [!]network/length'")
            negated, network = parse_network(words[1], where)
            if len(stack) > MAX_IF_NESTING:
                raise TableFormatError(f"{where}: if blocks nested deeper than {MAX_IF_NESTING}")
            block = IfBlock(_condition(negated, network))
            rules.append(block)
            stack.append((block.body, number))
            continue
        if len(words) < 2:
            raise TableFormatError(f"{where}: no result after {words[0]!r}")
        negated, network = parse_network(words[0], where)
        result = words[1].strip()
        if negated:
            rules.append(NegatedRule(_condition(negated, network), result))
            continue
        if not rules or not isinstance(rules[-1], IndexedRules):
            rules.append(IndexedRules())
        last = rules[-1]
        assert isinstance(last, IndexedRules)
        last.add(number, network, result)
    if len(stack) > 1:
        raise TableFormatError(f"{origin}, line {stack[-1][1]}: if without endif")
    return top


def _condition(negated: bool, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> Network:
    return Network(network.version, int(network.network_address), int(network.netmask), negated)


class CidrTable(LookupTable):
    def __init__(self, spec: str, name: str) -> None:
        super().__init__(spec)
        path = Path(name)
        self.rules = parse_cidr(read_table_file(path, spec), str(path))

    def lookup(self, key: str) -> str | None:
        if len(key) > MAX_MATCH_INPUT_BYTES:
            return None
        try:
            address = ipaddress.ip_address(key.strip().removeprefix("[").removesuffix("]"))
        except ValueError:
            return None
        return first_match(self.rules, address.version, int(address))
