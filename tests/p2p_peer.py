"""A p2p peer in its own process, driven by JSON lines, for tests/test_p2p.py and bench/p2p_bench.py.

    python tests/p2p_peer.py --base DIR --genesis HEX --listen /ip4/127.0.0.1/tcp/PORT [--bootnode ADDR ...]

Prints `{"event": "ready", "peer_id": ..., "addrs": [...]}` once its P2PHost has started, then one
line per gossip message it receives (`{"event": "msg", "kind", "from", "len", "sha", "seq"}`, where
`seq` is the first 8 bytes as an integer and `t` the receive time, for the benchmark). It serves
"echo/1" (answers b"echo:" + request), "fail/1" (its handler raises) and "slow/1" (answers after
3 s). Commands on stdin:

    {"cmd": "publish", "kind": "vote", "data": "<hex>"}
    {"cmd": "publish_many", "kind": "tx", "count": 1000, "size": 250, "rate": 500}
        (each message starts with its sequence number, u64, and its send time, f64 unix seconds)
    {"cmd": "request", "id": 1, "peer": "<peer id>", "name": "echo/1", "data": "<hex>"}
    {"cmd": "request_many", "id": 2, "peer": "<peer id>", "count": 200, "size": 64}  (prints timings)
    {"cmd": "topic_peers", "kind": "vote"}      {"cmd": "counters"}      {"cmd": "stop"}

With `--evil TARGET_ADDR` it is instead a misbehaving raw py-libp2p host (no P2PHost): it connects
to TARGET_ADDR and, on pubsub streams, sends an undecodable frame, a frame over 1 MiB, and a
well-formed RPC whose published message has a forged sender and a garbage key, `--rounds` times;
then prints `{"event": "evil_done", ...}` and waits for "stop".

With `--record-test TARGET_ADDR` it is a raw py-libp2p host that sends, on one pubsub stream, tx
gossip it signed properly, each RPC with a different signed peer record (senderRecord): its own
valid record, as identify sent it ("record ok 1"), the same record with one signature bit flipped ("record forged"),
its own record with the addresses changed under the old signature ("record altered"), another
peer's valid record ("record of another peer"), its own valid record again ("record ok 2", the
cached case) and no record ("no record"); then prints `{"event": "record_done"}` and waits for
"stop". Only the "ok" and "no record" messages may be delivered.
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import os
import struct
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from p2p.host import P2PConfig, P2PHost, P2PError  # noqa: E402
from p2p.topics import TopicKind, topic_name  # noqa: E402


def emit(**event: object) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


async def read_commands() -> asyncio.Queue:
    """stdin lines as parsed JSON, through a queue (a reader thread: stdin is not always a pipe)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()

    def reader() -> None:
        for line in sys.stdin:
            if line.strip():
                loop.call_soon_threadsafe(queue.put_nowait, json.loads(line))
        loop.call_soon_threadsafe(queue.put_nowait, {"cmd": "stop"})

    threading.Thread(target=reader, daemon=True).start()
    return queue


