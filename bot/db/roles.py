"""PostgreSQL roles: migrations run as an owner role, the bot as a runtime role.

The owner role owns every table (and so could drop the audit triggers); the runtime role, which
`adherence-bot run` connects as, may only read and write rows, and on `audit_log` only INSERT
and SELECT: it can neither change nor remove an audit row, nor the triggers that guard them.
`adherence-bot migrate --print-grants ROLE` prints these statements; `migrate` applies them
itself when `database.migrate_url` names a different (owner) role than `database.url`.
"""

from __future__ import annotations

import re

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel

import bot.db.models  # noqa: F401  (registers the tables)

APPEND_ONLY = {"audit_log": "SELECT, INSERT"}
READ_ONLY = {"alembic_version": "SELECT"}
_ROLE_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _quoted(role: str) -> str:
    if not _ROLE_RE.match(role):
        raise ValueError(f"{role!r} is not a plain PostgreSQL role name (lower-case letters, digits, _)")
    return f'"{role}"'


def runtime_grants(role: str) -> list[str]:
    """The GRANT statements that make `role` a runtime role (idempotent; run as the owner)."""
    who = _quoted(role)
    statements = [f"GRANT USAGE ON SCHEMA public TO {who}"]
    for table in sorted(SQLModel.metadata.tables):
        privileges = APPEND_ONLY.get(table, "SELECT, INSERT, UPDATE, DELETE")
        statements.append(f"REVOKE ALL ON TABLE {table} FROM {who}")
        statements.append(f"GRANT {privileges} ON TABLE {table} TO {who}")
    for table, privileges in READ_ONLY.items():
        statements.append(f"REVOKE ALL ON TABLE {table} FROM {who}")
        statements.append(f"GRANT {privileges} ON TABLE {table} TO {who}")
    statements.append(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {who}")
    return statements


def role_of(url: str) -> str | None:
    return make_url(url).username


async def apply_runtime_grants(owner_engine: AsyncEngine, role: str) -> None:
    async with owner_engine.begin() as connection:
        for statement in runtime_grants(role):
            await connection.execute(text(statement))


async def audit_guard_problem(engine: AsyncEngine) -> str | None:
    """On PostgreSQL, a warning when the bot's own role owns audit_log (and so could drop its
    triggers): the deployment skipped the owner/runtime split. None when all is as it should be."""
    if engine.dialect.name != "postgresql":
        return None
    async with engine.connect() as connection:
        owns = (await connection.execute(text(
            "SELECT pg_has_role(current_user, tableowner, 'MEMBER') FROM pg_tables "
            "WHERE schemaname = 'public' AND tablename = 'audit_log'"))).scalar()
    if owns:
        return ("the bot's database role owns audit_log and could drop its append-only triggers; run "
                "migrations as an owner role (database.migrate_url) and the bot as a runtime role "
                "(docs/operations.md)")
    return None
