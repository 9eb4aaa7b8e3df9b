"""qmgr: the queue manager (Postfix's qmgr(8)).

Takes mail from the incoming and deferred queues into active, resolves each recipient to a
transport and next hop, schedules delivery requests to the delivery agents within
per-destination concurrency windows (slow start, failure feedback, dead-destination
throttling, rate delays), with a bounded active queue that takes new and deferred mail in
turn, records the results in batched transactions, retries deferred recipients with
exponential backoff, returns undeliverable and expired mail to the sender (mta.bounce), and
logs in Postfix's words. Modules:

  resolve    address -> (transport, next hop): mydestination, relay_domains, *_transport
  scheduler  destinations and concurrency windows as data, tested with a fake clock
  admission  the active queue's limits and turns between new and deferred mail, as data
  manager    the event loop: triggers, intake, agent connections, results, stats
  settings   main.cf parameters, checked

Security: runs unprivileged; trusts the queue (its own records, each length-checked) and the
agents' answers only as far as the protocol's bounds. One process per queue. Writes
$data_directory/qmgr.stats for `mta status`. Run with `python -m mta.qmgr -c CONFDIR`.
"""
