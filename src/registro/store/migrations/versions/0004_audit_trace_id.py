"""The id of the trace that recorded a change, beside its request id in the audit trail.

Null when tracing was off or did not sample the request. Expand only: older releases never write
the column.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("audit", sa.Column("trace_id", sa.String(32), nullable=True))


def downgrade() -> None:
    op.drop_column("audit", "trace_id")
