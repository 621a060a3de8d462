"""The playground page (service/playground/) served by the app: its headers and files, and its
behaviour in a real headless chromium against an app on a scripted engine (the loop's labels, the
503/429 messages and retries, the key kept in sessionStorage). The embedded model's run of the
page is tests/e2e/test_playground_e2e.py."""

from __future__ import annotations

import asyncio
import re
import tomllib
from collections.abc import Iterator
from html.parser import HTMLParser
from importlib.resources import files
from pathlib import Path

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from service.engine.base import SamplingOptions
from service.engine.scripted import ScriptedEngine
from service.protocol import BACKEND_NAMES, SEARCH_MODES
from service.routes.playground import ASSETS
from service.search.base import Doc
from service.settings import Settings
from tests.conftest import build_app
from tests.fakes import FakeBackend
from tests.helpers import MODEL
from tests.playground.browser import Page, chrome, live

ROOT = Path(__file__).resolve().parents[2]
SELF_TEXT = (
    "<think> I remember this. </think>\n<search> capital of France </search>\n"
    "<information> Paris is the capital of France. </information>\n"
    "<think> So Paris. </think>\n<answer> Paris </answer>"
)
AFTER_RESULTS = "<think> The results say Paris. </think>\n<answer> Paris </answer>"


def script(prompt: str, options: SamplingOptions) -> str:
    """Self mode (no </search> stop) writes its own results; real and entropy search once, and
    write the results themselves when none were injected (a fallback)."""
    if "Answer the given question" not in prompt:
        return "Hello from plain chat."
    if "</search>" not in options.stop:
        return SELF_TEXT
    trajectory = prompt.rsplit("<|assistant|>\n", 1)[-1]
    if "<information>" in trajectory:
        return AFTER_RESULTS
    if "</search>" in trajectory:  # the backend failed: the model writes the results itself
        return "<information> Paris is the capital of France. </information>\n" + AFTER_RESULTS
    return "<think> I need to look it up. </think>\n<search> capital of France </search>"


def scripted(**kwargs: object) -> ScriptedEngine:
    return ScriptedEngine(script=script, token_delay=0.01, **kwargs)  # type: ignore[arg-type]


# -- what the app serves ----------------------------------------------------------------------
async def test_page_and_assets_are_served_with_a_strict_policy(serve) -> None:  # type: ignore[no-untyped-def]
    async with serve(scripted()) as client:
        for path in ("/", "/playground"):
            page = await client.get(path)
            assert page.status_code == 200
            assert page.headers["content-type"].startswith("text/html")
            csp = page.headers["content-security-policy"]
            assert "default-src 'none'" in csp and "script-src 'self'" in csp and "connect-src 'self'" in csp
            assert "unsafe-inline" not in csp and "unsafe-eval" not in csp and "http" not in csp
            assert page.headers["x-content-type-options"] == "nosniff"
            assert page.headers["x-frame-options"] == "DENY"
            assert page.text == files("service").joinpath("playground", "index.html").read_text()
        js = await client.get("/playground/playground.js")
        css = await client.get("/playground/playground.css")
        assert js.status_code == css.status_code == 200
        assert js.headers["content-type"].startswith("text/javascript")
        assert css.headers["content-type"].startswith("text/css")
        assert (await client.get("/playground/other.js")).status_code == 404


async def test_options_tell_the_page_what_it_may_ask(serve) -> None:  # type: ignore[no-untyped-def]
    async with serve(scripted(), search_mode="real", api_keys="k1", agent={"max_turns": 2}) as client:
        options = (await client.get("/playground/options")).json()  # no key needed, like /health
    assert options == {
        "model": MODEL,
        "modes": list(SEARCH_MODES),
        "default_mode": "real",
        "backends": list(BACKEND_NAMES),
        "default_backend": "local",
        "top_k": 3,
        "max_turns": 2,
        "auth": True,
    }


