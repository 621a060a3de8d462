"""The playground page in a real headless chromium against the live server on the embedded model:
each mode streams its steps, compare runs three modes side by side (and saves the screenshot the
README shows), stop aborts the engine request, a bad key is explained, and a search result holding
markup is shown as text and never runs.

Real searches go to a SearXNG stand-in on a loopback port, under the test's control: its second
result carries an ``<img onerror>`` and a ``<script>`` (HTML-escaped in the JSON, as a page quoting
markup would be; the backend decodes entities, so the result text holds the raw tags)."""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.e2e.launcher import RunningServer, free_port, start_server
from tests.playground.browser import Page, chrome, wait_for

pytestmark = pytest.mark.e2e  # loads the real model (tests/conftest.py: how e2e tests are marked)

QUESTION = "Who wrote Hamlet?"
STORY = "Write a long story about a dragon who learns to paint."
XSS = '&lt;img src=x onerror="window.__xss=1"&gt; quoted markup &lt;script&gt;window.__xss=2&lt;/script&gt;'
RESULTS = [
    {
        "title": "Hamlet",
        "url": "https://en.wikipedia.org/wiki/Hamlet",
        "content": "Hamlet is a tragedy written by William Shakespeare sometime between 1599 and 1601.",
    },
    {
        "title": "Markup &lt;script&gt;window.__xss=3&lt;/script&gt;",
        "url": "https://example.org/x",
        "content": XSS,
    },
]


class FakeSearxng:
    """A SearXNG JSON API on a loopback port that answers every query with RESULTS."""

    def __init__(self) -> None:
        self.queries: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                url = urlparse(self.path)
                fake.queries.append(parse_qs(url.query).get("q", [""])[0])
                body = json.dumps({"results": RESULTS}).encode()
                self.send_response(200 if url.path == "/search" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def searxng() -> Iterator[FakeSearxng]:
    fake = FakeSearxng()
    yield fake
    fake.close()


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory, searxng: FakeSearxng) -> Iterator[RunningServer]:
    running = start_server(
        tmp_path_factory.mktemp("playground"),
        "--search.backend",
        "searxng",
        "--search.searxng.base-url",
        searxng.url,
        "--search.retries",
        "0",
    )
    yield running
    code = running.stop()
    assert code == -signal.SIGTERM, f"server exited with {code}:\n{running.log_tail()}"


@pytest.fixture(scope="module")
def driver() -> Iterator[WebDriver]:
    browser = chrome()
    yield browser
    browser.quit()


@pytest.fixture()
def page(driver: WebDriver, live_server: RunningServer) -> Page:
    page = Page(driver, live_server.base_url).open("/")
    page.set_field("api-key", live_server.api_key)
    page.set_field("max-tokens", "512")
    return page


def _real_search_shown(run: dict[str, object], searxng: FakeSearxng) -> None:
    infos = run["infos"]
    assert isinstance(infos, list) and infos, run
    first = infos[0]
    assert first["writer"] == "real" and first["label"] == "written by searxng", run
    # the same query asked before (another test, another mode) comes from the service's search cache
    assert re.fullmatch(r"(from the cache, )?\d+(\.\d)? ms", first["latency"]), run
    assert "Hamlet is a tragedy written by William Shakespeare" in first["text"]
    chips = run["chips"]
    assert isinstance(chips, list) and chips[0] in searxng.queries  # the query the backend was asked


