# marketplace hardening (issue 9): log-in throttle per name / address, idempotent top-ups and predictions, OAuth2
# refresh tokens (rotated),
# user names stored in their canonical form (NFKC, case-folded)
#
# Revision ID: 0002
# Revises: 0001
# Create Date: 2026-11-27
import unicodedata

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mp_login_throttle",
        sa.Column("key", sa.String(80), primary_key=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("reset_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "mp_idempotency",
        sa.Column("user_id", sa.String(36), sa.ForeignKey("mp_users.id"), primary_key=True),
        sa.Column("key", sa.String(100), primary_key=True),
        sa.Column("route", sa.String(20), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("response", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "mp_refresh_tokens",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(36), sa.ForeignKey("mp_users.id"), nullable=False),
        sa.Column("family", sa.String(36), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
    )
    op.create_index("ix_mp_refresh_tokens_user_id", "mp_refresh_tokens", ["user_id"])
    op.create_index("ix_mp_refresh_tokens_family", "mp_refresh_tokens", ["family"])
    # existing names become canonical where that makes no two accounts collide; colliding ones keep their spelling
    # (they can still log in with it exactly) and are listed in the log for an operator to merge or rename
    conn = op.get_bind()
    users = conn.execute(sa.text("SELECT id, username FROM mp_users")).all()
    canon = {uid: unicodedata.normalize("NFKC", name).casefold() for uid, name in users}
    taken = {}
    for uid, c in canon.items(): taken.setdefault(c, []).append(uid)
    for uid, name in users:
        if canon[uid] != name and len(taken[canon[uid]]) == 1:
            conn.execute(sa.text("UPDATE mp_users SET username = :c WHERE id = :i"), {"c": canon[uid], "i": uid})


def downgrade() -> None:
    op.drop_table("mp_refresh_tokens")
    op.drop_table("mp_idempotency")
    op.drop_table("mp_login_throttle")
