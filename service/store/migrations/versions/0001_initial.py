"""initial schema: searches, architectures, epochs, derived, retrains

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSON_T = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
ID_T = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def _id() -> sa.Column:
    return sa.Column("id", ID_T, primary_key=True, autoincrement=True)


def _search_fk() -> sa.Column:
    return sa.Column("search_id", ID_T, sa.ForeignKey("searches.id", ondelete="CASCADE"), nullable=False)


def upgrade() -> None:
    op.create_table(
        "searches",
        _id(),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("spec", JSON_T, nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("started_at", TS),
        sa.Column("finished_at", TS),
        sa.Column("error", sa.Text()),
        sa.Column("error_traceback", sa.Text()),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("epoch", sa.Integer()),
        sa.Column("total_epochs", sa.Integer(), nullable=False),
        sa.Column("best_reward", sa.Float()),
        sa.Column("best_architecture_id", ID_T),
        sa.Column("checkpoint_uri", sa.Text()),
        sa.Column("lease_owner", sa.String(200)),
        sa.Column("fencing_token", sa.BigInteger(), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_searches_status", "searches", ["status"])

    op.create_table(
        "architectures",
        _id(),
        _search_fk(),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("phase", sa.String(8), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("tokens", JSON_T, nullable=False),
        sa.Column("genotype", JSON_T),
        sa.Column("hash", sa.String(16), nullable=False),
        sa.Column("reward", sa.Float()),
        sa.Column("loss", sa.Float()),
        sa.Column("accuracy", sa.Float()),
        sa.Column("entropy", sa.Float()),
        sa.Column("log_prob", sa.Float()),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("search_id", "epoch", "phase", "index", name="uq_architectures_slot"),
    )
    op.create_index("ix_architectures_search_reward", "architectures", ["search_id", "reward"])
    op.create_index("ix_architectures_hash", "architectures", ["hash"])

    op.create_table(
        "epochs",
        _id(),
        _search_fk(),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("metrics", JSON_T, nullable=False),
        sa.Column("started_at", TS),
        sa.Column("finished_at", TS, nullable=False),
        sa.Column("duration_s", sa.Float()),
        sa.UniqueConstraint("search_id", "epoch", name="uq_epochs_search_epoch"),
    )

    op.create_table(
        "derived",
        _id(),
        _search_fk(),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column(
            "architecture_id", ID_T, sa.ForeignKey("architectures.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("score", sa.Float()),
        sa.UniqueConstraint("search_id", "rank", name="uq_derived_search_rank"),
    )

    op.create_table(
        "retrains",
        _id(),
        _search_fk(),
        sa.Column(
            "architecture_id", ID_T, sa.ForeignKey("architectures.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("params", sa.BigInteger()),
        sa.Column("flops", sa.BigInteger()),
        sa.Column("metrics", JSON_T),
        sa.Column("test_score", sa.Float()),
        sa.Column("artifact_uri", sa.Text()),
        sa.Column("error", sa.Text()),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("finished_at", TS),
    )
    op.create_index("ix_retrains_search_id", "retrains", ["search_id"])


def downgrade() -> None:
    for table in ("retrains", "derived", "epochs", "architectures", "searches"):
        op.drop_table(table)
