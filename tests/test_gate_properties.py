"""Families, not examples (issues 8 and 9): hypothesis generates the inputs a client can send to the entry service's
gate and to the market's scoring path, in process, and checks what must hold for every one of them:

- any date is either a feature row or a `MarketInputError` (HTTP 400) — never another exception (schemathesis found a
  500 for 3389-03-26);
- any batch of finite feature rows, in any mix of key orders, is scored exactly as the model scores the same frame;
- any JSON error body of any domain leaves the gate in the one documented `ClientError` shape;
- the OpenAPI 3.0 rewriting is idempotent and leaves no 3.1-only `{"type": "null"}` behind.
"""
import datetime as dt

import jsonschema
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mlkit.market.features import make_dataset, warmup
from mlkit.market.prices import load_prices
from mlkit.models import make_model
from mlkit.serve.market import FEATURES, SPECS, MarketInputError, _day, features_on, offline_prices, predict_rows
from mlkit.serve.service import CLIENT_ERROR_SCHEMA, document_errors, openapi30, problem

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def model():
    X, y = make_dataset(load_prices("BTC-USD", source="bundled"))
    return make_model("catboost", iterations=30, depth=3, random_state=0, thread_count=1).fit(X, y), X


@SETTINGS
@given(day=st.dates(min_value=dt.date(1, 1, 1), max_value=dt.date(9999, 12, 31)))
@example(day=dt.date(2010, 6, 15))   # a trading day: a row (random dates rarely fall in the bundled 1999-2018)
@example(day=dt.date(2010, 6, 13))   # a Sunday inside the data
@example(day=dt.date(1999, 1, 5))    # the second bar, inside the warm-up
@example(day=dt.date(2019, 6, 3))    # after the bundled data
@example(day=dt.date(3389, 3, 26))   # past what pandas holds (once a 500)
@example(day=dt.date(1677, 9, 22))   # refused: the first whole day pandas holds has no day before it
@example(day=dt.date(1677, 9, 23))   # the first day accepted
@example(day=dt.date(2262, 4, 10))   # either side of the last day accepted
@example(day=dt.date(2262, 4, 11))
def test_any_date_is_a_row_or_a_400(day):
    holdable = dt.date(1677, 9, 23) <= day <= dt.date(2262, 4, 10)   # whole days with a day before and after
    try: t = _day(day)                     # what every market route does first with a date
    except MarketInputError as e: assert not holdable and "outside the dates a price table can hold" in str(e), e
    else: assert holdable and t + pd.Timedelta(days=1) > t - pd.Timedelta(days=1)   # (it overflowed for 3389)
    try: X, close = features_on("^GSPC", day, online=False)
    except MarketInputError as e: assert str(e).startswith(refusal(day)), (str(e), refusal(day))
    else:
        assert X.shape[0] == 1 and X.index[0].date() == day and np.isfinite(close)
        assert refusal(day) == "", day   # a row only for a trading day after the warm-up


def test_the_first_accepted_day_has_a_day_before_it():
    "The property above at its lower edge (found with an explicit example: 1677-09-22 was accepted and overflowed)."
    t = _day(dt.date(1677, 9, 23))
    assert t - pd.Timedelta(days=1) < t
    with pytest.raises(MarketInputError, match="outside the dates a price table can hold"): _day(dt.date(1677, 9, 22))


def refusal(day: dt.date) -> str:
    "The start of the message `features_on('^GSPC', day, online=False)` must refuse `day` with ('' for a row)."
    bars, t = offline_prices("^GSPC").index, pd.Timestamp(day)
    span = f"^GSPC has bars from {bars[0].date()} to {bars[-1].date()}"
    if not (dt.date(1677, 9, 23) <= day <= dt.date(2262, 4, 10)):
        return f"{day} is outside the dates a price table can hold"
    if t not in bars:
        why = "a day without trading" if bars[0] <= t <= bars[-1] else "outside the available data"
        return f"no ^GSPC bar on {day} ({why}); {span}"
    if bars.get_loc(t) < (wu := warmup(SPECS)):
        return f"{day} is inside the {wu}-bar warm-up of the indicators; {span}"
    return ""


finite = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False, allow_infinity=False)


@SETTINGS
@given(data=st.data(), n=st.integers(1, 40))
def test_any_rows_score_as_the_model_scores_the_frame(model, data, n):
    est, X = model
    cols = list(est.feature_names_in_)
    rows = [{c: data.draw(finite) for c in data.draw(st.permutations(cols))} | {"symbol": "BTC-USD"} for _ in range(n)]
    out = predict_rows({"BTC-USD": (est, {}, "market-btc-usd:t")}, rows)
    want = est.predict_proba(pd.DataFrame(rows, columns=cols))[:, 1]
    assert [p["prob_up"] for p in out] == want.tolist()       # to the last digit
    assert [p["prediction"] for p in out] == (want > 0.5).astype(int).tolist()
    assert set(FEATURES) >= set(cols)


json_values = st.recursive(st.none() | st.booleans() | st.integers() | finite | st.text(max_size=20),
                           lambda kids: st.lists(kids, max_size=4)
                           | st.dictionaries(st.text(max_size=8), kids, max_size=4),
                           max_leaves=20)
error_bodies = (json_values
                | st.lists(st.fixed_dictionaries({"error": st.text(max_size=30)}), min_size=1, max_size=2)     # BentoML
                | st.fixed_dictionaries({"error": st.text(max_size=30)}, optional={"detail": json_values})    # BentoML
                | st.fixed_dictionaries({"detail": json_values}))                                             # FastAPI


@SETTINGS
@given(status=st.integers(400, 499), body=error_bodies)
def test_any_error_body_leaves_in_the_documented_shape(status, body):
    out = problem(status, body)
    jsonschema.validate(out, CLIENT_ERROR_SCHEMA)
    assert isinstance(out["message"], str) and isinstance(out["error"], str)


schema_nodes = st.recursive(
    st.fixed_dictionaries({"type": st.sampled_from(["string", "number", "integer", "boolean"])},
                          optional={"default": st.none() | st.integers(), "exclusiveMinimum": st.integers(-5, 5)}),
    lambda kids: st.fixed_dictionaries({"anyOf": st.lists(kids, min_size=1, max_size=3)
                                                 .map(lambda k: k + [{"type": "null"}])})
    | st.fixed_dictionaries({"properties": st.dictionaries(st.sampled_from("abcd"), kids, max_size=3)}),
    max_leaves=8)


@SETTINGS
@given(node=schema_nodes)
def test_openapi30_is_idempotent_and_leaves_no_null_type(node):
    once = openapi30(node)
    assert openapi30(once) == once
    assert '"null"' not in repr(once).replace("'", '"')
    doc = {"paths": {"/x": {"post": {"responses": {"200": {"content": {"application/json": {"schema": once}}}}}}}}
    assert document_errors(document_errors(doc)) == document_errors(doc)
