import subprocess
import sys
import tomllib
from datetime import date

import pytest

from bot.config import ConfigError, load_settings, settings_from_mapping


def _example(example_config_path) -> dict:
    return tomllib.loads(example_config_path.read_text("utf-8"))


def test_example_config_is_valid_and_describes_both_sites(example_config_path):
    settings = load_settings(example_config_path, env={})
    assert [s.id for s in settings.sites] == ["NJ", "SH"]
    assert "Nanjing" in settings.sites[0].name_en and "Shanghai" in settings.sites[1].name_en
    assert settings.trial.course_days == 14 and settings.trial.start_offset_days == 1
    assert settings.medication.fast_before_hours == 2 and settings.medication.minerals_after_hours == 4
    levels = {s.level for s in settings.triage.symptoms}
    assert levels == {"emergency", "same_day", "log"}


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda d: d["sites"][0].__setitem__("timezone", "Mars/Olympus"), "sites.0.timezone"),
        (lambda d: d.__setitem__("colour", "blue"), "colour: unknown key"),
        (lambda d: d["reminders"].__setitem__("folowup_minutes", 5), "reminders.folowup_minutes: unknown key"),
        (lambda d: d["sites"][1]["coordinators"][0].__setitem__("telegram_id", "nurse-li"), "sites.1.coordinators.0.telegram_id"),
        (lambda d: d["sites"][1]["coordinators"][0].__setitem__("telegram_id", -5), "sites.1.coordinators.0.telegram_id"),
        (lambda d: d["reminders"].__setitem__("default_time", "8am"), "reminders.default_time"),
        (lambda d: d["telegram"].__setitem__("mode", "carrier-pigeon"), "telegram.mode"),
    ],
)
def test_bad_config_names_the_key(example_config_path, mutate, expected):
    data = _example(example_config_path)
    mutate(data)
    with pytest.raises(ConfigError) as error:
        settings_from_mapping(data, env={})
    assert expected in str(error.value)


def test_token_comes_from_environment_and_never_shows(example_config_path):
    settings = load_settings(example_config_path, env={"TELEGRAM_BOT_TOKEN": "999:SECRET-abc"})
    assert settings.token == "999:SECRET-abc"
    assert "SECRET-abc" not in repr(settings) and "SECRET-abc" not in str(settings.model_dump())


def test_token_never_in_validation_error(example_config_path):
    data = _example(example_config_path)
    data["telegram"]["token"] = "999:SECRET-xyz"
    data["telegram"]["mode"] = "bogus"
    with pytest.raises(ConfigError) as error:
        settings_from_mapping(data, env={})
    assert "SECRET-xyz" not in str(error.value)


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "bot", *args], capture_output=True, text=True, env=env, timeout=60)


def _deployable(example_config_path) -> dict:
    """The example with real-looking values in place of its placeholders."""
    data = _example(example_config_path)
    for index, site in enumerate(data["sites"]):
        site["phone"] = f"+86-2{index}-8328-123{index}"
        site["escalation_contact"] = 512345670 + index
        for number, coordinator in enumerate(site["coordinators"]):
            coordinator["telegram_id"] = 612345600 + 10 * index + number
    return data


def _toml(data: dict) -> str:
    """A minimal TOML writer for the shapes of our config (tables, arrays of tables, inline tables)."""
    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, date):
            return v.isoformat()  # a TOML local date
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, list):
            return "[" + ", ".join(value(i) for i in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {value(i)}" for k, i in v.items()) + " }"
        raise TypeError(v)

    lines = []

    def table(name, mapping):
        scalars = {k: v for k, v in mapping.items() if not isinstance(v, dict)
                   and not (isinstance(v, list) and v and isinstance(v[0], dict) and k != "coordinators")}
        lines.extend([f"[{name}]"] + [f"{k} = {value(v)}" for k, v in scalars.items()])
        for key, v in mapping.items():
            if isinstance(v, dict):
                table(f"{name}.{key}", v)
            elif isinstance(v, list) and v and isinstance(v[0], dict) and key != "coordinators":
                for item in v:
                    lines.append(f"[[{name}.{key}]]")
                    lines.extend(f"{k} = {value(i)}" for k, i in item.items())

    for key, v in data.items():
        if key == "sites":
            for site in v:
                lines.append("[[sites]]")
                lines.extend(f"{k} = {value(i)}" for k, i in site.items())
        else:
            table(key, v)
    return "\n".join(lines) + "\n"


def test_example_config_is_refused_until_its_placeholders_are_replaced(example_config_path):
    result = _cli("check-config", str(example_config_path))
    assert result.returncode == 2
    for key in ("sites.0.phone", "sites.0.coordinators", "sites.0.escalation_contact", "sites.1.phone",
                "sites.1.coordinators", "sites.1.escalation_contact"):
        assert key in result.stderr
    assert "+86-25-0000-0000" in result.stderr and "placeholder" in result.stderr
    assert "Traceback" not in result.stderr


def test_example_config_passes_in_the_sandbox(example_config_path):
    result = _cli("check-config", "--sandbox", str(example_config_path))
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def test_example_placeholders_are_the_ones_refused(example_config_path):
    """If someone edits the example's placeholders, the refusal list must follow."""
    from bot.config import PLACEHOLDER_TELEGRAM_IDS

    data = _example(example_config_path)
    ids = {c["telegram_id"] for s in data["sites"] for c in s["coordinators"]} | {
        s["escalation_contact"] for s in data["sites"]}
    assert ids == PLACEHOLDER_TELEGRAM_IDS


