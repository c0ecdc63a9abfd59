"""surveys

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 22:27:36.522026
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('survey',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('organization_id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('anonymous', sa.Boolean(), nullable=False),
    sa.Column('min_group_size', sa.Integer(), nullable=False),
    sa.Column('comment_min_group_size', sa.Integer(), nullable=False),
    sa.Column('questions', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('rrule', sa.String(length=500), nullable=True),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('window_hours', sa.Integer(), nullable=False),
    sa.Column('reminders_hours', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('audience', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('next_opening_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('draft', 'active', 'paused', 'archived')", name=op.f('ck_survey_status')),
    sa.CheckConstraint('min_group_size >= 3', name=op.f('ck_survey_min_group_size')),
    sa.ForeignKeyConstraint(['organization_id'], ['organization.id'], name=op.f('fk_survey_organization_id_organization'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_survey'))
    )
    with op.batch_alter_table('survey', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_survey_organization_id'), ['organization_id'], unique=False)
        batch_op.create_index('ix_survey_status_next_opening_at', ['status', 'next_opening_at'], unique=False)

    op.create_table('wave',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('organization_id', sa.Uuid(), nullable=False),
    sa.Column('survey_id', sa.Uuid(), nullable=False),
    sa.Column('occurrence_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('opens_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closes_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('questions', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('anonymous', sa.Boolean(), nullable=False),
    sa.Column('min_group_size', sa.Integer(), nullable=False),
    sa.Column('reminders_hours', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('reminders_sent', sa.Integer(), nullable=False),
    sa.Column('invited', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('open', 'closed')", name=op.f('ck_wave_status')),
    sa.ForeignKeyConstraint(['organization_id'], ['organization.id'], name=op.f('fk_wave_organization_id_organization'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['survey_id'], ['survey.id'], name=op.f('fk_wave_survey_id_survey'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_wave')),
    sa.UniqueConstraint('survey_id', 'occurrence_at', name=op.f('uq_wave_survey_id_occurrence_at'))
    )
    with op.batch_alter_table('wave', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_wave_organization_id'), ['organization_id'], unique=False)
        batch_op.create_index('ix_wave_status_closes_at', ['status', 'closes_at'], unique=False)

    op.create_table('invitation',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('wave_id', sa.Uuid(), nullable=False),
    sa.Column('employee_id', sa.Uuid(), nullable=False),
    sa.Column('salt', sa.LargeBinary(length=16), nullable=False),
    sa.Column('key_id', sa.String(length=16), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('team', sa.String(length=200), nullable=True),
    sa.Column('department', sa.String(length=200), nullable=True),
    sa.Column('manager_id', sa.Uuid(), nullable=True),
    sa.Column('attributes', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('locale', sa.String(length=35), nullable=False),
    sa.Column('answered', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['employee_id'], ['employee.id'], name=op.f('fk_invitation_employee_id_employee')),
    sa.ForeignKeyConstraint(['wave_id'], ['wave.id'], name=op.f('fk_invitation_wave_id_wave'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_invitation')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_invitation_token_hash')),
    sa.UniqueConstraint('wave_id', 'employee_id', name=op.f('uq_invitation_wave_id_employee_id'))
    )
    with op.batch_alter_table('invitation', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_invitation_employee_id'), ['employee_id'], unique=False)
        batch_op.create_index('ix_invitation_wave_id_answered', ['wave_id', 'answered'], unique=False)

    op.create_table('response',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('wave_id', sa.Uuid(), nullable=False),
    sa.Column('survey_id', sa.Uuid(), nullable=False),
    sa.Column('organization_id', sa.Uuid(), nullable=False),
    sa.Column('employee_id', sa.Uuid(), nullable=True),
    sa.Column('team', sa.String(length=200), nullable=True),
    sa.Column('department', sa.String(length=200), nullable=True),
    sa.Column('manager_id', sa.Uuid(), nullable=True),
    sa.Column('attributes', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('answered_on', sa.Date(), nullable=False),
    sa.ForeignKeyConstraint(['employee_id'], ['employee.id'], name=op.f('fk_response_employee_id_employee')),
    sa.ForeignKeyConstraint(['organization_id'], ['organization.id'], name=op.f('fk_response_organization_id_organization'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['survey_id'], ['survey.id'], name=op.f('fk_response_survey_id_survey'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['wave_id'], ['wave.id'], name=op.f('fk_response_wave_id_wave'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_response')),
    sqlite_with_rowid=False
    )
    with op.batch_alter_table('response', schema=None) as batch_op:
        batch_op.create_index('ix_response_wave_id', ['wave_id'], unique=False)

    op.create_table('answer',
    sa.Column('response_id', sa.Uuid(), nullable=False),
    sa.Column('question_key', sa.String(length=40), nullable=False),
    sa.Column('wave_id', sa.Uuid(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('score', sa.Integer(), nullable=True),
    sa.Column('choices', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('text', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['response_id'], ['response.id'], name=op.f('fk_answer_response_id_response'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['wave_id'], ['wave.id'], name=op.f('fk_answer_wave_id_wave'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('response_id', 'question_key', name=op.f('pk_answer')),
    sqlite_with_rowid=False
    )
    with op.batch_alter_table('answer', schema=None) as batch_op:
        batch_op.create_index('ix_answer_wave_id_question_key', ['wave_id', 'question_key'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('answer', schema=None) as batch_op:
        batch_op.drop_index('ix_answer_wave_id_question_key')

    op.drop_table('answer')
    with op.batch_alter_table('response', schema=None) as batch_op:
        batch_op.drop_index('ix_response_wave_id')

    op.drop_table('response')
    with op.batch_alter_table('invitation', schema=None) as batch_op:
        batch_op.drop_index('ix_invitation_wave_id_answered')
        batch_op.drop_index(batch_op.f('ix_invitation_employee_id'))

    op.drop_table('invitation')
    with op.batch_alter_table('wave', schema=None) as batch_op:
        batch_op.drop_index('ix_wave_status_closes_at')
        batch_op.drop_index(batch_op.f('ix_wave_organization_id'))

    op.drop_table('wave')
    with op.batch_alter_table('survey', schema=None) as batch_op:
        batch_op.drop_index('ix_survey_status_next_opening_at')
        batch_op.drop_index(batch_op.f('ix_survey_organization_id'))

    op.drop_table('survey')
