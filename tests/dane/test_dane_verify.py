"""dane_verify with certificates made at test time: every supported usage, selector and
matching type, wrong hashes, DANE-EE without name or date checks, DANE-TA chains with name,
date, CA and signature checks, anchors left out by the server, and hostile input."""

from __future__ import annotations

import dataclasses
import datetime
import itertools

import pytest
from support.certs import Issued, make_ca, make_leaf

from mta.smtp.dane import TlsaRecord, dane_verify

NAME = "mx.example.test"
NOW = datetime.datetime.now(datetime.UTC)


def record(issued: Issued, usage: int, selector: int, matching: int) -> TlsaRecord:
    return TlsaRecord.from_text(issued.tlsa(usage, selector, matching))


@pytest.fixture(scope="module")
def root() -> Issued:
    return make_ca("Verify Root")


@pytest.fixture(scope="module")
def intermediate(root: Issued) -> Issued:
    return make_ca("Verify Intermediate", issuer=root)


@pytest.fixture(scope="module")
def leaf(intermediate: Issued) -> Issued:
    return make_leaf([NAME], issuer=intermediate)


@pytest.fixture(scope="module")
def chain(leaf: Issued, intermediate: Issued, root: Issued) -> list[bytes]:
    return [leaf.der, intermediate.der, root.der]


COMBINATIONS = list(itertools.product((0, 1), (0, 1, 2)))


@pytest.mark.parametrize(("selector", "matching"), COMBINATIONS)
def test_dane_ee_every_selector_and_matching_type(
    leaf: Issued, chain: list[bytes], selector: int, matching: int
) -> None:
    assert dane_verify(chain, [record(leaf, 3, selector, matching)], [NAME]) is None
    assert dane_verify(chain[:1], [record(leaf, 3, selector, matching)], [NAME]) is None


@pytest.mark.parametrize(("selector", "matching"), COMBINATIONS)
@pytest.mark.parametrize("anchor", ["root", "intermediate"])
def test_dane_ta_every_selector_and_matching_type(
    request: pytest.FixtureRequest, chain: list[bytes], anchor: str, selector: int, matching: int
) -> None:
    issued: Issued = request.getfixturevalue(anchor)
    assert dane_verify(chain, [record(issued, 2, selector, matching)], [NAME]) is None


@pytest.mark.parametrize("usage", [2, 3])
@pytest.mark.parametrize(("selector", "matching"), COMBINATIONS)
def test_a_wrong_hash_does_not_match(
    root: Issued, leaf: Issued, chain: list[bytes], usage: int, selector: int, matching: int
) -> None:
    right = record(leaf if usage == 3 else root, usage, selector, matching)
    wrong = dataclasses.replace(right, data=bytes([right.data[0] ^ 1]) + right.data[1:])
    reason = dane_verify(chain, [wrong], [NAME])
    assert reason is not None and "\n" not in reason


def test_one_matching_record_among_others_is_enough(
    root: Issued, leaf: Issued, chain: list[bytes]
) -> None:
    other = make_leaf([NAME])
    records = [record(other, 3, 1, 1), record(other, 2, 0, 1), record(leaf, 3, 1, 2)]
    assert dane_verify(chain, records, [NAME]) is None


def test_dane_ee_accepts_an_expired_leaf_with_any_name() -> None:
    expired = make_leaf(
        ["someone-else.test"],
        not_before=NOW - datetime.timedelta(days=400),
        not_after=NOW - datetime.timedelta(days=30),
    )
    for selector, matching in COMBINATIONS:
        assert dane_verify([expired.der], [record(expired, 3, selector, matching)], [NAME]) is None


def test_dane_ta_refuses_an_expired_leaf(root: Issued, intermediate: Issued) -> None:
    expired = make_leaf(
        [NAME],
        issuer=intermediate,
        not_before=NOW - datetime.timedelta(days=400),
        not_after=NOW - datetime.timedelta(days=30),
    )
    sent = [expired.der, intermediate.der, root.der]
    assert dane_verify(sent, [record(root, 2, 0, 1)], [NAME]) == (
        "DANE-TA: a certificate in the chain has expired"
    )
    not_yet = make_leaf([NAME], issuer=intermediate, not_before=NOW + datetime.timedelta(days=1))
    sent = [not_yet.der, intermediate.der, root.der]
    assert dane_verify(sent, [record(root, 2, 0, 1)], [NAME]) == (
        "DANE-TA: a certificate in the chain is not yet valid"
    )


def test_dane_ta_does_not_check_the_anchors_dates() -> None:
    old_root = make_ca(
        "Old Root",
        not_before=NOW - datetime.timedelta(days=400),
        not_after=NOW - datetime.timedelta(days=1),
    )
    leaf = make_leaf([NAME], issuer=old_root)
    assert dane_verify([leaf.der, old_root.der], [record(old_root, 2, 1, 1)], [NAME]) is None


