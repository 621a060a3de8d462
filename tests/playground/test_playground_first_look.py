"""What a new user saw wrong on the playground (issue 22), in headless chromium against an app on a
scripted engine: a collapsed <information> block shows that it opens, the answer is shown once, a
stop says "Stopped." once and marks the step it cut, plain chat is set as text, the Backend list
holds only backends this server can use, client mode says why the page does not run it, the icon
is served, a cache hit says so, and Compare says what to expect of greedy answers."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from service.engine.base import SamplingOptions
from service.engine.scripted import ScriptedEngine
from service.search.metrics import SearchMetrics
from service.search.resilient import ResilientBackend
from service.settings import Settings
from tests.conftest import build_app, serve
from tests.fakes import FakeBackend
from tests.helpers import MODEL
from tests.playground.browser import Page, chrome, live, wait_for
from tests.playground.test_playground_page import AFTER_RESULTS, scripted


@pytest.fixture(scope="module")
def driver() -> WebDriver:
    browser = chrome()
    yield browser  # type: ignore[misc]
    browser.quit()


def shot(driver: WebDriver, name: str, tmp_path: Path) -> Path:
    """A screenshot of the page, to look at: in $SSRL_SCREENSHOTS if set, else the test's tmp_path."""
    folder = Path(os.environ.get("SSRL_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"playground-{name}.png"
    assert driver.find_element(By.TAG_NAME, "body").screenshot(str(path))
    return path


def test_a_collapsed_block_shows_it_opens_and_the_answer_is_shown_once(
    driver: WebDriver, tmp_path: Path
) -> None:
    app = build_app(Settings(model=MODEL, search_mode="real"), engine=scripted())
    with live(app) as url:
        page = Page(driver, url).open()
        page.ask("What is the capital of France?", "real")
        (run,) = page.wait_finished(30)
        assert run["answer"] == "Paris"
        summary = driver.find_element(By.CSS_SELECTOR, "details.info summary")
        marker = "return getComputedStyle(arguments[0], '::before').content"
        closed = driver.execute_script(marker, summary)
        summary.click()
        wait_for(driver, lambda d: d.find_element(By.CSS_SELECTOR, "details.info").get_attribute("open"))
        opened = driver.execute_script(marker, summary)
        assert (closed, opened) == ('"\u25b8"', '"\u25be"')  # a marker, and it turns when opened
        # the answer box holds the answer; the trajectory only marks where it was given
        tag = driver.find_element(By.CSS_SELECTOR, ".cell.trajectory .answer-tag")
        assert tag.get_attribute("data-final") == "true" and tag.text == ""
        assert driver.execute_script(marker, tag) == '"answer given (in the answer box)"'
        assert "answer: Paris" not in driver.find_element(By.TAG_NAME, "body").text
        assert not [e for e in driver.get_log("browser") if "404" in e["message"]]  # the icon too
        shot(driver, "answer-once", tmp_path)


def test_a_stop_says_so_once_and_marks_the_step_it_cut(driver: WebDriver, tmp_path: Path) -> None:
    def slow_results(prompt: str, options: SamplingOptions) -> str:
        if "</search>" in prompt.rsplit("<|assistant|>\n", 1)[-1]:
            return AFTER_RESULTS
        return "<think> I need to look it up. </think>\n<search> capital of France and " + "more " * 200

    engine = ScriptedEngine(script=slow_results, token_delay=0.05)
    app = build_app(Settings(model=MODEL, search_mode="real"), engine=engine)
    with live(app) as url:
        page = Page(driver, url).open()
        page.ask("What is the capital of France?", "real")
        page.wait_runs(lambda r: r[0]["chips"] and r[0]["outcome"] == "running", 10, "no streaming search")
        page.el("stop").click()
        (run,) = page.wait_finished(10)
        assert run["outcome"] == "stopped" and run["status"] == "Stopped."
        assert page.el("status").text == ""  # said once, in the run, not again above it
        assert driver.find_element(By.TAG_NAME, "body").text.count("Stopped.") == 1
        assert run["sources"] == ["not run (stopped)"]  # the search the stop cut has a badge
        shot(driver, "stopped", tmp_path)

    # self mode: the model's own block, cut mid-way, says "stopped" instead of streaming forever
    def endless_self(prompt: str, options: SamplingOptions) -> str:
        return "<search> capital of France </search>\n<information> Paris " + "and more " * 300

    engine = ScriptedEngine(script=endless_self, token_delay=0.05)
    app = build_app(Settings(model=MODEL, search_mode="self"), engine=engine)
    with live(app) as url:
        page = Page(driver, url).open()
        page.ask("What is the capital of France?", "self")
        page.wait_runs(lambda r: r[0]["infos"] and r[0]["outcome"] == "running", 10, "no streaming block")
        assert page.runs()[0]["sources"] == ["self"]  # known from the mode while it streams
        page.el("stop").click()
        (run,) = page.wait_finished(10)
        assert run["sources"] == ["self"]
        streaming = driver.find_element(By.CSS_SELECTOR, "details.info .streaming").text
        assert streaming == "stopped"


def test_plain_chat_is_set_as_text_not_as_an_answer(driver: WebDriver) -> None:
    app = build_app(Settings(model=MODEL, search_mode="real"), engine=scripted())
    with live(app) as url:
        page = Page(driver, url).open()
        page.ask("Say hello", "off")
        (run,) = page.wait_finished(30)
        assert run["answer"] == "Hello from plain chat."
        style = driver.execute_script(
            "const s = getComputedStyle(document.querySelector('.cell.answer'));"
            "return [s.fontWeight, s.fontSize, getComputedStyle(document.body).fontSize];"
        )
        assert style[0] == "400" and style[1] == style[2], style  # the body's text, not the answer's


def test_the_backend_list_holds_what_this_server_can_use(driver: WebDriver) -> None:
    app = build_app(Settings(model=MODEL, search_mode="real"), engine=scripted())
    with live(app) as url:
        page = Page(driver, url).open()
        offered = [o.get_attribute("value") for o in page.el("backend").find_elements(By.TAG_NAME, "option")]
        assert offered == ["local"]
        modes = page.el("mode").find_elements(By.TAG_NAME, "option")
        client = [m for m in modes if m.get_attribute("value") == "client"]
        assert len(client) == 1 and client[0].get_attribute("disabled") == "true"  # offered, explained
        assert "your own code runs each search" in page.el("mode-note").text
        assert [m.get_attribute("value") for m in modes if not m.get_attribute("disabled")] == [
            "self",
            "real",
            "entropy",
            "off",
        ]
        icon = driver.execute_script("return document.querySelector('link[rel=icon]').href")
        assert icon.endswith("/playground/favicon.svg")
        assert not [e for e in driver.get_log("browser") if "404" in e["message"]]


async def test_configured_backends_are_offered() -> None:
    search = {
        "serper": {"api_key": "k"},  # a key: offered
        "searxng": {"base_url": "http://127.0.0.1:9"},  # an address set: offered
        "tavily": {"base_url": "https://api.tavily.com"},  # an address but no key: a 400, not offered
    }
    async with serve(scripted(), search=search) as client:
        options = (await client.get("/playground/options")).json()
    assert options["backends"] == ["local", "serper", "searxng"]


def test_a_cache_hit_says_so(driver: WebDriver) -> None:
    cached = ResilientBackend(FakeBackend(name="local"), SearchMetrics(CollectorRegistry()))
    app = build_app(Settings(model=MODEL, search_mode="real"), engine=scripted(), search={"local": cached})
    with live(app) as url:
        page = Page(driver, url).open()
        page.ask("What is the capital of France?", "real")
        (first,) = page.wait_finished(30)
        page.ask("What is the capital of France?", "real")
        (second,) = page.wait_finished(30)
    assert re.fullmatch(r"\d+(\.\d)? ms", first["infos"][0]["latency"]), first
    assert re.fullmatch(r"from the cache, \d+(\.\d)? ms", second["infos"][0]["latency"]), second


def test_compare_says_what_to_expect_of_greedy_answers(driver: WebDriver, tmp_path: Path) -> None:
    app = build_app(Settings(model=MODEL, search_mode="real"), engine=scripted())
    with live(app) as url:
        page = Page(driver, url).open()
        page.set_field("question", "What is the capital of France?")
        page.el("compare").click()
        runs = page.wait_finished(30)
        assert [r["answer"] for r in runs] == ["Paris"] * 3
        note = driver.find_element(By.CSS_SELECTOR, "#output .note").text
        assert "greedily" in note and "different answer in another run" in note
        shot(driver, "compare", tmp_path)
