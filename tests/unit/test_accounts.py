"""Account rules without any service: the password rule, time zones, codes and their mail."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from segs.config import Settings
from segs.domain.accounts import is_timezone
from segs.domain.accounts import normalize_email
from segs.domain.accounts import password_problems
from segs.domain.codes import CODE_PATTERN
from segs.domain.codes import code_digest
from segs.domain.codes import code_mail
from segs.domain.codes import digests_match
from segs.domain.codes import new_code
from segs.services.alerts.mail import build_message

NO_DIGIT = "must contain a digit"


@pytest.mark.parametrize(
    ("password", "problems"),
    [
        ("correct-horse-42", []),
        ("abcdefghi1", []),
        ("abcdefgh1", ["must be at least 10 characters long"]),
        ("abcdefghijkl", [NO_DIGIT]),
        ("123456789012", ["must contain a letter"]),
        (
            "",
            [
                "must be at least 10 characters long",
                "must contain a letter",
                "must contain a digit",
            ],
        ),
        ("a1" * 65, ["must be at most 128 characters long"]),
        ("Ravi1234@Example.test", ["must not be the email address"]),
        ("पासवर्ड-सुरक्षित-7", []),
    ],
)
def test_password_rule(password, problems):
    assert password_problems(password, "ravi1234@example.test") == problems


def test_password_rule_without_an_email():
    assert password_problems("ravi1234@example.test") == []


def test_timezones_and_addresses():
    assert is_timezone("Asia/Kolkata") and is_timezone("UTC") and is_timezone("America/New_York")
    assert not is_timezone("Mars/Base")
    assert not is_timezone("../../etc/passwd")
    assert not is_timezone("")
    # The host's zone, which PostgreSQL and Python may read differently, names no local day.
    assert not is_timezone("localtime")
    assert normalize_email("  Asha.Rao@Example.TEST ") == "asha.rao@example.test"


def test_new_codes_are_six_digits_and_spread():
    codes = [new_code() for _ in range(20_000)]
    assert all(CODE_PATTERN.match(code) for code in codes)
    # Leading zeros are kept: about 10% of codes start with 0.
    first_digits = Counter(code[0] for code in codes)
    assert set(first_digits) == set("0123456789")
    assert all(1500 < count < 2500 for count in first_digits.values()), first_digits
    assert len(set(codes)) > 19_500


def test_code_digest_binds_key_purpose_and_account():
    digest = code_digest("key", "verify_email", "account-1", "123456")
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert digest == code_digest("key", "verify_email", "account-1", "123456")
    for other in (
        code_digest("other-key", "verify_email", "account-1", "123456"),
        code_digest("key", "reset_password", "account-1", "123456"),
        code_digest("key", "verify_email", "account-2", "123456"),
        code_digest("key", "verify_email", "account-1", "123457"),
    ):
        assert other != digest
        assert not digests_match(digest, other)
    assert digests_match(digest, code_digest("key", "verify_email", "account-1", "123456"))


@given(st.text(min_size=0, max_size=20))
def test_digests_match_only_equal_digests(candidate):
    digest = code_digest("key", "verify_email", "a", "000000")
    assert digests_match(digest, candidate) == (candidate == digest)


def test_code_mails():
    verify = code_mail("verify_email", "a@example.test", "004217", 600)
    assert verify.to == "a@example.test"
    assert verify.subject == "Your SEGS verification code"
    assert verify.body == (
        "Hello,\n\n"
        "Your code is 004217. Enter it in SEGS to confirm your email address and choose your "
        "password.\n\n"
        "The code is valid for 10 minutes and can be used once. Never share it: SEGS staff will "
        "not ask you for it.\n\n"
        "If you did not create a SEGS account, you can ignore this message.\n"
    )
    reset = code_mail("reset_password", "a@example.test", "999999", 60)
    assert reset.subject == "Your SEGS password reset code"
    assert "valid for 1 minute and" in reset.body
    assert "choose a new password" in reset.body
    with pytest.raises(ValueError, match="unknown code purpose"):
        code_mail("login", "a@example.test", "000000", 600)


def test_build_message_headers():
    message = build_message(
        Settings(mail_from="SEGS <no-reply@segs.example>"),
        code_mail("verify_email", "a@example.test", "004217", 600),
    )
    assert message["From"] == "SEGS <no-reply@segs.example>"
    assert message["To"] == "a@example.test"
    assert message["Subject"] == "Your SEGS verification code"
    assert message["Message-ID"].endswith("@segs.localhost>")
    assert message.get_content_type() == "text/plain"
    assert "Your code is 004217." in message.get_content()
