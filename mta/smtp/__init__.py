"""The SMTP and LMTP client: sessions, TLS, and the connection cache (Postfix's smtp(8) and
lmtp(8) protocol engine, without the queue).

    mta.smtp.settings   ClientSettings: the smtp_* or lmtp_* parameters of one client
    mta.smtp.session    one asyncio client session (greeting, EHLO/LHLO, STARTTLS, a mail
                        transaction with PIPELINING, SIZE, 8BITMIME, SMTPUTF8, DSN, CHUNKING)
    mta.smtp.tls        security levels, smtp_tls_policy_maps, SSL contexts, name checks
    mta.smtp.dane       RFC 7672 TLSA lookups and chain matching
    mta.smtp.cache      sessions kept open for the next message to the same destination
    mta.smtp.xtext      RFC 3461 xtext for ENVID and ORCPT

A shared layer: it imports mta.config, mta.maps, mta.rewrite's table helpers, mta.dns and
hotpath, and no service, no queue, no CLI (an import-linter contract checks it). The delivery
agent that drives it is mta.agents.smtp.
"""
