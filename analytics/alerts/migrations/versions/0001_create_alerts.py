"""Create the alerts, their transitions and the notification outbox.

Revision ID: 0001
Revises:
Create Date: 2026-06-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A written-down copy of the schema as it was, not an import of store.py: a revision must not change
# when the store's tables move on.
_MS = sa.BigInteger  # epoch milliseconds
_ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite: INTEGER PRIMARY KEY is the rowid


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("rule", sa.String(), nullable=False),
        sa.Column("family", sa.String(), nullable=False),
        sa.Column("subject_kind", sa.String(), nullable=False),
        sa.Column("subject", sa.String(), nullable=False),
        sa.Column("district", sa.String(), nullable=False),
        sa.Column("road", sa.String(), nullable=False),
        sa.Column("grid_cell", sa.String(), nullable=False),
        sa.Column("crew", sa.String(), nullable=False),
        sa.Column("severity", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("opened_ms", _MS, nullable=False),
        sa.Column("deadline_ms", _MS, nullable=False),
        sa.Column("explanation", sa.Text(), nullable=False),
        sa.Column("children", sa.Text(), nullable=False),
        sa.Column("parent", sa.String(), nullable=False),
        sa.Column("maintenance", sa.String(), nullable=False),
        sa.Column("flapping", sa.Boolean(), nullable=False),
        sa.Column("escalation", sa.Integer(), nullable=False),
        sa.Column("acknowledged_ms", _MS, nullable=True),
        sa.Column("resolved_ms", _MS, nullable=True),
        sa.Column("closed_ms", _MS, nullable=True),
        sa.Column("reopen_count", sa.Integer(), nullable=False),
        sa.Column("condition_clear_ms", _MS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_alerts"),
    )
    op.create_index("ix_alerts_state", "alerts", ["state"])
    op.create_index("ix_alerts_crew", "alerts", ["crew"])
    op.create_index("ix_alerts_key", "alerts", ["key"])
    op.create_index("ix_alerts_deadline_ms", "alerts", ["deadline_ms"])

    op.create_table(
        "transitions",
        sa.Column("id", _ROW_ID, autoincrement=True, nullable=False),
        sa.Column("alert_id", sa.String(), nullable=False),
        sa.Column("from_state", sa.String(), nullable=True),
        sa.Column("to_state", sa.String(), nullable=False),
        sa.Column("event", sa.String(), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("at_ms", _MS, nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("exported_ms", _MS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_transitions"),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"], name="fk_transitions_alert_id_alerts"),
        sa.UniqueConstraint("fingerprint", name="uq_transitions_fingerprint"),
    )
    op.create_index("ix_transitions_alert_id", "transitions", ["alert_id", "at_ms"])
    op.create_index("ix_transitions_exported_ms", "transitions", ["exported_ms"])

    op.create_table(
        "notifications",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("recipients", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("alert_ids", sa.Text(), nullable=False),
        sa.Column("attributes", sa.Text(), nullable=False),
        sa.Column("created_ms", _MS, nullable=False),
        sa.Column("severity", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_ms", _MS, nullable=False),
        sa.Column("sent_ms", _MS, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("digest_id", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_notifications"),
    )
    op.create_index("ix_notifications_outbox", "notifications", ["status", "next_attempt_ms"])


def downgrade() -> None:
    op.drop_table("notifications")
    op.drop_table("transitions")
    op.drop_table("alerts")
