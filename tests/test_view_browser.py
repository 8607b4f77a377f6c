"""`evalkit view` in a real headless Chromium driven by selenium: the page loads, a failure-kind filter
narrows the table, a row opens the case with every option side by side, and a report.html link opens
its case.

Needs Debian's `chromium` and `chromium-driver` (apt-get install -y chromium chromium-driver) and
selenium (in the dev extra); skipped, with the reason, when any is absent.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from evalkit.view.links import case_url, samples_url
from evalkit.view.serve import serving

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
DRIVER = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if os.path.exists("/usr/bin/chromedriver") else None)
selenium = pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[dev]')")
pytestmark = pytest.mark.skipif(CHROMIUM is None or DRIVER is None,
                                reason="headless Chromium or its driver is not installed "
                                       "(apt-get install -y chromium chromium-driver)")

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

from test_view import runs  # noqa: E402,F401 - the module's fixture: two real runs of the tiny suite

SHOTS = os.environ.get("EVALKIT_VIEW_SHOTS")  # a folder: also save screenshots there (docs/ uses them)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1400,900", f"--user-data-dir={tmp_path_factory.mktemp('profile')}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def wait(driver, condition, timeout: float = 30):
    return WebDriverWait(driver, timeout).until(condition)


def table_rows(driver):
    return driver.find_elements(By.CSS_SELECTOR, "#samples tbody tr")


def shot(driver, name: str) -> None:
    if SHOTS:
        driver.save_screenshot(str(Path(SHOTS) / name))


def test_load_filter_by_failure_kind_open_a_case(browser, runs):
    with serving([runs]) as url:
        browser.get(url)
        wait(browser, lambda d: len(table_rows(d)) == 12)
        assert "12 of 12 samples" in browser.find_element(By.ID, "status").text

        Select(browser.find_element(By.ID, "f-kind")).select_by_value("wrong_value")
        wait(browser, lambda d: len(table_rows(d)) == 4)
        kinds = {cell.text for cell in browser.find_elements(By.CSS_SELECTOR, "#samples tbody td.kind")}
        assert kinds == {"wrong value"}
        assert "1–4 of 4" in browser.find_element(By.ID, "range").text
        shot(browser, "view-samples.png")

        table_rows(browser)[0].click()
        wait(browser, ec.visibility_of_element_located((By.ID, "options")))
        wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#options .option")) == 4)
        page = browser.find_element(By.ID, "case").text
        assert "tiny / cmp" in page and "Which is larger, 8.9 or 8.11?" in page
        assert "compare_data" in page and "9.9" in page  # expected call and the wrong reply, side by side
        verdicts = {o.get_attribute("data-verdict") for o in browser.find_elements(By.CSS_SELECTOR, "#options .option")}
        assert verdicts == {"fail"}
        shot(browser, "view-case.png")

        browser.find_element(By.ID, "back").click()
        wait(browser, lambda d: d.find_element(By.ID, "list").is_displayed() and len(table_rows(d)) == 4)
        problems = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert not problems, problems


def test_a_report_link_opens_its_case(browser, runs):
    run = sorted(p for p in runs.iterdir() if p.is_dir())[0]
    with serving([runs]) as url:
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        browser.get(case_url(run.name, "tiny", "hello", port=port))
        wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#options .option")) == 4)
        highlighted = browser.find_elements(By.CSS_SELECTOR, "#options .option.highlight")
        assert len(highlighted) == 2 and all(run.name in h.text for h in highlighted)  # its run's two formats
        assert not browser.find_element(By.ID, "list").is_displayed()


def test_the_table_state_is_in_the_address(browser, runs):
    """A filtered table is a link (report.html links to an option's failures), and "all samples"
    comes back to it after a case."""
    run = sorted(p for p in runs.iterdir() if p.is_dir())[0]
    with serving([runs]) as url:
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        browser.get(samples_url(port, run=run.name, format="native", verdict="fail"))
        wait(browser, lambda d: len(table_rows(d)) == 2)
        assert {r.get_attribute("data-run") for r in table_rows(browser)} == {run.name}
        assert Select(browser.find_element(By.ID, "f-verdict")).first_selected_option.get_attribute("value") == "fail"
        table_rows(browser)[0].click()
        wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#options .option"))
        browser.find_element(By.ID, "back").click()
        wait(browser, lambda d: d.find_element(By.ID, "list").is_displayed() and len(table_rows(d)) == 2)
        assert "format=native" in browser.current_url and "verdict=fail" in browser.current_url
