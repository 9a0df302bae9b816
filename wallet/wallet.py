"""The household wallet as a library: accounts, balances, transfers, orders, standing orders, trades
and disputes, over JSON-RPC only.

    async with AsyncClient("http://127.0.0.1:9944") as client:
        w = await Wallet.connect(client)
        bob = keystore.unlock("bob", password)
        report = await w.transfer(bob, charlie_address, 12_500_000, asset=w.chain.stablecoin)
        assert report.ok, report.error

Everything that changes state is signed here and sent with `author_submitAndWatchExtrinsic`; the
call returns once the extrinsic is `finalized` (or `inBlock` if asked), as a `TxReport` saying
whether the call itself succeeded in its block (a call can fail after inclusion, and still pay its
fee) with the pallet's error sentence, and the events it emitted (the order id of a placement, the
trades it made at once, ...). Reads use the `energy_*` queries where they exist and otherwise
storage through the metadata (`wallet.chain`). Amounts are in chain units (smallest units, Wh,
smallest units per kWh); `wallet.units` turns them into human text and back.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from primitives import ss58
from primitives.keys import InvalidSecret, Keypair
from rpc.client import AsyncClient
from wallet.chain import ChainError, ChainState, Event, key_part, to_json
from wallet.keystore import AccountInfo, KdfParams, Keystore, KeystoreError

#: at most this many storage keys are scanned for an account's certificates or meters
MAX_SCAN_KEYS = 50_000
BID, ASK = "bid", "ask"
SIDE_CODES = {BID: 0, ASK: 1}
#: meter kinds (as energy_meter names them) able to take each side of a trade
SIDE_METER_KINDS = {BID: ("import", "bidirectional"), ASK: ("export", "bidirectional")}


class WalletError(Exception):
    """A request the wallet cannot carry out, as one sentence for the user (not a node refusal)."""


# ---------------------------------------------------------------------------------------------
# accounts (offline: the keystore only)
# ---------------------------------------------------------------------------------------------

def create_account(keystore: Keystore, name: str, password: str, *, words: int = 12,
                   kdf: KdfParams | None = None) -> tuple[AccountInfo, str]:
    """A new account from a fresh BIP39 mnemonic; returns it and the mnemonic, to show once."""
    from mnemonic import Mnemonic
    if words not in (12, 24):
        raise WalletError("a new mnemonic has 12 or 24 words")
    if keystore.exists(name):
        raise KeystoreError(f"an account named {name!r} already exists in {keystore.directory}")
    phrase = Mnemonic("english").generate(strength=128 if words == 12 else 256)
    info = keystore.add(name, Keypair.from_uri(phrase).seed, password, kdf)
    return info, phrase


def import_account(keystore: Keystore, name: str, secret: str, password: str, *,
                   kdf: KdfParams | None = None) -> AccountInfo:
    """Store the key of a secret URI (`//Bob`, `<mnemonic>//hard///password`, `0x<seed>`) or mnemonic."""
    try:
        kp = Keypair.from_uri(secret)
    except InvalidSecret as e:
        raise WalletError(f"cannot import: {e}") from None
    return keystore.add(name, kp.seed, password, kdf)


def parse_account(text: str, keystore: Keystore | None = None) -> bytes:
    """An account id from a keystore account name, an SS58 address or a 0x public key."""
    if keystore is not None and not text.startswith("0x"):
        try:
            if keystore.exists(text):
                return keystore.info(text).public_key
        except KeystoreError:
            pass                     # not a valid account name: try it as an address
    if text.startswith("0x"):
        try:
            pk = bytes.fromhex(text[2:])
        except ValueError:
            pk = b""
        if len(pk) != 32:
            raise WalletError(f"not an account: {text!r} is not a 32-byte 0x public key")
        return pk
    try:
        return ss58.decode_with_prefix(text)[0]
    except ss58.AddressError as e:
        raise WalletError(f"not an account: {text!r} is neither an account name in the keystore "
                          f"nor an SS58 address ({e})") from None


# ---------------------------------------------------------------------------------------------
# chain description and transaction reports
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Asset:
    """A currency on the chain: `id` None for the native token, else a `balances` asset id."""

    id: int | None
    symbol: str
    decimals: int

    def to_json(self) -> dict:
        return {"assetId": self.id, "symbol": self.symbol, "decimals": self.decimals}


@dataclass(frozen=True)
class ChainInfo:
    """What the wallet needs to know about the connected chain, from its properties and metadata."""

    native: Asset
    stablecoin: Asset
    ss58_format: int
    interval_s: int
    gate_closure_s: int
    settlement_window_intervals: int


@dataclass
class TxReport:
    """The result of one signed call: where it landed, whether it succeeded, what it emitted."""

    call: str
    hash: bytes
    status: str                      # "inBlock" or "finalized"
    block_hash: bytes | None
    success: bool | None             # None: the node could not say (e.g. state pruned)
    error: str | None
    events: list[Event] = field(default_factory=list)
    result: dict = field(default_factory=dict)   # what the call produced (ids, trades), per call

    @property
    def ok(self) -> bool:
        return self.success is not False

    def emitted(self, pallet: str, name: str) -> list[dict]:
        return [e.fields for e in self.events if e.pallet == pallet and e.name == name]

    def to_json(self) -> dict:
        return {"call": self.call, "extrinsicHash": "0x" + self.hash.hex(), "status": self.status,
                "blockHash": None if self.block_hash is None else "0x" + self.block_hash.hex(),
                "success": self.success, "error": self.error, **to_json(self.result),
                "events": [e.to_json() for e in self.events]}


# ---------------------------------------------------------------------------------------------
# the wallet
# ---------------------------------------------------------------------------------------------

class Wallet:
    """A connection to one node, with what the wallet learned about its chain."""

    def __init__(self, client: AsyncClient, state: ChainState, chain: ChainInfo) -> None:
        self.client = client
        self.state = state
        self.chain = chain

    @classmethod
    async def connect(cls, client: AsyncClient) -> Wallet:
        """Read the chain's metadata and properties (one round trip each)."""
        metadata = await client.metadata()
        props = await client.request("system_properties") or {}
        state = ChainState(client, metadata)
        native = Asset(None, str(props.get("tokenSymbol", "UNIT")), int(props.get("tokenDecimals", 0)))
        stable_props = props.get("stablecoin") or {}
        asset_id = stable_props.get("assetId")
        if asset_id is None:            # a chain spec without the property: the market's own setting
            asset_id = state.constant("market", "stablecoin_asset")
        if "symbol" in stable_props and "decimals" in stable_props:
            stablecoin = Asset(int(asset_id), str(stable_props["symbol"]), int(stable_props["decimals"]))
        else:
            stablecoin = await _asset_from_state(state, int(asset_id))
        chain = ChainInfo(native, stablecoin, int(props.get("ss58Format", ss58.GRIDCHAIN_SS58_PREFIX)),
                          int(state.constant("grid", "interval_s")),
                          int(state.constant("market", "gate_closure_s")),
                          int(state.constant("metering", "settlement_window_intervals")))
        return cls(client, state, chain)

    def address(self, who: bytes) -> str:
        return ss58.encode(who, self.chain.ss58_format)

    async def now_s(self) -> int:
        """Chain time (the last block's timestamp), which a dev chain's time warp makes differ from
        the wall clock; delivery intervals and gates follow it."""
        return int(await self.state.read("timestamp", "now") or 0) // 1000

    async def asset(self, text: str) -> Asset:
        """An asset by symbol (the native token's or the stablecoin's, any case) or numeric id."""
        t = text.strip()
        for a in (self.chain.native, self.chain.stablecoin):
            if t.upper() == a.symbol.upper():
                return a
        if t.upper() == "NATIVE":
            return self.chain.native
        if t.isdigit():
            return await _asset_from_state(self.state, int(t))
        raise WalletError(f"unknown asset {text!r}: use {self.chain.native.symbol}, {self.chain.stablecoin.symbol} "
                          "or a numeric asset id")

    # -- submitting ------------------------------------------------------------------------------

    async def submit(self, keypair: Keypair, pallet: str, call: str, args: dict, *,
                     until: str = "finalized") -> TxReport:
        """Build, sign and submit `pallet.call(args)`, wait until `until`, and report the outcome.

        A node refusal (invalid, bad nonce, cannot pay the fee, ...) raises RpcError with the node's
        reason; a call that failed in its block is a report with `ok` false and the error sentence.
        """
        xt = await self.client.build_extrinsic(keypair, pallet, call, args)
        r = await self.client.submit_and_watch(xt, until=until)
        events = await self.state.events_of(r.block_hash, xt) if r.block_hash is not None else []
        return TxReport(f"{pallet}.{call}", r.hash, r.status, r.block_hash, r.success, r.error, events)

    # -- balances and transfers ------------------------------------------------------------------

    async def balances(self, who: bytes, *, certificates: bool = True) -> dict:
        """Native token, stablecoin (free, and locked in open bids' escrow) and, optionally, certificates."""
        at = await self.state.best_hash()
        info = await self.state.read("system", "account", who, at=at) or {"nonce": 0, "free": 0, "reserved": 0}
        stable = self.chain.stablecoin
        held = await self.state.read("balances", "asset_balance", stable.id, who, at=at) or 0
        orders, _at = await self.client.request_all("energy_orders", {"account": self.address(who),
                                                                      "at": "0x" + at.hex()})
        out = {"account": self.address(who), "at": "0x" + at.hex(),
               "native": {**self.chain.native.to_json(), "free": info["free"], "reserved": info["reserved"],
                          "nonce": info["nonce"]},
               "stablecoin": {**stable.to_json(), "balance": held,
                              "lockedInBids": sum(o["escrowLocked"] for o in orders)}}
        if certificates:
            out["certificates"] = await self.certificates(who, at)
        return out

    async def certificates(self, who: bytes, at: bytes | None = None) -> dict:
        """Certificates (Wh of verified green export, per zone and delivery interval) the account
        holds, and those retired as its green claims.

        `certificates.balance` and `.retired` are keyed (token (zone, interval), account), so an
        account's holdings are found by scanning the item's keys and keeping those that end in the
        account (bounded by MAX_SCAN_KEYS; `complete` says whether the scan saw every key).
        """
        at = at or await self.state.best_hash()
        mine = key_part(who)
        held: dict[tuple[int, int], int] = {}
        retired: dict[tuple[int, int], int] = {}
        complete = True
        for item, into in (("balance", held), ("retired", retired)):
            keys, more = await self.state.keys_with_prefix(self.state.prefix("certificates", item), at, MAX_SCAN_KEYS)
            complete = complete and not more
            keys = [k for k in keys if k.endswith(mine)]
            for k, wh in zip(keys, await self.state.read_keys("certificates", item, keys, at)):
                zone, interval_start = self.state.decode_keys("certificates", item, k)[0]
                into[(zone, interval_start)] = wh or 0
        zones = sorted({z for z, _ in held} | {z for z, _ in retired})
        return {"heldWh": sum(held.values()), "retiredWh": sum(retired.values()), "complete": complete,
                "zones": [{"zone": z, "heldWh": sum(v for (zz, _), v in held.items() if zz == z),
                           "retiredWh": sum(v for (zz, _), v in retired.items() if zz == z),
                           "intervals": sum(1 for zz, _ in held if zz == z)} for z in zones],
                "held": [{"zone": z, "intervalStart": t, "wh": wh}
                         for (z, t), wh in sorted(held.items(), key=lambda kv: (-kv[0][1], kv[0][0]))]}

    async def transfer(self, keypair: Keypair, dest: bytes, amount: int, asset: Asset | None = None, *,
                       until: str = "finalized") -> TxReport:
        """Send `amount` smallest units of `asset` (default: the native token) to `dest`."""
        if amount <= 0:
            raise WalletError("the amount must be greater than zero")
        if dest == keypair.public_key:
            raise WalletError("the destination is the sending account itself")
        asset = asset or self.chain.native
        if asset.id is None:
            report = await self.submit(keypair, "balances", "transfer", {"dest": dest, "amount": amount}, until=until)
        else:
            report = await self.submit(keypair, "balances", "transfer_asset",
                                       {"asset": asset.id, "dest": dest, "amount": amount}, until=until)
        report.result = {"from": self.address(keypair.public_key), "to": self.address(dest), "amount": amount,
                         "asset": asset.to_json()}
        return report

    # -- meters ----------------------------------------------------------------------------------

    async def meters_of(self, who: bytes) -> list[dict]:
        """The account's certified meters (as `energy_meter` describes them), found by scanning all
        of `metering.meters` (keyed by meter id) for its owner: a cap could hide the one meter an
        order needs."""
        at = await self.state.best_hash()
        keys, _more = await self.state.keys_with_prefix(self.state.prefix("metering", "meters"), at, None)
        values = await self.state.read_keys("metering", "meters", keys, at)
        out = []
        for k, m in zip(keys, values):
            if m is not None and m.get("owner") == who:
                meter_id = self.state.decode_keys("metering", "meters", k)[0]
                out.append(await self.client.request("energy_meter", ["0x" + meter_id.hex(), "0x" + at.hex()]))
        return sorted(out, key=lambda m: (m["zone"], m["meter"]))

    async def pick_meter(self, who: bytes, side: str, zone: int | None) -> dict:
        """The one active meter of the account able to take `side` (in `zone`, if given)."""
        kinds = SIDE_METER_KINDS[side]
        meters = [m for m in await self.meters_of(who)
                  if m["status"] == "active" and m["kind"] in kinds and (zone is None or m["zone"] == zone)]
        where = "" if zone is None else f" in zone {zone}"
        if not meters:
            raise WalletError(f"{self.address(who)} has no active meter{where} that can "
                              f"{'import' if side == BID else 'export'} energy ({'a bid' if side == BID else 'an ask'} needs one)")
        if len(meters) > 1:
            ids = ", ".join(m["meter"] for m in meters)
            raise WalletError(f"{self.address(who)} has several suitable meters{where}: choose one with --meter ({ids})")
        return meters[0]

    async def _order_meter(self, who: bytes, side: str, zone: int | None, meter: bytes | None) -> tuple[int, bytes]:
        if meter is None:
            m = await self.pick_meter(who, side, zone)
            return m["zone"], bytes.fromhex(m["meter"][2:])
        if zone is None:
            m = await self.client.request("energy_meter", ["0x" + meter.hex()])
            if m is None:
                raise WalletError(f"no certified meter 0x{meter.hex()} on this chain")
            zone = int(m["zone"])
        return zone, meter

    # -- orders ----------------------------------------------------------------------------------

    async def check_gate(self, interval_start: int) -> None:
        """Refuse, before any fee is paid, an order or cancel for an interval whose gate has closed."""
        now = await self.now_s()
        if now >= interval_start - self.chain.gate_closure_s:
            raise WalletError(f"the gate for the interval starting at {interval_start} has closed (orders close "
                              f"{self.chain.gate_closure_s} s before the interval; chain time is {now})")

    async def place_order(self, keypair: Keypair, side: str, interval_start: int, price_per_kwh: int,
                          quantity_wh: int, *, zone: int | None = None, meter: bytes | None = None,
                          green_only: bool = False, until: str = "finalized") -> TxReport:
        """A bid (buy; price is the all-in limit: energy plus grid fee) or an ask (sell; energy
        price) for `quantity_wh` delivered in the interval. The meter defaults to the account's one
        suitable meter, the zone to the meter's. The report's result has the order id, the trades it
        made at once, the Wh left resting in the book and the Wh trimmed (see the market's "Bounded
        work")."""
        if side not in SIDE_CODES:
            raise WalletError("the side is bid or ask")
        if green_only and side == ASK:
            raise WalletError("green-only applies to bids (an ask's green flag comes from its meter)")
        zone, meter = await self._order_meter(keypair.public_key, side, zone, meter)
        await self.check_gate(interval_start)
        args: dict[str, Any] = {"zone": zone, "interval_start": interval_start, "price_per_kwh": price_per_kwh,
                                "quantity_wh": quantity_wh, "meter": meter}
        if side == BID:
            args["green_only"] = green_only
        report = await self.submit(keypair, "market", "place_bid" if side == BID else "place_ask", args, until=until)
        placed = report.emitted("market", "OrderPlaced")
        trades = [{"tradeId": t["trade_id"], "wh": t["wh"], "pricePerKwh": t["price_per_kwh"],
                   "feePerKwh": t["fee_per_kwh"], "counterparty": self.address(t["seller" if side == BID else "buyer"])}
                  for t in report.emitted("market", "TradeMatched")]
        # a remainder the market trimmed (matching stopped at a work bound while it still crossed) does not rest
        trimmed = sum(t["trimmed_wh"] for t in report.emitted("market", "OrderTrimmed"))
        report.result = {"side": side, "zone": zone, "intervalStart": interval_start, "pricePerKwh": price_per_kwh,
                         "quantityWh": quantity_wh, "meter": "0x" + meter.hex(),
                         "orderId": placed[0]["order_id"] if placed else None, "trades": trades,
                         "restingWh": quantity_wh - sum(t["wh"] for t in trades) - trimmed if placed else None,
                         "trimmedWh": trimmed if placed else None}
        return report

    async def cancel_order(self, keypair: Keypair, order_id: int, *, until: str = "finalized") -> TxReport:
        """Withdraw an open order (before its gate closes); a bid's remaining escrow comes back."""
        o = await self.state.read("market", "orders", order_id)
        if o is None:
            raise WalletError(f"no open order {order_id} (filled, cancelled, expired, or never placed)")
        if o["owner"] != keypair.public_key:
            raise WalletError(f"order {order_id} belongs to {self.address(o['owner'])}, not to this account")
        await self.check_gate(o["interval_start"])
        report = await self.submit(keypair, "market", "cancel", {"order_id": order_id}, until=until)
        cancelled = report.emitted("market", "OrderCancelled")
        report.result = {"orderId": order_id, "released": cancelled[0]["released"] if cancelled else None}
        return report

    async def open_orders(self, who: bytes) -> list[dict]:
        """The account's open orders, oldest first (`energy_orders`, every page)."""
        orders, _at = await self.client.request_all("energy_orders", {"account": self.address(who)})
        return orders

    # -- standing orders -------------------------------------------------------------------------

    async def set_standing_order(self, keypair: Keypair, side: str, price_per_kwh: int, quantity_wh: int, *,
                                 zone: int | None = None, meter: bytes | None = None, green: bool = False,
                                 until: str = "finalized") -> TxReport:
        """An order of `side` posted automatically for every delivery interval a few intervals ahead
        (the chain posts it; nothing is escrowed until then)."""
        if side not in SIDE_CODES:
            raise WalletError("the side is bid or ask")
        if green and side == ASK:
            raise WalletError("green-only applies to bids (an ask's green flag comes from its meter)")
        zone, meter = await self._order_meter(keypair.public_key, side, zone, meter)
        report = await self.submit(keypair, "market", "set_standing_order",
                                   {"side": SIDE_CODES[side], "zone": zone, "price_per_kwh": price_per_kwh,
                                    "quantity_wh": quantity_wh, "meter": meter, "green": green}, until=until)
        made = report.emitted("market", "StandingOrderSet")
        report.result = {"standingId": made[0]["standing_id"] if made else None, "side": side, "zone": zone,
                         "pricePerKwh": price_per_kwh, "quantityWh": quantity_wh, "meter": "0x" + meter.hex(),
                         "firstInterval": made[0]["next_interval"] if made else None}
        return report

    async def cancel_standing_order(self, keypair: Keypair, standing_id: int, *,
                                    until: str = "finalized") -> TxReport:
        """Stop a standing order; orders it already posted stay open (cancel them one by one)."""
        so = await self.state.read("market", "standing_orders", standing_id)
        if so is None:
            raise WalletError(f"no standing order {standing_id}")
        if so["owner"] != keypair.public_key:
            raise WalletError(f"standing order {standing_id} belongs to {self.address(so['owner'])}, "
                              "not to this account")
        report = await self.submit(keypair, "market", "cancel_standing_order", {"standing_id": standing_id},
                                   until=until)
        report.result = {"standingId": standing_id}
        return report

    async def standing_orders(self, who: bytes) -> list[dict]:
        """The account's standing orders, by id. No RPC lists them: `market.standing_of` is keyed
        (owner, standing id), so its keys under the owner are the ids, and `standing_orders` the terms."""
        at = await self.state.best_hash()
        prefix = self.state.key("market", "standing_of", who)
        keys, _more = await self.state.keys_with_prefix(prefix, at, MAX_SCAN_KEYS)
        ids = sorted(self.state.decode_keys("market", "standing_of", k)[1] for k in keys)
        terms = await self.state.read_keys("market", "standing_orders",
                                           [self.state.key("market", "standing_orders", i) for i in ids], at)
        side_names = {v: k for k, v in SIDE_CODES.items()}
        return [{"standingId": i, "side": side_names.get(so["side"], str(so["side"])), "zone": so["zone"],
                 "pricePerKwh": so["price_per_kwh"], "quantityWh": so["quantity_wh"],
                 "meter": "0x" + so["meter"].hex(), "green": so["green"], "nextInterval": so["next_interval"]}
                for i, so in zip(ids, terms) if so is not None]

    # -- trades and disputes ---------------------------------------------------------------------

    async def trades(self, who: bytes, from_interval: int | None = None, to_interval: int | None = None) -> list[dict]:
        """The account's trades as buyer or seller with their settlement (`energy_trades`, every
        page), each with the account's `role`."""
        addr = self.address(who)
        rows, _at = await self.client.request_all("energy_trades", {"account": addr, "fromInterval": from_interval,
                                                                   "toInterval": to_interval})
        return [{**t, "role": "buyer" if t["buyer"] == addr else "seller"} for t in rows]

    def dispute_window(self, interval_start: int) -> tuple[int, int]:
        """[opens, closes): from the end of the delivery interval until the settlement window closes."""
        i = self.chain.interval_s
        return interval_start + i, interval_start + i * (1 + self.chain.settlement_window_intervals)

    async def open_dispute(self, keypair: Keypair, trade_id: int, reason_hash: bytes, *,
                           until: str = "finalized") -> TxReport:
        """Contest a trade's delivery (buyer or seller, after its interval and before settlement);
        `reason_hash` pins the off-chain statement the registrar will read."""
        t = await self.state.read("market", "trades", trade_id)
        if t is None:
            raise WalletError(f"no trade {trade_id}")
        if keypair.public_key not in (t["buyer"], t["seller"]):
            raise WalletError(f"only the buyer or the seller of trade {trade_id} may dispute it")
        opens, closes = self.dispute_window(t["interval_start"])
        now = await self.now_s()
        if now < opens:
            raise WalletError(f"trade {trade_id} can be disputed once its delivery interval has ended "
                              f"(at {opens}; chain time is {now})")
        if now >= closes:
            raise WalletError(f"the dispute window of trade {trade_id} closed at {closes} (chain time is {now})")
        report = await self.submit(keypair, "settlement", "dispute",
                                   {"trade_id": trade_id, "reason_hash": reason_hash}, until=until)
        report.result = {"tradeId": trade_id, "reasonHash": "0x" + reason_hash.hex()}
        return report

    async def dispute_status(self, trade_id: int) -> dict:
        """A trade's settlement status and outcome, and its dispute if any (who raised it, the reason
        hash, the arbitration deadline, the meters' shares once the settlement hook has passed it)."""
        at = await self.state.best_hash()
        settlement = await self.client.request("energy_settlement", [trade_id, "0x" + at.hex()])
        if settlement is None:
            raise WalletError(f"no trade {trade_id}")
        t = await self.state.read("market", "trades", trade_id, at=at)
        d = await self.state.read("settlement", "disputes", trade_id, at=at)
        m = await self.state.read("settlement", "metered", trade_id, at=at)
        opens, closes = self.dispute_window(t["interval_start"])
        return {**settlement,
                "trade": {"intervalStart": t["interval_start"], "buyer": self.address(t["buyer"]),
                          "seller": self.address(t["seller"]), "wh": t["wh"], "pricePerKwh": t["price_per_kwh"],
                          "feePerKwh": t["fee_per_kwh"], "amount": t["amount"], "feeAmount": t["fee_amount"]},
                "disputeWindow": {"opens": opens, "closes": closes},
                "dispute": None if d is None else {"by": self.address(d["by"]), "reasonHash": "0x" + d["reason_hash"].hex(),
                                                   "arbitrationDeadline": d["deadline_s"]},
                "metered": None if m is None else {"sellerWh": m["seller_wh"], "buyerWh": m["buyer_wh"]}}


async def _asset_from_state(state: ChainState, asset_id: int) -> Asset:
    details = await state.read("balances", "assets", asset_id)
    if details is None:
        raise WalletError(f"no asset {asset_id} on this chain")
    return Asset(asset_id, str(details["symbol"]), int(details["decimals"]))


__all__ = ["Asset", "ChainError", "ChainInfo", "TxReport", "Wallet", "WalletError", "create_account",
           "import_account", "parse_account"]
