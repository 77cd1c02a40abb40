"""The caller's X-Request-ID kept beside the service's own request id in the audit trail.

`request_id` is from now on always the id the service generated; what the caller sent (if it was
a plain token) goes to `caller_request_id`. Expand only: older releases never write the column.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "audit",
        sa.Column("caller_request_id", sa.String(128), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("audit", "caller_request_id")
