"""The dashboard as a person uses it: headless Chromium driven by Selenium against
`pes serve` running as a process.

The browser and its driver are Debian's (`PES_TEST_CHROMIUM`, `PES_TEST_CHROMEDRIVER`;
nothing is downloaded): missing, the tests skip with the reason, or fail under CI=true.
Screenshots go to `--screenshots DIR` when given (docs/images/ holds a few), else to a
pytest temporary directory.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.wait import WebDriverWait

from tests.api.conftest import core_policies, example_request
from tests.services import chromium
from tests.serving import pes_serve

ADMIN_KEY, READER_KEY = "admin-key-0001", "reader-key-0002"
KEYS = {ADMIN_KEY: "admin", READER_KEY: "reader"}
WAIT_S = 20

Snap = Callable[[str], Path]


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`pes serve` with an admin and a reader key, a portfolio tree, policies, violations."""
    folder = tmp_path_factory.mktemp("dashboard")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PES_")}
    env |= {"PES_API_KEYS": json.dumps(KEYS), "PES_GC_FREEZE": "false"}
    url = f"sqlite:///{folder / 'pes.db'}"
    with pes_serve(url, "none", env, folder / "serve.log", ready_s=90) as (_, base):
        with httpx.Client(base_url=base, headers={"X-API-Key": ADMIN_KEY}, timeout=60) as admin:
            for node in (
                {"portfolio_id": "firm", "name": "Firm", "parent_id": None},
                {"portfolio_id": "global-equity", "name": "Global equity", "parent_id": "firm"},
            ):
                r = admin.put(f"/api/v1/portfolios/{node['portfolio_id']}", json=node)
                assert r.status_code < 300, r.text
            for policy in core_policies():
                assert admin.post("/api/v1/policies", json=policy).status_code == 201
            tighter = {"description": "No single name above 10% of NAV (reviewed)"}
            assert admin.patch("/api/v1/policies/single-name-cap", json=tighter).is_success
            again = example_request("aapl-overweight")
            again["decision"]["decision_id"] = "dec-0003"
            for body in (
                example_request("aapl-overweight"),
                example_request("small-rebalance"),
                again,
            ):
                r = admin.post("/api/v1/validate", json=body)
                assert r.status_code == 200, r.text
        yield base


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    binary, driver = chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
    ):
        options.add_argument(argument)
    chrome = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    try:
        yield chrome
    finally:
        chrome.quit()


@pytest.fixture
def snap(
    request: pytest.FixtureRequest,
    browser: webdriver.Chrome,
    tmp_path_factory: pytest.TempPathFactory,
) -> Snap:
    chosen = request.config.getoption("--screenshots")
    folder = Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)

    def save(name: str) -> Path:
        path = folder / f"{name}.png"
        assert browser.save_screenshot(str(path)), path
        return path

    return save


def _wait(browser: webdriver.Chrome) -> WebDriverWait[webdriver.Chrome]:
    # A form's submit reloads the page while the condition polls: an element found in the
    # old document can be read after the new one replaced it, and chromedriver then answers
    # a plain WebDriverException ("Node with given id does not belong to the document"),
    # not a stale-element one. The condition is polled again; it must still hold in time.
    return WebDriverWait(browser, WAIT_S, ignored_exceptions=(WebDriverException,))


def _heading(browser: webdriver.Chrome) -> str:
    return browser.find_element(By.TAG_NAME, "h1").text


def _sign_in(browser: webdriver.Chrome, base_url: str, key: str) -> None:
    browser.delete_all_cookies()
    browser.get(f"{base_url}/ui")
    _wait(browser).until(ec.title_contains("Sign in"))
    field = browser.find_element(By.ID, "api_key")
    assert browser.switch_to.active_element == field  # the form starts focused
    field.send_keys(key + Keys.ENTER)  # submitted from the keyboard
    _wait(browser).until(ec.title_contains("Violations"))


