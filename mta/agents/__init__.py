"""Delivery agents (Postfix's discard(8), error(8), local(8)) over one shared server.

  server   the event-loop server: qmgr connections, status log lines, retirement
  discard  every recipient sent, nothing delivered (benchmarks, sinks)
  error    every recipient bounced with the next hop as the reason
  local    Maildir delivery under $data_directory/mail/<localpart>/Maildir

Each runs as `python -m mta.agents.<name> -c CONFDIR [--service NAME] (--listen-fd N |
--listen PATH) [--max-use N] [--max-idle SECONDS]`. Agents never import each other or qmgr;
they share mta.proto (the protocol) and mta.queue (local reads message content).
"""
