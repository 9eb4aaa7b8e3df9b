"""Next-hop lookup for the SMTP client: MX, A and AAAA with dnspython (mta.dns.resolver).

A shared layer: it imports mta.config and nothing from the services, the queue or the CLI.
"""
