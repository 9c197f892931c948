"""report.html in a real headless browser (Debian's chromium driven by Playwright): it loads from a
file with no network request, filters, opens a sample and shows its game and rewards.

Install the browser with scripts/setup-browser.sh; without /usr/bin/chromium the test is skipped.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is missing: run scripts/setup-browser.sh to install Debian's chromium",
                allow_module_level=True)
pytest.importorskip("matplotlib")
sync_api = pytest.importorskip("playwright.sync_api")

from gtalign.eval import read_run_log  # noqa: E402
from gtalign.report import write_report  # noqa: E402
from tests.report._runs import make_runs  # noqa: E402

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run"]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, tuple[Path, Path]]:
    root = tmp_path_factory.mktemp("browser")
    runs = make_runs(root)
    return write_report(runs, root / "out", resamples=50).html, runs


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield browser.new_page(viewport={"width": 1400, "height": 1000})
        finally:
            browser.close()


def shown(value: float, digits: int = 4) -> str:
    """A number as the viewer prints it (at most ``digits`` decimals, no trailing zeros)."""
    return format(round(value, digits), "g")


def test_filter_open_a_sample_and_nothing_leaves_the_page(page: Any, report: tuple[Path, tuple[Path, Path]],
                                                          tmp_path: Path) -> None:
    html, runs = report
    requested: list[str] = []
    blocked: list[str] = []
    errors: list[str] = []

    def route(route: Any) -> None:
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    page.route("**/*", route)
    page.on("request", lambda request: requested.append(request.url))
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.goto(html.as_uri())

    # The summary and the figures are there without any fetch.
    assert page.locator("#tab-summary table.grid").count() > 5
    page.click("a[data-tab=plots]")
    assert page.eval_on_selector_all("figure.plot img", "imgs => imgs.map(i => i.naturalWidth > 0)") == [True] * 4

    # Filter: the steered run, math-hard, scored, then a text search.
    page.click("a[data-tab=samples]")
    assert page.inner_text("#shown") == "60 of 60 samples"
    page.select_option("#f-run", "1")
    page.select_option("#f-task", "math-hard")
    page.select_option("#f-status", "scored")
    assert page.inner_text("#shown") == "7 of 60 samples"
    page.fill("#f-q", "math-hard/1")
    page.wait_for_function("document.getElementById('shown').textContent === '2 of 60 samples'")
    page.click("#list li >> nth=0")

    steered = {r.key: r for r in read_run_log(runs[1]).records}
    plain = {r.key: r for r in read_run_log(runs[0]).records}
    record = steered[("math-hard/1", 0)]
    assert page.inner_text("#detail h2").split() == ["math-hard/1", "#0"]
    chosen = record.steering["chosen_key"]
    assert page.eval_on_selector_all("table.payoff td.chosen", "cells => cells.map(c => c.dataset.key)") == [chosen, chosen]
    assert page.locator("table.payoff caption").all_inner_texts() == [
        "Before pricing (the model's matrix)", "After pricing (research-llm-shift(s=1))"]
    welfare = record.steering["decision"]["welfare_by_key"][chosen]
    assert f"welfare {shown(welfare, 3)}" in page.inner_text("table.payoff >> nth=1")
    reward = page.locator("table.reward tr[data-key=user_reward] td >> nth=1")
    assert reward.inner_text() == shown(record.reward["user_reward"])
    assert page.locator("table.reward tr[data-key=judge_status] td >> nth=1").inner_text() == "ok"
    assert "matches the reference for math-hard/1" in page.inner_text("#detail")
    assert "fallbacks" in page.inner_text("#detail") and "payoff/retry" in page.inner_text("#detail")
    across = page.locator("table.across")
    assert across.locator("thead th").all_inner_texts()[1:] == ["base", "steered"]
    assert f"[base] The answer is 42 ({plain[('math-hard/1', 0)].parse.action})." in across.inner_text()
    screenshot = tmp_path / "sample.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # The keyboard moves through the filtered list; the other run's sample opens from the side-by-side view.
    page.locator("#detail").click(position={"x": 5, "y": 5})
    page.keyboard.press("ArrowDown")
    assert page.inner_text("#detail h2").split() == ["math-hard/1", "#1"]
    page.click("table.across thead th a")
    assert "base" in page.inner_text("#detail .tags")
    base = plain[("math-hard/1", 1)]
    assert page.eval_on_selector_all("table.payoff td.chosen", "cells => cells.map(c => c.dataset.key)") == [
        base.parse.chosen_key]

    # A steered answer whose matrix never parsed still shows how its action was chosen.
    page.click("#f-clear")
    page.select_option("#f-run", "1")
    page.fill("#f-q", "wildguard/3")
    page.wait_for_function("document.getElementById('shown').textContent === '2 of 60 samples'")
    page.click("#list li >> nth=1")
    assert page.inner_text("#detail h2").split() == ["wildguard/3", "#1"]
    assert page.locator("table.payoff").count() == 0
    detail = page.inner_text("#detail")
    assert "No payoff matrix could be read" in detail and "payoff/default_action" in detail

    # A sample whose prompt tries to close the data script is shown as text, and ran nothing.
    page.click("#f-clear")
    page.fill("#f-q", "pwned")
    page.wait_for_function("document.getElementById('shown').textContent === '4 of 60 samples'")
    page.click("#list li >> nth=0")
    assert "</script><script>window.__pwned = 1</script>" in page.inner_text("#detail")
    assert page.evaluate("window.__pwned") is None

    assert errors == []
    assert blocked == []
    assert requested and all(url.startswith(("file://", "data:")) for url in requested), json.dumps(requested)