def test_an_admin_filters_opens_and_acknowledges_a_violation(
    browser: webdriver.Chrome, base_url: str, snap: Snap
) -> None:
    browser.delete_all_cookies()
    browser.get(f"{base_url}/ui/violations")
    _wait(browser).until(ec.title_contains("Sign in"))
    snap("login")
    _sign_in(browser, base_url, ADMIN_KEY)
    assert _heading(browser) == "Violations"
    rows = browser.find_elements(By.CSS_SELECTOR, "tbody tr")
    assert rows and browser.find_elements(By.NAME, "ids")  # admins get the bulk checkboxes
    snap("violations")

    # Filter by the policy of the first open violation.
    policy = rows[0].find_elements(By.TAG_NAME, "td")[4].text
    Select(browser.find_element(By.ID, "f-policy")).select_by_value(policy)
    browser.find_element(By.ID, "apply-filters").click()
    _wait(browser).until(ec.url_contains(f"policy={policy}"))
    filtered = browser.find_elements(By.CSS_SELECTOR, "tbody tr")
    assert filtered and all(r.find_elements(By.TAG_NAME, "td")[4].text == policy for r in filtered)
    snap("violations-filtered")

    filtered[0].find_element(By.CLASS_NAME, "violation-link").click()
    _wait(browser).until(ec.title_contains("Violation #"))
    assert browser.find_element(By.ID, "status").text == "open"
    assert "svg" in browser.page_source and "The breach" in browser.page_source
    history = browser.find_elements(By.CSS_SELECTOR, "#history tbody tr")
    assert [r.find_elements(By.TAG_NAME, "td")[1].text for r in history] == ["opened"]
    snap("violation")

    browser.find_element(By.ID, "ack-reason").send_keys("checking with the portfolio manager")
    browser.find_element(By.ID, "acknowledge").click()
    _wait(browser).until(ec.text_to_be_present_in_element((By.ID, "status"), "acknowledged"))
    history = browser.find_elements(By.CSS_SELECTOR, "#history tbody tr")
    cells = [[c.text for c in r.find_elements(By.TAG_NAME, "td")] for r in history]
    assert [c[1] for c in cells] == ["opened", "acknowledged"]
    assert cells[1][3] == "checking with the portfolio manager"
    assert not browser.find_elements(By.ID, "acknowledge")  # only resolve is left
    snap("violation-acknowledged")


def test_a_reader_sees_no_actions_and_is_refused_one(
    browser: webdriver.Chrome, base_url: str, snap: Snap
) -> None:
    _sign_in(browser, base_url, READER_KEY)
    assert not browser.find_elements(By.NAME, "ids")
    assert not browser.find_elements(By.CSS_SELECTOR, "button[value=acknowledge]")
    browser.find_element(By.CLASS_NAME, "violation-link").click()
    _wait(browser).until(ec.title_contains("Violation #"))
    assert not browser.find_elements(By.ID, "acknowledge")
    assert not browser.find_elements(By.ID, "resolve")
    status = browser.find_element(By.ID, "status").text
    path = browser.current_url.removeprefix(base_url)

    # With the reader's own session and CSRF cookies, the post is still refused.
    cookies = {c["name"]: c["value"] for c in browser.get_cookies()}
    r = httpx.post(
        f"{base_url}{path}/acknowledge",
        data={"csrf_token": cookies["pes_csrf"]},
        cookies=cookies,
    )
    assert r.status_code == 403 and "needs admin" in r.text
    browser.refresh()
    assert browser.find_element(By.ID, "status").text == status


def test_the_policy_and_trends_pages_draw_their_charts(
    browser: webdriver.Chrome, base_url: str, snap: Snap
) -> None:
    _sign_in(browser, base_url, ADMIN_KEY)
    browser.find_element(By.LINK_TEXT, "Trends").click()
    _wait(browser).until(ec.title_contains("Trends"))
    charts = browser.find_elements(By.CSS_SELECTOR, "svg.chart[role=img]")
    assert len(charts) >= 3
    assert all(c.find_element(By.TAG_NAME, "title").get_attribute("textContent") for c in charts)
    snap("trends")

    browser.get(f"{base_url}/ui/policies/single-name-cap")
    _wait(browser).until(ec.title_contains("Policy single-name-cap"))
    tree = browser.find_element(By.CLASS_NAME, "tree").text
    assert "global-equity" in tree and "applies" in tree
    snap("policy")


def test_the_keyboard_reaches_the_skip_link_first(browser: webdriver.Chrome, base_url: str) -> None:
    _sign_in(browser, base_url, READER_KEY)
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    first = browser.switch_to.active_element
    assert first.text == "Skip to content"
    first.send_keys(Keys.ENTER)
    assert browser.switch_to.active_element.get_attribute("id") == "main"
