"""A BFT network of real `gridchain run --validator` processes on loopback, for fault tests.

    net = BftNetwork(tmp_path, validators=4)         # writes the chain spec and node keys
    try:
        net.start()                                   # every node; waits until each answers RPC
        net.wait_finalized(3)                         # every running node's finalized head >= #3
        node = net.nodes[1]
        node.kill(); node.start()                     # SIGKILL (a crash), then the same command again
        node.pause(); node.resume()                   # SIGSTOP / SIGCONT
    finally:
        net.stop()                                    # SIGCONT, SIGTERM, SIGKILL after a grace period

Nodes are started by `node.testnet.start_node` (the command `gridchain testnet` uses: node i validates
with `//Validator<i+1>`, logs to `<base>/node<i>/node.log`). Every port is checked free on 127.0.0.1
and taken from outside the kernel's ephemeral range, so a restarted node gets its port back. Each node's
worker processes (signature verifiers, genesis preparation) are found by walking its process tree, so
a SIGKILL or a stop leaves nothing behind; only processes started here are ever signalled, by pid.
"""
from __future__ import annotations

import contextlib
import dataclasses
import http.client
import json
import random
import signal
import socket
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psutil

from node import testnet
from node.testnet import NodeSpec
from tests.node_process import _LIVE, NodeProcess, NodeRpcError  # noqa: F401 - NodeRpcError for callers


PORT_RANGE = (20000, 32000)   # below the usual ephemeral range (32768-60999): outgoing connections never take them


def free_ports(count: int, rng: random.Random | None = None) -> list[int]:
    """`count` distinct TCP ports that nothing on 127.0.0.1 listens on now (each checked by binding)."""
    rng = rng or random.Random()
    out: list[int] = []
    while len(out) < count:
        port = rng.randrange(*PORT_RANGE)
        if port in out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        out.append(port)
    return out


def hx(b: bytes) -> str:
    return "0x" + b.hex()


def unhex(s: str) -> bytes:
    return bytes.fromhex(s[2:])


