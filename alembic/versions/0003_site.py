"""The site: users, failed sign-ins for the rate limit, and report exports.

Revision ID: 0003_site
Revises: 0002_cron
Create Date: 2026-11-26 11:47:53.716935
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = '0003_site'
down_revision: str | None = '0002_cron'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('login_attempts',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=True), nullable=False),
    sa.Column('email', sa.Text(), nullable=False),
    sa.Column('remote_addr', sa.Text(), nullable=False),
    sa.Column('attempted_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_login_attempts'))
    )
    op.create_index('ix_login_attempts_email', 'login_attempts', ['email', 'attempted_at'], unique=False)
    op.create_index('ix_login_attempts_remote_addr', 'login_attempts', ['remote_addr', 'attempted_at'], unique=False)
    op.create_table('users',
    sa.Column('id', sa.Integer(), sa.Identity(always=True), nullable=False),
    sa.Column('email', sa.Text(), nullable=False),
    sa.Column('password_hash', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('email = lower(email)', name=op.f('ck_users_email_lower')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('email', name=op.f('uq_users_email'))
    )
    op.create_table('exports',
    sa.Column('id', sa.Integer(), sa.Identity(always=True), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('filename', sa.Text(), nullable=False),
    sa.Column('row_count', sa.Integer(), nullable=False),
    sa.Column('column_count', sa.Integer(), nullable=False),
    sa.Column('upload', sa.LargeBinary(), nullable=False),
    sa.Column('job_id', sa.UUID(), nullable=True),
    sa.Column('report_pdf', sa.LargeBinary(), nullable=True),
    sa.Column('report_csv', sa.LargeBinary(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_exports_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_exports')),
    sa.UniqueConstraint('job_id', name=op.f('uq_exports_job_id'))
    )
    op.create_index('ix_exports_created_at', 'exports', ['created_at'], unique=False)
    op.create_index('ix_exports_user_id', 'exports', ['user_id', 'created_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_exports_user_id', table_name='exports')
    op.drop_index('ix_exports_created_at', table_name='exports')
    op.drop_table('exports')
    op.drop_table('users')
    op.drop_index('ix_login_attempts_remote_addr', table_name='login_attempts')
    op.drop_index('ix_login_attempts_email', table_name='login_attempts')
    op.drop_table('login_attempts')
