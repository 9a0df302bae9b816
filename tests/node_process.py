"""A real `gridchain --dev` node in a child process, for multi-process tests.

    with DevNode(tmp_path / "node", block_time_ms=200) as node:
        node.rpc("system_health")            # raw JSON-RPC over HTTP: result, or raises NodeRpcError
        with Client(node.url) as c: ...      # or the client library
        node.kill(); node.restart()          # SIGKILL, then start again on the same base path

The node gets a free loopback port (found by binding to port 0), its own base path, and its
stdout/stderr in `<base>.log` (printed on failure: `log_tail()`). Readiness is `system_health`
answering, polled with a bounded wait. `stop()` sends SIGTERM, waits, then SIGKILLs; it and `kill()`
also end the node's own worker processes (signature verifiers), found by walking the child's process
tree, so nothing a test starts outlives it. Only processes started here are ever signalled.
"""
from __future__ import annotations

import atexit
import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import psutil

REPO = Path(__file__).resolve().parent.parent
GRIDCHAIN = REPO / ".venv" / "bin" / "gridchain"

#: every DevNode not yet stopped; an atexit hook kills what a crashed test run left behind
_LIVE: set[NodeProcess] = set()


class NodeRpcError(Exception):
    """A JSON-RPC error object from the node (code, message, data)."""

    def __init__(self, error: dict) -> None:
        super().__init__(f"{error.get('code')}: {error.get('message')} ({error.get('data')})")
        self.code = error.get("code")
        self.message = error.get("message")
        self.data = error.get("data")
        self.error = error


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gridchain_cmd(*args: str) -> list[str]:
    """argv for the `gridchain` command of this checkout's venv."""
    return [str(GRIDCHAIN), *args]


def run_gridchain(*args: str, timeout: float = 60, **kw: Any) -> subprocess.CompletedProcess:
    """Run a one-shot `gridchain` command; returns the completed process (text mode)."""
    return subprocess.run(gridchain_cmd(*args), capture_output=True, text=True, timeout=timeout, check=False, **kw)


def http_post(port: int, body: bytes, *, timeout: float = 10.0,
              headers: dict | None = None) -> tuple[int, bytes]:
    """POST `body` to the node's RPC endpoint; (HTTP status, response body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", "/", body=body,
                     headers={"Content-Type": "application/json", **(headers or {})})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


class NodeProcess:
    """A node process this test run started: its process tree (the node and its worker processes),
    its log, and JSON-RPC over HTTP. Subclasses say how it starts; only processes started here are
    ever signalled, by pid."""

    proc: subprocess.Popen | None = None
    port: int
    log_path: Path
    _ids = 0

    @property
    def name(self) -> str:
        return f"node on port {self.port}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout: float = 20.0) -> dict:
        """Poll `system_health` until it answers (bounded); raise with the log tail otherwise."""
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if not self.running():
                code = None if self.proc is None else self.proc.returncode
                raise RuntimeError(f"{self.name} exited (code {code}) before it was ready\n{self.log_tail()}")
            try:
                return self.rpc("system_health", timeout=3.0)
            except (OSError, http.client.HTTPException, ValueError, NodeRpcError) as e:
                last = e
            time.sleep(0.05)
        raise TimeoutError(f"{self.name} not ready after {timeout} s ({last!r})\n{self.log_tail()}")

    def _tree(self) -> list[psutil.Process]:
        """The node's descendants (worker processes), collected before it is signalled."""
        if self.proc is None:
            return []
        try:
            return psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    @staticmethod
    def _alive(children: list[psutil.Process]) -> list[psutil.Process]:
        """Those still running; a zombie (exited, waiting for init to reap it) counts as gone."""
        out = []
        for p in children:
            try:
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                    out.append(p)
            except psutil.NoSuchProcess:
                pass
        return out

    @classmethod
    def _reap(cls, children: list[psutil.Process], grace: float) -> None:
        """Give the node's children `grace` seconds to exit on their own, then SIGKILL the rest."""
        deadline = time.monotonic() + grace
        alive = cls._alive(children)
        while alive and time.monotonic() < deadline:
            time.sleep(0.02)
            alive = cls._alive(alive)
        for p in alive:
            try:
                p.kill()  # psutil checks the pid still belongs to the same process
            except psutil.NoSuchProcess:
                pass
        deadline = time.monotonic() + 5
        while cls._alive(alive) and time.monotonic() < deadline:
            time.sleep(0.02)

    def _terminate(self) -> None:
        self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, wait up to `timeout`, then SIGKILL. Returns the exit code (None if never started)."""
        if self.proc is None:
            return None
        children = self._tree()
        if self.proc.poll() is None:
            self._terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._reap(children, grace=5.0)
        _LIVE.discard(self)
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL the node (a crash), and its worker processes."""
        if self.proc is None:
            return
        children = self._tree()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self._reap(children, grace=0.0)
        _LIVE.discard(self)

    # -- diagnostics ---------------------------------------------------------------------------------

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return f"--- {self.name}: {self.log_path} ---\n" + "\n".join(self.log_text().splitlines()[-lines:])

    # -- raw JSON-RPC ----------------------------------------------------------------------------------

    def rpc_raw(self, method: str, params: Any = None, *, timeout: float = 10.0) -> dict:
        """The whole JSON-RPC response object for one call over HTTP."""
        self._ids += 1
        body = json.dumps({"jsonrpc": "2.0", "id": self._ids, "method": method,
                           "params": [] if params is None else params}).encode()
        status, data = http_post(self.port, body, timeout=timeout)
        if status != 200:
            raise ValueError(f"HTTP {status} for {method}: {data[:200]!r}")
        return json.loads(data)

    def rpc(self, method: str, params: Any = None, *, timeout: float = 10.0) -> Any:
        """Result of one call; raises NodeRpcError for an error object."""
        resp = self.rpc_raw(method, params, timeout=timeout)
        if "error" in resp:
            raise NodeRpcError(resp["error"])
        return resp["result"]

    def best_number(self) -> int:
        return int(self.rpc("chain_getHeader")["number"], 16)