class BftNode(NodeProcess):
    """One validator (or follower) process; restartable with the same command on the same base path."""

    def __init__(self, net: BftNetwork, spec: NodeSpec, peers: Sequence[NodeSpec]) -> None:
        self.net = net
        self.spec = spec
        self.peers = list(peers)          # the nodes whose addresses go into --bootnodes (self excluded there)
        self.port = spec.rpc_port
        self.log_path = spec.base_path / "node.log"
        self.proc = None
        self.starts = 0
        self.paused = False
        self._terminated = False

    @property
    def name(self) -> str:
        return f"node{self.spec.index} ({self.spec.key_uri})"

    # -- life cycle ------------------------------------------------------------------------------------
    def command(self) -> list[str]:
        return testnet.node_command(self.net.spec_path, self.spec, self.peers)

    def start(self, wait: bool = True) -> BftNode:
        if self.running():
            raise RuntimeError(f"{self.name} is already running")
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== test harness: start #{self.starts} at {time.strftime('%H:%M:%S')}: "
                      f"{' '.join(self.command())}\n".encode())
        self.proc = testnet.start_node(self.net.spec_path, self.spec, self.peers)
        self.paused = False
        self._terminated = False
        _LIVE.add(self)
        if wait:
            self.wait_ready(90.0)
        return self

    @staticmethod
    def _signal_all(procs: list[psutil.Process], sig: int) -> None:
        for p in procs:
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                p.send_signal(sig)   # psutil checks the pid still names the same process

    def kill(self) -> None:
        super().kill()
        self.paused = False

    def pause(self) -> None:
        """SIGSTOP the node (and its workers): it neither sends nor answers anything until resumed."""
        assert self.running(), f"{self.name} is not running"
        self._signal_all([psutil.Process(self.proc.pid), *self._tree()], signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        if not self.running():
            return
        self._signal_all([psutil.Process(self.proc.pid), *self._tree()], signal.SIGCONT)
        self.paused = False

    def _terminate(self) -> None:
        """SIGCONT (if paused) and SIGTERM, once: a second SIGTERM late in a clean shutdown (after the
        node's loop removed its handler) would kill it with the default action."""
        if self._terminated:
            return
        self._terminated = True
        with contextlib.suppress(Exception):
            self.resume()
        self.proc.send_signal(signal.SIGTERM)

    def terminate(self) -> None:
        if self.running():
            self._terminate()

    def stop(self, timeout: float = testnet.STOP_GRACE_S) -> int | None:
        """SIGCONT (if paused), SIGTERM, then SIGKILL after the grace period; the exit code."""
        return super().stop(timeout)

    # -- JSON-RPC ----------------------------------------------------------------------------------------
    def finalized(self) -> tuple[int, str]:
        """(number, hash) of the finalized head."""
        h = self.rpc("chain_getFinalizedHead")
        return int(self.rpc("chain_getHeader", [h])["number"], 16), h

    def finalized_number(self) -> int:
        return self.finalized()[0]

    def block_hash(self, number: int) -> str | None:
        return self.rpc("chain_getBlockHash", [number])


class BftNetwork:
    """N validators `//Validator1..N` (plus optional extra nodes) under `base_dir`."""

    def __init__(self, base_dir: Path, validators: int = 4, *, spec: dict | None = None,
                 extra_keys: Sequence[str] = ()) -> None:
        """`spec`: a raw chain spec to use instead of `local_spec(validators)`; `extra_keys`: key URIs
        of further nodes (node N, N+1, ...), started separately with every other node as bootnode."""
        from p2p.keys import load_or_create_node_key, peer_id_of
        self.base_dir = Path(base_dir)
        self.base_dir.mkdir(parents=True, exist_ok=True)
        if spec is not None:
            (self.base_dir / "chain-spec.json").write_text(json.dumps(spec, indent=1))
        self.spec_path, specs = testnet.prepare(validators, self.base_dir, 0, 0, 0)
        for i, key in enumerate(extra_keys, start=validators):
            base = self.base_dir / f"node{i}"
            base.mkdir(parents=True, exist_ok=True)
            specs.append(NodeSpec(i, base, key, 0, 0, 0, peer_id_of(load_or_create_node_key(base))))
        ports = free_ports(3 * len(specs))
        specs = [dataclasses.replace(s, rpc_port=ports[3 * k], p2p_port=ports[3 * k + 1],
                                     prometheus_port=ports[3 * k + 2]) for k, s in enumerate(specs)]
        self.validator_count = validators
        # the genesis validators know each other; an extra node knows everyone
        self.nodes = [BftNode(self, s, specs[:validators] if s.index < validators else specs) for s in specs]

    @property
    def validators(self) -> list[BftNode]:
        return self.nodes[:self.validator_count]

    def start(self, nodes: Sequence[BftNode] | None = None) -> None:
        todo = list(self.validators if nodes is None else nodes)
        for n in todo:
            n.start(wait=False)
        for n in todo:
            n.wait_ready()

    def stop(self) -> dict[str, int | None]:
        """Stop every node started here (all of them at once: SIGTERM each, then wait); their exit codes
        (a node stopped earlier by SIGKILL keeps that code, -9)."""
        errors = []
        codes: dict[str, int | None] = {}
        for n in self.nodes:
            with contextlib.suppress(Exception):
                n.terminate()
        for n in self.nodes:
            try:
                codes[n.name] = n.stop()
            except Exception as e:  # noqa: BLE001 - stop the others regardless
                errors.append(e)
        if errors:
            raise errors[0]
        print(f"network {self.base_dir} stopped; exit codes {codes}")
        return codes

    def running(self) -> list[BftNode]:
        return [n for n in self.nodes if n.running() and not n.paused]

    def logs(self, lines: int = 60) -> str:
        return "\n".join(n.log_tail(lines) for n in self.nodes if n.starts)

    # -- polling --------------------------------------------------------------------------------------------
    def poll(self, what: str, check: Callable[[], Any], timeout: float, interval: float = 0.25) -> Any:
        """Call `check` until it returns something truthy (RPC errors count as not yet); bounded."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while True:
            try:
                last = check()
                if last:
                    return last
            except (OSError, http.client.HTTPException, ValueError, NodeRpcError) as e:
                last = e
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})\n"
                                     f"{self.logs()}")
            time.sleep(interval)

    def finalized_numbers(self, nodes: Sequence[BftNode] | None = None) -> list[int]:
        return [n.finalized_number() for n in (self.running() if nodes is None else nodes)]

    def wait_finalized(self, height: int, nodes: Sequence[BftNode] | None = None, timeout: float = 60.0) -> list[int]:
        """Until every node in `nodes` (default: the running ones) has finalized #`height`."""
        group = list(self.running() if nodes is None else nodes)
        names = ", ".join(n.name for n in group)
        def reached() -> list[int] | None:
            heights = self.finalized_numbers(group)
            return heights if min(heights) >= height else None
        return self.poll(f"#{height} finalized on {names}", reached, timeout)

    def assert_same_chain(self, nodes: Sequence[BftNode], up_to: int | None = None, start: int = 0) -> int:
        """Every node has the same block hash at each height from `start` to `up_to` (default: the
        lowest finalized height among them); returns that height."""
        top = min(n.finalized_number() for n in nodes) if up_to is None else up_to
        for number in range(start, top + 1):
            hashes = {n.name: n.block_hash(number) for n in nodes}
            assert None not in hashes.values(), f"block #{number} missing: {hashes}"
            assert len(set(hashes.values())) == 1, f"fork at #{number}: {hashes}"
        return top
