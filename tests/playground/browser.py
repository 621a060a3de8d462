"""Drive the playground in a real headless browser: Debian's chromium through its chromedriver
(apt packages that ``scripts/setup.sh --test`` installs; selenium downloads nothing when given both
paths). Also serves an app on a loopback port in a thread, for pages that need a real socket."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import pytest
import uvicorn
from fastapi import FastAPI
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.e2e.launcher import free_port

T = TypeVar("T")
ATTEMPTS = 3


def chrome() -> WebDriver:
    """A headless chromium; fails (not skips) with the fix when the apt packages are missing."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if binary is None or driver_path is None:
        pytest.fail(
            "the browser tests need chromium and chromium-driver: run `bash scripts/setup.sh --test` as root"
        )
    os.environ.setdefault("SE_OFFLINE", "true")  # never let selenium-manager reach the network
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--window-size=1500,1000",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # Selenium gives chromedriver about 30 s to open its port, then gives up. On a loaded CI machine
    # (the other worker starting a vLLM engine) one start missed that once (CI, 2026-12-02), so a start is
    # tried three times, and chromedriver's output is kept to say why if all three miss.
    for attempt in range(1, ATTEMPTS + 1):
        with tempfile.TemporaryFile() as log:  # chromedriver's stdout and stderr
            service = Service(executable_path=driver_path, log_output=log)
            try:
                return webdriver.Chrome(options=options, service=service)
            except WebDriverException as error:
                service.stop()
                log.seek(0)
                tail = log.read()[-2000:].decode(errors="replace")
                if attempt == ATTEMPTS:
                    raise WebDriverException(
                        f"chromedriver did not start in {ATTEMPTS} tries: {error.msg}; its output:\n{tail}"
                    ) from error
    raise AssertionError("unreachable")


def wait_for(
    driver: WebDriver, condition: Callable[[WebDriver], T], timeout: float = 30, what: str = ""
) -> T:
    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(condition, message=what)


class Page:
    """The playground page, by the ids and classes its script uses."""

    def __init__(self, driver: WebDriver, base_url: str) -> None:
        self.driver = driver
        self.base_url = base_url

    def open(self, path: str = "/playground") -> Page:
        self.driver.get(self.base_url + path)
        wait_for(self.driver, lambda d: d.find_element(By.ID, "mode").find_elements(By.TAG_NAME, "option"))
        return self

    def el(self, element_id: str) -> WebElement:
        return self.driver.find_element(By.ID, element_id)

    def set_field(self, element_id: str, value: str) -> None:
        field = self.el(element_id)
        field.clear()
        if value:
            field.send_keys(value)

    def choose(self, element_id: str, value: str) -> None:
        Select(self.el(element_id)).select_by_value(value)

    def ask(self, question: str, mode: str | None = None, *, enter: bool = True) -> None:
        if mode is not None:
            self.choose("mode", mode)
        self.set_field("question", question)
        if enter:
            self.el("question").send_keys("\n")
        else:
            self.el("ask").click()

    def runs(self) -> list[dict[str, Any]]:
        """Each run on the page: its mode, status, answer, its source links, chips, information
        blocks and stats."""
        script = """
        const heads = [...document.querySelectorAll('#output h2.head')];
        const view = document.querySelector('#output .view');
        const cells = (cls) => [...view.querySelectorAll('.cell.' + cls)];
        const texts = (i, css) =>
          [...cells('trajectory')[i].querySelectorAll(css)].map(c => c.textContent).filter(t => t);
        return heads.map((head, i) => ({
          mode: head.dataset.mode,
          outcome: head.dataset.outcome || 'running',
          status: cells('status')[i].textContent,
          httpStatus: cells('status')[i].dataset.status || null,
          answer: cells('answer')[i].textContent,
          links: [...cells('sources')[i].querySelectorAll('a')].map(a => ({
            text: a.textContent, href: a.getAttribute('href'), target: a.target, rel: a.rel,
          })),
          chips: texts(i, '.search .query'),
          sources: texts(i, '.search .source'),
          scores: texts(i, '.search .uncertainty'),
          thinks: texts(i, '.think'),
          infos: [...cells('trajectory')[i].querySelectorAll('details.info')].map(d => ({
            writer: d.dataset.writer,
            label: d.querySelector('.writer').textContent,
            latency: (d.querySelector('.latency') || {}).textContent || null,
            text: d.querySelector('.info-text').textContent,
          })),
          stats: Object.fromEntries([...cells('stats')[i].querySelectorAll('.stat')].map(
            s => [s.dataset.stat, s.querySelector('dd').textContent])),
        }));
        """
        return list(self.driver.execute_script(script))

    def wait_runs(
        self, done: Callable[[list[dict[str, Any]]], bool], timeout: float, what: str
    ) -> list[dict[str, Any]]:
        def check(_: WebDriver) -> list[dict[str, Any]] | None:
            runs = self.runs()
            return runs if runs and done(runs) else None

        try:
            return wait_for(self.driver, check, timeout, what)
        except Exception:
            print("runs at timeout:", self.runs())
            raise

    def wait_finished(self, timeout: float = 120) -> list[dict[str, Any]]:
        return self.wait_runs(
            lambda runs: all(r["outcome"] != "running" for r in runs), timeout, "the runs did not finish"
        )


@contextmanager
def live(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` on a loopback port in a thread (lifespan included); yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