def test_dane_ta_refuses_a_name_mismatch(root: Issued, chain: list[bytes]) -> None:
    reason = dane_verify(chain, [record(root, 2, 0, 1)], ["other.example.test", "example.test"])
    assert reason == (
        "DANE-TA: server certificate names (mx.example.test) match none of "
        "other.example.test, example.test"
    )


def test_dane_ta_accepts_any_of_the_reference_names(root: Issued, chain: list[bytes]) -> None:
    # RFC 7672 3.2.2: the TLSA base domain and the MX host name; case and final dot ignored
    assert (
        dane_verify(chain, [record(root, 2, 0, 1)], ["alias.example.test", "MX.Example.Test."])
        is None
    )


@pytest.mark.parametrize(
    ("reference", "matches"),
    [
        ("mx.example.test", True),
        ("other.example.test", True),
        ("example.test", False),  # a wildcard stands for exactly one label
        ("a.mx.example.test", False),
        ("mx.example.test.evil", False),
    ],
)
def test_a_wildcard_is_one_leftmost_label(
    root: Issued, intermediate: Issued, reference: str, matches: bool
) -> None:
    wildcard = make_leaf(["*.example.test"], issuer=intermediate)
    reason = dane_verify(
        [wildcard.der, intermediate.der], [record(intermediate, 2, 0, 1)], [reference]
    )
    assert (reason is None) is matches, reason


def test_partial_wildcards_and_wildcards_below_a_tld_do_not_match(
    root: Issued, intermediate: Issued
) -> None:
    for pattern, reference in (("m*.example.test", "mx.example.test"), ("*.test", "example.test")):
        leaf = make_leaf([pattern], issuer=intermediate)
        assert dane_verify([leaf.der, intermediate.der], [record(root, 2, 0, 0)], [reference])


def test_the_common_name_counts_only_without_dns_names(root: Issued, intermediate: Issued) -> None:
    cn_only = make_leaf([], issuer=intermediate, common_name=NAME)
    assert dane_verify([cn_only.der, intermediate.der], [record(root, 2, 1, 0)], [NAME]) is None
    both = make_leaf(["other.example.test"], issuer=intermediate, common_name=NAME)
    assert dane_verify([both.der, intermediate.der], [record(root, 2, 1, 0)], [NAME])


def test_dane_ee_needs_no_name(leaf: Issued, chain: list[bytes]) -> None:
    assert dane_verify(chain, [record(leaf, 3, 1, 1)], ["unrelated.test"]) is None


def test_an_anchor_left_out_by_the_server_can_come_whole_from_dns(
    root: Issued, leaf: Issued, intermediate: Issued
) -> None:
    sent = [leaf.der, intermediate.der]  # no root
    assert dane_verify(sent, [record(root, 2, 0, 0)], [NAME]) is None
    assert dane_verify(sent, [record(root, 2, 1, 0)], [NAME]) is None
    # a digest of an anchor that was not sent cannot be checked
    for selector, matching in ((0, 1), (0, 2), (1, 1), (1, 2)):
        assert dane_verify(sent, [record(root, 2, selector, matching)], [NAME]) == (
            "DANE-TA: no DANE-TA record matched the server's chain"
        )


def test_the_chain_may_come_in_any_order_with_extras(
    root: Issued, leaf: Issued, intermediate: Issued
) -> None:
    stranger = make_ca("Stranger")
    sent = [leaf.der, stranger.der, root.der, intermediate.der]
    assert dane_verify(sent, [record(root, 2, 1, 1)], [NAME]) is None


def test_a_leaf_is_never_its_own_trust_anchor() -> None:
    self_signed = make_leaf([NAME])
    for selector, matching in COMBINATIONS:
        reason = dane_verify(
            [self_signed.der], [record(self_signed, 2, selector, matching)], [NAME]
        )
        assert reason == "DANE-TA: no DANE-TA record matched the server's chain"


def test_an_issuer_that_is_not_a_ca_is_refused(root: Issued) -> None:
    # an attacker holding any leaf key under the anchor must not mint certificates with it
    not_ca = make_ca("Just A Leaf", issuer=root, ca=False)
    forged = make_leaf([NAME], issuer=not_ca)
    reason = dane_verify([forged.der, not_ca.der, root.der], [record(root, 2, 0, 1)], [NAME])
    assert reason == "DANE-TA: an issuer is not a CA (basicConstraints CA:FALSE)"
    no_constraints = make_leaf(["ca.example.test"], issuer=root)  # no CA rights at all
    forged = make_leaf([NAME], issuer=no_constraints)
    reason = dane_verify([forged.der, no_constraints.der], [record(root, 2, 0, 0)], [NAME])
    assert reason == "DANE-TA: an issuer is not a CA (basicConstraints CA:FALSE)"


