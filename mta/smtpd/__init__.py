"""smtpd: the SMTP server (Postfix's smtpd(8)).

Receives mail over SMTP (RFC 5321 with PIPELINING, SIZE, 8BITMIME, SMTPUTF8,
ENHANCEDSTATUSCODES, CHUNKING and DSN), applies the access policy, and hands each message to
the queue with a durable group commit before answering 250. Modules:

  session   one connection: asyncio Protocol over the sans-IO engine (hotpath.parser)
  policy    who may send to whom (mynetworks, mydestination, relay_domains)
  received  the Received header and protocol names (RFC 5321 4.4, RFC 3848, RFC 6531)
  stats     command counts for the disconnect log line
  settings  main.cf parameters, checked
  service   what a worker's sessions share (committer, policy, qmgr trigger)
  worker    event-loop processes, SO_REUSEPORT listeners, graceful stop

Security: smtpd trusts nothing from the client; every input has a named limit. It runs
unprivileged (the master binds port 25). Run standalone with `python -m mta.smtpd`.
"""
