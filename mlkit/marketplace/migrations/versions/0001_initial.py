# marketplace: users, accounts, models, predictions, transactions (the ledger)
#
# Revision ID: 0001
# Revises:
# Create Date: 2026-11-23
# Money columns are mlkit.db.Fixed(2): integer cents in a BIGINT.
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mp_users",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("firstname", sa.String(100), nullable=False),
        sa.Column("username", sa.String(50), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "mp_accounts",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("user_id", sa.String(36), sa.ForeignKey("mp_users.id"), nullable=False, unique=True),
        sa.Column("balance", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("balance >= 0", name="ck_mp_accounts_balance_nonneg"),
    )
    op.create_table(
        "mp_models",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("cost", sa.BigInteger(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("input_schema", sa.JSON(), nullable=False),
        sa.Column("example", sa.JSON(), nullable=False),
        sa.Column("model_card", sa.JSON(), nullable=False),
        sa.Column("path", sa.String(500), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "mp_predictions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("user_id", sa.String(36), sa.ForeignKey("mp_users.id"), nullable=False),
        sa.Column("model_id", sa.String(64), sa.ForeignKey("mp_models.id"), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("input_data", sa.JSON(), nullable=False),
        sa.Column("n_rows", sa.Integer(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("cost", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("lease_token", sa.String(36), nullable=True),
        sa.Column("lease_until", sa.DateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.CheckConstraint("status IN ('pending','running','completed','failed')", name="ck_mp_predictions_status"),
    )
    op.create_index("ix_mp_predictions_user_created", "mp_predictions", ["user_id", "created_at"])
    op.create_index("ix_mp_predictions_status", "mp_predictions", ["status", "lease_until"])
    op.create_table(
        "mp_transactions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("account_id", sa.String(36), sa.ForeignKey("mp_accounts.id"), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("prediction_id", sa.String(36), sa.ForeignKey("mp_predictions.id"), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("kind IN ('topup','charge','refund')", name="ck_mp_transactions_kind"),
        sa.UniqueConstraint("prediction_id", "kind", name="uq_mp_transactions_prediction_kind"),
    )
    op.create_index("ix_mp_transactions_account_id", "mp_transactions", ["account_id"])


def downgrade() -> None:
    op.drop_table("mp_transactions")
    op.drop_index("ix_mp_predictions_status", "mp_predictions")
    op.drop_index("ix_mp_predictions_user_created", "mp_predictions")
    op.drop_table("mp_predictions")
    op.drop_table("mp_models")
    op.drop_table("mp_accounts")
    op.drop_table("mp_users")
