"""Batch ed25519 verification of incoming transactions in worker processes.

Signature checks are the expensive part of admitting a transaction (~40 us each with PyNaCl, against a
few microseconds for everything else), and they are independent of state, so the node pulls them out of
validation (`runtime.api.SignatureCheck`) and verifies a whole batch at once here, spread over the
machine's cores.

- Workers come from a `ProcessPoolExecutor` started with the "spawn" method by default: the node runs
  threads (libp2p under trio, executors), and forking a threaded process can copy a held lock.
- A batch smaller than `inline_below` is verified in the calling process: the round trip to a worker
  would cost more than the checks.
- A larger batch is cut into one chunk per worker; the synchronous caller verifies one more chunk itself
  while it waits. The asynchronous path gives every chunk to the workers, so the event loop stays free.
- Work crosses the process boundary as tuples of bytes, and results come back as one `bytes` of 0/1
  flags: the pickles stay small and fast.

If a worker dies (`BrokenProcessPool`), the batch is verified in the calling process and a fresh pool is
started for the next batch: a crashed worker never turns into a wrong answer.

A worker never outlives the node. If the node is killed outright (SIGKILL, the OOM killer), nothing
closes the pool, and a worker blocked on its task queue would wait forever: the queue's pipe never
reaches end-of-file, because every worker holds its write end too. So each worker, as it starts
(`watch_parent`, the pool's initializer), asks Linux to SIGKILL it when its parent dies
(`PR_SET_PDEATHSIG`), then checks that the parent is still the node (it may have died before the
request), and also runs a thread that polls its parent pid every half second, for systems without
`prctl`. Linux sends that signal when the *thread* that started the worker ends, so workers should be
started from a thread that lives as long as the node (the node's loop thread does); a worker lost
otherwise costs only a pool restart, as above.
"""
from __future__ import annotations

import asyncio
import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Callable, Iterable, Sequence

from nacl.bindings import crypto_sign_open
from nacl.exceptions import BadSignatureError

from runtime.api import SignatureCheck, verify_signature_check

log = logging.getLogger(__name__)

PUBLIC_KEY_LEN = 32
SIGNATURE_LEN = 64

#: One check as it crosses the process boundary: (public_key, signature, message).
CheckTuple = tuple  # (public key, signature, message[, scheme])

#: prctl(2) option: the signal the kernel sends this process when its parent dies (linux/prctl.h)
_PR_SET_PDEATHSIG = 1
#: how often the fallback watchdog looks at the parent pid, seconds
PARENT_POLL_S = 0.5


def _set_parent_death_signal() -> bool:
    """Ask Linux to SIGKILL this process when its parent dies; False where that is not available."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _exit_when_orphaned(parent_pid: int, poll_s: float) -> None:
    while os.getppid() == parent_pid:
        time.sleep(poll_s)
    os._exit(1)  # the main thread is blocked on the task queue: end the process, not the thread


def watch_parent(parent_pid: int, poll_s: float = PARENT_POLL_S) -> None:
    """Worker initializer: end this worker process as soon as `parent_pid` (the node) is gone.

    Armed in this order to leave no gap: the death signal first, then the check that the parent is
    still `parent_pid` (had it died before the signal was armed, the worker is already an orphan,
    re-parented to init or a subreaper), then the polling thread as the fallback.
    """
    _set_parent_death_signal()
    if os.getppid() != parent_pid:
        os._exit(1)
    threading.Thread(target=_exit_when_orphaned, args=(parent_pid, poll_s), name="parent-watchdog",
                     daemon=True).start()


def verify_one(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """True when `signature` is a valid ed25519 signature of `message` by `public_key`.

    Lengths are checked here because libsodium reads a fixed 32-byte key through a raw pointer: a short
    key must never reach it. Anything malformed is simply not a valid signature.
    """
    if (
        type(public_key) is not bytes
        or type(signature) is not bytes
        or len(public_key) != PUBLIC_KEY_LEN
        or len(signature) != SIGNATURE_LEN
    ):
        return False
    try:
        crypto_sign_open(signature + message, public_key)
    except (BadSignatureError, ValueError, TypeError):
        return False
    return True


def verify_chunk(checks: Iterable[CheckTuple]) -> bytes:
    """Verify a chunk; one byte per check, 1 for valid. Runs in the workers and inline.

    A check is (public key, signature, message) for ed25519, or with a fourth element, the scheme
    of a field meter's ECDSA check (`runtime.api.verify_signature_check`)."""
    return bytes([verify_one(*c) if len(c) == 3 else verify_signature_check(*c) for c in checks])


def _as_tuple(check: SignatureCheck | CheckTuple) -> CheckTuple:
    # plain tuples pickle smaller than named ones (no class reference for the workers to import);
    # an ed25519 check (scheme "") travels as three elements
    if type(check) is tuple:
        return check
    return tuple(check) if check.scheme else (check.public_key, check.signature, check.message)


def _split(items: list[CheckTuple], parts: int) -> list[list[CheckTuple]]:
    """Cut `items` into `parts` contiguous chunks of nearly equal size (order kept)."""
    size, extra = divmod(len(items), parts)
    chunks, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        chunks.append(items[start:end])
        start = end
    return chunks


