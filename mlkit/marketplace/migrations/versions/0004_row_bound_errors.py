# marketplace encryption bound to rows (issue 9): every envelope's associated data gains the row's primary key (the
# job id), so a ciphertext copied or swapped into another row fails its tag; a failure's message, which may quote an
# input value, moves to the new encrypted column error_detail and `error` keeps only text that quotes no input.
# The downgrade puts the messages back in `error` and binds the envelopes to their column only (it needs every key).
#
# Revision ID: 0004
# Revises: 0003
# Create Date: 2026-11-27
import re

import sqlalchemy as sa
from alembic import op

from mlkit.marketplace.crypto import DecryptError, Unreadable, bind_rows, seal, unbind_rows, unseal

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

WHERE = "mp_predictions.error_detail"
# the messages the workers wrote that quote no input (attempt counts, exception class names); others are replaced
QUOTES_NOTHING = re.compile(r"gave up after \d+ interrupted attempts; the charge is refunded"
                            r"|internal error \([A-Za-z_][A-Za-z0-9_]*\); the charge is refunded")
REPLACED = "the job failed (its message is stored encrypted); the charge is refunded"


def _table():
    return sa.table("mp_predictions", sa.column("id", sa.String), sa.column("error", sa.Text),
                    sa.column("error_detail", sa.JSON))


def upgrade() -> None:
    op.add_column("mp_predictions", sa.Column("error_detail", sa.JSON(), nullable=True))
    conn, t = op.get_bind(), _table()
    for pid, err in conn.execute(sa.select(t.c.id, t.c.error).where(t.c.error.is_not(None))).all():
        if not QUOTES_NOTHING.fullmatch(err):
            conn.execute(t.update().where(t.c.id == pid).values(error=REPLACED, error_detail=seal(err, WHERE, pid)))
    bind_rows(conn)                       # in Alembic's transaction: all rows or none


def downgrade() -> None:
    conn, t = op.get_bind(), _table()
    for pid, env in conn.execute(sa.select(t.c.id, t.c.error_detail)).all():
        if env is None: continue
        msg = unseal(env, WHERE, pid)
        if isinstance(msg, Unreadable): raise DecryptError(msg.message(f"mp_predictions row {pid!r} column error_detail"))
        conn.execute(t.update().where(t.c.id == pid).values(error=msg))
    with op.batch_alter_table("mp_predictions") as b:
        b.drop_column("error_detail")
    unbind_rows(conn)