async def run_peer(args: argparse.Namespace) -> None:
    cfg = P2PConfig(base_path=Path(args.base), genesis_hash=bytes.fromhex(args.genesis), listen_addrs=[args.listen],
                    bootnodes=args.bootnode, reconnect_min=0.2, reconnect_max=1.0, stop_timeout=5.0,
                    max_message_size=args.max_message_size)
    host = P2PHost(cfg)

    def on_msg(kind: TopicKind):
        def handler(origin: str, data: bytes) -> None:
            emit(event="msg", kind=kind.value, **{"from": origin}, len=len(data),
                 sha=hashlib.sha256(data).hexdigest()[:16], seq=int.from_bytes(data[:8], "big"), t=time.time())
        return handler

    for kind in TopicKind:
        host.on_message(kind, on_msg(kind))

    async def echo(peer: str, data: bytes) -> bytes:
        return b"echo:" + data

    async def fail(peer: str, data: bytes) -> bytes:
        raise ValueError("no such block")

    async def slow(peer: str, data: bytes) -> bytes:
        await asyncio.sleep(3)
        return b"late"

    host.serve("echo/1", echo)
    host.serve("fail/1", fail)
    host.serve("slow/1", slow)
    await host.start()
    emit(event="ready", peer_id=host.peer_id, addrs=host.listen_addrs)
    commands = await read_commands()
    try:
        while True:
            cmd = await commands.get()
            op = cmd["cmd"]
            if op == "stop":
                break
            if op == "publish":
                emit(event="published", ok=host.publish(cmd["kind"], bytes.fromhex(cmd["data"])))
            elif op == "publish_many":
                await publish_many(host, cmd)
            elif op == "request":
                try:
                    body = await host.request(cmd["peer"], cmd["name"], bytes.fromhex(cmd["data"]),
                                              timeout=cmd.get("timeout", 5.0))
                    emit(event="response", id=cmd["id"], ok=True, data=body.hex())
                except P2PError as exc:
                    emit(event="response", id=cmd["id"], ok=False, error=type(exc).__name__, text=str(exc))
            elif op == "request_many":
                times = []
                payload = os.urandom(cmd["size"])
                for _ in range(cmd["count"]):
                    t0 = time.perf_counter()
                    await host.request(cmd["peer"], "echo/1", payload)
                    times.append(time.perf_counter() - t0)
                emit(event="request_times", id=cmd["id"], times=times)
            elif op == "topic_peers":
                emit(event="topic_peers", kind=cmd["kind"], peers=await host.topic_peers(cmd["kind"]))
            elif op == "counters":
                emit(event="counters", counters=host.counters_snapshot())
    finally:
        await host.stop()
        emit(event="stopped")


async def publish_many(host: P2PHost, cmd: dict) -> None:
    """`count` messages of `size` bytes, each stamped with its sequence number, at `rate` per second."""
    count, size, rate = cmd["count"], cmd["size"], cmd.get("rate") or 0
    filler = os.urandom(max(0, size - 16))
    t0 = time.perf_counter()
    refused = 0
    for i in range(count):
        if rate:
            delay = t0 + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        elif i % 64 == 0:
            await asyncio.sleep(0)
        if not host.publish(cmd["kind"], struct.pack(">Qd", i, time.time()) + filler):
            refused += 1
    emit(event="published_many", count=count, refused=refused, seconds=time.perf_counter() - t0,
         t_first=t0)


