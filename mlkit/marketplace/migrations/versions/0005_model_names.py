# the built-in models named for what they predict (issue 10): seed 001's names ("Risk Assessment", "Return Prediction",
# "Premium Analysis") belonged to models trained on random numbers; these are diabetes-progression regressors. Rows keep
# their ids, prices, files and history (predictions point at the same ids); only a row that still carries the seed's
# name (description) gets the new name (description), so a catalog entry someone edited by hand is left alone. The
# downgrade restores the seed's names where the row still carries the new ones.
#
# Revision ID: 0005
# Revises: 0004
# Create Date: 2026-11-27
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# id: ((seed 001's name, its description), (the new name, its description)); frozen here, not read from the catalog
RENAMES = {
    "risk-assessment": (
        ("Risk Assessment", "Linear regression: a progression (risk) score from age, BMI, blood pressure and two serum "
                            "measurements."),
        ("Diabetes progression: linear regression", "Linear regression: disease progression one year after baseline "
         "(a score of 25-346) from age, BMI, blood pressure and two serum measurements.")),
    "return-prediction": (
        ("Return Prediction", "Random forest (200 trees): the same score with non-linear effects and interactions."),
        ("Diabetes progression: random forest", "Random forest (200 trees): the same progression score, with "
         "non-linear effects and interactions.")),
    "premium-analysis": (
        ("Premium Analysis", "CatBoost gradient boosting: the most flexible model of the three."),
        ("Diabetes progression: CatBoost", "CatBoost gradient boosting: the same progression score; the most flexible "
         "model of the three.")),
}


def _table():
    return sa.table("mp_models", sa.column("id", sa.String), sa.column("name", sa.String),
                    sa.column("description", sa.Text))


def _rename(frm: int, to: int) -> None:
    "Rename each built-in row that still carries name `frm` (0: the seed's, 1: the new) to `to`."
    conn, t = op.get_bind(), _table()
    for mid, pair in RENAMES.items():
        (old_name, old_desc), (new_name, new_desc) = pair[frm], pair[to]
        conn.execute(t.update().where(t.c.id == mid, t.c.name == old_name).values(name=new_name))
        conn.execute(t.update().where(t.c.id == mid, t.c.description == old_desc).values(description=new_desc))


def upgrade() -> None:
    _rename(0, 1)


def downgrade() -> None:
    _rename(1, 0)
