"""The recommender domain end to end: `train_default` into a temporary model store, the `/recsys/*` routes through
the real ASGI app of `RecsysService` (no mocks), the Gradio demo through gradio_client, and the service's behaviour
with an empty store. The cross-validated RMSE of the default configuration is checked in notebook 81 and, through the
stored model card, in the slow test here."""
import os
import subprocess
import sys

import pytest
from starlette.testclient import TestClient

from conftest import free_port
from mlkit import store
from mlkit.core import settings
from mlkit.recsys.mf import GENRES, load_ratings
from mlkit.recsys.recommend import load_recommender, model_name, train_default
from mlkit.serve.recsys import MAX_K, RecsysService

NAME = model_name()


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    "A model store holding the default recommender (trained without the cross-validation, for speed)."
    h = tmp_path_factory.mktemp("recsys_store")
    with store.using_home(h):
        tag = train_default(evaluate=False)["movielens"]
    return h, tag


@pytest.fixture(scope="module")
def client(home):
    "A TestClient on RecsysService's ASGI app, started against the module's store."
    with store.using_home(home[0]), TestClient(RecsysService.to_asgi()) as c:
        yield c


@pytest.fixture(scope="module")
def ratings():
    return load_ratings()


def test_train_default_is_idempotent(home):
    h, tag = home
    with store.using_home(h):
        assert train_default(evaluate=False) == {"movielens": tag}       # same recipe: no new version
        assert store.production_tag(NAME) == tag
        rows = store.list_models(NAME)
        assert rows.tag.tolist() == [tag] and rows.stage.tolist() == ["production"]
        rec, card, t = load_recommender()
        assert (t == tag and card["n_train"] == 100004
                and card["params"]["n_factors"] == settings.getint("recsys", "n_factors"))


def test_known_user_gets_unseen_movies_best_first(client, ratings):
    r = client.post("/recsys/recommend", json={"user_id": 15, "k": 20})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["strategy"] == "personal" and body["user_id"] == 15 and len(body["movies"]) == 20
    ids = [m["movie_id"] for m in body["movies"]]
    assert not set(ids) & set(ratings.loc[ratings.userId == 15, "movieId"])     # nothing the user has rated
    preds = [m["predicted_rating"] for m in body["movies"]]
    assert preds == sorted(preds, reverse=True) and all(0.5 <= p <= 5 for p in preds)
    assert all(m["n_ratings"] >= settings.getint("recsys", "min_ratings") for m in body["movies"])


def test_recommendations_differ_between_users(client):
    a = [m["movie_id"] for m in client.post("/recsys/recommend", json={"user_id": 1, "k": 10}).json()["movies"]]
    b = [m["movie_id"] for m in client.post("/recsys/recommend", json={"user_id": 15, "k": 10}).json()["movies"]]
    assert a != b


def test_known_user_narrowed_to_genres(client):
    body = client.post("/recsys/recommend", json={"user_id": 1, "k": 5, "genres": ["Horror"]}).json()
    assert body["strategy"] == "personal" and len(body["movies"]) == 5
    assert all("Horror" in m["genres"] for m in body["movies"])


@pytest.mark.parametrize("payload, strategy", [
    ({"genres": ["Comedy", "Romance"], "k": 8}, "popular_in_genres"),
    ({"user_id": 100000, "genres": ["Western"], "k": 3}, "popular_in_genres"),
    ({"k": 5}, "popular")])
def test_new_user_gets_most_rated_in_genres(client, ratings, payload, strategy):
    body = client.post("/recsys/recommend", json=payload).json()
    assert body["strategy"] == strategy and len(body["movies"]) == payload["k"]
    assert all(m["predicted_rating"] is None for m in body["movies"])
    wanted = set(payload.get("genres", GENRES))
    assert all(set(m["genres"]) & wanted for m in body["movies"])
    counts = [m["n_ratings"] for m in body["movies"]]
    assert counts == sorted(counts, reverse=True)
    pool = ratings[ratings.genres.str.split("|").map(lambda g: bool(set(g) & wanted))]
    assert counts[0] == pool.groupby("movieId").size().max()                     # the most rated movie comes first


