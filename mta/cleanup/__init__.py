"""cleanup: content inspection of incoming mail, Postfix's header_checks(5) and body_checks.

    specs = CheckSpecs.from_settings(settings)      # None: no checks, nothing to do
    inspector = open_inspector(specs)               # defers the message if a table fails
    for chunk in content: inspector.feed(chunk)
    inspection = inspector.finish()                 # reply, hold, redirect, edits, log events

A shared layer, not a service: smtpd feeds it the content as DATA or BDAT brings it and acts
on the inspection at the end of the message, as Postfix's cleanup(8) does for its smtpd. It
imports mta.maps, mta.config and mta.rewrite only (an import-linter contract checks it), and
rewrites header addresses (mta.cleanup.headers) with mta.rewrite as cleanup does.
"""

from mta.cleanup.checks import CHECK_PARAMETERS, Action, CheckSpecs, ContentChecks
from mta.cleanup.headers import HeaderRewriter
from mta.cleanup.inspector import (
    ActionEvent,
    ContentInspector,
    Inspection,
    log_context,
    open_inspector,
)

__all__ = [
    "CHECK_PARAMETERS",
    "Action",
    "ActionEvent",
    "CheckSpecs",
    "ContentChecks",
    "ContentInspector",
    "HeaderRewriter",
    "Inspection",
    "log_context",
    "open_inspector",
]
