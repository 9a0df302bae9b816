"""The node serves the web app at /app/ on its RPC port (rpc/app_files.py, rpc/server.py).

Two layers:
  * a real RpcServer (tests/rpc_fake.py's fake node) over a small build directory made here: types,
    caching, redirects, no listing, path escapes (`..`, encoded, absolute, a symlink out), HEAD,
    a missing build (503 and the hint), the app turned off (404), and same-origin WebSockets;
  * real `gridchain --dev` processes (slow) serving the real build of app/ (`make app`), and a node
    whose app directory (GRIDCHAIN_APP_DIR) is missing.
"""
from __future__ import annotations

import http.client
import json
import logging
import os
import socket
from pathlib import Path

import aiohttp
import pytest

from rpc.app_files import APP_DIR_ENV, CACHE_HASHED, default_app_dir
from rpc.server import RpcServer

from tests.node_process import REPO, DevNode
from tests.rpc_fake import FakeNode, LoopThread, lt, node  # noqa: F401

INDEX = b"<!doctype html><html><head><title>gridchain</title></head><body>app</body></html>\n"
SCRIPT = b"console.log('gridchain');\n"


@pytest.fixture(scope="module")
def build(tmp_path_factory) -> Path:
    """A build directory shaped as Vite writes it, and a secret beside it that must stay unreachable."""
    root = tmp_path_factory.mktemp("app")
    dist = root / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_bytes(INDEX)
    (dist / "assets" / "index-Ab12Cd34.js").write_bytes(SCRIPT)
    (dist / "assets" / "index-Ef56Gh78.css").write_bytes(b"body { margin: 0 }\n")
    (dist / "favicon.svg").write_bytes(b"<svg xmlns='http://www.w3.org/2000/svg'/>")
    (root / "secret.txt").write_bytes(b"node key")
    (dist / "leak.txt").symlink_to(root / "secret.txt")
    return dist


@pytest.fixture(scope="module")
def app_server(lt, node, build):  # noqa: F811 - pytest fixtures
    s = lt.serve(node, app_dir=build)
    yield s
    lt.stop(s)