def test_check_config_cli_passes_a_filled_in_config(tmp_path, example_config_path):
    config = tmp_path / "config.toml"
    config.write_text(_toml(_deployable(example_config_path)), "utf-8")
    result = _cli("check-config", str(config))
    assert result.returncode == 0, result.stderr
    assert "OK: 2 sites, 3 coordinators" in result.stdout


SECRET_32 = "s" * 32


@pytest.mark.parametrize(
    "mutate, key, hint",
    [
        (lambda d: d["telegram"].update(mode="webhook") or d["telegram"]["webhook"].update(secret_token=SECRET_32),
         "telegram.webhook.public_url", "https://"),
        (lambda d: d["telegram"].update(mode="webhook") or d["telegram"]["webhook"].update(
            public_url="http://bot.example.org", secret_token=SECRET_32), "telegram.webhook.public_url", "https://"),
        (lambda d: d["telegram"].update(mode="webhook") or d["telegram"]["webhook"].update(
            public_url="https://bot.example.org"), "telegram.webhook.secret_token", "TELEGRAM_WEBHOOK_SECRET"),
        (lambda d: d["telegram"].update(mode="webhook") or d["telegram"]["webhook"].update(
            public_url="https://bot.example.org", secret_token="short-secret-0123456789"),
         "telegram.webhook.secret_token", "32"),
        (lambda d: d["sites"][1].update(coordinators=[], alert_chat_id=0), "sites.1", "alert_chat_id"),
        (lambda d: d["sites"][0].update(escalation_contact=0), "sites.0.escalation_contact", "Telegram id"),
        (lambda d: d["sites"][0].update(phone="+86-25-0000-0000"), "sites.0.phone", "real study phone"),
        (lambda d: d["sites"][0].update(phone="ask the nurse"), "sites.0.phone", "not a phone number"),
        (lambda d: d["sites"][1]["coordinators"][0].update(telegram_id=100000011), "sites.1.coordinators",
         "numeric Telegram ids"),
        (lambda d: d["sites"][1].update(escalation_contact=100000019), "sites.1.escalation_contact", "placeholder"),
    ],
)
def test_unsafe_config_is_refused_naming_the_key_and_the_fix(example_config_path, mutate, key, hint):
    from bot.config import require_deployable

    data = _deployable(example_config_path)
    require_deployable(settings_from_mapping(data, env={}))  # the filled-in config itself is fine
    mutate(data)
    with pytest.raises(ConfigError) as error:
        require_deployable(settings_from_mapping(data, env={}))
    assert key in str(error.value) and hint in str(error.value)


def test_webhook_with_https_url_and_long_secret_passes(example_config_path):
    from bot.config import require_deployable

    data = _deployable(example_config_path)
    data["telegram"]["mode"] = "webhook"
    data["telegram"]["webhook"].update(public_url="https://bot.example.org")
    settings = settings_from_mapping(data, env={"TELEGRAM_WEBHOOK_SECRET": "x" * 40})
    assert require_deployable(settings) is settings


def test_site_with_only_an_alert_chat_passes(example_config_path):
    from bot.config import require_deployable

    data = _deployable(example_config_path)
    data["sites"][1].update(coordinators=[], alert_chat_id=-1001234567890)
    require_deployable(settings_from_mapping(data, env={}))


@pytest.mark.parametrize("username", ["@my bot", "@adherence_trial_bot", "my bot", "trial", "abot", "1trial_bot",
                                      "adherence-trial-bot", "adherence_trial", "x" * 30 + "_bot"])
def test_invalid_bot_username_is_refused(example_config_path, username):
    data = _example(example_config_path)
    data["telegram"]["bot_username"] = username
    with pytest.raises(ConfigError) as error:
        settings_from_mapping(data, env={})
    assert "telegram.bot_username" in str(error.value) and "without '@'" in str(error.value)


@pytest.mark.parametrize("username", ["adherence_trial_bot", "NJTrialBot", "abcbot", "a" * 29 + "bot"])
def test_valid_bot_username_passes(example_config_path, username):
    data = _example(example_config_path)
    data["telegram"]["bot_username"] = username
    assert settings_from_mapping(data, env={}).telegram.bot_username == username


def test_run_refuses_an_unsafe_config_before_touching_anything(tmp_path, example_config_path):
    database = tmp_path / "never.db"
    config = tmp_path / "config.toml"
    data = _deployable(example_config_path)
    data["telegram"]["mode"] = "webhook"
    data["database"]["url"] = f"sqlite+aiosqlite:///{database}"
    config.write_text(_toml(data), "utf-8")
    result = _cli("run", "--config", str(config), env={**__import__("os").environ, "TELEGRAM_BOT_TOKEN": "1:x"})
    assert result.returncode == 2
    assert "telegram.webhook.public_url" in result.stderr and "telegram.webhook.secret_token" in result.stderr
    assert not database.exists()


def test_check_config_cli_fails_naming_key(tmp_path, example_config_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(example_config_path.read_text("utf-8").replace('timezone = "Asia/Shanghai"', 'timezone = "Asia/Atlantis"', 1), "utf-8")
    result = _cli("check-config", str(bad))
    assert result.returncode != 0
    assert "sites.0.timezone" in result.stderr and "Asia/Atlantis" in result.stderr


def test_missing_config_file_fails_cleanly(tmp_path):
    result = _cli("migrate", "--config", str(tmp_path / "nope.toml"))
    assert result.returncode != 0
    assert "cannot read configuration" in result.stderr
    assert "Traceback" not in result.stderr
