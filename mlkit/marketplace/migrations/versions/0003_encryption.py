# marketplace encryption at rest (issue 9): the prediction inputs and results stored in clear become AES-256-GCM
# envelopes under the current key (mlkit.marketplace.crypto); the columns stay JSON, only their values change.
# The downgrade stores them in clear again (it needs every key that encrypted them).
#
# Revision ID: 0003
# Revises: 0002
# Create Date: 2026-11-27
from alembic import op

from mlkit.marketplace.crypto import decrypt_all, encrypt_plaintext

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    encrypt_plaintext(op.get_bind())      # in Alembic's transaction: all rows or none


def downgrade() -> None:
    decrypt_all(op.get_bind())