class _Markup(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.script_text = ""
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.script_text += data


def test_page_files_are_packaged_small_and_self_contained() -> None:
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "playground/*" in package_data["service"]
    folder = files("service").joinpath("playground")
    assert sorted(p.name for p in folder.iterdir()) == sorted(ASSETS)
    markup = _Markup()
    markup.feed(folder.joinpath("index.html").read_text())
    for tag, attrs in markup.tags:
        assert not [a for a in attrs if a.startswith("on")], f"inline handler on <{tag}>"
        assert "style" not in attrs, f"inline style on <{tag}>"
        for attr in ("src", "href"):
            assert not (attrs.get(attr) or "/").startswith(("http:", "https:", "//")), f"external {attr}"
    assert [a.get("src") for t, a in markup.tags if t == "script"] == ["/playground/playground.js"]
    assert markup.script_text.strip() == ""  # no inline script
    js = folder.joinpath("playground.js").read_text()
    css = folder.joinpath("playground.css").read_text()
    for forbidden in (
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "new Function",
    ):
        assert forbidden not in js, forbidden
    assert not re.search(r"https?://", js + css), "the page fetches nothing from elsewhere"
    assert "@import" not in css and "url(" not in css
    assert sum(len(folder.joinpath(n).read_bytes()) for n in ASSETS) < 64_000


# -- in the browser ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def driver() -> Iterator[WebDriver]:
    browser = chrome()
    yield browser
    browser.quit()


def test_each_information_block_says_who_wrote_it(driver: WebDriver) -> None:
    search = {"local": FakeBackend(name="local"), "searxng": FakeBackend(name="searxng", fail="http_status")}
    app = build_app(Settings(model=MODEL, search_mode="real"), engine=scripted(), search=search)
    with live(app) as url:
        page = Page(driver, url).open()
        assert page.el("model").text == MODEL
        page.ask("What is the capital of France?", "real")
        (run,) = page.wait_finished(30)
        assert run["mode"] == "real" and run["outcome"] == "done", run
        assert run["answer"] == "Paris"
        assert run["chips"] == ["capital of France"] and run["sources"] == ["real"]
        assert run["scores"] == []  # no uncertainty outside entropy mode
        (info,) = run["infos"]
        assert info["writer"] == "real" and info["label"] == "written by local"
        assert re.fullmatch(r"\d+(\.\d)? ms", info["latency"])
        assert "Paris is the capital and largest city of France." in info["text"]
        assert run["thinks"] == ["I need to look it up.", "The results say Paris."]
        assert run["stats"]["end"] == "answer" and run["stats"]["finish"] == "stop"
        assert re.fullmatch(r"\d+ prompt \+ \d+ completion", run["stats"]["tokens"])
        assert re.fullmatch(r"\d+ % \(\d+\)", run["stats"]["cached"])
        assert re.fullmatch(r"\d+\.\d s", run["stats"]["time"])

        page.choose("backend", "searxng")  # a backend that fails: the model writes it, marked fallback
        page.ask("What is the capital of France?", "real", enter=False)
        (run,) = page.wait_finished(30)
        assert run["sources"] == ["fallback"]
        assert [i["writer"] for i in run["infos"]] == ["fallback"]
        assert run["infos"][0]["label"] == "written by the model (fallback: searxng failed: http_status)"

        page.ask("What is the capital of France?", "self")
        (run,) = page.wait_finished(30)
        assert run["answer"] == "Paris" and run["sources"] == ["self"]
        assert [(i["writer"], i["label"], i["latency"]) for i in run["infos"]] == [
            ("model", "written by the model", None)
        ]
        assert run["infos"][0]["text"] == "Paris is the capital of France."

        page.ask("Say hello", "off")
        (run,) = page.wait_finished(30)
        assert run["answer"] == "Hello from plain chat." and run["infos"] == [] and run["chips"] == []
        assert page.el("backend").get_attribute("disabled") == "true"


def test_a_loading_model_is_shown_and_retried(driver: WebDriver) -> None:
    async def slow_factory(settings: Settings, name: str) -> ScriptedEngine:
        await asyncio.sleep(2)
        return scripted()

    app = build_app(Settings(model=MODEL, search_mode="self"), engine_factory=slow_factory)
    with live(app) as url:
        page = Page(driver, url).open()
        page.ask("What is the capital of France?")
        waiting = page.wait_runs(lambda runs: "still loading" in runs[0]["status"], 10, "no 503 message")
        assert waiting[0]["status"] == "The model is still loading (503); retrying in 5 s…"
        (run,) = page.wait_finished(30)  # retried after Retry-After, and answered
        assert run["outcome"] == "done" and run["answer"] == "Paris"
        assert page.el("health").text == "model ready"


def test_too_many_requests_is_shown_and_retried(driver: WebDriver) -> None:
    engine = ScriptedEngine(script=script, token_delay=0.05)
    app = build_app(Settings(model=MODEL, search_mode="self", max_concurrency=1), engine=engine)
    with live(app) as url:
        page = Page(driver, url).open()
        body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "search_mode": "self"}
        with (
            httpx.Client(base_url=url, timeout=30) as client,
            client.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as busy,
        ):  # holds the one slot while the page asks
            assert busy.status_code == 200
            page.ask("What is the capital of France?")
            page.wait_runs(lambda runs: "(429)" in runs[0]["status"], 10, "no 429 message")
            assert "Too many requests in flight (429); retrying in 1 s" in page.runs()[0]["status"]
            busy.read()
        (run,) = page.wait_finished(30)
        assert run["outcome"] == "done" and run["answer"] == "Paris"


