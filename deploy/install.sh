#!/bin/sh
# Install adherence-bot as a systemd service. Idempotent: run it again after an upgrade.
#
#   sudo deploy/install.sh                 # from the clone in /opt/adherence-bot
#
# Creates the system user, /etc/adherence-bot (root:adherence 0750; config.toml 0640 root:adherence,
# copied from the example if absent; env 0600 root:root with the token), the state directory
# /var/lib/adherence-bot (adherence 0700: database, matplotlib cache), builds the virtualenv
# (make setup) and installs the unit. It never overwrites an existing config.toml or env.
#
# Options (the test suite uses them to install into a temporary root):
#   --prefix DIR   install under DIR instead of / (no systemctl calls then)
#   --app DIR      the clone holding the code and .venv (default: this script's repository)
#   --user NAME    service user and group (default: adherence)
#   --python EXE   the interpreter `make setup` builds the .venv with (default: /usr/bin/python3),
#                  which the service user must be able to run (not a pyenv under /root)
#   --skip-setup   do not run `make setup` (the .venv already exists)
set -eu

PREFIX=""
APP=$(cd "$(dirname "$0")/.." && pwd)
SERVICE_USER=adherence
SETUP=1
PYTHON=/usr/bin/python3
[ -x "$PYTHON" ] || PYTHON=python3
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) PREFIX=${2%/}; shift 2 ;;
        --app) APP=$(cd "$2" && pwd); shift 2 ;;
        --user) SERVICE_USER=$2; shift 2 ;;
        --python) PYTHON=$2; shift 2 ;;
        --skip-setup) SETUP=0; shift ;;
        -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

say() { printf 'install.sh: %s\n' "$*"; }
fail() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || fail "run as root (sudo deploy/install.sh)"

# ---- prerequisites ----------------------------------------------------------------------
if [ "$SETUP" = 1 ]; then
    command -v "$PYTHON" >/dev/null || fail "python3 (>= 3.11) is required: apt-get install python3 python3-venv"
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || fail "python3 >= 3.11 is required (found $("$PYTHON" -V 2>&1))"
    "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null || fail "python3 venv is required: apt-get install python3-venv"
    command -v make >/dev/null || fail "make is required: apt-get install make"
fi
command -v runuser >/dev/null || fail "runuser (util-linux) is required"
command -v sqlite3 >/dev/null || say "note: sqlite3 not found (needed for SQLite backups: apt-get install sqlite3)"
command -v pg_dump >/dev/null || say "note: pg_dump not found (needed for PostgreSQL backups: apt-get install postgresql-client)"
[ -f "$APP/pyproject.toml" ] && [ -f "$APP/deploy/adherence-bot.service" ] || fail "$APP is not an adherence-bot clone"

ETC="$PREFIX/etc/adherence-bot"
STATE="$PREFIX/var/lib/adherence-bot"
UNIT_DIR="$PREFIX/etc/systemd/system"

# ---- service user -----------------------------------------------------------------------
if ! getent group "$SERVICE_USER" >/dev/null; then
    groupadd --system "$SERVICE_USER"
fi
if ! id -u "$SERVICE_USER" >/dev/null 2>&1; then
    useradd --system --gid "$SERVICE_USER" --home-dir "$STATE" --no-create-home \
        --shell /usr/sbin/nologin --comment "adherence-bot service" "$SERVICE_USER"
    say "created system user $SERVICE_USER"
fi

# ---- code and virtualenv (root-owned, read-only for the service) ------------------------
if [ "$SETUP" = 1 ]; then
    make -C "$APP" setup PYTHON="$PYTHON"
fi
[ -x "$APP/.venv/bin/adherence-bot" ] || fail "$APP/.venv/bin/adherence-bot is missing: run make setup in $APP"
# The service user must be able to run the virtualenv's interpreter and read the code.
if ! runuser -u "$SERVICE_USER" -- "$APP/.venv/bin/python" -c 'import bot.cli' >/dev/null 2>&1; then
    fail "user $SERVICE_USER cannot run $APP/.venv/bin/python (is it built from an interpreter under /root, \
e.g. pyenv?): rm -rf $APP/.venv && deploy/install.sh --python /usr/bin/python3"
fi

# ---- configuration: root:adherence 0750, config 0640, env 0600 root -----------------------
install -d -o root -g "$SERVICE_USER" -m 0750 "$ETC"
if [ ! -e "$ETC/config.toml" ]; then
    install -o root -g "$SERVICE_USER" -m 0640 "$APP/config.example.toml" "$ETC/config.toml"
    say "copied the example to $ETC/config.toml: edit sites, coordinators, phones and database.url"
else
    chown root:"$SERVICE_USER" "$ETC/config.toml" && chmod 0640 "$ETC/config.toml"
fi
if [ ! -e "$ETC/env" ]; then
    (umask 077 && printf '%s\n' "# Read by systemd (as root) before the bot starts. Never commit this file." \
        "TELEGRAM_BOT_TOKEN=" "# TELEGRAM_WEBHOOK_SECRET=  (webhook mode: openssl rand -hex 32)" \
        "# ADHERENCE_BOT_MIGRATE_URL=  (PostgreSQL: the owner role migrate connects as)" > "$ETC/env")
    say "created $ETC/env: put the token from @BotFather after TELEGRAM_BOT_TOKEN="
fi
chown root:root "$ETC/env" && chmod 0600 "$ETC/env"

# ---- state directory: the service's working directory, home and matplotlib cache --------
install -d -o "$SERVICE_USER" -g "$SERVICE_USER" -m 0700 "$STATE"
install -d -o "$SERVICE_USER" -g "$SERVICE_USER" -m 0700 "$STATE/matplotlib"

# ---- systemd unit -----------------------------------------------------------------------
install -d -m 0755 "$UNIT_DIR"
sed -e "s|/opt/adherence-bot|$APP|g" \
    -e "s|/etc/adherence-bot|$ETC|g" \
    -e "s|/var/lib/adherence-bot|$STATE|g" \
    -e "s|^User=adherence$|User=$SERVICE_USER|" \
    -e "s|^Group=adherence$|Group=$SERVICE_USER|" \
    "$APP/deploy/adherence-bot.service" > "$UNIT_DIR/adherence-bot.service.tmp"
chmod 0644 "$UNIT_DIR/adherence-bot.service.tmp"
mv "$UNIT_DIR/adherence-bot.service.tmp" "$UNIT_DIR/adherence-bot.service"

if [ -z "$PREFIX" ] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    say "unit installed; after editing $ETC/config.toml and $ETC/env: systemctl enable --now adherence-bot"
else
    say "unit written to $UNIT_DIR/adherence-bot.service"
fi
say "check the configuration as the service will: runuser -u $SERVICE_USER -- $APP/.venv/bin/adherence-bot check-config $ETC/config.toml"
