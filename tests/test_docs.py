"""The README and the docs site: what a reader meets first, a strict build, and the built site in
a real browser. (Every ``>>>`` example in them runs as a doctest: ``--doctest-glob=*.md``.)"""

from __future__ import annotations

import functools
import http.server
import json
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def test_readme_is_one_screen_with_the_two_commands_first():
    text = (REPO / "README.md").read_text()
    lines = text.splitlines()
    assert len(lines) <= 200, len(lines)
    commands = [line.strip() for line in lines if line.startswith("    ") and "pip install" in line]
    demo, tests = commands[:2]
    assert demo.endswith("python examples/toy_distill.py") and tests.endswith("python -m pytest -q")
    # Both come before the first section, and CI runs the README's test command verbatim.
    assert text.index(tests) < text.index("\n## ")
    assert tests.split("&& ", 2)[2] in (REPO / ".ci" / "run").read_text()


def test_readme_links_and_images_work_on_the_package_index_too():
    # The README is the package's long description: a relative link or image breaks there.
    for target in re.findall(r"\]\(([^)]+)\)", (REPO / "README.md").read_text()):
        assert target.startswith(("https://", "http://", "#")), target


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_python_example_is_a_doctest(page):
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)
    for block in blocks:
        assert block.lstrip().startswith(">>>"), f"{page.name}: a python block that would not run:\n{block[:200]}"


def _build(out: Path, source: Path = REPO / "docs") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(source), str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_the_site_builds_with_warnings_as_errors(tmp_path):
    done = _build(tmp_path / "html")
    assert done.returncode == 0, done.stderr[-4000:]
    for page in ["index.html", "api/ranks.html", "study.html", "guide/composing.html", "changelog.html"]:
        assert (tmp_path / "html" / page).exists(), page
    # A broken internal link fails the build: a copy of the sources with one page more shows it.
    copy = tmp_path / "copy"
    shutil.copytree(REPO / "docs", copy / "docs", ignore=shutil.ignore_patterns("_build"))
    for shared in ("CHANGELOG.md", "study"):  # what the pages include from outside docs/
        (copy / shared).symlink_to(REPO / shared)
    (copy / "docs" / "probe.md").write_text("# Probe\n\n[nowhere](no-such-page.md)\n")
    broken = _build(tmp_path / "broken", copy / "docs")
    assert broken.returncode != 0 and "no-such-page" in broken.stderr, broken.stderr[-2000:]


def _chromium() -> tuple[str, str] | None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


@pytest.mark.slow
def test_the_site_in_a_real_browser(tmp_path):
    found = _chromium()
    if found is None:
        pytest.fail("Debian's chromium and chromium-driver are needed (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    site = tmp_path / "html"
    done = _build(site)
    assert done.returncode == 0, done.stderr[-4000:]
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"

    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,1600",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(found[1]), options=options)
    try:

        def visit(path: str, shot: str) -> None:
            driver.get(f"{base}/{path}")
            WebDriverWait(driver, 20).until(lambda d: d.execute_script("return document.readyState") == "complete")
            driver.save_screenshot(str(tmp_path / shot))

        visit("index.html", "home.png")
        assert driver.title.startswith("softrank_ad")
        assert "Differentiable soft-rank losses" in driver.find_element(By.TAG_NAME, "article").text

        visit("api/ranks.html", "api.png")
        assert driver.title.startswith("Soft ranks and rank correlations")
        signatures = [s.text for s in driver.find_elements(By.CSS_SELECTOR, "dt.sig")]
        assert any("soft_rank(x, *, gamma=" in s for s in signatures), signatures[:3]

        visit("study.html", "study.png")
        assert driver.title.startswith("The method study")
        figure = driver.find_element(By.CSS_SELECTOR, "img[src*='interaction']")
        size = driver.execute_script(
            "return [arguments[0].complete, arguments[0].naturalWidth, arguments[0].naturalHeight]", figure
        )
        assert size[0] and size[1] > 0 and size[2] > 0, size

        visit("search.html?q=slack", "search.png")
        WebDriverWait(driver, 20).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, "ul.search li") or "no results" in d.page_source.lower()
        )
        results = driver.find_elements(By.CSS_SELECTOR, "ul.search li")
        assert results, "search for 'slack' found nothing"

        errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        assert not errors, json.dumps(errors, indent=1)
    finally:
        driver.quit()
        server.shutdown()
    print(f"screenshots in {tmp_path}")


def test_the_api_reference_names_every_public_name():
    import softrank_ad

    text = "".join(p.read_text() for p in (REPO / "docs" / "api").glob("*.md"))
    missing = [n for n in softrank_ad.__all__ if n not in ("__version__", "terms") and not re.search(rf"\b{n}\b", text)]
    assert not missing, f"add these to docs/api/: {missing}"
