"""The web app's files, served by the RPC server at `/app/` on its own port (same origin as JSON-RPC).

The app (`app/`, an npm project) is built by `make app` into `app/dist/`: an `index.html` and, under
`assets/`, scripts and styles whose names carry a hash of their content. This module answers GET and
HEAD for them:

  * `/app` redirects to `/app/`, which is `index.html`; any other path is a file of the build, with its
    content type (aiohttp's `FileResponse`: ranges, `ETag`/`Last-Modified` and conditional requests);
  * files under `assets/` may be cached for a year (their names change with their content); every other
    file, `index.html` above all, is revalidated on each load (`Cache-Control: no-cache`), so a rebuilt
    app is picked up by a reload;
  * a directory is never listed, and a path that leaves the build directory (`..`, an absolute path, a
    symbolic link pointing outside) is not found (404), as aiohttp's own static route does;
  * a build directory without `index.html` answers 503 with a page saying to run `make app`; the server
    logs that once at start (`check`), and serves the app as soon as it is built.

The directory is `app/dist` beside the installed packages (the project is installed editable), or
the one the environment variable `GRIDCHAIN_APP_DIR` names (`default_app_dir`).
"""
from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path, PurePosixPath

from aiohttp import web

log = logging.getLogger("gridchain.rpc")

#: where the node serves the app
PREFIX = "/app"
#: environment variable naming another build directory (tests, packaged installs)
APP_DIR_ENV = "GRIDCHAIN_APP_DIR"
#: the build's folder of content-hashed files (Vite's `build.assetsDir`)
HASHED_DIR = "assets"
CACHE_HASHED = "public, max-age=31536000, immutable"
CACHE_REVALIDATE = "no-cache"
#: the text types of a build, as RFC 9239 and the HTML standard name them and with their charset
#: (anything else, images, fonts, wasm, is typed by aiohttp's table)
TEXT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
              ".mjs": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
              ".json": "application/json", ".map": "application/json", ".svg": "image/svg+xml",
              ".webmanifest": "application/manifest+json"}

_NOT_BUILT_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>gridchain: web app not built</title></head>
<body><h1>The web app is not built</h1>
<p>This node serves the web app from <code>{where}</code>, which has no <code>index.html</code>.
Build it with <code>make app</code> in the gridchain repository, then reload this page.</p>
<p>JSON-RPC on this port works without it.</p></body></html>
"""


def default_app_dir() -> Path:
    """`$GRIDCHAIN_APP_DIR` if set, else `app/dist` in the repository the packages are installed from."""
    env = os.environ.get(APP_DIR_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "app" / "dist"


def is_app_path(path: str) -> bool:
    """True for `/app` and everything under `/app/`."""
    return path == PREFIX or path.startswith(PREFIX + "/")


class AppFiles:
    """The static files of one build directory, answered under `PREFIX`."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory).resolve()

    @property
    def built(self) -> bool:
        return (self.directory / "index.html").is_file()

    def check(self) -> bool:
        """Log one warning when the app is not built (at server start); True when it is."""
        if self.built:
            return True
        log.warning("web app not built: %s has no index.html; /app/ answers 503 until `make app` builds it",
                    self.directory)
        return False

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """Answer a GET or HEAD for `/app` or a path under it."""
        path = request.path
        if path == PREFIX:
            location = PREFIX + "/" + (f"?{request.query_string}" if request.query_string else "")
            return web.Response(status=301, headers={"Location": location})
        relative = path[len(PREFIX) + 1:] or "index.html"
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self._response, relative)

    def _response(self, relative: str) -> web.StreamResponse:
        """The file for a path relative to the build directory, or the refusal (file-system calls, so
        run in an executor as aiohttp's static route does)."""
        if not self.built:
            return web.Response(status=503, text=_NOT_BUILT_PAGE.format(where=self.directory),
                                content_type="text/html", headers={"Cache-Control": "no-store",
                                                                   "Retry-After": "60"})
        parts = PurePosixPath(relative).parts
        if (not parts or PurePosixPath(relative).is_absolute() or "\\" in relative or "\x00" in relative
                or any(p in ("..", ".") for p in parts)):
            return _not_found()
        try:
            file_path = self.directory.joinpath(*parts).resolve()
            file_path.relative_to(self.directory)
            if not file_path.is_file():
                return _not_found()
        except (ValueError, OSError, RuntimeError):  # outside the directory, unreadable, a symlink loop
            return _not_found()
        headers = {"Cache-Control": CACHE_HASHED if parts[0] == HASHED_DIR and len(parts) > 1 else CACHE_REVALIDATE,
                   "X-Content-Type-Options": "nosniff"}
        content_type = TEXT_TYPES.get(file_path.suffix.lower())
        if content_type is not None:
            headers["Content-Type"] = content_type
        return web.FileResponse(file_path, headers=headers)


def _not_found() -> web.Response:
    return web.Response(status=404, text="not found\n")