def test_the_key_lives_in_session_storage_never_in_the_url(driver: WebDriver) -> None:
    app = build_app(Settings(model=MODEL, search_mode="self", api_keys="right-key"), engine=scripted())
    with live(app) as url:
        page = Page(driver, url).open()
        assert page.el("status").text == "This server needs an API key."
        page.set_field("api-key", "wrong-key")
        page.ask("What is the capital of France?")
        (run,) = page.wait_finished(30)
        assert run["outcome"] == "error" and run["httpStatus"] == "401"
        assert run["status"].startswith("The API key was refused (401): incorrect API key provided")
        page.set_field("api-key", "right-key")
        page.open()  # a reload keeps the key for this tab's session
        assert page.el("api-key").get_attribute("value") == "right-key"
        assert (
            driver.execute_script("return sessionStorage.getItem('ssrl-playground-api-key')") == "right-key"
        )
        assert driver.execute_script("return localStorage.length") == 0
        page.ask("What is the capital of France?")
        (run,) = page.wait_finished(30)
        assert run["outcome"] == "done" and run["answer"] == "Paris"
        assert "key" not in driver.current_url


def test_an_opened_block_stays_open_while_the_answer_streams(driver: WebDriver) -> None:
    engine = ScriptedEngine(script=script, token_delay=0.1)
    app = build_app(Settings(model=MODEL, search_mode="self"), engine=engine)
    with live(app) as url:
        page = Page(driver, url).open()
        page.ask("What is the capital of France?")
        page.wait_runs(lambda r: r[0]["infos"] and r[0]["outcome"] == "running", 10, "no streaming block")
        driver.find_element(By.CSS_SELECTOR, "details.info summary").click()
        (run,) = page.wait_finished(30)
        assert run["answer"] == "Paris"  # the page re-drew the trajectory many times meanwhile
        assert driver.find_element(By.CSS_SELECTOR, "details.info").get_attribute("open") is not None
        assert driver.find_element(By.CSS_SELECTOR, "details.info .info-text").text == (
            "Paris is the capital of France."
        )


