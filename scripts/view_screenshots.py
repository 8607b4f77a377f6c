"""The screenshots of docs/viewer.md: `evalkit view reports/measured` in headless Chromium.

    python scripts/view_screenshots.py            # writes docs/img/view-*.png

Needs chromium, chromium-driver and selenium, as tests/test_view_browser.py does.
"""

from __future__ import annotations

from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from evalkit.view.serve import serving

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "img"


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--window-size=1400,860", "--hide-scrollbars"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    wait = WebDriverWait(driver, 30)
    try:
        with serving([ROOT / "reports" / "measured" / "sweep-20261130-111830-600e"]) as url:
            driver.get(url)
            wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#samples tbody tr"))
            Select(driver.find_element(By.ID, "f-kind")).select_by_value("malformed")
            wait.until(lambda d: not d.find_element(By.ID, "status").text.startswith("156 of"))
            driver.save_screenshot(str(OUT / "view-samples.png"))
            driver.get(url + "#case=arithmetic/divide-144-12-en")
            wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#options .option")) == 4)
            driver.save_screenshot(str(OUT / "view-case.png"))
            driver.get(url + "#case=agent_math/agent-multiply-12345-54321-en")
            wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#options .option")) == 4)
            driver.save_screenshot(str(OUT / "view-agent.png"))
    finally:
        driver.quit()
    print("\n".join(str(p.relative_to(ROOT)) for p in sorted(OUT.glob("view-*.png"))))


if __name__ == "__main__":
    main()
