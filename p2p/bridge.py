"""The bridge between the node's asyncio loop and the libp2p host's trio loop in its own thread.

py-libp2p is written for trio and the node for asyncio (aiohttp), and neither loop can run the
other's code, so libp2p gets a dedicated thread. Crossing is by the two loops' own thread-safe
entry points: `trio_token.run_sync_soon` into trio, `loop.call_soon_threadsafe` into asyncio.
Each adds ~0.2 ms per hop on this kind of machine, so:

* `Hop` batches: items posted while a delivery is already scheduled ride along with it, so a burst
  of gossip costs one wake-up of the other loop rather than one per message. A hop is bounded and
  reports what it refuses (the caller counts it): no unbounded queue between threads.
* `call_trio` runs a trio coroutine from asyncio and awaits its result; cancelling the asyncio
  side cancels the trio task. `call_asyncio` is the mirror image, for request handlers the node
  writes as asyncio coroutines.

`Bridge.start` runs `trio.run` in a daemon thread (daemon only as a last resort so a wedged
libp2p cannot keep the process alive; `join` is the normal, bounded way out).
"""
from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import trio

log = logging.getLogger(__name__)
T = TypeVar("T")


class P2PError(Exception):
    """Base of the errors the p2p layer raises."""


class NotRunning(P2PError):
    """The host is not started, already stopped, or its libp2p thread has died."""


class Hop(Generic[T]):
    """A bounded, batching one-way queue between two threads (see the module docstring).

    `schedule(fn)` must run `fn` soon on the receiving thread (`run_sync_soon` or
    `call_soon_threadsafe`); `deliver(items)` then gets every item posted since the last batch.
    """

    def __init__(self, schedule: Callable[[Callable[[], None]], Any], deliver: Callable[[list[T]], None],
                 limit: int) -> None:
        self._schedule, self._deliver, self._limit = schedule, deliver, limit
        self._lock = threading.Lock()
        self._items: list[T] = []
        self._scheduled = False

    def post(self, item: T) -> bool:
        """Queue `item`; False if the hop is full (the item is not queued)."""
        with self._lock:
            if len(self._items) >= self._limit:
                return False
            self._items.append(item)
            if self._scheduled:
                return True
            self._scheduled = True
        try:
            self._schedule(self._flush)
        except Exception as exc:  # the receiving loop is gone
            with self._lock:
                self._items.clear()
                self._scheduled = False
            raise NotRunning(f"the receiving loop is closed: {exc!r}") from None
        return True

    def _flush(self) -> None:
        with self._lock:
            items, self._items = self._items, []
            self._scheduled = False
        if items:
            self._deliver(items)


class _TrioCall:
    __slots__ = ("scope", "cancelled")

    def __init__(self) -> None:
        self.scope: trio.CancelScope | None = None
        self.cancelled = False