def raw_get(port: int, path: str, method: str = "GET", headers: dict | None = None) -> tuple[int, dict, bytes]:
    """A request whose path goes on the wire exactly as given (no client-side normalisation)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{extra}Connection: close\r\n\r\n"
                     .encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers_out = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    return status, headers_out, body


def test_index_assets_and_caching(app_server):
    port = app_server.port
    status, h, body = raw_get(port, "/app/")
    assert status == 200 and body == INDEX
    assert h["content-type"].startswith("text/html")
    assert h["cache-control"] == "no-cache"
    status, h, body = raw_get(port, "/app/index.html")
    assert status == 200 and body == INDEX and h["cache-control"] == "no-cache"
    status, h, body = raw_get(port, "/app/assets/index-Ab12Cd34.js")
    assert status == 200 and body == SCRIPT
    assert h["content-type"].startswith("text/javascript")
    assert h["cache-control"] == CACHE_HASHED
    assert h["x-content-type-options"] == "nosniff"
    status, h, _ = raw_get(port, "/app/assets/index-Ef56Gh78.css")
    assert status == 200 and h["content-type"].startswith("text/css")
    status, h, _ = raw_get(port, "/app/favicon.svg")
    assert status == 200 and h["content-type"].startswith("image/svg+xml") and h["cache-control"] == "no-cache"
    status, h, body = raw_get(port, "/app/assets/index-Ab12Cd34.js", method="HEAD")
    assert status == 200 and body == b"" and int(h["content-length"]) == len(SCRIPT)


def test_app_redirects_to_its_folder(app_server):
    status, h, _ = raw_get(app_server.port, "/app")
    assert status == 301 and h["location"] == "/app/"
    status, h, _ = raw_get(app_server.port, "/app?x=1")
    assert status == 301 and h["location"] == "/app/?x=1"


def test_no_listing_and_unknown_files(app_server):
    for path in ("/app/assets/", "/app/assets", "/app/nope.js", "/app/assets/nope-123.js"):
        status, _, body = raw_get(app_server.port, path)
        assert status == 404, path
        assert b"index-Ab12Cd34" not in body


@pytest.mark.parametrize("path", [
    "/app/../secret.txt", "/app/%2e%2e/secret.txt", "/app/assets/../../secret.txt",
    "/app/assets/%2e%2e/%2e%2e/secret.txt", "/app/..%2fsecret.txt", "/app/%2fetc/passwd",
    "/app//etc/passwd", "/app/..%5csecret.txt", "/app/leak.txt", "/app/%00",
])
def test_path_escapes_are_refused(app_server, path):
    status, _, body = raw_get(app_server.port, path)
    assert status in (400, 403, 404, 405), (path, status)
    assert b"node key" not in body and b"root:" not in body


def test_json_rpc_is_unchanged_beside_the_app(lt, app_server):  # noqa: F811
    async def go():
        async with aiohttp.ClientSession() as s:
            req = {"jsonrpc": "2.0", "id": 1, "method": "system_name"}
            async with s.post(app_server.url, json=req) as r:
                post = await r.json()
            async with s.get(app_server.url) as r:
                plain = r.status
            async with s.ws_connect(app_server.url) as ws:
                await ws.send_str(json.dumps(req))
                over_ws = json.loads((await ws.receive()).data)
            return post, plain, over_ws
    post, plain, over_ws = lt.run(go())
    assert post["result"] == "gridchain" and over_ws["result"] == "gridchain"
    assert plain == 405


def test_same_origin_page_may_open_a_websocket(lt, node):  # noqa: F811
    """The app's page is served by the node: its Origin is the node's own address. Accepted when that
    address is an IP or localhost, even with a --rpc-cors list that does not name it; a DNS name that
    merely matches its Host (DNS rebinding) is not."""
    s = lt.serve(node, cors=["http://wallet.example"])
    try:
        async def ws_status(origin: str, host: str) -> int:
            async with aiohttp.ClientSession() as sess:
                try:
                    async with sess.ws_connect(s.url, headers={"Origin": origin, "Host": host}) as ws:
                        await ws.close()
                        return 101
                except aiohttp.WSServerHandshakeError as e:
                    return e.status
        port = s.port
        assert lt.run(ws_status(f"http://127.0.0.1:{port}", f"127.0.0.1:{port}")) == 101
        assert lt.run(ws_status(f"http://localhost:{port}", f"localhost:{port}")) == 101
        assert lt.run(ws_status(f"http://[::1]:{port}", f"[::1]:{port}")) == 101
        assert lt.run(ws_status(f"http://rebound.example:{port}", f"rebound.example:{port}")) == 403
        assert lt.run(ws_status(f"http://127.0.0.1:{port + 1}", f"127.0.0.1:{port}")) == 403
        assert lt.run(ws_status("http://wallet.example", f"127.0.0.1:{port}")) == 101
    finally:
        lt.stop(s)


def test_missing_build_answers_503_with_the_hint(lt, node, tmp_path, caplog):  # noqa: F811
    with caplog.at_level(logging.WARNING, logger="gridchain.rpc"):
        s = lt.serve(node, app_dir=tmp_path / "not-built")
    try:
        warnings = [r for r in caplog.records if "make app" in r.getMessage()]
        assert len(warnings) == 1
        for path in ("/app/", "/app/assets/index.js"):
            status, h, body = raw_get(s.port, path)
            assert status == 503 and h["content-type"].startswith("text/html")
            assert b"make app" in body
        assert raw_get(s.port, "/app")[0] == 301
        status, _, body = raw_get(s.port, "/", "GET")
        assert status == 405
        # built while the node runs: served on the next request
        (tmp_path / "not-built").mkdir()
        (tmp_path / "not-built" / "index.html").write_bytes(INDEX)
        assert raw_get(s.port, "/app/")[2] == INDEX
    finally:
        lt.stop(s)


def test_app_off_is_not_found(lt, node):  # noqa: F811
    s = lt.serve(node)
    try:
        assert s.app_url is None
        assert raw_get(s.port, "/app/")[0] == 404
        assert raw_get(s.port, "/app")[0] == 404
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "system_name"}).encode()
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
        conn.request("POST", "/", body=body, headers={"Content-Type": "application/json"})
        assert json.loads(conn.getresponse().read())["result"] == "gridchain"
        conn.close()
    finally:
        lt.stop(s)


def test_default_app_dir_is_the_repository_build(monkeypatch):
    monkeypatch.delenv(APP_DIR_ENV, raising=False)
    assert default_app_dir() == REPO / "app" / "dist"
    monkeypatch.setenv(APP_DIR_ENV, "/srv/gridchain-app")
    assert default_app_dir() == Path("/srv/gridchain-app")


# ---------------------------------------------------------------------------------------------
# real nodes
# ---------------------------------------------------------------------------------------------

BUILT = REPO / "app" / "dist"


def http_get(port: int, path: str) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


@pytest.mark.slow
def test_dev_node_serves_the_built_app(tmp_path):
    if not (BUILT / "index.html").is_file():
        pytest.fail("app/dist is not built: run `make app` (make test does it first)")
    env_dir = os.environ.pop(APP_DIR_ENV, None)
    try:
        with DevNode(tmp_path / "node") as dev:
            status, h, body = http_get(dev.port, "/app/")
            assert status == 200 and h["content-type"].startswith("text/html")
            assert body == (BUILT / "index.html").read_bytes()
            asset = sorted(p for p in (BUILT / "assets").iterdir() if p.suffix == ".js")[0]
            status, h, body = http_get(dev.port, f"/app/assets/{asset.name}")
            assert status == 200 and h["content-type"].startswith("text/javascript")
            assert body == asset.read_bytes() and h["cache-control"] == CACHE_HASHED
            status, h, _ = http_get(dev.port, "/app")
            assert status == 301 and h["location"] == "/app/"
            status, _, body = raw_get(dev.port, "/app/../pyproject.toml")
            assert status == 404 and b"gridchain" not in body
            status, _, _ = raw_get(dev.port, "/app/%2e%2e/%2e%2e/pyproject.toml")
            assert status == 404
            assert dev.rpc("system_name") == "gridchain"
            assert f"web app: http://127.0.0.1:{dev.port}/app/" in dev.log_text()
    finally:
        if env_dir is not None:
            os.environ[APP_DIR_ENV] = env_dir


@pytest.mark.slow
def test_no_app_flag_and_a_missing_build(tmp_path, monkeypatch):
    with DevNode(tmp_path / "off", extra_args=["--no-app"]) as dev:
        assert http_get(dev.port, "/app/")[0] == 404
        assert dev.rpc("system_name") == "gridchain"
        assert "web app:" not in dev.log_text()
    monkeypatch.setenv(APP_DIR_ENV, str(tmp_path / "no-build"))
    with DevNode(tmp_path / "missing") as dev:
        status, h, body = http_get(dev.port, "/app/")
        assert status == 503 and h["content-type"].startswith("text/html") and b"make app" in body
        assert dev.rpc("system_name") == "gridchain"
        assert dev.log_text().count("web app not built") == 1
