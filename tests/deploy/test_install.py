"""`docs/operations.md` followed literally gives a running service: deploy/install.sh installs
into a temporary root, then the unit's own ExecStartPre/ExecStart command lines run as the
unprivileged service user (setpriv, with the unit's Environment=, EnvironmentFile=, UMask= and
WorkingDirectory=), against the local Bot API sandbox. Needs root (to create the user)."""

from __future__ import annotations

import asyncio
import os
import secrets
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bot.sandbox import BotApiSandbox
from tests.test_config import _deployable, _toml

ROOT = Path(__file__).resolve().parents[2]
INSTALL = ROOT / "deploy" / "install.sh"

pytestmark = pytest.mark.requires_root


@dataclass
class Unit:
    service: dict[str, list[str]] = field(default_factory=dict)

    def one(self, key: str) -> str:
        [value] = self.service[key]
        return value

    def all(self, key: str) -> list[str]:
        return self.service.get(key, [])


def parse_unit(path: Path) -> Unit:
    unit, section = Unit(), None
    for line in path.read_text("utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        if section == "Service":
            key, _, value = line.partition("=")
            unit.service.setdefault(key, []).append(value)
    return unit


def read_env_file(path: Path) -> dict[str, str]:
    """What systemd's EnvironmentFile= gives the process (read as root, before dropping privileges)."""
    env = {}
    for line in path.read_text("utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    return env


@dataclass
class Installed:
    prefix: Path
    user: str
    unit_path: Path
    unit: Unit
    etc: Path
    state: Path
    app: Path

    def service_env(self) -> dict[str, str]:
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
        for item in self.unit.all("Environment"):
            key, _, value = item.partition("=")
            env[key] = value
        env.update(read_env_file(Path(self.unit.one("EnvironmentFile").lstrip("-"))))
        return env

    def as_service(self, command: list[str]) -> list[str]:
        """The command as systemd would start it: the service user and group, its umask."""
        umask = self.unit.one("UMask")
        return ["setpriv", f"--reuid={self.user}", f"--regid={self.user}", "--init-groups", "--",
                "/bin/sh", "-c", f'umask {umask} && exec "$@"', "sh", *command]

    def run(self, command: list[str], **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(self.as_service(command), env=self.service_env(), cwd=self.unit.one("WorkingDirectory"),
                              capture_output=True, text=True, timeout=120, **kwargs)


SYSTEM_PYTHON = Path("/usr/bin/python3")
APP_FILES = ("bot", "scheduler", "locales", "deploy", "pyproject.toml", "config.example.toml", "Makefile")


def _traversable_by_others(path: Path) -> bool:
    return all(parent.stat().st_mode & stat.S_IXOTH for parent in [path, *path.parents])


def _clone_like_app(prefix: Path) -> Path:
    """/opt/adherence-bot as `git clone` + `make setup PYTHON=/usr/bin/python3` leave it, without
    downloading anything: the code is linked from this checkout, and the virtualenv is built from
    the system interpreter (which the service user can run, unlike a pyenv under /root) with this
    checkout's installed packages on its path."""
    app = prefix / "opt" / "adherence-bot"
    app.mkdir(parents=True)
    for name in APP_FILES:
        (app / name).symlink_to(ROOT / name)
    site_packages = Path(sysconfig_path("purelib"))
    subprocess.run([str(SYSTEM_PYTHON), "-m", "venv", "--without-pip", str(app / ".venv")], check=True, timeout=120)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    (app / ".venv" / "lib" / version / "site-packages" / "checkout.pth").write_text(
        f"import site; site.addsitedir({str(site_packages)!r})\n", "utf-8")
    script = app / ".venv" / "bin" / "adherence-bot"
    script.write_text(f"#!{app / '.venv' / 'bin' / 'python'}\nimport sys\nfrom bot.cli import main\n"
                      "sys.exit(main())\n", "utf-8")
    script.chmod(0o755)
    return app


def sysconfig_path(name: str) -> str:
    import sysconfig

    return sysconfig.get_paths()[name]


@pytest.fixture(scope="module")
def installed():
    if not _traversable_by_others(ROOT / "bot") or not _traversable_by_others(Path(sysconfig_path("purelib"))):
        pytest.fail(f"{ROOT} and its .venv must be readable by other users (the service user imports from them)")
    system = subprocess.run([str(SYSTEM_PYTHON), "-c", "import sys; print(sys.version_info[:2])"],
                            capture_output=True, text=True)
    if system.stdout.strip() != str(tuple(sys.version_info[:2])):
        pytest.fail(f"{SYSTEM_PYTHON} must be Python {sys.version_info.major}.{sys.version_info.minor} like the .venv "
                    "(its compiled packages are reused)")
    prefix = Path(tempfile.mkdtemp(prefix="adherence-install-"))
    prefix.chmod(0o755)  # like /: every user may traverse it
    user = f"adht{os.getpid() % 100000}{secrets.token_hex(2)}"
    try:
        app = _clone_like_app(prefix)
        for attempt in range(2):  # idempotent: a second run changes nothing and succeeds
            result = subprocess.run(["sh", str(INSTALL), "--prefix", str(prefix), "--app", str(app),
                                     "--user", user, "--skip-setup"], capture_output=True, text=True, timeout=120)
            assert result.returncode == 0, result.stdout + result.stderr
        unit_path = prefix / "etc/systemd/system/adherence-bot.service"
        yield Installed(prefix, user, unit_path, parse_unit(unit_path), prefix / "etc/adherence-bot",
                        prefix / "var/lib/adherence-bot", app)
    finally:
        subprocess.run(["userdel", user], capture_output=True)
        subprocess.run(["groupdel", user], capture_output=True)
        shutil.rmtree(prefix, ignore_errors=True)


def _mode(path: Path) -> tuple[str, str, int]:
    info = path.stat()
    import grp
    import pwd

    return pwd.getpwuid(info.st_uid).pw_name, grp.getgrgid(info.st_gid).gr_name, stat.S_IMODE(info.st_mode)


def test_install_creates_user_directories_and_permissions(installed):
    import pwd

    account = pwd.getpwnam(installed.user)
    assert account.pw_uid < 1000 and account.pw_shell.endswith("nologin")
    assert account.pw_dir == str(installed.state)
    assert _mode(installed.etc) == ("root", installed.user, 0o750)
    assert _mode(installed.etc / "config.toml") == ("root", installed.user, 0o640)
    assert _mode(installed.etc / "env") == ("root", "root", 0o600)
    assert _mode(installed.state) == (installed.user, installed.user, 0o700)
    unit = installed.unit
    assert unit.one("UMask") == "0077" and unit.one("User") == installed.user
    assert unit.one("WorkingDirectory") == str(installed.state)
    assert f"MPLCONFIGDIR={installed.state}/matplotlib" in unit.all("Environment")
    assert unit.one("StateDirectory") == "adherence-bot" and unit.one("ProtectSystem") == "strict"
    assert "ReadWritePaths" not in unit.service  # nothing names a folder that nothing creates


def test_the_service_user_reads_its_config_but_not_the_secrets(installed):
    assert installed.run(["cat", str(installed.etc / "config.toml")]).returncode == 0
    assert installed.run(["cat", str(installed.etc / "env")]).returncode != 0
    assert installed.run(["touch", str(installed.etc / "tampered")]).returncode != 0
    assert installed.run(["touch", str(installed.app / "bot" / "tampered.py")]).returncode != 0
    assert installed.run(["touch", str(installed.state / "writable")]).returncode == 0


def test_the_example_config_stops_the_start_with_the_key_to_fix(installed):
    """As installed (the example copied in), ExecStartPre refuses: placeholders are named."""
    [check, _migrate] = installed.unit.all("ExecStartPre")
    result = installed.run(shlex.split(check))
    assert result.returncode != 0
    assert "sites.0.phone" in result.stderr and "placeholder" in result.stderr


async def test_unit_command_lines_run_the_service_as_the_unprivileged_user(installed):
    async with BotApiSandbox() as sandbox:
        data = _deployable(ROOT / "config.example.toml")
        data["telegram"].update(base_url=sandbox.base_url, bot_username=sandbox.bot_username)
        data["database"]["url"] = "sqlite+aiosqlite:///adherence.db"  # relative: the working directory
        (installed.etc / "config.toml").write_text(_toml(data), "utf-8")  # root edits it in place
        with (installed.etc / "env").open("a", encoding="utf-8") as env:
            env.write(f"TELEGRAM_BOT_TOKEN={sandbox.token}\n")
        assert _mode(installed.etc / "config.toml")[2] == 0o640 and _mode(installed.etc / "env")[2] == 0o600

        for line in installed.unit.all("ExecStartPre"):
            result = await asyncio.to_thread(installed.run, shlex.split(line))
            assert result.returncode == 0, f"{line}\n{result.stdout}{result.stderr}"
        database = installed.state / "adherence.db"
        assert _mode(database) == (installed.user, installed.user, 0o600)  # UMask=0077

        process = await asyncio.create_subprocess_exec(
            *installed.as_service(shlex.split(installed.unit.one("ExecStart"))), env=installed.service_env(),
            cwd=installed.unit.one("WorkingDirectory"), stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT)
        output = bytearray()
        try:
            while b"event=scheduler_ready" not in output:
                line = await asyncio.wait_for(process.stdout.readline(), 60)
                assert line, f"the service exited before it was ready:\n{output.decode()}"
                output.extend(line)
            user = sandbox.user(9101, language_code="en")
            user.send_command("/help")
            await sandbox.wait_for(lambda: user.messages, timeout=30)
        finally:
            process.send_signal(signal.SIGTERM)
            rest, _ = await asyncio.wait_for(process.communicate(), 60)
            output.extend(rest)
        assert process.returncode == 0, output.decode()
        assert b"Traceback" not in output and b"level=ERROR" not in output, output.decode()
        for path in installed.state.glob("adherence.db*"):
            assert _mode(path)[2] == 0o600, path

        # matplotlib (imported for the first chart only) keeps its cache in the state directory.
        chart = await asyncio.to_thread(installed.run, [str(installed.app / ".venv/bin/python"), "-c",
                                                       "from bot.reports.chart import cjk_font; print(cjk_font())"])
        assert chart.returncode == 0 and "Noto Sans SC" in chart.stdout, chart.stderr
        assert list((installed.state / "matplotlib").glob("fontlist-*.json"))
        assert "is not a writable directory" not in chart.stderr


@pytest.mark.requires_systemd_analyze
def test_systemd_analyze_verifies_the_installed_unit(installed):
    result = subprocess.run(["systemd-analyze", "verify", str(installed.unit_path)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "adherence-bot.service" not in result.stderr, result.stderr


def test_the_operations_guide_uses_the_install_script():
    guide = (ROOT / "docs" / "operations.md").read_text("utf-8")
    assert "deploy/install.sh" in guide and "install -d -m 0750" not in guide
    for prerequisite in ("3.11", "python3-venv", "make", "git", "sqlite3", "pg_dump"):
        assert prerequisite in guide, prerequisite
