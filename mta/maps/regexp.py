"""regexp: and pcre: tables, Postfix's regexp_table(5) and pcre_table(5) with Python's re.

    /pattern/flags result          the first pattern that matches gives the result
    !/pattern/flags result         matches when the pattern does not (no $n in its result)
    if /pattern/flags              the rules up to the matching endif apply only when the
    if !/pattern/flags             pattern matches (or, with !, does not)
    endif

Any non-alphanumeric, non-blank character can delimit a pattern (`/` usually); `\\` escapes the
delimiter inside it. The result may use $1 .. $9 (also ${1} or $(1)) for what a group
matched, empty when it took no part, and $$ for a dollar; a group number beyond the pattern's
groups is an error. Keys are matched as given (not folded to lower case).

Flags, as Postfix documents them:
  both   i  toggle case-insensitive matching (on by default)
         m  multi-line: ^ and $ at every line of the key
  regexp x  toggle POSIX extended syntax (on by default); basic syntax is not offered, so a
            pattern that turns it off is refused. Without m, `.` also matches a newline, as
            POSIX's does (header_checks see folded headers with their newlines).
  pcre   s  `.` matches a newline too;  x  verbose (white space and # comments in the pattern)
         A  anchored at the start of the key;  X  accepted, with no effect (Python already
            refuses unknown escapes).  E (dollar end-only) and U (ungreedy) are refused.

Both types are Python's re, not POSIX regcomp or the PCRE library. What differs: named groups
are (?P<name>...) (PCRE also takes (?<name>...)); there is no \\K, no recursion ((?R), (?1)),
no \\Q...\\E, no POSIX classes ([[:alpha:]]; write [a-zA-Z]) and no backtracking verbs; POSIX
leftmost-longest alternation is leftmost-first here. A pattern Python cannot compile is an
error naming the file and line, so such a difference shows when the table is opened, not when
mail arrives.

The file is read when the table is opened and kept in memory; each lookup tries the rules in
order. Bounds: the file (MAX_TABLE_FILE_BYTES), its lines, rules (MAX_ENTRIES), if nesting
(MAX_IF_NESTING) and the matched key (MAX_MATCH_INPUT_BYTES; a longer key is not found).
"""

from __future__ import annotations

import re
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

_REFERENCE = re.compile(r"\$(?:([0-9])|\{([0-9]+)\}|\(([0-9]+)\)|(\$))")
MAX_GROUP_DIGITS = 5  # $n beyond any real pattern's groups; int() refuses 4300+ digits
_PCRE_FLAGS = {"m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE, "X": 0}
_UNSUPPORTED_PCRE_FLAGS = {"E": "dollar end-only", "U": "ungreedy"}

Template = tuple[str | int, ...]  # literal text, or the number of a group to insert


@dataclass(frozen=True)
class Pattern:
    compiled: re.Pattern[str]
    negated: bool
    anchored: bool

    def match(self, key: str) -> re.Match[str] | None:
        return self.compiled.match(key) if self.anchored else self.compiled.search(key)


@dataclass
class MatchRule:
    pattern: Pattern
    result: Template

    def lookup(self, key: str) -> str | None:
        match = self.pattern.match(key)
        if self.pattern.negated:
            return None if match else substitute(self.result, None)
        return None if match is None else substitute(self.result, match)


@dataclass
class IfBlock:
    condition: Pattern
    body: list[Rule] = field(default_factory=list)

    def lookup(self, key: str) -> str | None:
        if (self.condition.match(key) is None) != self.condition.negated:
            return None
        return first_match(self.body, key)


Rule = MatchRule | IfBlock


def first_match(rules: list[Rule], key: str) -> str | None:
    for rule in rules:
        result = rule.lookup(key)
        if result is not None:
            return result
    return None


def substitute(template: Template, match: re.Match[str] | None) -> str:
    """The result with each group number replaced by what the group matched (or nothing)."""
    if match is None:  # a negated rule's result, which has no group numbers
        return "".join(part for part in template if isinstance(part, str))
    return "".join(part if isinstance(part, str) else match.group(part) or "" for part in template)


def parse_template(text: str, groups: int, negated: bool, where: str) -> Template:
    """Split a result into literal text and $n references, checking each n against groups."""
    parts: list[str | int] = []
    position = 0
    for reference in _REFERENCE.finditer(text):
        parts.append(text[position : reference.start()])
        position = reference.end()
        if reference.group(4):
            parts.append("$")
            continue
        digits = reference.group(1) or reference.group(2) or reference.group(3)
        if negated:
            raise TableFormatError(f"{where}: ${digits[:20]} in the result of a negated pattern")
        significant = digits.lstrip("0") or "0"
        number = int(significant) if len(significant) <= MAX_GROUP_DIGITS else 0
        if not 1 <= number <= groups:
            raise TableFormatError(
                f"{where}: ${digits[:20]} is out of range (the pattern has {groups} groups)"
            )
        parts.append(number)
    parts.append(text[position:])
    merged: list[str | int] = []
    for part in parts:
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] += part
        elif part != "":
            merged.append(part)
    return tuple(merged) or ("",)


