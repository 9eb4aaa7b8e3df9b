"""What sqlite: and pgsql: tables share: the query template, the result format, `domain`,
and the lookup itself (SqlTable: cache, key, query, answer).

    query = SELECT forward FROM aliases WHERE address = '%s'

As in sqlite_table(5) and pgsql_table(5), the query names the lookup key with %s (the whole
key), %u (the local part of user@domain, or the whole key when it has no @) and %d (the
domain; a key without one is not looked up), and %% for a percent sign. Postfix quotes the key
into the SQL text; here the query is compiled once into SQL with placeholders and the key
parts are passed as parameters, never spliced into SQL. A %s inside a quoted literal, as in
'%s' or '%u@example.com', becomes a placeholder joined to the literal's other text with ||.

Several rows answer with their first columns joined by commas (empty and NULL values are
skipped), each formatted by result_format: %s, %u, %d of the value (a value without a domain
is skipped by %d), %S, %U, %D of the key, %%. With `domain = example.com, ...` only keys
user@domain with a listed domain are looked up. Answers are cached for cache_ttl seconds (see
mta.maps.table.ResultCache); replies are bounded by MAX_REPLY_BYTES in all, and rows are
fetched ROWS_PER_FETCH at a time until they are past that bound.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from mta.maps.table import (
    DEFAULT_CACHE_SECONDS,
    DEFAULT_TIMEOUT_SECONDS,
    MAX_REPLY_BYTES,
    LookupTable,
    ResultCache,
    TableFormatError,
    TableUnavailable,
    fold_key,
)
from mta.maps.tablecf import TableConfig, expand_key, split_address

SQL_PARAMETERS = ("query", "result_format", "domain", "cache_ttl", "timeout")
ROWS_PER_FETCH = 100
_KEY_FIELDS = "sud"


@dataclass(frozen=True)
class CompiledQuery:
    sql: str
    fields: tuple[str, ...]  # one of "s", "u", "d" per placeholder, in order


def compile_query(query: str, placeholder: str, literal_percent: str, where: str) -> CompiledQuery:
    """SQL with `placeholder` for each %s/%u/%d; `literal_percent` is how the driver wants %."""
    sql: list[str] = []
    fields: list[str] = []
    literal: list[str] | None = None  # pieces of the quoted literal being read, if inside one
    text = ""  # literal text not yet added to the pieces
    position = 0
    while position < len(query):
        char = query[position]
        if char == "%":
            code = query[position + 1 : position + 2]
            position += 2
            if code == "%":
                if literal is None:
                    sql.append(literal_percent)
                else:
                    text += literal_percent
                continue
            if code not in _KEY_FIELDS or not code:
                raise TableFormatError(f"{where}: query: unsupported %{code} (use %s, %u, %d, %%)")
            fields.append(code)
            if literal is None:
                sql.append(placeholder)
            else:
                if text:
                    literal.append(f"'{text}'")
                literal.append(placeholder)
                text = ""
            continue
        position += 1
        if char != "'":
            if literal is None:
                sql.append(char)
            else:
                text += char
            continue
        if literal is None:
            literal, text = [], ""
        elif query[position : position + 1] == "'":  # '' is a quote inside the literal
            text += "''"
            position += 1
        else:
            if not literal:
                sql.append(f"'{text}'")
            else:
                if text:
                    literal.append(f"'{text}'")
                sql.append(literal[0] if len(literal) == 1 else f"({' || '.join(literal)})")
            literal = None
    if literal is not None:
        raise TableFormatError(f"{where}: query: unterminated quoted string")
    return CompiledQuery("".join(sql), tuple(fields))


def key_fields(key: str, fields: Iterable[str]) -> tuple[str, ...] | None:
    """The parameters for the placeholders, or None when the query must not run (Postfix)."""
    values = [expand_key(f"%{field}", key, "query") for field in fields]
    return None if None in values else tuple(value for value in values if value is not None)


def format_result(result_format: str, value: str, key: str) -> str | None:
    """One value through result_format; None when %d asks for a domain the value lacks."""
    output: list[str] = []
    position = 0
    while position < len(result_format):
        char = result_format[position]
        if char != "%" or position + 1 >= len(result_format):
            output.append(char)
            position += 1
            continue
        code = result_format[position + 1]
        position += 2
        if code == "%":
            output.append("%")
            continue
        local, domain = split_address(value if code.islower() else key)
        if code in "sS":
            output.append(value if code == "s" else key)
        elif code in "uU":
            output.append(local)
        elif code in "dD":
            if not domain:
                return None
            output.append(domain)
        else:
            output.append(f"%{code}")
    return "".join(output)


class SqlSettings:
    """The query and result parameters of a sqlite: or pgsql: configuration file."""

    def __init__(
        self, spec: str, config: TableConfig, placeholder: str, literal_percent: str
    ) -> None:
        self.spec = spec
        self.query = compile_query(
            config.required("query"), placeholder, literal_percent, config.where("query")
        )
        self.result_format = config.text("result_format", "%s")
        self.domains = {domain.lower() for domain in config.words("domain")}
        for domain in self.domains:
            if ":" in domain or "/" in domain:
                raise TableFormatError(
                    f"{config.where('domain')}: domain lists only names here, not {domain!r}"
                )

    def arguments(self, key: str) -> tuple[str, ...] | None:
        """The query's parameters for key, or None when this key is not looked up."""
        if self.domains:
            local, domain = split_address(key)
            if not local or domain is None or domain not in self.domains:
                return None
        return key_fields(key, self.query.fields)

    def answer(self, values: Iterable[object], key: str) -> str | None:
        """Rows' first columns formatted and joined with commas; None when there are none."""
        parts: list[str] = []
        size = 0
        for value in values:
            if value is None or value == "":
                continue
            formatted = format_result(self.result_format, str(value), key)
            if formatted is None:
                continue
            size += len(formatted) + 1
            if size > MAX_REPLY_BYTES:
                raise TableUnavailable(
                    f"table {self.spec} is unavailable: answer over {MAX_REPLY_BYTES} bytes"
                )
            parts.append(formatted)
        return ",".join(parts) if parts else None