@pytest.mark.parametrize("payload, needle", [
    ({"genres": ["Cartoon"]}, "Comedy"),              # the error lists the valid genres
    ({"k": 0}, "greater than or equal to 1"),
    ({"k": MAX_K + 1}, f"less than or equal to {MAX_K}"),
    ({"user_id": 0}, "greater than or equal to 1"),
    ({"user_id": "1"}, "valid integer"),              # strict: no strings for ids
    ({"user_id": True}, "valid integer"),
    ({"genres": "Comedy"}, "valid array"),
])
def test_bad_requests_are_400_with_a_reason(client, payload, needle):
    r = client.post("/recsys/recommend", json=payload)
    assert r.status_code == 400, (r.status_code, r.text)
    assert needle in r.text


def test_model_card_route(client, home):
    card = client.post("/recsys/model_card", json={}).json()
    assert card["tag"] == home[1] and card["features"] == ["userId", "movieId"]
    assert len(card["data_sha256"]) == 64 and card["extra"]["n_users"] == 671


def test_openapi_documents_the_routes(client):
    doc = client.get("/docs.json").json()
    assert {"/recsys/recommend", "/recsys/model_card"} <= set(doc["paths"])
    assert "genres" in str(doc["paths"]["/recsys/recommend"])


EMPTY_STORE = """
from starlette.testclient import TestClient
from mlkit.serve.recsys import RecsysService
with TestClient(RecsysService.to_asgi()) as c:
    r = c.post("/recsys/recommend", json={"user_id": 1})
    print(r.status_code, r.json()["error"])
    print(c.post("/recsys/model_card", json={}).status_code, c.get("/readyz").status_code)
"""


def test_empty_store_starts_and_answers_503(tmp_path):
    """A service without a recommender in its store starts, and its routes say how to train one (own process:
    BentoML's metrics are per process)."""
    env = dict(os.environ, BENTOML_HOME=str(tmp_path), MLKIT_PATHS_BENTOML_HOME=str(tmp_path),
               BENTOML_DO_NOT_TRACK="true", MLKIT_PATHS_LOG_DIR=str(tmp_path / "logs"))
    r = subprocess.run([sys.executable, "-c", EMPTY_STORE], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    first, second = r.stdout.strip().splitlines()[-2:]
    assert first.startswith("503 ") and "make train" in first and "empty" in first
    assert second == "503 200"


def test_demo_through_gradio_client(home):
    from gradio_client import Client
    from gradio_client.exceptions import AppError
    from mlkit.serve.recsys_demo import EXAMPLES, demo
    with store.using_home(home[0]):
        demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
        try:
            c = Client(demo.local_url, verbose=False)
            assert len(EXAMPLES) == 3, EXAMPLES   # every example the demo offers is tried
            for user, genres, k in EXAMPLES:
                why, table = c.predict(user, genres, k, api_name="/recommend_table")
                assert len(table["data"]) == k and home[1] in why
            with pytest.raises(AppError, match="unknown genre|Value"):
                c.predict(1, ["Cartoon"], 3, api_name="/recommend_table")
            c.close()
        finally:
            demo.close()


@pytest.mark.slow
def test_default_training_with_cross_validation(tmp_path):
    """The full `train_default`: 5-fold RMSE of the factor model at most 0.88 and below the baseline and the random
    floor."""
    with store.using_home(tmp_path):
        tag = train_default()["movielens"]
        _, card, t = load_recommender()
    m = card["metrics"]
    assert t == tag and m["cv_folds"] == settings.getint("recsys", "cv_folds")
    assert m["biased_mf_cv_rmse"] <= 0.88 and m["biased_mf_cv_rmse"] < m["baseline_cv_rmse"] < m["random_cv_rmse"], m