class DevNode(NodeProcess):
    """One `gridchain --dev` (or `gridchain run ...`) process on a base path; restartable on the same
    base path and port."""

    def __init__(self, base_path: Path, *, block_time_ms: int = 200, extra_args: Sequence[str] = (),
                 port: int | None = None, ready_timeout: float = 20.0,
                 command: Sequence[str] = ("--dev",)) -> None:
        """`command` comes before the node options: `("--dev",)`, or e.g. `("run", "--chain", "dev")`
        for a node that only imports and serves (no authoring key)."""
        self.command = list(command)
        self.base_path = Path(base_path)
        self.block_time_ms = block_time_ms
        self.extra_args = list(extra_args)
        self.port = port or free_port()
        self.ready_timeout = ready_timeout
        self.log_path = self.base_path.with_name(self.base_path.name + ".log")
        self.proc = None
        self.starts = 0

    # -- life cycle --------------------------------------------------------------------------------

    def argv(self) -> list[str]:
        return gridchain_cmd(*self.command, "--rpc-port", str(self.port), "--base-path", str(self.base_path),
                             "--block-time-ms", str(self.block_time_ms), *self.extra_args)

    def start(self, wait: bool = True) -> DevNode:
        if self.running():
            raise RuntimeError("node already running")
        self.starts += 1
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== start #{self.starts}: {' '.join(self.argv())}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=str(REPO),
                                         env={**os.environ, "PYTHONUNBUFFERED": "1"})
        _LIVE.add(self)
        print(f"started node pid {self.proc.pid} on port {self.port}, log {self.log_path}")
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float | None = None) -> dict:
        return super().wait_ready(timeout or self.ready_timeout)

    def restart(self, wait: bool = True) -> DevNode:
        """Start again on the same base path and port (stopping first if still running)."""
        if self.running():
            self.stop()
        return self.start(wait=wait)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        try:
            self.stop()
        finally:
            if exc_type is not None:
                print(f"--- node log ({self.log_path}) ---\n{self.log_tail()}", file=sys.stderr)

    def wait_for_block(self, number: int, timeout: float = 20.0) -> int:
        """Poll until the best block is at least `number`; returns the best number."""
        deadline = time.monotonic() + timeout
        while True:
            n = self.best_number()
            if n >= number:
                return n
            if time.monotonic() > deadline:
                raise TimeoutError(f"best block #{n} did not reach #{number} in {timeout} s\n{self.log_tail()}")
            time.sleep(0.05)


@atexit.register
def _kill_leftovers() -> None:
    for node in list(_LIVE):
        with contextlib.suppress(Exception):  # best effort at interpreter exit
            node.kill()


def stop_supervisor(sup: subprocess.Popen, pids: list[int]) -> None:
    """End a supervisor command (`gridchain testnet`, `gridchain demo`) a test started and, should
    it have left any behind, the validator processes it reported (by pid, and only if they are
    node processes)."""
    if sup.poll() is None:
        sup.send_signal(signal.SIGTERM)
        try:
            sup.wait(30)
        except subprocess.TimeoutExpired:
            sup.kill()
    for pid in pids:
        try:
            p = psutil.Process(pid)
            if "node.cli" in " ".join(p.cmdline()):
                p.kill()
        except psutil.Error:
            pass
