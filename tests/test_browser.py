"""The report and the history page in a real browser: Debian's chromium + chromium-driver, headless,
driven by selenium (installed by ``make setup``). On a phone-sized window the first screen shows the
verdict, the regressions and the failed budgets; the tables sort on a header click; no console errors."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Iterator

import pytest

from harness.cli import main

pytestmark = [pytest.mark.slow]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not (CHROMIUM and DRIVER):
        if os.environ.get("CI"):
            pytest.fail("chromium / chromedriver missing: `make setup` installs them (Makefile APT_PACKAGES)")
        pytest.skip("chromium / chromedriver not installed (make setup installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # never let selenium-manager look for downloads
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--disable-gpu", "--disable-dev-shm-usage"):
        opts.add_argument(arg)
    # a phone's screen (headless windows are at least 500 px wide; device metrics are not)
    opts.add_experimental_option("mobileEmulation", {"deviceMetrics": {"width": 412, "height": 915, "pixelRatio": 2.6}})
    if os.geteuid() == 0:
        opts.add_argument("--no-sandbox")  # chromium refuses to run as root with its sandbox
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    try:
        yield driver
    finally:
        driver.quit()


def _open(driver: Any, path: Path) -> None:
    driver.get_log("browser")  # drop what earlier pages logged
    driver.get(path.resolve().as_uri())
    assert driver.execute_script("return document.readyState") == "complete"


def _no_console_errors(driver: Any) -> None:
    errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert not errors, errors


def _in_first_screen(driver: Any, element_id: str) -> None:
    from selenium.webdriver.common.by import By

    el = driver.find_element(By.ID, element_id)
    assert el.is_displayed(), element_id
    top = driver.execute_script("return arguments[0].getBoundingClientRect().top", el)
    height = driver.execute_script("return window.innerHeight")
    assert 0 <= top < height, f"#{element_id} starts at {top}px, below the first screen ({height}px)"


def _column(driver: Any, table_id: str, col: int) -> list[str]:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#' + arguments[0] + ' tbody tr'))"
        ".map(r => r.cells[arguments[1]].textContent)", table_id, col)


def _click_header(driver: Any, table_id: str, text: str) -> int:
    from selenium.webdriver.common.by import By

    heads = driver.find_elements(By.CSS_SELECTOR, f"#{table_id} thead th")
    idx = [h.text for h in heads].index(text)
    driver.execute_script("arguments[0].scrollIntoView()", heads[idx])
    heads[idx].click()
    return idx


def test_report_first_screen_table_and_sorting(browser: Any, nights: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    newest = nights.runs[-1]
    assert main(["report", str(newest), "--no-plots"]) == 0  # budgets pass; drift shows in the report
    page = newest / "report.html"
    _open(browser, page)
    assert browser.find_element(By.ID, "verdict").text == "FAIL"  # the drift
    for element in ("verdict", "counts", "regressions", "failed-budgets"):
        _in_first_screen(browser, element)
    regressions = browser.find_element(By.ID, "regressions").text
    assert "fp32 flash" in regressions and "slow drift" in regressions
    table = browser.find_element(By.ID, "results")
    assert table.is_displayed() and "flash [KiB]" in table.text and "fp32" in table.text
    assert browser.execute_script("return document.documentElement.scrollWidth") <= 412  # the page fits a phone
    _no_console_errors(browser)


def test_report_table_sorts_by_column(browser: Any, tmp_path: Path) -> None:
    from harness.bench import html_report, results

    store = results.RunStore(tmp_path / "runs" / "20261105T021700Z-abc1234")
    for variant, acc, flash in [("fp32", 0.94, 36000), ("qat-sym-4", 0.80, 30000), ("ptq-sym-8", 0.93, 33000),
                                ("unstruct-l1-50-ft", 0.90, 36000)]:
        store.record(variant, "accuracy", acc, "", 0.85, acc >= 0.85)
        store.record(variant, "flash", flash, "B")
    store.write_metadata(started="2026-11-05T02:17:00Z", finished="2026-11-05T02:40:00Z", exitstatus=1)
    run = results.load_run(store.run_dir)
    html_report.write_reports(run)
    _open(browser, run.path / "report.html")
    col = _click_header(browser, "results", "accuracy [%]")
    assert _column(browser, "results", col) == ["80.0", "90.0", "93.0", "94.0"]
    _click_header(browser, "results", "accuracy [%]")
    assert _column(browser, "results", col) == ["94.0", "93.0", "90.0", "80.0"]
    _click_header(browser, "results", "variant")
    assert _column(browser, "results", 0) == ["fp32", "ptq-sym-8", "qat-sym-4", "unstruct-l1-50-ft"]
    fails = browser.execute_script("return Array.from(document.querySelectorAll('#results td.fail')).map(c => c.textContent)")
    assert fails == ["80.0", "FAIL 0/1"] or sorted(fails) == sorted(["80.0", "FAIL 0/1"])
    _no_console_errors(browser)


def test_history_page(browser: Any, nights: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    out = tmp_path / "hist"
    assert main(["history", str(nights.root), "--out", str(out)]) == 1
    _open(browser, out / "history.html")
    assert browser.find_element(By.ID, "verdict").text == "DRIFT"
    _in_first_screen(browser, "regressions")
    assert "fp32 flash" in browser.find_element(By.ID, "regressions").text
    runs = browser.find_element(By.ID, "runs-table")
    assert runs.is_displayed() and "partial" not in _column(browser, "runs-table", 6)[0]
    col = _click_header(browser, "runs-table", "time (UTC)")
    times = _column(browser, "runs-table", col)
    assert times == sorted(times)
    _click_header(browser, "runs-table", "time (UTC)")
    assert _column(browser, "runs-table", col) == sorted(times, reverse=True)
    assert browser.execute_script("return window.innerWidth") == 412
    svg = browser.find_element(By.CSS_SELECTOR, "#fig-flash svg")
    assert svg.is_displayed() and svg.size["width"] <= 412  # scaled to a phone's width
    assert browser.execute_script("return document.documentElement.scrollWidth") <= 412  # no sideways scrolling
    _no_console_errors(browser)
