"""Create the queue: jobs, workers, queue_pauses, cron_state, and the NOTIFY trigger.

Revision ID: 291ad41cadeb
Revises: 
Create Date: 2026-11-26 11:19:46.198794
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = '291ad41cadeb'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # UUIDv7 for rows inserted by hand (enqueue makes its own ids): the
    # timestamp in the first 48 bits keeps ids in creation order, which the
    # job list pages by. gen_random_uuid() supplies the random bits, and
    # setting bits 52 and 53 turns its version 4 into version 7.
    op.execute("""
        CREATE FUNCTION pillars_uuidv7() RETURNS uuid LANGUAGE sql VOLATILE AS $$
            SELECT encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid())
                PLACING substring(int8send(floor(extract(epoch FROM clock_timestamp())
                                                 * 1000)::bigint) FROM 3)
                FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid
        $$
    """)
    op.create_table('cron_state',
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('last_run_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_cron_state'))
    )
    op.create_table('jobs',
    sa.Column('job_id', sa.UUID(), server_default=sa.text('pillars_uuidv7()'), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('payload', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('queue', sa.Text(), server_default=sa.text("'default'"), nullable=False),
    sa.Column('priority', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('state', sa.Text(), server_default=sa.text("'queued'"), nullable=False),
    sa.Column('run_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('context', sa.Text(), server_default=sa.text("''"), nullable=False),
    sa.Column('attempts', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('max_attempts', sa.Integer(), server_default=sa.text('10'), nullable=False),
    sa.Column('locked_by', sa.Text(), nullable=True),
    sa.Column('locked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('errors', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"), nullable=False),
    sa.Column('unique_key', sa.Text(), nullable=True),
    sa.Column('result', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('progress', sa.Float(), nullable=True),
    sa.Column('progress_message', sa.Text(), nullable=True),
    sa.Column('cron_name', sa.Text(), nullable=True),
    sa.Column('scheduled_for', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("jsonb_typeof(payload) = 'object'", name=op.f('ck_jobs_payload_object')),
    sa.CheckConstraint("state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')", name=op.f('ck_jobs_state')),
    sa.CheckConstraint('max_attempts >= 1', name=op.f('ck_jobs_max_attempts_positive')),
    sa.PrimaryKeyConstraint('job_id', name=op.f('pk_jobs'))
    )
    op.create_index('ix_jobs_claim', 'jobs', [sa.literal_column('priority DESC'), 'run_at'], unique=False, postgresql_where=sa.text("state = 'queued'"))
    op.create_index('ix_jobs_claim_queue', 'jobs', ['queue', sa.literal_column('priority DESC'), 'run_at'], unique=False, postgresql_where=sa.text("state = 'queued'"))
    op.create_index('ix_jobs_finished', 'jobs', ['finished_at'], unique=False, postgresql_where=sa.text("state IN ('succeeded', 'failed', 'cancelled')"))
    op.create_index('ix_jobs_running', 'jobs', ['heartbeat_at'], unique=False, postgresql_where=sa.text("state = 'running'"))
    op.create_index('uq_jobs_cron_occurrence', 'jobs', ['cron_name', 'scheduled_for'], unique=True, postgresql_where=sa.text('cron_name IS NOT NULL'))
    op.create_index('uq_jobs_unique_key', 'jobs', ['unique_key'], unique=True, postgresql_where=sa.text("unique_key IS NOT NULL AND state IN ('queued', 'running')"))
    op.create_table('queue_pauses',
    sa.Column('queue', sa.Text(), nullable=False),
    sa.Column('paused_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('paused_by', sa.Text(), server_default=sa.text("''"), nullable=False),
    sa.PrimaryKeyConstraint('queue', name=op.f('pk_queue_pauses'))
    )
    op.create_table('workers',
    sa.Column('worker_id', sa.Text(), nullable=False),
    sa.Column('kind', sa.String(length=16), server_default=sa.text("'worker'"), nullable=False),
    sa.Column('hostname', sa.Text(), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('queues', postgresql.ARRAY(sa.Text()), nullable=True),
    sa.Column('concurrency', sa.Integer(), server_default=sa.text('1'), nullable=False),
    sa.Column('job_names', postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False),
    sa.Column('lock_key', sa.Integer(), sa.Identity(always=False), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("kind IN ('worker', 'cron')", name=op.f('ck_workers_kind')),
    sa.PrimaryKeyConstraint('worker_id', name=op.f('pk_workers')),
    sa.UniqueConstraint('lock_key', name=op.f('uq_workers_lock_key'))
    )

    # Wake listening workers when new jobs commit: one NOTIFY per queue per
    # statement (not per row), so a bulk insert of 10,000 jobs sends a handful.
    # Notifications are sent at commit, never for a rolled-back enqueue.
    op.execute("""
        CREATE FUNCTION pillars_notify_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('pillars_jobs', q.queue)
            FROM (SELECT DISTINCT queue FROM new_jobs WHERE state = 'queued') AS q;
            RETURN NULL;
        END
        $$
    """)
    op.execute("""
        CREATE TRIGGER jobs_notify AFTER INSERT ON jobs
        REFERENCING NEW TABLE AS new_jobs
        FOR EACH STATEMENT EXECUTE FUNCTION pillars_notify_jobs()
    """)
    # The jobs table churns (every job is inserted, updated twice, pruned):
    # vacuum it after 2 % of rows change instead of the default 20 %.
    op.execute(
        "ALTER TABLE jobs SET (autovacuum_vacuum_scale_factor = 0.02,"
        " autovacuum_analyze_scale_factor = 0.02)"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER jobs_notify ON jobs")
    op.execute("DROP FUNCTION pillars_notify_jobs()")
    op.drop_table('workers')
    op.drop_table('queue_pauses')
    op.drop_index('uq_jobs_unique_key', table_name='jobs', postgresql_where=sa.text("unique_key IS NOT NULL AND state IN ('queued', 'running')"))
    op.drop_index('uq_jobs_cron_occurrence', table_name='jobs', postgresql_where=sa.text('cron_name IS NOT NULL'))
    op.drop_index('ix_jobs_running', table_name='jobs', postgresql_where=sa.text("state = 'running'"))
    op.drop_index('ix_jobs_finished', table_name='jobs', postgresql_where=sa.text("state IN ('succeeded', 'failed', 'cancelled')"))
    op.drop_index('ix_jobs_claim_queue', table_name='jobs', postgresql_where=sa.text("state = 'queued'"))
    op.drop_index('ix_jobs_claim', table_name='jobs', postgresql_where=sa.text("state = 'queued'"))
    op.drop_table('jobs')
    op.execute("DROP FUNCTION pillars_uuidv7()")
    op.drop_table('cron_state')