class Bridge:
    """Owns the libp2p thread and the calls across it. Create it on the asyncio loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, name: str = "p2p-trio") -> None:
        self.loop = loop
        self.name = name
        self.token: trio.lowlevel.TrioToken | None = None
        #: where `call_trio` starts tasks; the host points it at a nursery inside its services
        self.nursery: trio.Nursery | None = None
        self._thread: threading.Thread | None = None
        self._done: asyncio.Future[BaseException | None] | None = None

    # -- the thread ---------------------------------------------------------------------------

    def start(self, trio_main: Callable[[], Awaitable[None]]) -> None:
        """Run `trio_main` under trio in a new thread. Returns at once; see `join`."""
        if self._thread is not None:
            raise P2PError("bridge already started")
        self._done = self.loop.create_future()
        self._thread = threading.Thread(target=self._run, args=(trio_main,), name=self.name, daemon=True)
        self._thread.start()

    def _run(self, trio_main: Callable[[], Awaitable[None]]) -> None:
        error: BaseException | None = None
        try:
            trio.run(self._main, trio_main)
        except BaseException as exc:  # reported to the asyncio side, which decides
            error = exc
        finally:
            self.token = self.nursery = None
            try:
                self.loop.call_soon_threadsafe(self._finished, error)
            except RuntimeError:  # the asyncio loop is closed: nobody is waiting
                pass

    async def _main(self, trio_main: Callable[[], Awaitable[None]]) -> None:
        self.token = trio.lowlevel.current_trio_token()
        await trio_main()

    def _finished(self, error: BaseException | None) -> None:
        if self._done is not None and not self._done.done():
            self._done.set_result(error)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self.token is not None

    @property
    def finished(self) -> asyncio.Future[BaseException | None]:
        """Resolves (on the asyncio loop) with the thread's exception, or None, when it ends."""
        if self._done is None:
            raise P2PError("bridge not started")
        return self._done

    async def join(self, timeout: float) -> bool:
        """Wait up to `timeout` s for the thread to end; True if it did."""
        if self._thread is None:
            return True
        try:
            await asyncio.wait_for(asyncio.shield(self.finished), timeout)
        except asyncio.TimeoutError:
            return False
        self._thread.join(1.0)  # trio.run has returned: only the thread's last lines remain
        return not self._thread.is_alive()

    # -- crossing -----------------------------------------------------------------------------

    def to_trio(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run sync `fn(*args)` soon in the trio thread (from any thread)."""
        token = self.token
        if token is None:
            raise NotRunning("the libp2p thread is not running")
        try:
            token.run_sync_soon(_guarded, fn, *args)
        except trio.RunFinishedError:
            raise NotRunning("the libp2p thread has stopped") from None

    def to_asyncio(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run sync `fn(*args)` soon on the asyncio loop (from any thread); dropped if it closed."""
        try:
            self.loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:
            log.debug("asyncio loop closed; dropped a call to %r", fn)

    async def call_trio(self, async_fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """From asyncio: run `async_fn(*args)` in the trio thread and return its result."""
        fut: asyncio.Future[T] = self.loop.create_future()
        call = _TrioCall()

        def settle(ok: bool, value: Any) -> None:
            if not fut.done():
                fut.set_result(value) if ok else fut.set_exception(value)

        async def runner() -> None:
            try:
                with trio.CancelScope() as scope:
                    call.scope = scope
                    if call.cancelled:
                        scope.cancel()
                    value = await async_fn(*args)
                    self.to_asyncio(settle, True, value)
            except trio.Cancelled:
                self.to_asyncio(settle, False, NotRunning("the libp2p host stopped"))
                raise
            except Exception as exc:
                self.to_asyncio(settle, False, exc)

        def spawn() -> None:
            try:
                if self.nursery is None:
                    raise RuntimeError("no nursery")
                self.nursery.start_soon(runner)
            except RuntimeError:  # not ready yet, or shutting down
                self.to_asyncio(settle, False, NotRunning("the libp2p host is not running"))

        def cancel_in_trio() -> None:
            call.cancelled = True
            if call.scope is not None:
                call.scope.cancel()

        def on_done(f: asyncio.Future[T]) -> None:
            if f.cancelled():
                try:
                    self.to_trio(cancel_in_trio)
                except NotRunning:
                    pass

        self.to_trio(spawn)
        fut.add_done_callback(on_done)
        return await fut

    async def call_asyncio(self, async_fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """From trio: run coroutine `async_fn(*args)` on the asyncio loop and return its result."""
        done = trio.Event()
        token = trio.lowlevel.current_trio_token()
        box: dict[str, Any] = {}

        def wake() -> None:
            done.set()

        def start() -> None:
            try:
                task = asyncio.ensure_future(async_fn(*args))
            except Exception as exc:
                box["error"] = exc
                token.run_sync_soon(wake)
                return
            box["task"] = task

            def finished(t: asyncio.Future[T]) -> None:
                try:
                    token.run_sync_soon(wake)
                except trio.RunFinishedError:
                    pass

            task.add_done_callback(finished)

        def cancel() -> None:
            task = box.get("task")
            if task is not None:
                task.cancel()

        try:
            self.loop.call_soon_threadsafe(start)
        except RuntimeError:
            raise NotRunning("the asyncio loop is closed") from None
        try:
            await done.wait()
        except trio.Cancelled:
            self.to_asyncio(cancel)
            raise
        if "error" in box:
            raise box["error"]
        task = box["task"]
        if task.cancelled():
            raise P2PError("the asyncio handler was cancelled")
        return task.result()


def _guarded(fn: Callable[..., Any], *args: Any) -> None:
    """Run a callback in trio, logging its exception: one escaping `run_sync_soon` ends trio.run."""
    try:
        fn(*args)
    except Exception:
        log.exception("callback %r in the libp2p thread failed", fn)
