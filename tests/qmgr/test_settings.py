"""qmgr's limits per transport: a master.cf maxproc caps the deliveries in flight, as Postfix's
qmgr takes a transport's concurrency from its service's process limit."""

from __future__ import annotations

import sys

from mta.config.maincf import settings_from_text
from mta.config.mastercf import parse_master_cf
from mta.qmgr.settings import QmgrSettings

MASTER_CF = """\
qmgr      unix  n       -       n       300     1       qmgr
smtp      unix  -       -       n       -       7       smtp
relay     unix  -       -       n       -       -       smtp
lmtp      unix  -       -       n       -       0       lmtp
"""


def test_a_services_maxproc_caps_its_transport_and_a_dash_means_the_default() -> None:
    settings = QmgrSettings.from_settings(
        settings_from_text("myhostname = mx.example.test\ndefault_process_limit = 40\n", "m"),
        parse_master_cf(MASTER_CF, "master.cf"),
    )
    assert settings.policy("smtp").transport_limit == 7
    assert settings.policy("relay").transport_limit == 40
    assert settings.policy("lmtp").transport_limit == sys.maxsize  # 0: no limit
    assert settings.policy("discard").transport_limit == 40  # no service line at all