def run_evil(args: argparse.Namespace) -> None:
    """A raw py-libp2p host that sends garbage on pubsub streams (see the module docstring)."""
    import multiaddr
    import trio
    from libp2p import new_host
    from libp2p.crypto.ed25519 import create_new_key_pair
    from libp2p.peer.peerinfo import info_from_p2p_addr
    from libp2p.pubsub.gossipsub import PROTOCOL_ID_V11
    from libp2p.pubsub.pb import rpc_pb2
    from libp2p.utils.varint import encode_uvarint

    vote_topic = topic_name(bytes.fromhex(args.genesis), TopicKind.VOTE)
    forged = rpc_pb2.RPC(publish=[rpc_pb2.Message(data=b"forged", topicIDs=[vote_topic], from_id=b"not-a-peer-id",
                                                  seqno=b"\0" * 8, signature=b"\1" * 64, key=b"junk")])
    frames = {
        "undecodable": encode_uvarint(300) + b"\xff" * 300,
        "oversize_frame": encode_uvarint(3 << 20) + b"\0" * 4096,
        "bad_sender": encode_uvarint(forged.ByteSize()) + forged.SerializeToString(),
    }

    async def main() -> None:
        host = new_host(key_pair=create_new_key_pair(), listen_addrs=[multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")])
        async with host.run(listen_addrs=[multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
            target = info_from_p2p_addr(multiaddr.Multiaddr(args.evil))
            await host.connect(target)
            emit(event="evil_ready", peer_id=host.get_id().to_base58())
            sent, failed = 0, 0
            chosen = [frames[name] for name in args.frames.split(",")]
            for _ in range(args.rounds):
                for frame in chosen:
                    try:
                        stream = await host.new_stream(target.peer_id, [PROTOCOL_ID_V11])
                        await stream.write(frame)
                        sent += 1
                        with trio.move_on_after(2):
                            await stream.read(1)  # returns when the target resets the stream
                    except Exception:
                        failed += 1
            emit(event="evil_done", sent=sent, failed=failed)
            await trio.to_thread.run_sync(sys.stdin.readline)  # any line (or EOF) ends it

    trio.run(main)


def run_record_test(args: argparse.Namespace) -> None:
    """A raw py-libp2p host sending gossip with valid, forged and foreign peer records."""
    import multiaddr
    import trio
    from libp2p import new_host
    from libp2p.crypto.ed25519 import create_new_key_pair
    from libp2p.peer.id import ID
    from libp2p.peer.pb import envelope_pb2
    from libp2p.peer.peerinfo import info_from_p2p_addr
    from libp2p.peer.peerstore import create_signed_peer_record, env_to_send_in_RPC
    from libp2p.pubsub.gossipsub import PROTOCOL_ID_V11
    from libp2p.pubsub.pb import rpc_pb2
    from libp2p.pubsub.validators import PUBSUB_SIGNING_PREFIX
    from libp2p.utils.varint import encode_uvarint

    tx_topic = topic_name(bytes.fromhex(args.genesis), TopicKind.TX)
    keys, other = create_new_key_pair(), create_new_key_pair()
    me, someone = ID.from_pubkey(keys.public_key), ID.from_pubkey(other.public_key)
    seqno = iter(range(1, 1 << 30))

    def frame(text: str, record: bytes | None) -> bytes:
        msg = rpc_pb2.Message(data=text.encode(), topicIDs=[tx_topic], from_id=me.to_bytes(),
                              seqno=next(seqno).to_bytes(8, "big"))
        msg.signature = keys.private_key.sign(PUBSUB_SIGNING_PREFIX.encode() + msg.SerializeToString())
        msg.key = keys.public_key.serialize()
        rpc = rpc_pb2.RPC(publish=[msg])
        if record is not None:
            rpc.senderRecord = record
        body = rpc.SerializeToString()
        return encode_uvarint(len(body)) + body

    def frames(host: Any) -> list[bytes]:
        own = env_to_send_in_RPC(host)[0]  # the record identify sent too (an older one is refused)
        env = envelope_pb2.Envelope.FromString(own)
        env.signature = bytes([env.signature[0] ^ 1]) + env.signature[1:]
        forged = env.SerializeToString()
        env = envelope_pb2.Envelope.FromString(own)
        env.payload = envelope_pb2.Envelope.FromString(create_signed_peer_record(
            me, [multiaddr.Multiaddr("/ip4/10.6.6.6/tcp/1")], keys.private_key).marshal_envelope()).payload
        altered = env.SerializeToString()
        foreign = create_signed_peer_record(someone, [multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/9")],
                                            other.private_key).marshal_envelope()
        return [frame("record ok 1", own), frame("record forged", forged), frame("record altered", altered),
                frame("record of another peer", foreign), frame("record ok 2", own), frame("no record", None)]

    async def main() -> None:
        host = new_host(key_pair=keys, listen_addrs=[multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")])
        async with host.run(listen_addrs=[multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
            target = info_from_p2p_addr(multiaddr.Multiaddr(args.record_test))
            await host.connect(target)
            emit(event="evil_ready", peer_id=me.to_base58())
            stream = await host.new_stream(target.peer_id, [PROTOCOL_ID_V11])
            sent = frames(host)
            for f in sent:
                await stream.write(f)
                await trio.sleep(0.05)
            emit(event="record_done", sent=len(sent))
            await trio.to_thread.run_sync(sys.stdin.readline)  # any line (or EOF) ends it

    trio.run(main)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base")
    parser.add_argument("--genesis", required=True)
    parser.add_argument("--listen", default="/ip4/127.0.0.1/tcp/0")
    parser.add_argument("--bootnode", action="append", default=[])
    parser.add_argument("--max-message-size", type=int, default=(1 << 20) - 4096)
    parser.add_argument("--evil")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--frames", default="undecodable,oversize_frame,bad_sender")
    parser.add_argument("--record-test")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.evil:
        run_evil(args)
    elif args.record_test:
        run_record_test(args)
    else:
        asyncio.run(run_peer(args))


if __name__ == "__main__":
    main()
