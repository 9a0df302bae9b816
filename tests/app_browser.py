"""Real browsers for the web app's tests and benchmark: Debian's chromium driven by Selenium through
Debian's chromedriver, against a real `gridchain --dev` node that serves the built app at `/app/`.

    ensure_app_built()                                   # app/dist, built with npm if missing or stale
    with Browser("bob", out_dir) as bob:                 # one headless chromium, its own fresh profile
        bob.open(node.url + "/app/#/household")
        bob.fill("import-uri", "//Bob"); bob.click("import-submit")
        bob.wait_text("current-account", BOB_ADDRESS)

Both binaries are given by path (`/usr/bin/chromium`, `/usr/bin/chromedriver`), so Selenium Manager
never looks for or downloads a browser or driver; `make test` installs the two Debian packages with
apt when they are missing. Each Browser has its own `--user-data-dir`, so two users are two browsers
that share nothing (the app keeps its encrypted accounts in localStorage).

Elements are found by their `data-testid` (the names the app's views promise to tests). Every wait is
bounded; a wait that times out saves a screenshot, the page's HTML and the browser's console log in
the browser's output folder and names them in the error, so a failure in CI can be read afterwards.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

from selenium import webdriver
from selenium.common.exceptions import (NoSuchElementException, StaleElementReferenceException,
                                        TimeoutException, WebDriverException)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait

REPO = Path(__file__).resolve().parent.parent
APP = REPO / "app"
DIST = APP / "dist"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

#: a desktop window, and a phone's (an iPhone 12-15's CSS viewport)
DESKTOP = (1280, 900)
PHONE = (390, 844)
#: the default bound of one wait for an element or a text, s
WAIT_S = 15.0

#: what decides whether app/dist is current: the sources a build reads
_APP_SOURCES = ("index.html", "package.json", "package-lock.json", "vite.config.js", "src", "public")


class BrowserMissing(RuntimeError):
    """chromium or chromedriver is not installed where Debian puts them."""


def browser_binaries() -> tuple[Path, Path]:
    """The chromium and chromedriver paths; raise with the apt command when either is missing."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        raise BrowserMissing(f"{', '.join(missing)} not installed: run `apt-get install -y chromium chromium-driver` "
                             "(make test does it when missing)")
    return CHROMIUM, CHROMEDRIVER


# -------------------------------------------------------------------------------------------------
# the app's build
# -------------------------------------------------------------------------------------------------

def _newest_source_mtime() -> float:
    newest = 0.0
    for name in _APP_SOURCES:
        p = APP / name
        if p.is_dir():
            for f in p.rglob("*"):
                if f.is_file():
                    newest = max(newest, f.stat().st_mtime)
        elif p.exists():
            newest = max(newest, p.stat().st_mtime)
    return newest


def app_is_built() -> bool:
    """app/dist/index.html exists and is newer than every source the build reads."""
    index = DIST / "index.html"
    return index.exists() and index.stat().st_mtime >= _newest_source_mtime()


def _run(cmd: list[str], timeout: float) -> None:
    r = subprocess.run(cmd, cwd=str(APP), capture_output=True, text=True, timeout=timeout, check=False)
    if r.returncode != 0:
        tail = "\n".join((r.stdout + r.stderr).splitlines()[-30:])
        raise RuntimeError(f"`{' '.join(cmd)}` exited {r.returncode}:\n{tail}")


def ensure_app_built(timeout: float = 300.0) -> Path:
    """Build app/dist when it is missing or older than its sources, bounded by `timeout` seconds;
    returns the dist folder. `make app` does it (npm ci when the lock file changed, then npm run
    build); without make, the same two npm steps run here. So a test or the bench started on its
    own finds a current build."""
    if app_is_built():
        return DIST
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is not installed: the web app is built with npm (Node.js 20)")
    deadline = time.monotonic() + timeout
    make = shutil.which("make")
    if make is not None:
        _run([make, "-s", "-C", str(REPO), "app"], timeout=timeout)
    else:
        lock, modules = APP / "package-lock.json", APP / "node_modules"
        if not modules.is_dir() or (lock.exists() and lock.stat().st_mtime > modules.stat().st_mtime):
            _run([npm, "ci", "--no-audit", "--no-fund"], timeout=max(1.0, deadline - time.monotonic()))
        _run([npm, "run", "build"], timeout=max(1.0, deadline - time.monotonic()))
    if not (DIST / "index.html").exists():
        raise RuntimeError("the web app's build finished but app/dist/index.html is missing")
    return DIST


