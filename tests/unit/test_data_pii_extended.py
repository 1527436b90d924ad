"""mask_pii beyond contacts: checksummed numbers, addresses and secrets go; look-alikes stay."""

from __future__ import annotations

from collections import Counter

import pytest

from tasks.data.pii import iban_ok, luhn_ok, mask_pii, mask_rows
from tasks.data.records import Row

GITHUB = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7x9\nq2Jx+abc==\n-----END RSA PRIVATE KEY-----"


@pytest.mark.parametrize(
    ("text", "masked", "counts"),
    [
        ("Card 4111 1111 1111 1111, thanks", "Card [CREDIT_CARD], thanks", {"credit_card": 1}),
        ("pay 4111-1111-1111-1111.", "pay [CREDIT_CARD].", {"credit_card": 1}),
        ("amex 378282246310005", "amex [CREDIT_CARD]", {"credit_card": 1}),
        ("IBAN GB82 WEST 1234 5698 7654 32 please", "IBAN [IBAN] please", {"iban": 1}),
        ("to DE89370400440532013000.", "to [IBAN].", {"iban": 1}),
        ("GB82 WEST 1234 5698 7654 32 ABCD", "[IBAN] ABCD", {"iban": 1}),
        ("server 8.8.8.8 is up.", "server [IP_ADDRESS] is up.", {"ip_address": 1}),
        ("ping 2606:4700:4700::1111 now", "ping [IP_ADDRESS] now", {"ip_address": 1}),
        ("SSN 123-45-6789.", "SSN [SSN].", {"ssn": 1}),
        ("key=sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8t", "key=[SECRET]", {"secret": 1}),
        ("id AKIAIOSFODNN7EXAMPLE set", "id [SECRET] set", {"secret": 1}),
        (
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "aws_secret_access_key = [SECRET]",
            {"secret": 1},
        ),
        (f"token {GITHUB}", "token [SECRET]", {"secret": 1}),
        (
            "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln",
            "Authorization: Bearer [SECRET]",
            {"secret": 1},
        ),
        (f"key:\n{PEM}\ndone", "key:\n[SECRET]\ndone", {"secret": 1}),
        (
            "Mail a@b.io, card 4111111111111111, ip 81.2.69.142, call 555-123-4567",
            "Mail [EMAIL], card [CREDIT_CARD], ip [IP_ADDRESS], call [PHONE]",
            {"email": 1, "credit_card": 1, "ip_address": 1, "phone": 1},
        ),
    ],
)
def test_masks_each_kind(text: str, masked: str, counts: dict) -> None:
    out, c = mask_pii(text)
    assert out == masked
    assert c == Counter(counts)
    again, c2 = mask_pii(out)
    assert again == out and not c2  # idempotent


@pytest.mark.parametrize(
    "text",
    [
        "4111 1111 1111 1112",  # fails Luhn
        "order 1234567812345678",  # a 16-digit id that fails Luhn
        "GB82 WEST 1234 5698 7654 33",  # fails mod-97
        "GB00WEST12345698765432",
        "version 1.2.3 and 10.4.12",  # three parts: a version, not an address
        "1.2.3.4.5",
        "256.1.1.1",
        "v1.2.3.4",
        "192.168.1.1 10.0.0.1 127.0.0.1 ::1 fe80::1 2001:db8::1",  # private, loopback, documentation
        "at 12:30:45 or std::vector or a[1::2]",
        "000-12-3456 666-12-3456 923-45-6789 123-00-4567 123-45-0000",  # never-issued SSNs
        "3 + 4 = 7, 1999 - 2024, 3.14159265, 12 * 12 = 144",
        "1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19",
        "sk-learn-is-a-library-name-here",
        "use a Bearer token",
        "Bearer YOUR_ACCESS_TOKEN_HERE",
        "AKIA is a prefix",
        "ghp_short",
    ],
)
def test_look_alikes_left_alone(text: str) -> None:
    assert mask_pii(text) == (text, Counter())


def test_checksums() -> None:
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert iban_ok("GB82 WEST 1234 5698 7654 32") and not iban_ok("GB82 WEST 1234 5698 7654 33")
    assert not iban_ok("GB82")


def test_mask_rows_counts_new_kinds() -> None:
    rows = [Row("p", "pref", {"prompt": "ip 8.8.4.4", "chosen": "SSN 219-09-9999", "rejected": f"{GITHUB}"})]
    counts: Counter[str] = Counter()
    out = list(mask_rows(rows, counts))
    assert out[0].data == {"prompt": "ip [IP_ADDRESS]", "chosen": "SSN [SSN]", "rejected": "[SECRET]"}
    assert counts == Counter({"ip_address": 1, "ssn": 1, "secret": 1})
