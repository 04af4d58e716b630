"""schedule indexes: the scheduler's look-ups by instant read an index instead of every day

- ix_dose_day_state_due: dose days by state and due time, for the reminders due and the next one.
  (Not a partial index: SQLite cannot use one for a query whose state is a bound parameter.)
- ix_dose_day_closes: every day by its close, for the next wake-up and the courses that ended.

No data changes.

Revision ID: 0011_schedule_indexes
Revises: 0010_accounts
Create Date: 2026-11-30
"""
from alembic import op

revision = "0011_schedule_indexes"
down_revision = "0010_accounts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_dose_day_state_due", "dose_day", ["state", "due_at"])
    op.create_index("ix_dose_day_closes", "dose_day", ["closes_at"])


def downgrade() -> None:
    op.drop_index("ix_dose_day_closes", table_name="dose_day")
    op.drop_index("ix_dose_day_state_due", table_name="dose_day")
