"""lookup_address: Postfix's search order for an address in a table (virtual(5), canonical(5)).

    lookup_address(table, "user+foo@example.com", "+")
        tries user+foo@example.com, user@example.com, user+foo, user, @example.com

The first key the table has wins:
  1. user+ext@domain       the address as it is
  2. user@domain           without the extension (when recipient_delimiter splits one off)
  3. user+ext, user        the local part alone: only when domain_is_local (the domain is
                           $myorigin, $mydestination, $inet_interfaces or $proxy_interfaces,
                           which the caller decides); the same two steps
  4. @domain               any address in the domain
An address without a domain tries only step 3 (as a local address).

recipient_delimiter may hold several characters; the first of them in the local part splits
user from ext. As in Postfix's split_addr(), owner-foo and foo-request are never split when
`-` is a delimiter, and a local part that starts with a delimiter is not split. Tables fold
case themselves; regexp tables see the key as given.
"""

from __future__ import annotations

from mta.maps.table import LookupTable


def split_extension(local: str, recipient_delimiter: str) -> tuple[str, str | None]:
    """(user, extension with its delimiter) or (local, None) when there is nothing to split."""
    if not recipient_delimiter:
        return local, None
    if "-" in recipient_delimiter:
        lowered = local.lower()
        if lowered.startswith("owner-") or (len(local) > 8 and lowered.endswith("-request")):
            return local, None
    positions = [local.find(char) for char in recipient_delimiter if char in local]
    split = min(positions, default=-1)
    if split <= 0:
        return local, None
    return local[:split], local[split:]


def address_keys(address: str, recipient_delimiter: str, domain_is_local: bool = True) -> list[str]:
    """The keys lookup_address tries, in order, without duplicates."""
    local, at, domain = address.rpartition("@")
    if not at:
        local, domain = address, ""
    user, extension = split_extension(local, recipient_delimiter)
    keys: list[str] = []
    if at:
        keys.append(address)
        if extension is not None:
            keys.append(f"{user}@{domain}")
    if domain_is_local or not at:
        keys.append(local)
        if extension is not None:
            keys.append(user)
    if at and domain:
        keys.append(f"@{domain}")
    return [key for position, key in enumerate(keys) if key and key not in keys[:position]]


def lookup_address(
    table: LookupTable, address: str, recipient_delimiter: str = "", domain_is_local: bool = True
) -> str | None:
    """The value of the first key in Postfix's order that the table has; TableUnavailable
    passes through for the caller to defer."""
    for key in address_keys(address, recipient_delimiter, domain_is_local):
        value = table.lookup(key)
        if value is not None:
            return value
    return None