def test_blocks_are_placed_where_the_server_says(driver: WebDriver) -> None:
    """The steps' spans count code points; the page places blocks by them in its UTF-16 string (two
    characters beyond the BMP before the search shift every UTF-16 index by two)."""

    def emoji_script(prompt: str, options: SamplingOptions) -> str:
        if "<information>" in prompt.rsplit("<|assistant|>\n", 1)[-1]:
            return AFTER_RESULTS
        return "<think> 😀 𝔘nicode first. </think>\n<search> capital of France </search>"

    engine = ScriptedEngine(script=emoji_script, token_delay=0.01)
    app = build_app(Settings(model=MODEL, search_mode="real"), engine=engine)
    with live(app) as url:
        page = Page(driver, url).open()
        page.ask("What is the capital of France?", "real")
        (run,) = page.wait_finished(30)
    assert run["outcome"] == "done" and run["answer"] == "Paris", run
    assert run["chips"] == ["capital of France"] and run["sources"] == ["real"]
    (info,) = run["infos"]
    assert info["writer"] == "real" and info["text"].startswith("Doc 1: Paris Paris is the capital")
    assert run["thinks"] == ["😀 𝔘nicode first.", "The results say Paris."]


def test_a_fallback_block_is_labelled_while_the_model_writes_it(driver: WebDriver) -> None:
    search = {"local": FakeBackend(name="local", fail="timeout")}
    engine = ScriptedEngine(script=script, token_delay=0.1)
    app = build_app(Settings(model=MODEL, search_mode="real"), engine=engine, search=search)
    with live(app) as url:
        page = Page(driver, url).open()
        page.ask("What is the capital of France?", "real")
        (running,) = page.wait_runs(
            lambda r: r[0]["outcome"] == "running" and r[0]["infos"], 10, "no streaming block"
        )
        (run,) = page.wait_finished(30)
    assert running["infos"][0]["writer"] == "fallback", running  # known from the step, before the trace
    assert run["infos"][0]["label"] == "written by the model (fallback: local failed: timeout)"


def test_an_error_mid_stream_keeps_the_responses_status(driver: WebDriver) -> None:
    engine = ScriptedEngine(script=script, token_delay=0.01, fail_after_tokens=3)
    app = build_app(Settings(model=MODEL, search_mode="self"), engine=engine)
    with live(app) as url:
        page = Page(driver, url).open()
        page.ask("What is the capital of France?")
        (run,) = page.wait_finished(30)
    assert run["outcome"] == "error" and run["httpStatus"] == "200", run  # the stream had begun
    assert run["status"] == ("The server reported an error mid-stream: the engine failed: scripted failure")


def test_the_answer_shows_its_sources_as_links(driver: WebDriver) -> None:
    docs = [
        Doc(
            "Paris", "Paris is the capital and largest city of France.", "https://en.wikipedia.org/wiki/Paris"
        ),
        Doc("Trap", "Paris, says a page whose link is a script.", "javascript:alert(1)"),
        Doc("France", "France is a country; its capital is Paris.", "https://en.wikipedia.org/wiki/France"),
    ]
    app = build_app(
        Settings(model=MODEL, search_mode="real"),
        engine=scripted(),
        search={"local": FakeBackend(docs, name="local")},
    )
    with live(app) as url:
        page = Page(driver, url).open()
        page.ask("What is the capital of France?", "real")
        (real,) = page.wait_finished(30)
        page.ask("What is the capital of France?", "self")
        (self_run,) = page.wait_finished(30)
        page.el("compare").click()
        compared = page.wait_finished(60)
    assert real["answer"] == "Paris"
    # only web URLs become links, each opening apart from the page
    assert [(link["text"], link["href"]) for link in real["links"]] == [
        ("Paris", "https://en.wikipedia.org/wiki/Paris"),
        ("France", "https://en.wikipedia.org/wiki/France"),
    ]
    assert all(link["target"] == "_blank" and link["rel"] == "noopener noreferrer" for link in real["links"])
    assert self_run["answer"] == "Paris" and self_run["links"] == []  # the model's own results: no source
    assert {run["mode"]: len(run["links"]) for run in compared} == {"self": 0, "real": 2, "entropy": 2}
