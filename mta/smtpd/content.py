"""What smtpd does with the content checks' decision at the end of a message (mta.cleanup).

A message the checks let through is queued as they changed it: content edits (IGNORE, STRIP,
REPLACE, PREPEND), on hold (HOLD), to the one REDIRECT address instead of its recipients, with
the FILTER's transport:nexthop as the envelope extra `filter` for qmgr. Their log lines carry
the queue id once the commit gave one, as Postfix's cleanup logs them; a refused or discarded
message has none, and its lines say NOQUEUE, as smtpd's own rejections do:
  NOQUEUE: reject: header Subject: xxx from unknown[ADDR]; from=<a@b> to=<c@d> proto=ESMTP
      helo=<h>: 5.7.1 text
  QUEUEID: hold: header Subject: xxx from unknown[ADDR]; from=<a@b> to=<c@d> ...: text
A table that could not answer is logged as a warning naming it, and the message is deferred
with 451 4.3.0 Temporary lookup failure.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from mta.cleanup import Inspection
from mta.queue import FILTER_EXTRA, Message, Recipient

log = logging.getLogger("mta.smtpd")


def checked_message(message: Message, inspection: Inspection) -> Message:
    """message as the content checks left it (the inspection did not refuse it); a FILTER
    action's filter replaces content_filter's, as Postfix's does."""
    extras = message.extras
    if inspection.filter is not None:
        extras = {**extras, FILTER_EXTRA: inspection.filter}
    recipients = message.recipients
    if inspection.redirect is not None:
        recipients = (Recipient(inspection.redirect),)
    return replace(
        message,
        content=inspection.apply(message.content),
        recipients=recipients,
        extras=extras,
        hold=inspection.hold,
    )


def log_inspection(inspection: Inspection, queue_id: str, client: str, context: str) -> None:
    """The checks' log lines; context is log_context() of the transaction."""
    if inspection.failure is not None:
        log.warning("warning: %s: %s", client, inspection.failure)
    for event in inspection.events:
        log.info(event.log_text(queue_id, context))
