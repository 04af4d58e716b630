"""audit trail hardening: hash chain, TRUNCATE and REPLACE refused, stranger counter

Revision ID: 0003_audit_hardening
Revises: 0004_dose_integrity
Create Date: 2026-11-29

- audit_log.prev_hash / audit_log.hash: a SHA-256 chain (bot.db.audit_chain); existing rows are
  chained here, in id order, with the append-only triggers lifted for the backfill only.
- audit_head: the one row locked while rows are chained.
- stranger_attempt: per-id counter for strangers' refused attempts.
- PostgreSQL: a statement-level trigger refuses TRUNCATE (row triggers do not fire on it).
- SQLite: a BEFORE INSERT trigger refuses an insert onto an existing id, so INSERT OR REPLACE /
  REPLACE cannot overwrite a row (REPLACE deletes without firing DELETE triggers); upserts hit
  the UPDATE trigger.
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

import bot.db.types

revision = "0003_audit_hardening"
down_revision = "0004_dose_integrity"
branch_labels = None
depends_on = None


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sealed", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.execute("INSERT INTO audit_head (id, sealed) VALUES (1, 0)")
    op.create_table(
        "stranger_attempt",
        sa.Column("telegram_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("action", sqlmodel.sql.sqltypes.AutoString(length=48), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("last_at", bot.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("telegram_id", "action", "day"),
    )
    _lift_append_only(sqlite)
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("prev_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch.add_column(sa.Column("hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
    _chain_existing_rows()
    with op.batch_alter_table("audit_log") as batch:
        batch.alter_column("prev_hash", existing_type=sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False)
        batch.alter_column("hash", existing_type=sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False)
        batch.create_unique_constraint("uq_audit_log_hash", ["hash"])
    _restore_append_only(sqlite)
    if sqlite:
        op.execute(
            "CREATE TRIGGER audit_log_no_replace BEFORE INSERT ON audit_log "
            "WHEN NEW.id IS NOT NULL AND EXISTS (SELECT 1 FROM audit_log WHERE id = NEW.id) "
            "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"
        )
    else:
        op.execute(
            "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()"
        )


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_replace")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log")
    _lift_append_only(sqlite)
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_constraint("uq_audit_log_hash", type_="unique")
        batch.drop_column("hash")
        batch.drop_column("prev_hash")
    _restore_append_only(sqlite)
    op.drop_table("stranger_attempt")
    op.drop_table("audit_head")


def _lift_append_only(sqlite: bool) -> None:
    # SQLite's batch mode rebuilds the table, which its triggers would refuse (and lose).
    if sqlite:
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")
    else:
        op.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")


def _restore_append_only(sqlite: bool) -> None:
    if sqlite:
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_log_no_{verb.lower()} BEFORE {verb} ON audit_log "
                "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"
            )
    else:
        op.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only")


def _chain_existing_rows() -> None:
    from bot.db.audit_chain import row_hash

    audit = sa.table(
        "audit_log", sa.column("id", sa.Integer), sa.column("at", bot.db.types.UTCDateTime(timezone=True)),
        *(sa.column(name, sa.String) for name in ("actor_kind", "actor_id", "action", "entity", "entity_id",
                                                  "reason", "prev_hash", "hash")),
        sa.column("before", sa.JSON), sa.column("after", sa.JSON), sa.column("update_id", sa.BigInteger),
    )
    bind = op.get_bind()
    previous, count = "", 0
    for row in bind.execute(sa.select(audit).order_by(audit.c.id)).all():
        digest = row_hash(previous, row)
        bind.execute(sa.update(audit).where(audit.c.id == row.id).values(prev_hash=previous, hash=digest))
        previous, count = digest, count + 1
    bind.execute(sa.text("UPDATE audit_head SET sealed = :count WHERE id = 1"), {"count": 1 if count else 0})
