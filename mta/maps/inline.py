"""inline: and static: tables, written in main.cf itself (Postfix 3.0 DATABASE_README).

    inline:{ key=value, { key = text with spaces }, ... }
    static:value            static:{ text with spaces }

inline: items are separated by commas or white space; an item with spaces goes in braces,
where white space around the `=` is dropped. Keys are case-insensitive. static: answers every
key with its value. Both live in memory and are their own cache. Errors name the table spec.
"""

from __future__ import annotations

from mta.maps.table import MAX_ENTRIES, MAX_LINE_BYTES, LookupTable, TableFormatError, fold_key

_SEPARATORS = " \t\r\n,"


def braced_text(text: str, spec: str) -> str:
    """The text inside `{ ... }`, trimmed; text without braces is returned as it is."""
    text = text.strip()
    if not text.startswith("{"):
        return text
    if not text.endswith("}"):
        raise TableFormatError(f"{spec}: missing '}}'")
    return text[1:-1].strip()


def inline_items(text: str, spec: str) -> list[str]:
    """Split inline: content into items, keeping a braced item (nested braces too) whole."""
    items: list[str] = []
    position = 0
    while position < len(text):
        if text[position] in _SEPARATORS:
            position += 1
            continue
        if text[position] == "{":
            depth, end = 0, position
            while end < len(text):
                depth += {"{": 1, "}": -1}.get(text[end], 0)
                if depth == 0:
                    break
                end += 1
            if depth:
                raise TableFormatError(f"{spec}: missing '}}'")
            items.append(text[position + 1 : end].strip())
            position = end + 1
        else:
            end = position
            while end < len(text) and text[end] not in _SEPARATORS:
                end += 1
            items.append(text[position:end])
            position = end
    return items


class InlineTable(LookupTable):
    def __init__(self, spec: str, name: str) -> None:
        super().__init__(spec)
        if len(name) > MAX_LINE_BYTES:
            raise TableFormatError(f"{spec[:40]}...: longer than {MAX_LINE_BYTES} bytes")
        if not name.strip().startswith("{"):
            raise TableFormatError(f"{spec}: expected inline:{{ key=value, ... }}")
        self.entries: dict[str, str] = {}
        for item in inline_items(braced_text(name, spec), spec):
            key, equals, value = item.partition("=")
            if not equals or not key.strip():
                raise TableFormatError(f'{spec}: bad syntax: {item!r}: expected "name=value"')
            if len(self.entries) >= MAX_ENTRIES:
                raise TableFormatError(f"{spec}: more than {MAX_ENTRIES} entries")
            self.entries.setdefault(fold_key(key.strip()), value.strip())

    def lookup(self, key: str) -> str | None:
        return self.entries.get(fold_key(key))


class StaticTable(LookupTable):
    def __init__(self, spec: str, name: str) -> None:
        super().__init__(spec)
        self.value = braced_text(name, spec)
        if len(self.value) > MAX_LINE_BYTES:
            raise TableFormatError(f"{spec[:40]}...: longer than {MAX_LINE_BYTES} bytes")

    def lookup(self, key: str) -> str | None:
        return self.value