class Rows(Protocol):
    """A DB-API cursor after execute() (sqlite3's, psycopg's)."""

    def fetchmany(self, size: int) -> list[Any]: ...


def first_columns(cursor: Rows) -> list[object]:
    """The first column of each row the query returned, ROWS_PER_FETCH rows at a time, and
    not past MAX_REPLY_BYTES values (each one the answer keeps takes at least a byte)."""
    values: list[object] = []
    while rows := cursor.fetchmany(ROWS_PER_FETCH):
        values.extend(row[0] for row in rows)
        if len(values) > MAX_REPLY_BYTES:
            break
    return values


class SqlTable(LookupTable):
    """A sqlite: or pgsql: table: subclasses open their database and run the query."""

    def __init__(
        self, spec: str, config: TableConfig, placeholder: str, literal_percent: str
    ) -> None:
        super().__init__(spec)
        self.settings = SqlSettings(spec, config, placeholder, literal_percent)
        self.timeout = config.seconds("timeout", DEFAULT_TIMEOUT_SECONDS)
        self.cache = ResultCache(config.seconds("cache_ttl", DEFAULT_CACHE_SECONDS))

    @abstractmethod
    def run_query(self, arguments: tuple[str, ...]) -> list[object]:
        """The query's first_columns for these parameters; raises TableUnavailable."""

    def lookup(self, key: str) -> str | None:
        key = fold_key(key)
        cached, answer = self.cache.get(key)
        if cached:
            return answer
        arguments = self.settings.arguments(key)
        if arguments is None:
            return None
        answer = self.settings.answer(self.run_query(arguments), key)
        self.cache.put(key, answer)
        return answer
