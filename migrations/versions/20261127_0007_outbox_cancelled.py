"""outbox status cancelled

A message whose subject no longer wants it (the invitee answered before the reminder
went out, the meeting was cancelled) is cancelled, not failed.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 01:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = "ck_outbox_message_status"


def _status_check(statuses: str) -> None:
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.drop_constraint(op.f(NAME), type_="check")
        batch_op.create_check_constraint(op.f(NAME), f"status IN ({statuses})")


def upgrade() -> None:
    _status_check("'pending', 'sending', 'sent', 'failed', 'cancelled'")


def downgrade() -> None:
    # The old schema knows no cancelled message: it called them failed.
    op.execute("UPDATE outbox_message SET status = 'failed' WHERE status = 'cancelled'")
    _status_check("'pending', 'sending', 'sent', 'failed'")
