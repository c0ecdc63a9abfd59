"""report indexes

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 22:33:02.253703
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('answer', schema=None) as batch_op:
        batch_op.create_index('ix_answer_wave_id_kind_score', ['wave_id', 'kind', 'score'], unique=False, postgresql_include=['response_id'])



def downgrade() -> None:
    with op.batch_alter_table('answer', schema=None) as batch_op:
        batch_op.drop_index('ix_answer_wave_id_kind_score', postgresql_include=['response_id'])

