"""check-ins

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 22:35:59.354602
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('checkin_series',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('organization_id', sa.Uuid(), nullable=False),
    sa.Column('manager_id', sa.Uuid(), nullable=False),
    sa.Column('employee_id', sa.Uuid(), nullable=False),
    sa.Column('rrule', sa.String(length=500), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('duration_minutes', sa.Integer(), nullable=False),
    sa.Column('questions', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('checkin_lead_hours', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('active', 'ended')", name=op.f('ck_checkin_series_status')),
    sa.CheckConstraint('duration_minutes BETWEEN 15 AND 240', name=op.f('ck_checkin_series_duration')),
    sa.CheckConstraint('manager_id <> employee_id', name=op.f('ck_checkin_series_distinct_people')),
    sa.ForeignKeyConstraint(['employee_id'], ['employee.id'], name=op.f('fk_checkin_series_employee_id_employee')),
    sa.ForeignKeyConstraint(['manager_id'], ['employee.id'], name=op.f('fk_checkin_series_manager_id_employee')),
    sa.ForeignKeyConstraint(['organization_id'], ['organization.id'], name=op.f('fk_checkin_series_organization_id_organization'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_checkin_series'))
    )
    with op.batch_alter_table('checkin_series', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_checkin_series_employee_id'), ['employee_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_checkin_series_manager_id'), ['manager_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_checkin_series_organization_id'), ['organization_id'], unique=False)

    op.create_table('meeting',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('organization_id', sa.Uuid(), nullable=False),
    sa.Column('series_id', sa.Uuid(), nullable=False),
    sa.Column('scheduled_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('duration_minutes', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('sequence', sa.Integer(), nullable=False),
    sa.Column('checkin_sent', sa.Boolean(), nullable=False),
    sa.Column('checkin_submitted', sa.Boolean(), nullable=False),
    sa.Column('checkin_answers', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('scheduled', 'held', 'skipped', 'cancelled')", name=op.f('ck_meeting_status')),
    sa.ForeignKeyConstraint(['organization_id'], ['organization.id'], name=op.f('fk_meeting_organization_id_organization'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['series_id'], ['checkin_series.id'], name=op.f('fk_meeting_series_id_checkin_series'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_meeting')),
    sa.UniqueConstraint('series_id', 'scheduled_at', name=op.f('uq_meeting_series_id_scheduled_at'))
    )
    with op.batch_alter_table('meeting', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_meeting_series_id'), ['series_id'], unique=False)
        batch_op.create_index('ix_meeting_status_scheduled_at', ['status', 'scheduled_at'], unique=False)

    op.create_table('action_item',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('series_id', sa.Uuid(), nullable=False),
    sa.Column('meeting_id', sa.Uuid(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('owner_role', sa.String(length=16), nullable=False),
    sa.Column('done', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('done_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['meeting_id'], ['meeting.id'], name=op.f('fk_action_item_meeting_id_meeting'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['series_id'], ['checkin_series.id'], name=op.f('fk_action_item_series_id_checkin_series'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_action_item'))
    )
    with op.batch_alter_table('action_item', schema=None) as batch_op:
        batch_op.create_index('ix_action_item_series_id_done', ['series_id', 'done'], unique=False)

    op.create_table('meeting_link',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('meeting_id', sa.Uuid(), nullable=False),
    sa.Column('employee_id', sa.Uuid(), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('salt', sa.LargeBinary(length=16), nullable=False),
    sa.Column('key_id', sa.String(length=16), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.CheckConstraint("role IN ('manager', 'report')", name=op.f('ck_meeting_link_role')),
    sa.ForeignKeyConstraint(['employee_id'], ['employee.id'], name=op.f('fk_meeting_link_employee_id_employee')),
    sa.ForeignKeyConstraint(['meeting_id'], ['meeting.id'], name=op.f('fk_meeting_link_meeting_id_meeting'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_meeting_link')),
    sa.UniqueConstraint('meeting_id', 'role', name=op.f('uq_meeting_link_meeting_id_role')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_meeting_link_token_hash'))
    )
    op.create_table('private_note',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('meeting_id', sa.Uuid(), nullable=False),
    sa.Column('author_role', sa.String(length=16), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['meeting_id'], ['meeting.id'], name=op.f('fk_private_note_meeting_id_meeting'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_private_note')),
    sa.UniqueConstraint('meeting_id', 'author_role', name=op.f('uq_private_note_meeting_id_author_role'))
    )
    op.create_table('talking_point',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('meeting_id', sa.Uuid(), nullable=False),
    sa.Column('author_role', sa.String(length=16), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('done', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['meeting_id'], ['meeting.id'], name=op.f('fk_talking_point_meeting_id_meeting'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_talking_point'))
    )
    with op.batch_alter_table('talking_point', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_talking_point_meeting_id'), ['meeting_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('talking_point', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_talking_point_meeting_id'))

    op.drop_table('talking_point')
    op.drop_table('private_note')
    op.drop_table('meeting_link')
    with op.batch_alter_table('action_item', schema=None) as batch_op:
        batch_op.drop_index('ix_action_item_series_id_done')

    op.drop_table('action_item')
    with op.batch_alter_table('meeting', schema=None) as batch_op:
        batch_op.drop_index('ix_meeting_status_scheduled_at')
        batch_op.drop_index(batch_op.f('ix_meeting_series_id'))

    op.drop_table('meeting')
    with op.batch_alter_table('checkin_series', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_checkin_series_organization_id'))
        batch_op.drop_index(batch_op.f('ix_checkin_series_manager_id'))
        batch_op.drop_index(batch_op.f('ix_checkin_series_employee_id'))

    op.drop_table('checkin_series')
