"""cheaper architecture rows: tokens and genotype as PostgreSQL ``json``; no index on hash

Every sampled architecture is written once (hundreds per epoch) and always read back whole;
nothing queries inside these two columns, and nothing looks rows up by hash. On PostgreSQL
``jsonb`` parsed each 900-byte genotype into its binary form on every insert (about 37 us a row,
most of the database's time in ``record_epoch``); ``json`` only validates the text (about 6 us).
SQLite stores JSON as text either way. The index on ``hash`` (random keys: a random page touched
per row) cost about a sixth of the insert time and served no query.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

COLUMNS = ("tokens", "genotype")


def _retype(to: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for column in COLUMNS:
        op.execute(f'ALTER TABLE architectures ALTER COLUMN "{column}" TYPE {to} USING "{column}"::{to}')


def upgrade() -> None:
    op.drop_index("ix_architectures_hash", table_name="architectures")
    _retype("json")


def downgrade() -> None:
    _retype("jsonb")
    op.create_index("ix_architectures_hash", "architectures", ["hash"])
