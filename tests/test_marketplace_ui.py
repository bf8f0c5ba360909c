"""The marketplace front end (issue 5, part 5) over HTTP: a real `bentoml serve mlkit.serve.service:MLKit` on 127.0.0.1
with temporary stores and database; one happy path in a real browser (Playwright driving Debian's /usr/bin/chromium,
never a downloaded browser), then the same Gradio API through gradio_client, and the REST API on the same database."""
import re
import time
import uuid
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
PASSWORD = "correct horse"
ROW = '{"age": 50, "bmi": 26.4, "bp": 94, "s1": 190, "s5": 4.6}'


def test_both_apps_load_under_ui(server):
    for path, title in [("/ui/marketplace/", "mlkit prediction marketplace"), ("/ui/market/", "mlkit market demo")]:
        r = requests.get(server + path, timeout=30)
        assert r.status_code == 200 and "<gradio-app" in r.text, path
        cfg = requests.get(server + path + "config", timeout=30).json()
        assert cfg["title"] == title and cfg["root"].rstrip("/").endswith(path.rstrip("/")), (path, cfg["root"])


def test_browser_happy_path(server):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium); "
                    "never `playwright install`")
    from playwright.sync_api import expect, sync_playwright
    user = f"ann_{uuid.uuid4().hex[:8]}"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 1000})
            page.goto(server + "/ui/marketplace/")
            # register, log in, top up
            page.locator("#reg-first textarea").fill("Ann")
            page.locator("#reg-user textarea").fill(user)
            page.locator("#reg-pass input").fill(PASSWORD)
            page.get_by_role("button", name="Register").click()
            expect(page.locator("#reg-msg")).to_contain_text(f"Registered {user}", timeout=20_000)
            page.locator("#login-user textarea").fill(user)
            page.locator("#login-pass input").fill(PASSWORD)
            page.get_by_role("button", name="Log in").click()
            expect(page.locator("#account")).to_contain_text(f"Logged in as {user} (Ann) · balance 0.00",
                                                             timeout=20_000)
            # a refusal is a message, not a traceback: nothing to pay with yet
            page.get_by_role("tab", name="Predict").click()
            page.get_by_role("button", name="Predict (JSON)").click()
            toast = page.get_by_test_id("toast-body").filter(
                has_text="insufficient balance: Diabetes progression: linear regression costs 10.00")
            expect(toast).to_be_visible(timeout=20_000)
            assert "Traceback" not in toast.inner_text()
            toast.get_by_test_id("toast-close").click()
            page.get_by_role("tab", name="Account").click()
            page.locator("#topup-amount input").fill("25")
            page.get_by_role("button", name="Top up").click()
            expect(page.locator("#account")).to_contain_text("balance 25.00", timeout=20_000)
            # the models with their prices
            page.get_by_role("tab", name="Models").click()
            for name in ("Diabetes progression: linear regression", "Diabetes progression: random forest",
                         "Diabetes progression: CatBoost"):
                expect(page.locator("#models")).to_contain_text(name, timeout=20_000)
            # predict with the JSON example of the first model (linear regression, 10)
            page.get_by_role("tab", name="Predict").click()
            page.get_by_role("button", name="Use the model's example").click()
            expect(page.locator("#json-input textarea")).to_have_value(re.compile(r'"bmi"'), timeout=20_000)
            page.get_by_role("button", name="Predict (JSON)").click()
            expect(page.locator("#submitted")).to_contain_text("Queued prediction", timeout=20_000)
            expect(page.locator("#account")).to_contain_text("balance 15.00", timeout=20_000)
            pid = page.locator("#submitted code").inner_text().strip()
            # history: refresh until completed; then the details and the CSV
            page.get_by_role("tab", name="History").click()
            for _ in range(30):
                page.get_by_role("button", name="Refresh history").click()
                try:
                    expect(page.locator("#history")).to_contain_text("completed", timeout=2_000)
                    break
                except AssertionError: pass
            expect(page.locator("#prediction-id textarea")).to_have_value(pid)      # filled in by the prediction
            page.locator("#prediction-id textarea").fill("")
            page.locator("#history").get_by_test_id("cell-0-0").click()                 # a row click shows its details
            expect(page.locator("#prediction-id textarea")).to_have_value(pid, timeout=20_000)
            expect(page.locator("#details")).to_contain_text("completed · Diabetes progression: linear regression · "
                                                             "1 row(s) · cost 10.00 credits", timeout=20_000)
            expect(page.locator("#details")).to_contain_text("Predicted disease progression one year after baseline")
            link = page.locator("#result-csv a[data-testid=download-link]")
            expect(link).to_have_attribute("download", f"prediction_{pid}.csv", timeout=20_000)
            page.screenshot(path="/tmp/marketplace_ui.png", full_page=True)
            with page.expect_download() as download:
                link.click()
            lines = Path(download.value.path()).read_text().splitlines()
        finally:
            browser.close()
    assert lines[0] == "age,bmi,bp,s1,s5,prediction" and len(lines) == 2
    assert 25 <= float(lines[1].split(",")[-1]) <= 346          # the diabetes target's range
    # the REST API answers from the same database
    job = requests.get(f"{server}/marketplace/predict/{pid}", auth=(user, PASSWORD), timeout=30).json()
    assert job["status"] == "completed" and job["output_data"][0] == pytest.approx(float(lines[1].split(",")[-1]))


@pytest.fixture
def new_client(server):
    "Make gradio_client sessions of the marketplace app (each its own session); closed at the end."
    from gradio_client import Client
    made = []
    def make():
        made.append(Client(server + "/ui/marketplace/", verbose=False))
        return made[-1]
    yield make
    for c in made: c.close()


