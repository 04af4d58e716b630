import subprocess
import sys
import tomllib

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


def test_check_config_cli_passes_example(example_config_path):
    result = _cli("check-config", str(example_config_path))
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


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
