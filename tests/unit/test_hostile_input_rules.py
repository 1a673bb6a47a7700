"""The pure rules that hold against a hostile user: webhook targets, signatures, signing keys,
login delays, text in paths and spreadsheets, and the settings that guard them."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets

import pytest

from segs.config import SettingsError
from segs.config import load_settings
from segs.domain.keys import signing_key_problem
from segs.domain.lockout import delay_s
from segs.domain.lockout import retry_after_s
from segs.domain.signatures import signature
from segs.domain.signatures import signature_problem
from segs.domain.text import has_control_characters
from segs.domain.text import spreadsheet_safe
from segs.domain.webhooks import WebhookTargetError
from segs.domain.webhooks import address_problem
from segs.domain.webhooks import parse_target

HTTPS_PORTS = ((443, 443), (8443, 8443))


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.9", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("100.64.0.1", "shared (CGNAT)"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("240.0.0.1", "address"),
        ("fc00::1", "private"),
        # IPv6 forms that carry an IPv4 address are judged by it.
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "link-local"),
        ("2002:7f00:1::1", "loopback"),
        ("64:ff9b::a00:1", "private"),
    ],
)
def test_non_public_addresses_are_refused(address, reason):
    problem = address_problem(ipaddress.ip_address(address))
    assert problem is not None and reason in problem


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:4700::1111", "1.1.1.1"])
def test_public_addresses_are_allowed(address):
    assert address_problem(ipaddress.ip_address(address)) is None


def test_loopback_only_with_the_test_setting():
    assert address_problem(ipaddress.ip_address("127.0.0.1"), allow_loopback=True) is None
    # The test setting opens loopback, nothing else.
    assert address_problem(ipaddress.ip_address("10.0.0.1"), allow_loopback=True) is not None


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://93.184.215.14/hook", "must start with https://"),
        ("ftp://93.184.215.14/hook", "must start with https://"),
        ("https://user:pass@93.184.215.14/hook", "user name or password"),
        ("https://user@93.184.215.14/hook", "user name or password"),
        ("https://93.184.215.14:6379/hook", "port 6379 is not allowed"),
        ("https://93.184.215.14:5432/", "port 5432 is not allowed"),
        ("https://93.184.215.14:99999/", "cannot be parsed"),
        ("https:///hook", "no host"),
        ("https://93.184.215.14/a b", "control characters"),
        ("https://93.184.215.14/\x00", "control characters"),
    ],
)
def test_url_rules(url, reason):
    with pytest.raises(WebhookTargetError, match=reason):
        parse_target(url, allow_http=False, ports=HTTPS_PORTS)


def test_a_good_url_keeps_its_name_for_host_and_tls():
    target = parse_target(
        "https://Hooks.Example.com:8443/in?x=1", allow_http=False, ports=HTTPS_PORTS
    )
    assert (target.host, target.port, target.path) == ("hooks.example.com", 8443, "/in?x=1")
    assert target.host_header == "hooks.example.com:8443"
    assert target.url_for("93.184.215.14") == "https://93.184.215.14:8443/in?x=1"
    assert target.url_for("2606:4700::1") == "https://[2606:4700::1]:8443/in?x=1"
    plain = parse_target("http://h.example/", allow_http=True, ports=((80, 80),))
    assert (plain.port, plain.host_header) == (80, "h.example")


def test_signature_is_hmac_sha256_of_timestamp_dot_body():
    body = b'{"event":"alert.created"}'
    expected = hmac.new(b"s3cret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signature("s3cret", 1700000000, body) == f"sha256={expected}"


def test_signature_checks_refuse_wrong_stale_and_missing():
    body = b"{}"
    good = signature("key", 1000, body)
    assert signature_problem("key", "1000", body, good, now_s=1100) is None
    assert "more than 300 s" in signature_problem("key", "1000", body, good, now_s=1301)
    assert "more than 300 s" in signature_problem("key", "1000", body, good, now_s=699)
    assert "does not match" in signature_problem("key", "1000", b"{ }", good, now_s=1000)
    assert "does not match" in signature_problem("other", "1000", body, good, now_s=1000)
    # A replay with a new timestamp needs a new signature, which needs the secret.
    assert "does not match" in signature_problem("key", "1200", body, good, now_s=1200)
    assert "missing" in signature_problem("key", None, body, good, now_s=1000)
    assert "not a number" in signature_problem("key", "1e3", body, good, now_s=1000)


@pytest.mark.parametrize(
    "key",
    [
        None,
        "",
        "segs-dev-only-not-a-secret",
        "segs-development-only-signing-key-do-not-deploy",
        "x",
        secrets.token_hex(16),  # 128 bits
        "a" * 64,
        "ab" * 40,
    ],
)
def test_weak_signing_keys_are_refused(key):
    assert signing_key_problem(key) is not None


@pytest.mark.parametrize(
    "key", [secrets.token_hex(32), secrets.token_urlsafe(32), secrets.token_urlsafe(64)]
)
def test_random_signing_keys_are_taken(key):
    assert signing_key_problem(key) is None


def test_a_urlsafe_key_that_drew_no_digit_or_punctuation_is_taken():
    # About 1 in 1,700 secrets.token_urlsafe(32) keys looks like this; make run drew one once.
    key = "AbCdEfGhIjKlMnOpQrStUvWxYzaBcDeFgHiJkLmNoPq"
    assert (len(key), key.isalpha()) == (43, True)
    assert signing_key_problem(key) is None


def test_login_delays_double_after_the_free_tries_up_to_the_cap():
    assert [delay_s(n, 5, 900) for n in range(4, 10)] == [0, 1, 2, 4, 8, 16]
    assert delay_s(40, 5, 900) == 900
    assert delay_s(10**9, 5, 60) == 60
    assert retry_after_s(7, last_failure_s=100.0, now_s=101.0, free=5, cap=900) == 3
    assert retry_after_s(7, last_failure_s=100.0, now_s=104.5, free=5, cap=900) == 0
    assert retry_after_s(3, last_failure_s=100.0, now_s=100.0, free=5, cap=900) == 0


def test_control_characters_and_spreadsheet_formulas():
    assert has_control_characters("MTR-\x001") and has_control_characters("a\x7fb")
    assert has_control_characters("\u0085") and not has_control_characters("Zürich-Nord")
    for dangerous in ("=1+1", "+1", "-2", "@SUM(A1)", "\t=1", "\r=1"):
        assert spreadsheet_safe(dangerous) == "'" + dangerous
    assert spreadsheet_safe("MTR-0001") == "MTR-0001"


@pytest.fixture
def bare_env(monkeypatch):
    for name in [name for name in __import__("os").environ if name.startswith("SEGS_")]:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_webhook_test_settings_only_under_testing(bare_env):
    bare_env.setenv("SEGS_WEBHOOK_ALLOW_LOOPBACK", "1")
    with pytest.raises(SettingsError, match="for SEGS_ENV=testing only"):
        load_settings()
    bare_env.setenv("SEGS_ENV", "testing")
    bare_env.setenv("SEGS_WEBHOOK_TEST_HOSTS", "hooks.test=127.0.0.1")
    settings = load_settings()
    assert settings.webhook_allow_loopback
    assert settings.webhook_test_hosts == (("hooks.test", "127.0.0.1"),)


def test_plain_http_webhooks_never_in_production(bare_env):
    bare_env.setenv("SEGS_ENV", "production")
    bare_env.setenv("SEGS_WEBHOOK_ALLOW_HTTP", "1")
    with pytest.raises(SettingsError, match="SEGS_WEBHOOK_ALLOW_HTTP must be off"):
        load_settings()


def test_webhook_ports_take_ranges(bare_env):
    assert load_settings().webhook_ports == ((443, 443), (8443, 8443))
    bare_env.setenv("SEGS_WEBHOOK_PORTS", "443, 1024-2048")
    assert load_settings().webhook_ports == ((443, 443), (1024, 2048))
    bare_env.setenv("SEGS_WEBHOOK_PORTS", "0-80")
    with pytest.raises(SettingsError, match="between 1 and 65535"):
        load_settings()


@pytest.mark.parametrize("environment", ["development", "production"])
@pytest.mark.parametrize("key", [None, "segs-dev-only-not-a-secret", "x" * 40])
def test_the_api_and_the_feed_refuse_to_start_without_a_strong_key(environment, key):
    from segs.config import Settings
    from segs.web import create_app
    from segs.web.feed_app import create_feed_app

    settings = Settings(environment=environment, jwt_secret_key=key)
    for factory in (create_app, create_feed_app):
        with pytest.raises(SettingsError, match="JWT_SECRET_KEY"):
            factory(settings)


def test_a_strong_key_starts_the_api_and_testing_needs_none():
    from segs.config import Settings
    from segs.web import create_app

    strong = Settings(environment="production", jwt_secret_key=secrets.token_urlsafe(32))
    assert create_app(strong).config["JWT_SECRET_KEY"] == strong.jwt_secret_key
    assert create_app(Settings(environment="testing")).config["JWT_SECRET_KEY"]


def test_cli_commands_need_no_key_but_the_development_server_does():
    """The flask command loads the app for every command: those that serve nothing get a
    random key of their own process; ``flask run`` serves requests and needs a real one."""
    import click

    from segs.config import Settings
    from segs.web import create_app

    development = Settings(environment="development")
    flask_command = click.Group("flask")

    @flask_command.command("migrate")
    def a_command() -> None:
        assert len(create_app(development).config["JWT_SECRET_KEY"]) >= 43

    @flask_command.command("run")
    def the_server() -> None:
        create_app(development)

    flask_command.main(["migrate"], standalone_mode=False)
    with pytest.raises(SettingsError, match="JWT_SECRET_KEY"):
        flask_command.main(["run"], standalone_mode=False)
    with pytest.raises(SettingsError, match="JWT_SECRET_KEY"):
        create_app(development)  # gunicorn: no command at all
