"""lmtp: the LMTP delivery agent (Postfix's lmtp(8)), mta.agents.smtp speaking RFC 2033.

`python -m mta.agents.lmtp` is the smtp agent with Protocol.LMTP: LHLO, one reply per accepted
recipient after the end of data, lmtp_* parameters, next hops `unix:/path`, `inet:host:port`,
`[host]:port`. See mta.agents.smtp for everything else.
"""

from __future__ import annotations

import sys

from mta.agents.smtp import main
from mta.smtp.settings import Protocol

if __name__ == "__main__":
    sys.exit(main(Protocol.LMTP))
