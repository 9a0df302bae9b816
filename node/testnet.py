"""`gridchain testnet`: N validator processes on loopback, for development and tests.

It writes one chain spec (the `local` preset with N validator operators, in raw form so every node
hashes the same genesis) and, for each node i (0-based), a base path `<base-dir>/node<i>` with a
pre-created node key, so the peer ids, and with them every node's bootnode list, are known before
any process starts. Node i validates with `//Validator<i+1>` and listens on

    RPC (HTTP and WebSocket)  127.0.0.1:<rpc-port-base + i>
    p2p (libp2p TCP)          127.0.0.1:<p2p-port-base + i>
    Prometheus metrics        127.0.0.1:<prometheus-port-base + i>

Each node's log is `<base-dir>/node<i>/node.log`. The supervisor keeps running until Ctrl-C or
SIGTERM, then stops every process it started (SIGTERM, then SIGKILL after a grace period); a node
that dies on its own is reported, and the others keep running.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from genesis.chain_spec import local_spec, to_raw

STOP_GRACE_S = 10.0


@dataclass
class NodeSpec:
    index: int
    base_path: Path
    key_uri: str
    rpc_port: int
    p2p_port: int
    prometheus_port: int
    peer_id: str

    @property
    def p2p_addr(self) -> str:
        return f"/ip4/127.0.0.1/tcp/{self.p2p_port}/p2p/{self.peer_id}"

    @property
    def rpc_url(self) -> str:
        return f"http://127.0.0.1:{self.rpc_port}"


def prepare(validators: int, base_dir: Path, rpc_port_base: int, p2p_port_base: int,
            prometheus_port_base: int, spec: dict | None = None) -> tuple[Path, list[NodeSpec]]:
    """Write the chain spec (`spec`, default the `local` preset; kept if the directory has one
    already, so a testnet restarts on its own chain) and node keys; returns the spec path and the nodes."""
    from p2p.keys import load_or_create_node_key, peer_id_of  # noqa: PLC0415
    from pallets import build_runtime  # noqa: PLC0415
    base_dir.mkdir(parents=True, exist_ok=True)
    spec_path = base_dir / "chain-spec.json"
    if not spec_path.exists():
        raw = to_raw(spec if spec is not None else local_spec(validators), build_runtime())
        spec_path.write_text(json.dumps(raw, indent=1))
    nodes = []
    for i in range(validators):
        base = base_dir / f"node{i}"
        base.mkdir(parents=True, exist_ok=True)
        peer = peer_id_of(load_or_create_node_key(base))
        nodes.append(NodeSpec(i, base, f"//Validator{i + 1}", rpc_port_base + i, p2p_port_base + i,
                              prometheus_port_base + i, peer))
    return spec_path, nodes


def node_command(spec_path: Path, node: NodeSpec, nodes: list[NodeSpec], extra: list[str] = ()) -> list[str]:
    boots = ",".join(n.p2p_addr for n in nodes if n.index != node.index)
    cmd = [sys.executable, "-m", "node.cli", "run", "--chain", str(spec_path), "--validator", "--key", node.key_uri,
           "--base-path", str(node.base_path), "--listen-addr", "127.0.0.1", "--port", str(node.p2p_port),
           "--rpc-port", str(node.rpc_port), "--prometheus-port", str(node.prometheus_port)]
    if boots:
        cmd += ["--bootnodes", boots]
    return cmd + list(extra)


def start_node(spec_path: Path, node: NodeSpec, nodes: list[NodeSpec], extra: list[str] = ()) -> subprocess.Popen:
    log = open(node.base_path / "node.log", "ab")  # noqa: SIM115 - owned by the child's lifetime
    try:
        return subprocess.Popen(node_command(spec_path, node, nodes, extra), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                cwd=Path(__file__).resolve().parent.parent)
    finally:
        log.close()


def stop_all(procs: list[subprocess.Popen], grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM every process we started, then SIGKILL the ones still alive after the grace period."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def run(validators: int, base_dir: Path, rpc_port_base: int, p2p_port_base: int, prometheus_port_base: int,
        echo=print, app: bool = True) -> int:
    """Start the nodes and supervise them until a signal; `app=False` passes --no-app to every node."""
    extra = [] if app else ["--no-app"]
    spec_path, nodes = prepare(validators, base_dir, rpc_port_base, p2p_port_base, prometheus_port_base)
    stopping = {"now": False}

    def on_signal(signum: int, frame: object) -> None:
        stopping["now"] = True

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    procs: list[subprocess.Popen] = []
    try:
        for n in nodes:
            procs.append(start_node(spec_path, n, nodes, extra))
        echo(f"gridchain testnet: {validators} validators, chain spec {spec_path}")
        for n, p in zip(nodes, procs):
            echo(f"  node{n.index}  pid {p.pid:<7} key {n.key_uri:<14} RPC {n.rpc_url}  "
                 f"ws://127.0.0.1:{n.rpc_port}  p2p {n.p2p_addr}  metrics http://127.0.0.1:{n.prometheus_port}/metrics"
                 f"  log {n.base_path / 'node.log'}")
        if app:
            echo(f"web app: http://127.0.0.1:{nodes[0].rpc_port}/app/ (every node serves it on its RPC port)")
        echo("Ctrl-C stops every node.")
        reported: set[int] = set()
        while not stopping["now"]:
            time.sleep(0.2)
            for n, p in zip(nodes, procs):
                if p.poll() is not None and p.pid not in reported:
                    reported.add(p.pid)
                    echo(f"node{n.index} (pid {p.pid}) exited with status {p.returncode}; see {n.base_path / 'node.log'}")
            if len(reported) == len(procs):
                echo("every node has exited")
                return 1
        echo("stopping the testnet ...")
        return 0
    finally:
        stop_all(procs)
        for s, h in old.items():
            signal.signal(s, h)
        if stopping["now"]:
            echo("all nodes stopped")
