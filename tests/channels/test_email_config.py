"""The [email] section and the per-site alert channels: validated, fail-closed, the SMTP password
only from the environment and never shown."""

from __future__ import annotations

import pytest

from bot.config import ConfigError, require_deployable, settings_from_mapping
from tests.test_config import _deployable

MAIL = {"enabled": True, "host": "smtp.hospital.example.org", "port": 587, "tls": "starttls",
        "from_address": "adherence-bot@hospital.example.org"}


def _with_mail(example_config_path, **site) -> dict:
    data = _deployable(example_config_path)
    data["email"] = dict(MAIL)
    data["sites"][0]["coordinators"][0]["email"] = "nurse1@hospital.example.org"
    data["sites"][0].update(alert_channels=["telegram", "email"], **site)
    return data


def test_mail_alerts_and_an_email_only_escalation_contact_pass(example_config_path):
    data = _with_mail(example_config_path, escalation_contact=0, escalation_email="oncall@hospital.example.org")
    settings = require_deployable(settings_from_mapping(data, env={}))
    assert settings.site("NJ").alert_channels == ["telegram", "email"]
    assert settings.site("SH").alert_channels == ["telegram"]  # the default


@pytest.mark.parametrize("mutate, key, hint", [
    (lambda d: d["email"].update(enabled=False), "email.enabled", "enabled = true"),
    (lambda d: d["email"].update(host=""), "email.host", "host"),
    (lambda d: d["email"].update(from_address=""), "email.from_address", "sender"),
    (lambda d: d["email"].update(tls="none"), "email.tls", "unencrypted"),
    (lambda d: d["email"].update(user="bot"), "email.user", "ADHERENCE_SMTP_PASSWORD"),
    (lambda d: d["sites"][0]["coordinators"][0].update(email=""), "sites.0.alert_channels", "email address"),
    (lambda d: d["sites"][0].update(escalation_contact=0), "sites.0.escalation_contact", "escalation_email"),
    (lambda d: d["sites"][0].update(alert_channels=["email"], alert_chat_id=0) or
     d["sites"][0]["coordinators"][0].update(email=""), "sites.0", "email address"),
])
def test_unsafe_mail_settings_are_refused_naming_the_key(example_config_path, mutate, key, hint):
    data = _with_mail(example_config_path)
    require_deployable(settings_from_mapping(data, env={}))
    mutate(data)
    with pytest.raises(ConfigError) as error:
        require_deployable(settings_from_mapping(data, env={}))
    assert key in str(error.value) and hint in str(error.value)


@pytest.mark.parametrize("mutate, key", [
    (lambda d: d["sites"][0].update(alert_channels=["pigeon"]), "sites.0.alert_channels"),
    (lambda d: d["sites"][0].update(alert_channels=[]), "sites.0.alert_channels"),
    (lambda d: d["sites"][0].update(alert_channels=["email", "email"]), "sites.0.alert_channels"),
    (lambda d: d["sites"][0]["coordinators"][0].update(email="not an address"), "sites.0.coordinators.0.email"),
    (lambda d: d["email"].update(tls="ssl3"), "email.tls"),
    (lambda d: d["email"].update(sender="x@example.org"), "email.sender: unknown key"),
])
def test_bad_mail_settings_name_the_key(example_config_path, mutate, key):
    data = _with_mail(example_config_path)
    mutate(data)
    with pytest.raises(ConfigError) as error:
        settings_from_mapping(data, env={})
    assert key in str(error.value)


def test_the_smtp_password_comes_only_from_the_environment_and_never_shows(example_config_path):
    data = _with_mail(example_config_path)
    data["email"]["user"] = "bot"
    settings = require_deployable(settings_from_mapping(data, env={"ADHERENCE_SMTP_PASSWORD": "SMTP-SECRET-42"}))
    assert settings.email.password.get_secret_value() == "SMTP-SECRET-42"
    assert "SMTP-SECRET-42" not in repr(settings) and "SMTP-SECRET-42" not in str(settings.model_dump())
    data["email"]["password"] = "SMTP-SECRET-42"
    with pytest.raises(ConfigError) as error:
        settings_from_mapping(data, env={})
    assert "ADHERENCE_SMTP_PASSWORD" in str(error.value) and "SMTP-SECRET-42" not in str(error.value)


def test_a_relay_on_this_machine_may_be_plain(example_config_path):
    data = _with_mail(example_config_path)
    data["email"].update(host="127.0.0.1", port=25, tls="none")
    require_deployable(settings_from_mapping(data, env={}))