# -------------------------------------------------------------------------------------------------
# a browser
# -------------------------------------------------------------------------------------------------

#: records each new text of the visible tx-status (from the one it shows now on), with its time
_TX_WATCH_JS = """
const texts = () => [...document.querySelectorAll('[data-testid="tx-status"]')]
  .filter(e => e.offsetParent !== null).map(e => e.textContent.trim());
window.__txSeen = [];
window.__txLast = texts().join(' | ');
if (!window.__txObserver) {
  window.__txObserver = new MutationObserver(() => {
    const now = texts().join(' | ');
    if (now && now !== window.__txLast) {
      window.__txLast = now;
      window.__txSeen.push({text: now, t: performance.now()});
    }
  });
  window.__txObserver.observe(document.body, {subtree: true, childList: true, characterData: true});
}
"""


def _by_testid(testid: str) -> tuple[str, str]:
    return By.CSS_SELECTOR, f'[data-testid="{testid}"]'


class Browser:
    """One headless chromium with a fresh profile, and bounded waits on the app's `data-testid`
    elements. `out_dir` receives screenshots and, on a failed wait, the console log and HTML."""

    def __init__(self, name: str, out_dir: Path, *, size: tuple[int, int] = DESKTOP) -> None:
        chromium, chromedriver = browser_binaries()
        self.name = name
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.profile = Path(tempfile.mkdtemp(prefix=f"chromium-{name}-", dir=self.out_dir))
        options = webdriver.ChromeOptions()
        options.binary_location = str(chromium)
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage", "--no-default-browser-check", "--password-store=basic",
                     f"--user-data-dir={self.profile}", f"--window-size={size[0]},{size[1]}"):
            options.add_argument(flag)
        # "performance" records the DevTools network events: what the page sent (WebSocket frames,
        # request bodies), so a test can show no secret ever left it
        options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
        service = Service(executable_path=str(chromedriver), log_output=str(self.out_dir / f"{name}-chromedriver.log"))
        self.driver = webdriver.Chrome(options=options, service=service)
        self.driver.set_page_load_timeout(30)
        self.console: list[dict] = []          # console entries read so far (reading drains chromium's buffer)
        self.shots = 0

    # -- life cycle ---------------------------------------------------------------------------------

    def quit(self) -> None:
        try:
            self.save_console()
            self.driver.quit()
        except WebDriverException:
            pass
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.quit()

    def open(self, url: str) -> None:
        self.driver.get(url)

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    # -- finding -------------------------------------------------------------------------------------

    def find(self, testid: str, within: WebElement | None = None) -> list[WebElement]:
        """Every element with this data-testid now (visible or not), in document order."""
        return (within or self.driver).find_elements(*_by_testid(testid))

    def visible(self, testid: str, within: WebElement | None = None) -> list[WebElement]:
        out = []
        for e in self.find(testid, within):
            try:
                if e.is_displayed():
                    out.append(e)
            except StaleElementReferenceException:
                pass
        return out

    def until(self, what: str, condition: Callable[[], Any], timeout: float = WAIT_S) -> Any:
        """Poll `condition` until it returns something truthy (bounded); on timeout save the page's
        state and raise AssertionError naming `what` and where the evidence is."""
        def probe(_driver: Any) -> Any:
            try:
                return condition()
            except (NoSuchElementException, StaleElementReferenceException):
                return None
        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.1).until(probe)
        except TimeoutException:
            saved = self.save_failure(what)
            raise AssertionError(f"{self.name}: {what} not seen within {timeout:g} s; {saved}") from None

    def el(self, testid: str, timeout: float = WAIT_S, within: WebElement | None = None) -> WebElement:
        """The first visible element with this data-testid, waiting for it (bounded)."""
        return self.until(f"element [data-testid={testid}]",
                          lambda: next(iter(self.visible(testid, within)), None), timeout)

    def wait_text(self, testid: str, expect: str | Callable[[str], bool], timeout: float = WAIT_S) -> str:
        """Wait until a visible element with this data-testid has text containing `expect` (or for
        which `expect(text)` holds); returns that text."""
        test = expect if callable(expect) else (lambda t: expect.lower() in t.lower())

        def match() -> str | None:
            for e in self.visible(testid):
                t = e.text
                if test(t):
                    return t or " "
            return None
        return self.until(f"[data-testid={testid}] with text {expect!r}" if not callable(expect)
                          else f"[data-testid={testid}] with the expected text", match, timeout)

    def wait_gone(self, testid: str, timeout: float = WAIT_S) -> None:
        """Wait until no element with this data-testid is visible."""
        self.until(f"[data-testid={testid}] to disappear", lambda: not self.visible(testid), timeout)

    def text(self, testid: str, timeout: float = WAIT_S) -> str:
        return self.el(testid, timeout).text

    # -- acting --------------------------------------------------------------------------------------

    def fill(self, testid: str, value: str, within: WebElement | None = None) -> WebElement:
        """Replace a text input's value by typing, as a user would (so the page's input events fire)."""
        e = self.el(testid, within=within)
        self.js("arguments[0].scrollIntoView({block: 'center'})", e)
        if e.get_attribute("value"):
            # select and delete, as keys: clear() fires no input event, so a page that keeps the
            # field's text in its own state would not see the field emptied
            self.js("arguments[0].select()", e)
            e.send_keys(Keys.BACKSPACE)
        if value:
            e.send_keys(value)
        return e

    def click(self, testid: str, within: WebElement | None = None, timeout: float = WAIT_S) -> WebElement:
        """Click the element once it is visible and enabled."""
        e = self.until(f"[data-testid={testid}] to be clickable",
                       lambda: next((x for x in self.visible(testid, within) if x.is_enabled()), None), timeout)
        self.js("arguments[0].scrollIntoView({block: 'center'})", e)
        e.click()
        return e

    def select(self, testid: str, *, value: str | None = None, text: str | None = None,
               index: int | None = None) -> Select:
        """Choose an option of a <select> by value, by visible text (containing), or by index."""
        s = Select(self.el(testid))
        if value is not None:
            # by the option's value property: a page may set it as a property only (no attribute),
            # which Select.select_by_value's CSS lookup would not find
            o = self.until(f"option {value!r} in [data-testid={testid}]",
                           lambda: next((o for o in Select(self.el(testid)).options
                                         if o.get_attribute("value") == value), None))
            if not o.is_selected():
                o.click()
        elif text is not None:
            o = self.until(f"option with text {text!r} in [data-testid={testid}]",
                           lambda: next((o for o in Select(self.el(testid)).options if text in o.text), None))
            Select(self.el(testid)).select_by_visible_text(o.text)
        elif index is not None:
            self.until(f"{index + 1} options in [data-testid={testid}]",
                       lambda: len(Select(self.el(testid)).options) > index)
            Select(self.el(testid)).select_by_index(index)
        return s

    def options(self, testid: str) -> list[tuple[str, str]]:
        """(value, text) of each option of a <select>."""
        return [(o.get_attribute("value"), o.text) for o in Select(self.el(testid)).options]

    def act_and_follow(self, testid: str, *, within: WebElement | None = None, timeout: float = 45.0,
                       js_click: bool = False) -> list[dict]:
        """Click a control that starts a transaction and follow `tx-status` until it says
        "finalized" or "failed: ..."; returns every state it showed, `[{text, t}]`, with `t` in ms
        since the click (the page's own clock, `performance.now()`), starting at the click itself.

        A MutationObserver records each change of the status text as it happens, so a state shown
        for less than a poll (a quick "in block") is not missed, and the previous action's
        "finalized" is never taken for this one's. `js_click` clicks from the page's script (the
        benchmark: no driver round trip between the timestamp and the click)."""
        e = self.until(f"[data-testid={testid}] to be clickable",
                       lambda: next((x for x in self.visible(testid, within) if x.is_enabled()), None))
        self.js("arguments[0].scrollIntoView({block: 'center'})", e)
        self.js(_TX_WATCH_JS)
        if js_click:
            self.js("window.__txClick = performance.now(); arguments[0].click();", e)
        else:
            self.js("window.__txClick = performance.now();")
            e.click()

        def done() -> list[dict] | None:
            seen = self.js("return window.__txSeen.map(s => ({text: s.text, t: s.t - window.__txClick}));")
            if seen and (seen[-1]["text"] == "finalized" or seen[-1]["text"].startswith("failed")):
                return [{"text": "click", "t": 0.0}, *seen]
            return None
        return self.until(f"[data-testid=tx-status] to reach finalized or failed after [data-testid={testid}]",
                          done, timeout)

    def set_viewport(self, width: int, height: int, *, mobile: bool = False) -> None:
        """Emulate a device's CSS viewport (width x height) exactly, whatever the headless window."""
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 3 if mobile else 1, "mobile": mobile})

    def clear_viewport(self) -> None:
        self.driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})

    # -- evidence ------------------------------------------------------------------------------------

    def screenshot(self, label: str) -> Path:
        """Save a PNG of the viewport as `<name>-<n>-<label>.png` in the output folder."""
        self.shots += 1
        path = self.out_dir / f"{self.name}-{self.shots:02d}-{_safe(label)}.png"
        self.driver.save_screenshot(str(path))
        return path

    def sent_over_network(self) -> list[str]:
        """Everything the page sent since the last call: each WebSocket frame's payload, and each
        request's URL and body (from chromium's DevTools network events; reading drains them)."""
        import json  # noqa: PLC0415
        out: list[str] = []
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            params = message.get("params", {})
            if message.get("method") == "Network.webSocketFrameSent":
                out.append(params.get("response", {}).get("payloadData", ""))
            elif message.get("method") == "Network.requestWillBeSent":
                request = params.get("request", {})
                out.append(request.get("url", "") + "\n" + request.get("postData", ""))
        return out

    def read_console(self) -> list[dict]:
        """The browser's console entries so far (levels, messages); chromium hands each out once,
        so they are kept here."""
        try:
            self.console.extend(self.driver.get_log("browser"))
        except WebDriverException:
            pass
        return self.console

    def console_errors(self) -> list[str]:
        return [e.get("message", "") for e in self.read_console() if e.get("level") == "SEVERE"]

    def save_console(self, path: Path | None = None) -> Path:
        path = path or self.out_dir / f"{self.name}-console.log"
        lines = [f"{e.get('timestamp')} {e.get('level')} {e.get('message')}" for e in self.read_console()]
        path.write_text("\n".join(lines) + "\n")
        return path

    def save_failure(self, what: str, out_dir: Path | None = None) -> str:
        """Screenshot, HTML and console log of the page now, in `out_dir` (default the browser's own);
        returns a sentence naming the files (also printed, so pytest shows it)."""
        out = Path(out_dir or self.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        stem = f"{self.name}-failure-{int(time.time() * 1000) % 10**8}-{_safe(what)[:40]}"
        saved = []
        try:
            shot = out / f"{stem}.png"
            self.driver.save_screenshot(str(shot))
            saved.append(str(shot))
            html = out / f"{stem}.html"
            html.write_text(self.driver.page_source)
            saved.append(str(html))
        except WebDriverException as e:
            saved.append(f"(no screenshot: {e.msg})")
        saved.append(str(self.save_console(out / f"{stem}-console.log")))
        sentence = f"page state saved: {', '.join(saved)}"
        print(f"{self.name}: {sentence}")
        return sentence


def _safe(label: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in label).strip("-") or "x"


# -------------------------------------------------------------------------------------------------
# the account panel (shared by the tests and the benchmark)
# -------------------------------------------------------------------------------------------------

def open_account_forms(b: Browser) -> None:
    """Unfold the account panel's unlock and import forms (folded while an account is unlocked) by
    clicking its summary, as a user would."""
    if not b.visible("import-name"):
        field = b.until("the account panel", lambda: next(iter(b.find("import-name")), None))
        b.js("return arguments[0].closest('details').querySelector('summary')", field).click()
    b.el("import-name")


def unlock_account(b: Browser, name: str, password: str, *, js_click: bool = False) -> None:
    """Choose a stored account and submit its password (`js_click`: click from the page's script,
    recording `window.__unlockClick` on the page's clock)."""
    open_account_forms(b)
    b.select("unlock-account", value=name)
    b.fill("unlock-password", password)
    if js_click:
        b.js("window.__unlockClick = performance.now(); arguments[0].click();", b.el("unlock-submit"))
    else:
        b.click("unlock-submit")


def import_uri_account(b: Browser, name: str, uri: str, password: str, address: str) -> None:
    """Import a secret URI (`//Bob`) under `name` with `password`; the import unlocks it, and the
    page then shows `address` as the current account."""
    open_account_forms(b)
    b.fill("import-name", name)
    b.fill("import-uri", uri)
    b.fill("import-password", password)
    b.click("import-submit")
    b.wait_text("current-account", address, timeout=30)