def test_gradio_client(new_client, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError
    client, user = new_client(), f"bob_{uuid.uuid4().hex[:8]}"
    assert {"/register", "/login", "/topup", "/models", "/predict_json", "/predict_csv", "/history", "/details"} <= \
        set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    with pytest.raises(AppError, match="log in first"):
        client.predict(api_name="/history")
    assert client.predict("Bob", user, PASSWORD, api_name="/register").startswith(f"Registered **{user}**")
    with pytest.raises(AppError, match="already taken"):
        client.predict("", user, PASSWORD, api_name="/register")
    line, balance = client.predict(user, PASSWORD, api_name="/login")
    assert line.startswith(f"Logged in as **{user}**") and balance == 0
    assert client.predict(40, api_name="/topup")[1] == 40
    table, choice = client.predict(None, api_name="/models")
    assert table["headers"][:3] == ["name", "price (credits)", "predicts"]
    assert [r[1] for r in table["data"]] == [10, 15, 20]
    # what every model predicts
    assert {r[2] for r in table["data"]} == {"disease progression one year after baseline"}
    assert choice["value"] == "risk-assessment"
    assert choice["choices"][2] == ["Diabetes progression: CatBoost (20 credits)", "premium-analysis"]
    _, pid, _, balance = client.predict("return-prediction", f"[{ROW}, {ROW}]", api_name="/predict_json")
    assert balance == 25
    csv = tmp_path / "rows.csv"
    csv.write_text("age,bmi,bp,s1,s5\n50,26,94,190,4.6\n60,30,100,200,5\n61,31,101,210,5.1\n")
    _, pid_csv, _, balance = client.predict("risk-assessment", handle_file(str(csv)), api_name="/predict_csv")
    assert balance == 15
    with pytest.raises(AppError, match="insufficient balance"):
        client.predict("premium-analysis", ROW, api_name="/predict_json")
    with pytest.raises(AppError, match="malformed JSON"):
        client.predict("risk-assessment", '{"age": 50,', api_name="/predict_json")
    deadline = time.monotonic() + 30
    while {r[2] for r in client.predict(api_name="/history")["data"]} != {"completed"}:
        assert time.monotonic() < deadline, "jobs not completed after 30 s"
        time.sleep(0.3)
    for p, n in [(pid, 2), (pid_csv, 3)]:
        summary, job, path = client.predict(p, api_name="/details")
        assert summary.startswith("**completed**") and len(job["output_data"]) == n
        assert "Predicted disease progression one year after baseline" in summary
        assert Path(path).name == f"prediction_{p}.csv" and len(Path(path).read_text().splitlines()) == n + 1
    # another session, another user: the first one's prediction is not found, its history empty
    other, eve = new_client(), f"eve_{uuid.uuid4().hex[:8]}"
    with pytest.raises(AppError, match="log in first"):
        other.predict(pid, api_name="/details")            # the first client's log-in is not shared
    other.predict("", eve, PASSWORD, api_name="/register")
    other.predict(eve, PASSWORD, api_name="/login")
    with pytest.raises(AppError, match="no prediction"):
        other.predict(pid, api_name="/details")
    assert other.predict(api_name="/history")["data"] == []


def _raw_call(server: str, client, api_name: str, data: list) -> dict:
    """Call an endpoint in `client`'s session over Gradio's queue API with exactly `data`: gradio_client itself would
    upload a local file that a FileData names, so it cannot send a bare server path. The `process_completed` message."""
    import json
    base = server + "/ui/marketplace/gradio_api"
    dep = next(d for d in client.config["dependencies"] if d.get("api_name") == api_name)
    r = requests.post(base + "/queue/join", json={"data": data, "fn_index": dep["id"],
                                                  "session_hash": client.session_hash,
                                                  "event_data": None, "trigger_id": None}, timeout=30)
    assert r.status_code == 200, r.text[:300]
    with requests.get(base + "/queue/data", params={"session_hash": client.session_hash}, stream=True, timeout=60) as s:
        for line in s.iter_lines(decode_unicode=True):
            if line and line.startswith("data:") and (m := json.loads(line[5:])).get("msg") == "process_completed":
                return m
    raise AssertionError("no process_completed message")


def test_csv_input_never_opens_a_server_path(server, new_client, tmp_path):
    """Issue 9, defect 1: a client that names a file on the server's disk (not one it uploaded) is refused and charged
    nothing."""
    secret = tmp_path / "secret.csv"
    secret.write_text("age,bmi,bp,s1,s5\n50,26,94,190,4.6\n")          # valid input: the old code would have queued it
    client, user = new_client(), f"mal_{uuid.uuid4().hex[:8]}"
    client.predict("", user, PASSWORD, api_name="/register")
    client.predict(user, PASSWORD, api_name="/login")
    assert client.predict(40, api_name="/topup")[1] == 40
    for path in (str(secret), "/etc/os-release", str(ROOT / "settings.ini")):
        raw = {"path": path, "meta": {"_type": "gradio.FileData"}, "orig_name": "x.csv"}   # not uploaded through Gradio
        m = _raw_call(server, client, "predict_csv", [None, "risk-assessment", raw])
        text = str(m.get("output"))
        assert m.get("success") is False and "not uploaded by a user" in text, text[:300]
        assert "50,26" not in text and "[serving]" not in text and "PRETTY_NAME" not in text
    assert client.predict(api_name="/account")[1] == 40                   # nothing was charged
    # the same file uploaded through Gradio's upload route is accepted (and charged once)
    from gradio_client import handle_file
    assert client.predict("risk-assessment", handle_file(str(secret)), api_name="/predict_csv")[3] == 30