class RegexpTable(LookupTable):
    """regexp: (POSIX flavour) when pcre is False, pcre: when it is True."""

    def __init__(self, spec: str, name: str, pcre: bool = False) -> None:
        super().__init__(spec)
        self.pcre = pcre
        path = Path(name)
        self.rules = self._parse(read_table_file(path, spec), str(path))

    def lookup(self, key: str) -> str | None:
        if len(key) > MAX_MATCH_INPUT_BYTES:
            return None
        return first_match(self.rules, key)

    def _parse(self, text: str, origin: str) -> list[Rule]:
        top: list[Rule] = []
        stack: list[tuple[list[Rule], int]] = [(top, 0)]
        for count, (number, line) in enumerate(logical_lines(text, origin), start=1):
            where = f"{origin}, line {number}"
            if count > MAX_ENTRIES:
                raise TableFormatError(f"{where}: more than {MAX_ENTRIES} rules")
            rules = stack[-1][0]
            keyword = line.split(None, 1)[0]
            if keyword == "endif":
                if len(stack) == 1:
                    raise TableFormatError(f"{where}: endif without if")
                stack.pop()
                continue
            if keyword == "if":
                pattern, rest = self._pattern(line[2:].lstrip(), where)
                if rest:
                    raise TableFormatError(f"{where}: text after the if pattern: {rest!r}")
                if len(stack) > MAX_IF_NESTING:
                    raise TableFormatError(
                        f"{where}: if blocks nested deeper than {MAX_IF_NESTING}"
                    )
                block = IfBlock(pattern)
                rules.append(block)
                stack.append((block.body, number))
                continue
            pattern, result = self._pattern(line, where)
            if not result:
                raise TableFormatError(f"{where}: no result after the pattern")
            groups = pattern.compiled.groups
            rules.append(MatchRule(pattern, parse_template(result, groups, pattern.negated, where)))
        if len(stack) > 1:
            raise TableFormatError(f"{origin}, line {stack[-1][1]}: if without endif")
        return top

    def _pattern(self, text: str, where: str) -> tuple[Pattern, str]:
        """The [!]/pattern/flags at the start of text, and the text after it (trimmed)."""
        negated = text.startswith("!")
        if negated:
            text = text[1:].lstrip()
        if not text or text[0].isalnum() or text[0].isspace() or text[0] == "\\":
            raise TableFormatError(f"{where}: expected /pattern/flags, got {text[:40]!r}")
        delimiter, position = text[0], 1
        while position < len(text) and text[position] != delimiter:
            position += 2 if text[position] == "\\" else 1
        if position >= len(text):
            raise TableFormatError(f"{where}: missing closing {delimiter!r} of the pattern")
        source = text[1:position]
        flags_end = position + 1
        while flags_end < len(text) and not text[flags_end].isspace():
            flags_end += 1
        flags, anchored = self._flags(text[position + 1 : flags_end], where)
        try:
            compiled = re.compile(source, flags)
        except re.error as error:
            raise TableFormatError(f"{where}: bad pattern {source!r}: {error}") from None
        return Pattern(compiled, negated, anchored), text[flags_end:].strip()

    def _flags(self, letters: str, where: str) -> tuple[re.RegexFlag, bool]:
        ignore_case, extended, anchored = True, True, False
        flags = re.RegexFlag(0)
        for letter in letters:
            if letter == "i":
                ignore_case = not ignore_case
            elif letter == "m":
                flags |= re.MULTILINE
            elif self.pcre and letter in _PCRE_FLAGS:
                flags |= _PCRE_FLAGS[letter]
            elif self.pcre and letter == "A":
                anchored = True
            elif self.pcre and letter in _UNSUPPORTED_PCRE_FLAGS:
                meaning = _UNSUPPORTED_PCRE_FLAGS[letter]
                raise TableFormatError(f"{where}: flag {letter} ({meaning}) is not supported")
            elif not self.pcre and letter == "x":
                extended = not extended
            else:
                raise TableFormatError(f"{where}: unknown flag {letter!r}")
        if not extended:
            raise TableFormatError(f"{where}: POSIX basic regular expressions are not supported")
        if ignore_case:
            flags |= re.IGNORECASE
        if not self.pcre and not flags & re.MULTILINE:
            flags |= re.DOTALL
        return flags, anchored
