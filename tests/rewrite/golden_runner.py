"""Run a rewrite golden case: NAME.cf (main.cf), NAME.in (one `OP address` a line), NAME.ref.

    sender ADDRESS      the envelope sender as smtpd queues it
    recipient ADDRESS   the envelope recipients one RCPT becomes
    route ADDRESS       address class, transport:nexthop and the address delivered to

`<>` is the null address. `$golden` in NAME.cf names the golden directory, for table files.
Lines starting with # and blank lines are copied to the output, so the .ref reads like the .in.
Regenerate a reference after a deliberate change with: python tests/rewrite/golden_runner.py NAME
"""

from __future__ import annotations

import sys
from pathlib import Path

from mta.config.maincf import settings_from_text
from mta.maps import close_tables
from mta.rewrite import AddressRewriter, Route, TemporaryFailure, UserUnknown

GOLDEN = Path(__file__).parent / "golden"


def describe(result: str | tuple[str, ...] | Route | UserUnknown | TemporaryFailure) -> str:
    if isinstance(result, TemporaryFailure):
        return f"DEFER {result.reason}"
    if isinstance(result, UserUnknown):
        return f"REJECT 550 5.1.1 <{result.address}>: Recipient address rejected: {result.reason}"
    if isinstance(result, Route):
        return f"{result.address_class} {result.transport}:{result.nexthop} <{result.address}>"
    if isinstance(result, str):
        return f"<{result}>"
    return ", ".join(f"<{address}>" for address in result)


def run(name: str) -> str:
    main_cf = f"golden = {GOLDEN}\n" + (GOLDEN / f"{name}.cf").read_text()
    rewriter = AddressRewriter.from_settings(settings_from_text(main_cf, f"{name}.cf"))
    operations = {
        "sender": rewriter.sender,
        "recipient": rewriter.recipient,
        "route": rewriter.resolver.route,
    }
    lines = []
    try:
        for line in (GOLDEN / f"{name}.in").read_text().splitlines():
            if not line.strip() or line.startswith("#"):
                lines.append(line)
                continue
            operation, address = line.split()
            address = "" if address == "<>" else address
            lines.append(f"{line} => {describe(operations[operation](address))}")
    finally:
        close_tables()
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    for case in sys.argv[1:]:
        (GOLDEN / f"{case}.ref").write_text(run(case))
