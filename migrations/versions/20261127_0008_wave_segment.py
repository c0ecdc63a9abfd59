"""wave_segment: each wave's invited count per segment combination

Reports list a wave's groups from this census, so a group that gave no answers still
shows as suppressed instead of vanishing (which told that someone in it had answered).
Existing waves get their census from their invitations.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27 03:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql


revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('wave_segment',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('wave_id', sa.Uuid(), nullable=False),
    sa.Column('team', sa.String(length=200), nullable=True),
    sa.Column('department', sa.String(length=200), nullable=True),
    sa.Column('manager_id', sa.Uuid(), nullable=True),
    sa.Column('attributes', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('invited', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['wave_id'], ['wave.id'], name=op.f('fk_wave_segment_wave_id_wave'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_wave_segment'))
    )
    with op.batch_alter_table('wave_segment', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_wave_segment_wave_id'), ['wave_id'], unique=False)

    op.execute(
        "INSERT INTO wave_segment (wave_id, team, department, manager_id, attributes, invited) "
        "SELECT wave_id, team, department, manager_id, attributes, count(*) FROM invitation "
        "GROUP BY wave_id, team, department, manager_id, attributes"
    )


def downgrade() -> None:
    with op.batch_alter_table('wave_segment', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_wave_segment_wave_id'))

    op.drop_table('wave_segment')
