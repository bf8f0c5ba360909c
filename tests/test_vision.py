"""The vision domain end to end: `train_default` into a temporary model store, a real `bentoml serve` of VisionService
over HTTP (multipart uploads of real held-out digits, PNG and JPEG, and bad uploads), the ONNX round trip of the stored
model, the service with an empty store, and the sketchpad demo through gradio_client."""
import io
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from conftest import free_port
from mlkit import store
from mlkit.data import split
from mlkit.onnx import OnnxModel, to_onnx
from mlkit.vision.classifier import load_vision_model, train_default
from mlkit.vision.data import FEATURES, digit_image, load_digits

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    "A model store holding the default digit model, trained by the same call `mlkit train` makes."
    h = tmp_path_factory.mktemp("vision_store")
    tag = train_default(home=h)
    assert train_default(home=h) == tag          # idempotent: the second call does not train again
    return h, tag


@pytest.fixture(scope="module")
def held_out():
    "Held-out digits (the split train_default used) as (PNG bytes, label)."
    d = load_digits()
    _, te = split(d.X.assign(label=d.y), method="stratified", test_size=0.2, stratify="label", seed=42)
    out = []
    for i in range(0, len(te), 18):            # 20 images across the held-out set
        buf = io.BytesIO(); digit_image(te[FEATURES].iloc[i]).save(buf, format="PNG")
        out.append((buf.getvalue(), int(te.label.iloc[i])))
    return out


@pytest.fixture(scope="module")
def server(home):
    "`bentoml serve` of VisionService on loopback, against the module's store."
    port = free_port()
    env = dict(os.environ, BENTOML_HOME=str(home[0]), MLKIT_PATHS_BENTOML_HOME=str(home[0]),
               BENTOML_DO_NOT_TRACK="true", MLKIT_PATHS_LOG_DIR=str(home[0] / "logs"))
    p = subprocess.Popen([sys.executable, "-m", "bentoml", "serve", "mlkit.serve.vision:VisionService",
                          "--host", "127.0.0.1", "--port", str(port)],
                         cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            if p.poll() is not None: pytest.fail(f"bentoml serve exited: {p.stderr.read().decode()[-3000:]}")
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200: break
            except httpx.HTTPError: pass
            time.sleep(0.5)
        else: pytest.fail("VisionService did not become ready in 120 s")
        yield url
    finally:
        p.terminate()
        try: p.wait(20)
        except subprocess.TimeoutExpired: p.kill()


def _post(url, data: bytes, name="digit.png", ctype="image/png"):
    return httpx.post(f"{url}/vision/predict", files={"image": (name, data, ctype)}, timeout=30)


def test_predicts_held_out_digits_over_http(server, held_out, home):
    right = 0
    for png, label in held_out:
        r = _post(server, png)
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body["probabilities"]) == {str(k) for k in range(10)} and body["model_tag"] == home[1]
        assert (abs(sum(body["probabilities"].values()) - 1) < 1e-4
                and body["runtime"] in ("onnxruntime", "scikit-learn"))
        right += body["digit"] == label
    assert right >= 18, f"{right}/20 held-out digits read correctly"


def test_jpeg_and_dark_background(server, held_out):
    png, label = held_out[0]
    im = Image.open(io.BytesIO(png)).convert("L")
    buf = io.BytesIO(); im.save(buf, format="JPEG", quality=90)
    assert _post(server, buf.getvalue(), "d.jpg", "image/jpeg").json()["digit"] == label
    inv = Image.eval(im, lambda v: 255 - v)         # white ink on black: read the same
    buf = io.BytesIO(); inv.save(buf, format="PNG")
    assert _post(server, buf.getvalue()).json()["digit"] == label


@pytest.mark.parametrize("make, match", [
    (lambda: b"this is a text file, not a picture", "not an image"),
    (lambda: _png(Image.new("1", (10_000, 5_000))), "50.0 megapixels; the limit is 20 megapixels"),
    (lambda: _png(Image.new("L", (64, 64), 255)), "blank"),
])
def test_bad_uploads_are_400_with_a_reason(server, make, match):
    r = _post(server, make())
    assert r.status_code == 400 and match in r.text, r.text


def _png(im) -> bytes:
    buf = io.BytesIO(); im.save(buf, format="PNG"); return buf.getvalue()


def test_model_card_and_openapi(server, home):
    card = httpx.post(f"{server}/vision/model_card", json={}, timeout=30).json()
    assert card["tag"] == home[1] and card["metrics"]["accuracy"] >= 0.97 and card["metrics"]["svm_accuracy"] >= 0.97
    assert card["extra"]["dataset"]["sha256"] == load_digits().info.sha256 and card["extra"]["onnx"]["same_classes"]
    doc = httpx.get(f"{server}/docs.json", timeout=30).json()
    assert "multipart/form-data" in str(doc["paths"]["/vision/predict"])


def test_onnx_round_trip_of_the_stored_model(home):
    model, _, _ = load_vision_model(home=home[0])
    X = load_digits().X.to_numpy()
    onx = OnnxModel(to_onnx(model), model.classes_)
    np.testing.assert_allclose(onx.predict_proba(X), model.predict_proba(X), atol=1e-4)
    assert (onx.predict(X) == model.predict(X)).mean() == 1.0


def test_empty_store_routes_say_what_to_run(tmp_path):
    from mlkit.serve.vision import VisionAPI, VisionModelMissing
    with store.using_home(tmp_path):
        api = VisionAPI()
    with pytest.raises(VisionModelMissing, match="mlkit train"):
        api._vision_loaded()
    assert VisionModelMissing.error_code == 503


def test_sketchpad_demo_through_gradio_client(home, held_out):
    from gradio_client import Client, handle_file
    from mlkit.serve import vision_demo
    vision_demo._model.clear()
    with store.using_home(home[0]):
        vision_demo.demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
        try:
            c = Client(vision_demo.demo.local_url, verbose=False)
            png, label = held_out[1]
            f = home[0] / "upload.png"; f.write_bytes(png)
            probs, text = c.predict(handle_file(str(f)), api_name="/read_upload")
            assert probs["label"] == str(label) and f"**{label}**" in text
            drawing = {"background": None, "layers": [], "composite": handle_file(str(f))}
            probs, text = c.predict(drawing, api_name="/read_digit")
            assert probs["label"] == str(label)
            c.close()
        finally:
            vision_demo.demo.close()
            vision_demo._model.clear()
