"""The relay policy against its golden table (policy_golden.txt), and its configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from mta.config.maincf import BUILTIN_DEFAULTS, ConfigError, Settings, load_settings
from mta.smtpd.policy import RelayPolicy

GOLDEN = Path(__file__).with_name("policy_golden.txt")
MAIN_CF = """\
myhostname = mx.example.com
mydomain = example.com
mynetworks = 127.0.0.0/8 [::1]/128, 192.0.2.0/24
mydestination = $myhostname, localhost.$mydomain, localhost, example.com
relay_domains = relayed.example, .sub.example
"""


def golden_cases() -> list[tuple[str, str, str]]:
    cases = []
    for line in GOLDEN.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            client, recipient, expected = (field.strip() for field in line.split("|"))
            cases.append((client, recipient, expected))
    return cases


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> RelayPolicy:
    directory = tmp_path_factory.mktemp("policy")
    (directory / "main.cf").write_text(MAIN_CF)
    return RelayPolicy.from_settings(load_settings(directory))


@pytest.mark.parametrize(("client", "recipient", "expected"), golden_cases())
def test_relay_policy_golden(
    policy: RelayPolicy, client: str, recipient: str, expected: str
) -> None:
    rejection = policy.check_recipient(client, recipient)
    assert (str(rejection) if rejection else "ok") == expected


def test_default_policy_refuses_relaying_for_strangers() -> None:
    policy = RelayPolicy.from_settings(load_settings(Path("/nonexistent")))
    assert policy.check_recipient("127.0.0.1", "a@elsewhere.example") is None
    assert policy.check_recipient("203.0.113.9", "a@elsewhere.example") is not None
    assert policy.check_recipient("203.0.113.9", "postmaster@localhost") is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("mynetworks", "127.0.0.0/33"),
        ("mynetworks", "not-an-address"),
        ("mydestination", "hash:/etc/mta/domains"),
        ("relay_domains", "/etc/mta/relay"),
    ],
)
def test_invalid_policy_setting_names_the_parameter(name: str, value: str) -> None:
    settings = Settings({**BUILTIN_DEFAULTS, "myorigin": "x", name: value})
    with pytest.raises(ConfigError, match=name):
        RelayPolicy.from_settings(settings)