class SignatureVerifier:
    """Verifies batches of ed25519 signatures on `workers` worker processes.

    Thread-safe: `verify_batch` may be called from several threads (for example from the event loop's
    default executor) at once. Use as a context manager, or call `close()`.
    """

    def __init__(
        self,
        workers: int = 2,
        inline_below: int = 64,
        *,
        start_method: str = "spawn",
        eager: bool = False,
    ) -> None:
        if workers < 0:
            raise ValueError("workers must be zero or more")
        if start_method == "fork":
            raise ValueError("the node has threads: use the 'spawn' or 'forkserver' start method, never 'fork'")
        self.workers = workers
        self.inline_below = max(1, inline_below)
        self._context = multiprocessing.get_context(start_method)
        self._executor: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._closed = False
        if eager:
            self.warm_up()

    # --- lifecycle -----------------------------------------------------------------------------------

    def _pool(self) -> ProcessPoolExecutor:
        """The executor, started on first use."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the signature verifier is closed")
            if self._executor is None:
                self._executor = ProcessPoolExecutor(max_workers=self.workers, mp_context=self._context,
                                                     initializer=watch_parent, initargs=(os.getpid(),))
            return self._executor

    def warm_up(self) -> None:
        """Start every worker now and wait until each has imported its code (~0.2 s with spawn), so
        that the first real batch does not pay for process start-up."""
        if self.workers == 0:
            return
        pool = self._pool()
        # Empty chunks are cheap round trips; submitting `workers` of them at once makes the executor
        # start all its processes.
        for f in [pool.submit(verify_chunk, ()) for _ in range(self.workers)]:
            f.result()

    def _discard_broken(self, pool: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._executor is pool:
                self._executor = None
        pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        """Stop the workers and wait for them to exit. Idempotent."""
        with self._lock:
            self._closed = True
            pool, self._executor = self._executor, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> SignatureVerifier:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:  # a safety net only; owners should call close()
        try:
            if self._executor is not None:
                self._executor.shutdown(wait=False, cancel_futures=True)
        except Exception:
            pass

    # --- verification --------------------------------------------------------------------------------

    def _chunks(self, items: list[CheckTuple], caller_helps: bool) -> list[list[CheckTuple]]:
        parts = self.workers + (1 if caller_helps else 0)
        return _split(items, max(1, min(parts, len(items))))

    def verify_batch(self, checks: Sequence[SignatureCheck | CheckTuple]) -> list[bool]:
        """Verify every check; the answer is in the same order as `checks`."""
        items = [_as_tuple(c) for c in checks]
        if len(items) < self.inline_below or self.workers == 0:
            if self._closed:
                raise RuntimeError("the signature verifier is closed")
            return [flag == 1 for flag in verify_chunk(items)]
        pool = self._pool()
        chunks = self._chunks(items, caller_helps=True)
        own, remote = chunks[0], chunks[1:]
        try:
            futures = [pool.submit(verify_chunk, chunk) for chunk in remote]
        except BrokenProcessPool:
            self._discard_broken(pool)
            return [flag == 1 for flag in verify_chunk(items)]
        results = [verify_chunk(own)]
        for future, chunk in zip(futures, remote):
            results.append(self._result(pool, future, chunk))
        return [flag == 1 for part in results for flag in part]

    def verify_batch_deferred(self, checks: Sequence[SignatureCheck | CheckTuple]) -> Callable[[], list[bool]]:
        """Start verifying in the workers and return at once; call the result to collect the answers.

        Block import uses this to execute a block while its signatures are checked: the block's
        changes are thrown away anyway if any signature turns out bad.
        """
        items = [_as_tuple(c) for c in checks]
        if len(items) < self.inline_below or self.workers == 0:
            flags = self.verify_batch(items)
            return lambda: flags
        pool = self._pool()
        chunks = self._chunks(items, caller_helps=False)
        try:
            futures = [pool.submit(verify_chunk, chunk) for chunk in chunks]
        except BrokenProcessPool:
            self._discard_broken(pool)
            flags = [flag == 1 for flag in verify_chunk(items)]
            return lambda: flags

        def collect() -> list[bool]:
            parts = [self._result(pool, f, c) for f, c in zip(futures, chunks)]
            return [flag == 1 for part in parts for flag in part]
        return collect

    def _result(self, pool: ProcessPoolExecutor, future: Future, chunk: list[CheckTuple]) -> bytes:
        try:
            return future.result()
        except BrokenProcessPool:
            log.warning("a signature worker died; verifying its chunk inline and restarting the pool")
            self._discard_broken(pool)
            return verify_chunk(chunk)

    async def verify_batch_async(self, checks: Sequence[SignatureCheck | CheckTuple]) -> list[bool]:
        """Like `verify_batch`, without blocking the event loop: every chunk runs in a worker, and the
        loop only awaits the results. An empty batch answers at once."""
        items = [_as_tuple(c) for c in checks]
        if not items:
            return []
        if self.workers == 0:
            loop = asyncio.get_running_loop()
            flags = await loop.run_in_executor(None, verify_chunk, items)
            return [flag == 1 for flag in flags]
        pool = self._pool()
        chunks = _split(items, 1) if len(items) < self.inline_below else self._chunks(items, caller_helps=False)
        try:
            futures = [asyncio.wrap_future(pool.submit(verify_chunk, chunk)) for chunk in chunks]
            parts = await asyncio.gather(*futures)
        except BrokenProcessPool:
            log.warning("a signature worker died; verifying the batch in a thread and restarting the pool")
            self._discard_broken(pool)
            loop = asyncio.get_running_loop()
            parts = [await loop.run_in_executor(None, verify_chunk, items)]
        return [flag == 1 for part in parts for flag in part]