def test_a_path_length_constraint_is_obeyed() -> None:
    strict_root = make_ca("Strict Root", path_length=0)
    middle = make_ca("Middle", issuer=strict_root)
    leaf = make_leaf([NAME], issuer=middle)
    for sent, anchor in (
        ([leaf.der, middle.der, strict_root.der], record(strict_root, 2, 1, 1)),  # sent
        ([leaf.der, middle.der], record(strict_root, 2, 0, 0)),  # whole in DNS
    ):
        assert dane_verify(sent, [anchor], [NAME]) == (
            "DANE-TA: an issuer's pathLenConstraint is exceeded"
        )
    direct = make_leaf([NAME], issuer=strict_root)
    assert dane_verify([direct.der], [record(strict_root, 2, 1, 0)], [NAME]) is None


def test_a_forged_signature_is_refused(root: Issued, intermediate: Issued) -> None:
    # same issuer name as the real intermediate, another key: the signature cannot verify
    impostor = make_ca("Verify Intermediate")
    forged = make_leaf([NAME], issuer=impostor)
    reason = dane_verify([forged.der, intermediate.der, root.der], [record(root, 2, 0, 1)], [NAME])
    assert reason == "DANE-TA: no DANE-TA record matched the server's chain"


@pytest.mark.parametrize(("root_kind", "middle_kind"), [("rsa", "ed25519"), ("ed25519", "rsa")])
def test_rsa_ecdsa_and_ed25519_signatures(root_kind: str, middle_kind: str) -> None:
    root = make_ca("Mixed Root", kind=root_kind)  # type: ignore[arg-type]
    middle = make_ca("Mixed Middle", issuer=root, kind=middle_kind)  # type: ignore[arg-type]
    leaf = make_leaf([NAME], issuer=middle)
    assert dane_verify([leaf.der, middle.der, root.der], [record(root, 2, 1, 1)], [NAME]) is None
    assert dane_verify([leaf.der, middle.der], [record(root, 2, 1, 0)], [NAME]) is None


def test_the_depth_limit_bounds_the_chain(root: Issued) -> None:
    issuers = [root]
    for number in range(3):
        issuers.append(make_ca(f"Level {number}", issuer=issuers[-1]))
    leaf = make_leaf([NAME], issuer=issuers[-1])
    sent = [leaf.der, *(issued.der for issued in reversed(issuers))]
    anchor = [record(root, 2, 0, 1)]
    assert dane_verify(sent, anchor, [NAME]) is None
    assert dane_verify(sent, anchor, [NAME], depth_limit=2) == (
        "DANE-TA: no DANE-TA record matched the server's chain"
    )


def test_unusable_records_and_empty_or_broken_chains(
    root: Issued, leaf: Issued, chain: list[bytes]
) -> None:
    assert dane_verify(chain, [record(leaf, 1, 1, 1), record(root, 0, 0, 1)], [NAME]) == (
        "no usable TLSA records"
    )
    assert dane_verify([], [record(leaf, 3, 1, 1)], [NAME]) == "the server sent no certificate"
    reason = dane_verify([b"\x30\x03junk"], [record(leaf, 3, 1, 1)], [NAME])
    assert reason is not None and reason.startswith("the server certificate cannot be parsed")
    # garbage after the leaf: DANE-EE still matches, DANE-TA finds nothing to build on
    assert dane_verify([leaf.der, b"junk"], [record(leaf, 3, 1, 1)], [NAME]) is None
    assert dane_verify([leaf.der, b"junk"], [record(root, 2, 0, 1)], [NAME])
    # a full-anchor record whose data is not a certificate or key matches nothing
    broken = [TlsaRecord(2, 0, 0, b"junk"), TlsaRecord(2, 1, 0, b"junk")]
    assert dane_verify(chain[:2], broken, [NAME])


def test_dane_ee_3_0_x_matches_even_a_certificate_that_cannot_be_parsed() -> None:
    blob = b"\x30\x03\x02\x01\x00"
    assert dane_verify([blob], [TlsaRecord(3, 0, 0, blob)], [NAME]) is None


def test_damaged_certificates_never_crash(
    root: Issued, intermediate: Issued, leaf: Issued, chain: list[bytes]
) -> None:
    # every 3rd byte of each certificate in turn, flipped: a reason or a match, no exception
    records = [record(root, 2, 0, 1), record(intermediate, 2, 1, 0), record(leaf, 3, 1, 1)]
    for position in range(len(chain)):
        for offset in range(0, len(chain[position]), 3):
            damaged = bytearray(chain[position])
            damaged[offset] ^= 0xFF
            sent = [*chain[:position], bytes(damaged), *chain[position + 1 :]]
            result = dane_verify(sent, records, [NAME])
            assert result is None or isinstance(result, str)
