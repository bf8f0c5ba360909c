"""The demos under /ui on a real `bentoml serve mlkit.serve.service:MLKit` (conftest's `server`): every demo opened from
the landing page in a real browser (Playwright driving Debian's /usr/bin/chromium, never a downloaded browser) without a
single request to another host and with mlkit's system fonts; the market demo's input checks, messages and cleared
results in the browser and through gradio_client (issue 10)."""
from pathlib import Path
from urllib.parse import urlparse

import pytest
import requests

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@pytest.fixture
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium); "
                    "never `playwright install`")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try: yield b
        finally: b.close()


def _offline_page(browser, server):
    "A page that records (and refuses) every request to a host other than the server's, and every failed one on it."
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    host = urlparse(server).netloc
    off_host, failed = [], []
    def route(r):
        if urlparse(r.request.url).netloc == host or r.request.url.startswith(("data:", "blob:")): r.continue_()
        else: off_host.append(r.request.url); r.abort()
    page.route("**/*", route)
    page.on("response", lambda resp: failed.append(f"{resp.status} {resp.url}")
            if resp.status >= 400 and resp.request.resource_type in ("stylesheet", "font", "script") else None)
    return page, off_host, failed


def test_every_demo_from_the_landing_page_offline(server, browser):
    from playwright.sync_api import expect
    from mlkit.serve.service import DEMOS
    page, off_host, failed = _offline_page(browser, server)
    page.goto(server + "/ui/")
    links = page.locator("a[href^='/ui/']")
    expect(links).to_have_count(len(DEMOS))
    for path, (title, _, _) in DEMOS.items():
        page.goto(server + "/ui/")
        page.get_by_role("link", name=title, exact=True).click()
        page.wait_for_url(f"{server}/ui/{path}/")
        expect(page).to_have_title(requests.get(f"{server}/ui/{path}/config", timeout=30).json()["title"],
                                   timeout=30_000)
        heading = page.locator(".gradio-container h1, .gradio-container h2").first
        expect(heading).to_be_visible(timeout=30_000)
        font = heading.evaluate("e => getComputedStyle(e).fontFamily")
        assert font.startswith("system-ui"), (path, font)                 # mlkit's theme, not a web font
        page.wait_for_timeout(1000)                                        # components that load after the page
        page.screenshot(path=f"/tmp/mlkit_demo_{path}.png")
    assert off_host == [], off_host
    assert failed == [], failed


def test_market_demo_in_a_browser(server, browser, tags):
    from playwright.sync_api import expect
    page, off_host, _ = _offline_page(browser, server)
    page.goto(server + "/ui/market/")
    table, prediction = page.locator("#walk-forward"), page.locator("#prediction")
    for header in ("period", "figure", "value", "meaning"):          # real headers before the first run, not "1 2 3"
        expect(table).to_contain_text(header, timeout=30_000)
    page.get_by_role("button", name="Show").click()
    expect(prediction).to_contain_text("BTC-USD after 2020-01-17", timeout=120_000)
    expect(table).to_contain_text("baseline accuracy", timeout=30_000)
    first = table.get_by_test_id("cell-0-1")
    expect(first).to_have_text("accuracy")                             # the honest figures first
    expect(page.locator("#model-card")).to_contain_text("trading days it was trained on", timeout=30_000)
    page.screenshot(path="/tmp/mlkit_market_demo.png", full_page=True)
    # a date written otherwise is refused with the format, and the previous answer is gone
    page.locator("#start textarea, #start input").first.fill("31/12/2017")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_test_id("toast-body").filter(has_text="YYYY-MM-DD")).to_be_visible(timeout=30_000)
    expect(prediction).to_contain_text("Nothing to show", timeout=30_000)
    expect(table).not_to_contain_text("baseline accuracy")
    expect(page.locator("#model-card")).not_to_contain_text("trading days it was trained on")
    # a range before the indicators' warm-up: the user's terms, not make_features' internals
    page.locator("#start textarea, #start input").first.fill("2014-12-01")
    page.locator("#end textarea, #end input").first.fill("2014-12-20")
    page.get_by_role("button", name="Show").click()
    toast = page.get_by_test_id("toast-body").filter(has_text="pick an end date on or after")
    expect(toast).to_be_visible(timeout=30_000)
    assert "make_features" not in toast.inner_text()
    assert off_host == [], off_host


@pytest.fixture
def market_client(server):
    from gradio_client import Client
    c = Client(server + "/ui/market/", verbose=False)
    yield c
    c.close()


def test_market_demo_messages_through_gradio_client(market_client, tags):
    from gradio_client.exceptions import AppError
    with pytest.raises(AppError, match=r"start: write the date as YYYY-MM-DD, e.g. 2019-12-31; got '31/12/2017'"):
        market_client.predict("BTC-USD", "31/12/2017", "2019-12-31", "production", api_name="/show")
    with pytest.raises(AppError, match="is not a day of the calendar"):
        market_client.predict("BTC-USD", "2019-01-01", "2019-02-30", "production", api_name="/show")
    with pytest.raises(AppError, match=r"need \d+ trading days of prices up to the end date: pick an end date on or"):
        market_client.predict("BTC-USD", "2014-12-01", "2014-12-20", "production", api_name="/show")
    with pytest.raises(AppError, match="is after the end"):
        market_client.predict("BTC-USD", "2019-12-31", "2019-01-01", "production", api_name="/show")
    # a range too short for the walk-forward still predicts, and says how long a range must be
    _, md, table, equity = market_client.predict("BTC-USD", "2019-12-01", "2020-01-17", "production", api_name="/show")
    assert "BTC-USD after 2020-01-17" in md and tags["BTC-USD"] in md
    assert table["headers"] == ["period", "figure", "value", "meaning"]
    assert "pick a range of at least 60 trading days" in table["data"][0][2]
    # a long one: the walk-forward figures, each with its meaning, and the card separately
    _, md, table, _ = market_client.predict("^GSPC", "2016-01-01", "2018-12-31", "production", api_name="/show")
    rows = {r[1]: r for r in table["data"]}
    assert [r[1] for r in table["data"]][:2] == ["accuracy", "baseline accuracy"]
    assert 0 <= float(rows["accuracy"][2]) <= 1 and all(r[3] for r in table["data"])
    assert int(rows["days"][2]) >= 60 and rows["accuracy"][0].startswith("201")
    card = market_client.predict("^GSPC", "production", api_name="/model_card")
    assert {"accuracy", "baseline accuracy", "train end"} <= {r[0] for r in card["data"]}


def test_queues_dashboard_refuses_a_guessed_date(server):
    from gradio_client import Client
    from gradio_client.exceptions import AppError
    c = Client(server + "/ui/queues/", verbose=False)
    try:
        with pytest.raises(AppError, match="start: write the date as YYYY-MM-DD"):
            c.predict("nyc_departures", 1, "weekly", "01/06/2013", "", api_name="/show_queue")
        md, *_ = c.predict("nyc_departures", 1, "weekly", "2013-06-01", "2013-08-31", api_name="/show_queue")
        assert "All NYC departures" in md
    finally: c.close()
