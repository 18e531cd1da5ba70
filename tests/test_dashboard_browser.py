"""The dashboard in a real browser: Playwright drives the system's headless Chromium (Debian's
``chromium`` package; ``make browser-setup`` installs it) against ``threadhost serve
examples.mylib_adapter --dashboard ...``.

The scenario of the issue: the page shows ``ready``; a maintenance started from the page
shows a moving progress bar while the call panel answers "busy — retry in N s" within 1 s,
then a result after the reload; a host killed with SIGKILL shows up as a restart with its
reason. Screenshots of these states go to the test's temporary folder, or to
``$THREADHOST_SCREENSHOTS`` when set: ``make screenshots`` renews the ones in docs/images/
(the README and docs/dashboard.md show them), so a test run leaves the checkout as it was.

Skipped only where Chromium is absent and ``CI`` is not set: in CI a missing browser fails.
"""

from __future__ import annotations

import os
import signal
import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import threadhost

from .conftest import ROOT, Service

pytestmark = [pytest.mark.e2e]

CHROMIUM = os.environ.get("THREADHOST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SCREENSHOTS = os.environ.get("THREADHOST_SCREENSHOTS")  # make screenshots: docs/images
READ_SECONDS = 3.0  # each readConfig of the served mylib (start-up and maintenance)


def _missing(what: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what} (CI: the browser tests must run; see `make browser-setup`)")
    pytest.skip(what)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        _missing(f"no Chromium at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed (the test extra)")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, svc: Service, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if svc.proc.poll() is not None:
            raise AssertionError(f"serve exited with {svc.proc.returncode}:\n{svc.log()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"no dashboard at {url}:\n{svc.log()}")


def progress_value(page: Any) -> float:
    return float(page.eval_on_selector("#running progress", "bar => bar.value"))


@pytest.mark.timeout(120)
def test_dashboard_in_a_real_browser(browser: Any, service_factory: Any,
                                     tmp_path: Path) -> None:
    port = free_port()
    svc: Service = service_factory("--dashboard", f"127.0.0.1:{port}",
                                   read_min=READ_SECONDS, read_max=READ_SECONDS)
    url = f"http://127.0.0.1:{port}/"
    wait_http(url, svc)
    images = ROOT / SCREENSHOTS if SCREENSHOTS else tmp_path
    images.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1200, "height": 1000})
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url)

    # ready: the start-up readConfig is done and listed; a call answers
    page.wait_for_selector("#state.ready", timeout=30_000)
    page.wait_for_selector("#maintenances td:text('startup')", timeout=10_000)
    page.wait_for_selector("#call-method option[value='calc']", state="attached",
                           timeout=10_000)
    page.fill("#arg-0", "5")
    page.click("#call-button")
    page.wait_for_selector("#answer[data-outcome='ok'] .result", timeout=5_000)
    assert page.inner_text("#answer .result") == "6"
    pid = int(page.inner_text("#hosts tbody tr td:nth-child(2)"))
    lib = svc.client()
    for x in range(40):  # some traffic for the charts
        assert lib.calc(x) == x + 1
    page.wait_for_function("document.querySelector('#latency-now').textContent"
                           ".includes('ms per forwarded call')", timeout=10_000)
    page.screenshot(path=str(images / "dashboard-ready.png"), full_page=True)

    # maintain now: the bar moves (the start-up run measured the estimate)
    page.click("#maintain-button")
    page.wait_for_selector("#maintain-answer:text('started')", timeout=5_000)
    page.wait_for_selector("#running progress[value]", timeout=5_000)
    first = progress_value(page)
    page.wait_for_function(f"document.querySelector('#running progress') && "
                           f"document.querySelector('#running progress').value > {first}",
                           timeout=5_000)
    assert "of about 3.00 s" in page.inner_text("#running")
    # asked again meanwhile: not started, counting down to the reply's retry_after
    page.click("#maintain-button")
    page.wait_for_selector("#maintain-answer:text('not started')", timeout=5_000)
    line = page.inner_text("#maintain-answer .countdown")
    assert "— retry in " in line and line.endswith(" s"), line
    for x in range(20):  # callers turned away while it runs: the busy rate
        with pytest.raises(threadhost.BusyError):
            lib.calc(x)

    # the call panel answers busy at once, with a countdown
    t0 = time.monotonic()
    page.click("#call-button")
    page.wait_for_selector("#answer[data-outcome='busy']", timeout=5_000)
    answered = time.monotonic() - t0
    assert answered < 1.0, f"the panel took {answered:.2f}s to answer busy"
    countdown = page.inner_text("#answer .countdown")
    assert countdown.startswith("busy — retry in ") and countdown.endswith(" s"), countdown
    page.wait_for_function("!document.querySelector('#answer .countdown') || "
                           f"document.querySelector('#answer .countdown').textContent "
                           f"!== {countdown!r}", timeout=3_000)  # it counts down
    page.wait_for_function("document.querySelector(\"#legend-rates [data-outcome='busy']\")"
                           ".textContent !== 'busy 0.0/s'", timeout=10_000)  # the busy rate
    page.screenshot(path=str(images / "dashboard-busy.png"), full_page=True)

    # after the reload: ready again, a result, the maintenance listed
    page.wait_for_selector("#state.ready", timeout=30_000)
    page.wait_for_selector("#maintenances td:text('manual')", timeout=10_000)
    page.click("#call-button")
    page.wait_for_selector("#answer[data-outcome='ok'] .result", timeout=5_000)
    assert page.inner_text("#answer .result") == "6"
    assert page.inner_text("#state") == "ready"

    # kill the host: the restart appears with its reason, and the service comes back
    os.kill(pid, signal.SIGKILL)
    page.wait_for_selector(f"#restarts li.restart:has-text('pid {pid}')", timeout=20_000)
    page.wait_for_selector("#state.ready", timeout=30_000)
    page.wait_for_selector(f"#restarts li.restart:has-text('(pid {pid}) → h2 (pid ')",
                           timeout=10_000)
    restart = page.inner_text("#restarts li.restart")
    assert f"slot 0: h1 (pid {pid}) → h2" in restart, restart
    assert "SIGKILL" in restart, restart  # the reason
    page.screenshot(path=str(images / "dashboard-restart.png"), full_page=True)

    # nothing came from outside; the page had no script error
    outside = [u for u in requested if not u.startswith((url, "data:"))]
    assert not outside, outside
    assert not errors, errors

    # the first run of a slow call has no estimate: an indeterminate bar, "unknown"
    first_run = page.evaluate("""() => {
        render({...last, running: [{call: "read_config", reason: "startup", host: "h9",
                                    elapsed: 1.25, expected: null, fraction: null,
                                    remaining: null}]});
        const bar = document.querySelector("#running progress");
        return [document.querySelector("#running").textContent, bar.hasAttribute("value")];
    }""")
    assert "1.25 s of unknown" in first_run[0] and first_run[1] is False, first_run

    # dark and narrow: the colours follow the system; nothing sticks out sideways
    light = page.evaluate("getComputedStyle(document.body).backgroundColor")
    page.emulate_media(color_scheme="dark")
    dark = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert light != dark
    page.set_viewport_size({"width": 380, "height": 800})
    page.wait_for_timeout(300)
    assert page.evaluate("document.documentElement.scrollWidth") <= 380
    page.screenshot(path=str(images / "dashboard-narrow-dark.png"), full_page=True)
    page.close()