def _screenshot(driver: WebDriver, name: str, tmp_path: Path) -> None:
    """The page's screenshot, into $SSRL_SCREENSHOTS (docs/ to refresh the docs' pictures) or tmp_path."""
    folder = Path(os.environ.get("SSRL_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1500, max(1000, min(int(height) + 40, 2400)))
    shot = folder / name
    assert driver.find_element(By.TAG_NAME, "body").screenshot(str(shot))
    assert shot.stat().st_size > 20_000
    driver.set_window_size(1500, 1000)


def test_each_mode_streams_its_steps(
    page: Page, searxng: FakeSearxng, live_server: RunningServer, tmp_path: Path
) -> None:
    page.ask(QUESTION, "real")
    # streamed: the reasoning shows while the run is still going
    page.wait_runs(lambda r: r[0]["outcome"] == "running" and r[0]["thinks"], 60, "no streamed <think>")
    (run,) = page.wait_finished(180)
    assert run["outcome"] == "done", run
    _real_search_shown(run, searxng)
    assert run["sources"][0] == "real" and run["answer"], run
    assert run["stats"]["end"] == "answer" and re.fullmatch(r"\d+ % \(\d+\)", run["stats"]["cached"])
    # the answer in its box, and only there: the trajectory marks where it was given
    finals = page.driver.find_elements(By.CSS_SELECTOR, ".cell.trajectory .answer-tag[data-final=true]")
    assert len(finals) == 1 and finals[0].text == ""
    _screenshot(page.driver, "playground-real.png", tmp_path)

    asked = len(searxng.queries)
    page.ask(QUESTION, "self")
    (run,) = page.wait_finished(180)
    assert run["outcome"] == "done" and run["chips"], run
    assert run["infos"] and {i["writer"] for i in run["infos"]} == {"model"}, run
    assert run["infos"][0]["label"] == "written by the model" and run["infos"][0]["latency"] is None
    assert len(searxng.queries) == asked  # self mode never asks the backend
    assert run["stats"]["end"] in {"answer", "no_answer", "token_budget"}

    page.ask(QUESTION, "entropy")
    (run,) = page.wait_finished(180)
    assert run["outcome"] == "done", run
    _real_search_shown(run, searxng)  # the first search of a trajectory always goes to the backend
    assert re.fullmatch(r"uncertainty \d+\.\d\d", run["scores"][0]), run  # the query's score, shown

    page.set_field("max-tokens", "48")
    page.ask(QUESTION, "off")
    (run,) = page.wait_finished(120)
    assert run["outcome"] == "done" and run["answer"] and run["chips"] == [] and run["infos"] == [], run
    assert run["stats"]["finish"] in {"stop", "length"} and "end" not in run["stats"]


def test_compare_runs_three_modes_side_by_side(
    page: Page, driver: WebDriver, searxng: FakeSearxng, tmp_path: Path
) -> None:
    page.set_field("question", QUESTION)
    page.el("compare").click()
    runs = page.wait_finished(240)
    assert [r["mode"] for r in runs] == ["self", "real", "entropy"]
    assert all(r["outcome"] == "done" and r["chips"] for r in runs), runs
    assert {i["writer"] for i in runs[0]["infos"]} == {"model"}
    for run in runs[1:]:
        _real_search_shown(run, searxng)
    # aligned: each row (answer, searches, stats) starts at the same height in every column
    tops = driver.execute_script(
        """return ['answer', 'searches', 'stats'].map(row =>
             [...document.querySelectorAll('#compare-view .cell.' + row)].map(
               c => Math.round(c.getBoundingClientRect().top)));"""
    )
    lefts = driver.execute_script(
        "return [...document.querySelectorAll('#compare-view h2.head')]"
        ".map(h => h.getBoundingClientRect().left)"
    )
    for row in tops:
        assert len(row) == 3 and len(set(row)) == 1, tops
    assert lefts == sorted(lefts) and len(set(lefts)) == 3
    # each <information> block opens on a click, to show the model's own results beside the real ones
    for summary in driver.find_elements(By.CSS_SELECTOR, "#compare-view details.info summary"):
        summary.click()
    blocks = driver.find_elements(By.CSS_SELECTOR, "#compare-view details.info")
    assert blocks and all(b.get_attribute("open") is not None for b in blocks)
    assert all(b.find_element(By.CLASS_NAME, "info-text").text for b in blocks)
    # what to expect of greedy answers run side by side, said under the columns
    assert (
        "a question can get a different answer in another run"
        in driver.find_element(By.CSS_SELECTOR, "#output .note").text
    )
    _screenshot(driver, "playground-compare.png", tmp_path)


def test_stop_aborts_the_engine_request(page: Page, live_server: RunningServer) -> None:
    page.set_field("max-tokens", "1500")
    # a long story in plain chat (1,500 tokens take many seconds here), so the click lands mid-answer;
    # a trajectory that loops no longer runs that long (the repetition stop ends it)
    page.ask(STORY, "off")
    page.wait_runs(lambda r: r[0]["outcome"] == "running" and r[0]["answer"], 60, "no streamed text")
    assert live_server.metric("ssrl_engine_unfinished_requests") == 1  # still generating
    page.el("stop").click()
    (run,) = page.wait_finished(10)
    assert run["outcome"] == "stopped" and run["status"] == "Stopped.", run
    assert page.el("status").text == ""  # said once, in the run
    assert "end" not in run["stats"] and "finish" not in run["stats"]
    deadline = time.monotonic() + 10
    while live_server.metric("ssrl_engine_unfinished_requests") != 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert live_server.metric("ssrl_engine_unfinished_requests") == 0  # the server freed it
    assert live_server.metric("ssrl_requests_in_flight") == 0
    assert page.el("stop").get_attribute("disabled") == "true"


def test_a_bad_key_is_explained(page: Page) -> None:
    page.set_field("api-key", "not-the-key")
    page.ask(QUESTION, "real")
    (run,) = page.wait_finished(30)
    assert run["outcome"] == "error" and run["httpStatus"] == "401", run
    assert run["status"] == (
        "The API key was refused (401): incorrect API key provided Enter a valid key in 'API key'."
    )


def test_markup_in_a_search_result_is_shown_as_text(
    page: Page, driver: WebDriver, searxng: FakeSearxng
) -> None:
    page.ask(QUESTION, "real")
    (run,) = page.wait_finished(180)
    assert run["outcome"] == "done", run
    text = run["infos"][0]["text"]
    assert '<img src=x onerror="window.__xss=1"> quoted markup <script>window.__xss=2</script>' in text
    # opened, the block shows the markup literally
    details = driver.find_element(By.CSS_SELECTOR, "details.info")
    details.find_element(By.TAG_NAME, "summary").click()
    wait_for(driver, lambda d: details.get_attribute("open") is not None)
    assert "<script>window.__xss=2</script>" in details.find_element(By.CLASS_NAME, "info-text").text
    assert driver.execute_script("return window.__xss") is None  # nothing ran
    assert driver.find_elements(By.TAG_NAME, "img") == []  # no element was made from it
    scripts = driver.find_elements(By.TAG_NAME, "script")
    assert [s.get_attribute("src") for s in scripts] == [f"{page.base_url}/playground/playground.js"]
    # nothing was even attempted: no Content-Security-Policy refusals in the console
    refusals = [e for e in driver.get_log("browser") if "Content Security Policy" in e.get("message", "")]
    assert refusals == []
