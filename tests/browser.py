"""Headless Chromium for the browser tests, driven over the DevTools protocol on a pipe.

Why the DevTools protocol, directly: it gives what the tests assert on (every request the page
and its frames made, console messages and uncaught exceptions, screenshots at a set width)
without a driver binary or a Python dependency: Chromium reads protocol messages on fd 3 and
writes them on fd 4 (`--remote-debugging-pipe`), each a JSON object ended by a NUL byte.

The network is blocked for the browser: every host name except localhost resolves to nothing
(`--host-resolver-rules`), and every connection that is not to the loopback address goes to a
proxy that does not exist (a literal IP address included); background networking (updates,
metrics, safe browsing) is off. The tests still check, from the browser's own network log, that
no request was even attempted off this machine.

Chromium comes from the OS packages (Debian: `apt-get install chromium`); PERFDOCTOR_CHROMIUM
names another binary. Without one the browser tests are skipped, saying why.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
LOCAL_SCHEMES = ("data", "blob", "about", "chrome-error", "chrome", "file")
LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]", "::1")


def find_chromium() -> str | None:
    named = os.environ.get("PERFDOCTOR_CHROMIUM")
    if named:
        return named if Path(named).is_file() else None
    return next((found for name in CANDIDATES if (found := shutil.which(name))), None)


def is_local(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme in LOCAL_SCHEMES:
        return True
    return parts.scheme in ("http", "https", "ws", "wss") and (parts.hostname or "") in LOCAL_HOSTS


@dataclass
class PageLog:
    """What one page did: requests, console messages and exceptions, from every frame."""

    requests: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (url, error text)
    responses: list[tuple[str, int]] = field(default_factory=list)
    console: list[tuple[str, str]] = field(default_factory=list)  # (level, text)
    exceptions: list[str] = field(default_factory=list)

    def off_machine(self) -> list[str]:
        return [url for url in self.requests if not is_local(url)]

    def errors(self) -> list[str]:
        found = [f"console.{level}: {text}" for level, text in self.console if level in ("error", "assert")]
        found += [f"uncaught: {text}" for text in self.exceptions]
        found += [f"HTTP {status}: {url}" for url, status in self.responses if status >= 400 and not url.endswith("favicon.ico")]
        return found


class Chromium:
    """One headless browser; `page()` opens a tab whose events are logged."""

    def __init__(self, binary: str, profile: Path) -> None:
        to_chrome_read, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_write = os.pipe()
        # Move both ends of the child's pipe above fd 4, so that placing them at 3 and 4 cannot clobber one with the other.
        child_read = fcntl.fcntl(to_chrome_read, fcntl.F_DUPFD, 10)
        child_write = fcntl.fcntl(from_chrome_write, fcntl.F_DUPFD, 10)

        def place_fds() -> None:
            os.dup2(child_read, 3)
            os.dup2(child_write, 4)

        args = [
            binary, "--headless=new", "--remote-debugging-pipe", f"--user-data-dir={profile}",
            "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check", "--hide-scrollbars",
            "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-default-apps",
            "--disable-extensions", "--disable-domain-reliability", "--disable-client-side-phishing-detection",
            "--metrics-recording-only", "--no-pings", "--disable-features=Translate,OptimizationHints,MediaRouter",
            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1",
            "--proxy-server=http://127.0.0.1:9", "--enable-unsafe-swiftshader",
            "about:blank",
        ]
        self.process = subprocess.Popen(
            args, preexec_fn=place_fds, close_fds=False, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        for fd in (to_chrome_read, from_chrome_write, child_read, child_write):
            os.close(fd)
        self._next_id = 0
        self._replies: dict[int, dict[str, Any]] = {}
        self._listeners: dict[str, PageLog] = {}  # sessionId -> its log
        self._condition = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.call("Browser.getVersion", timeout=30)

    def _read(self) -> None:
        buffer = b""
        while True:
            try:
                chunk = os.read(self._from_chrome, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                with self._condition:
                    self._condition.notify_all()
                return
            buffer += chunk
            while b"\0" in buffer:
                raw, buffer = buffer.split(b"\0", 1)
                message = json.loads(raw)
                with self._condition:
                    if "id" in message:
                        self._replies[message["id"]] = message
                    else:
                        self._event(message)
                    self._condition.notify_all()

    def _event(self, message: dict[str, Any]) -> None:
        log = self._listeners.get(message.get("sessionId", ""))
        if log is None:
            return
        method, params = message.get("method"), message.get("params", {})
        if method == "Network.requestWillBeSent":
            log.requests.append(params["request"]["url"])
        elif method == "Network.responseReceived":
            log.responses.append((params["response"]["url"], int(params["response"]["status"])))
        elif method == "Network.loadingFailed":
            log.failed.append((params.get("requestId", ""), params.get("errorText", "")))
        elif method == "Runtime.consoleAPICalled":
            text = " ".join(str(arg.get("value", arg.get("description", ""))) for arg in params.get("args", []))
            log.console.append((params.get("type", "log"), text))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            log.exceptions.append(str(details.get("exception", {}).get("description") or details.get("text")))
        elif method == "Log.entryAdded":
            entry = params.get("entry", {})
            log.console.append((entry.get("level", "info"), f"[{entry.get('source')}] {entry.get('text')}"))
        elif method == "Target.attachedToTarget":
            # A frame in its own process: follow it too.
            self._listeners[params["sessionId"]] = log

    def call(self, method: str, session: str | None = None, timeout: float = 30, **params: Any) -> dict[str, Any]:
        with self._condition:
            self._next_id += 1
            ident = self._next_id
        message: dict[str, Any] = {"id": ident, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        with self._condition:
            if not self._condition.wait_for(lambda: ident in self._replies or self.process.poll() is not None, timeout):
                raise TimeoutError(f"Chromium did not answer {method} in {timeout} s")
            reply = self._replies.pop(ident, None)
        if reply is None:
            raise RuntimeError(f"Chromium exited during {method}")
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return dict(reply.get("result", {}))

    def page(self, width: int, height: int, mobile: bool = False) -> "Page":
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        log = PageLog()
        with self._condition:
            self._listeners[session] = log
        for domain in ("Page", "Runtime", "Network", "Log"):
            self.call(f"{domain}.enable", session=session)
        self.call("Target.setAutoAttach", session=session, autoAttach=True, waitForDebuggerOnStart=False, flatten=True)
        self.call("Emulation.setDeviceMetricsOverride", session=session, width=width, height=height,
                  deviceScaleFactor=1, mobile=mobile)
        return Page(self, session, log, width, height)

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=5)
        except Exception:
            pass
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        os.close(self._to_chrome)


@dataclass
class Page:
    browser: Chromium
    session: str
    log: PageLog
    width: int
    height: int

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        return self.browser.call(method, session=self.session, **params)

    def open(self, url: str, settle_s: float = 1.0, timeout: float = 30) -> None:
        """Navigate and wait until the page has loaded and the network has been quiet a while."""
        self.call("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete'", timeout)
        self.quiet(settle_s, timeout)

    def quiet(self, settle_s: float, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        seen = -1
        while time.monotonic() < deadline:
            count = len(self.log.requests) + len(self.log.responses)
            if count == seen:
                return
            seen = count
            time.sleep(settle_s)

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails'].get('text')}")
        return result.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float = 30) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = self.evaluate(expression)
            except RuntimeError:
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"never true: {expression}")
            time.sleep(0.2)

    def frames(self) -> list[dict[str, Any]]:
        """Every frame of the page, nested ones included ({"id", "url"}...)."""
        found: list[dict[str, Any]] = []

        def walk(node: dict[str, Any]) -> None:
            found.append(node["frame"])
            for child in node.get("childFrames", []):
                walk(child)

        walk(self.call("Page.getFrameTree")["frameTree"])
        return found

    def evaluate_in_frame(self, url_part: str, expression: str) -> Any:
        """`expression` in the (first) frame whose URL contains url_part; None if there is none."""
        frame = next((f for f in self.frames() if url_part in f.get("url", "")), None)
        if frame is None:
            return None
        context = self.call("Page.createIsolatedWorld", frameId=frame["id"])["executionContextId"]
        result = self.call("Runtime.evaluate", expression=expression, contextId=context, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            return None
        return result.get("result", {}).get("value")

    def wait_in_frame(self, url_part: str, expression: str, timeout: float = 30) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate_in_frame(url_part, expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"never true in a frame at *{url_part}*: {expression}")
            time.sleep(0.25)

    def screenshot(self, path: Path, full_page: bool = True) -> Path:
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            size = self.call("Page.getLayoutMetrics")["cssContentSize"]
            height = min(int(size["height"]) + 1, 12000)
            params.update(captureBeyondViewport=True, clip={"x": 0, "y": 0, "width": self.width, "height": height, "scale": 1})
        data = self.call("Page.captureScreenshot", **params)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        try:
            self.browser.call("Target.closeTarget", targetId=self.call("Target.getTargetInfo")["targetInfo"]["targetId"])
        except Exception:
            pass
