"""`gridchain wallet order|standing|trades|dispute`: the energy market from a household's side.

Orders are limit orders for energy delivered in one future interval of a grid zone: a bid's price
is the all-in limit (energy plus grid fee) per kWh, an ask's the energy price. Standing orders are
posted by the chain for every interval a few intervals ahead. Trades settle against the meters
after the interval; a party may dispute a trade from the end of its interval until settlement.
"""
from __future__ import annotations

import click

from primitives.hashing import keccak256
from wallet import units
from wallet.cli_common import (
    WalletGroup,
    common_options,
    current_settings,
    emit,
    finish_tx,
    hex32,
    money,
    price_text,
    run_job,
    table,
    tx_options,
    unlock,
)
from wallet.wallet import ASK, BID, TxReport, Wallet, WalletError, parse_account

SIDES = click.Choice([BID, ASK])


def _order_terms(w: Wallet, price: str, quantity: str) -> tuple[int, int]:
    s = w.chain.stablecoin
    price_per_kwh = units.parse_price(price, s.decimals, s.symbol)
    quantity_wh = units.parse_energy(quantity)
    if price_per_kwh <= 0:
        raise WalletError("the price must be greater than zero")
    if quantity_wh <= 0:
        raise WalletError("the quantity must be greater than zero")
    return price_per_kwh, quantity_wh


# ---------------------------------------------------------------------------------------------
# orders
# ---------------------------------------------------------------------------------------------

@click.group(cls=WalletGroup)
@common_options
def order() -> None:
    """Place, cancel and list orders for energy in one delivery interval."""


def _placed_text(w: Wallet, r: TxReport) -> str:
    x = r.result
    head = (f"order {x['orderId']} placed: {x['side']} {units.format_energy(x['quantityWh'])} at "
            f"{price_text(w, x['pricePerKwh'])} in zone {x['zone']} for the interval starting "
            f"{units.format_time(x['intervalStart'])}")
    lines = [head]
    for t in x["trades"]:
        lines.append(f"  traded {units.format_energy(t['wh'])} at {price_text(w, t['pricePerKwh'])} "
                     f"(+ {price_text(w, t['feePerKwh'])} grid fee) with {t['counterparty']} (trade {t['tradeId']})")
    if x.get("trimmedWh"):
        lines.append(f"  {units.format_energy(x['trimmedWh'])} not rested: matching stopped at its work bound "
                     "while the order still crossed the book (place the rest again to match on)")
    if x["restingWh"] == 0 and not x.get("trimmedWh"):
        lines.append("  fully matched")
    elif x["restingWh"] is not None:
        lines.append(f"  {units.format_energy(x['restingWh'])} resting in the book")
    return "\n".join(lines)


@order.command("place")
@click.argument("name")
@click.option("--side", type=SIDES, required=True, help="bid (buy) or ask (sell).")
@click.option("--zone", type=click.IntRange(0, 2**32 - 1), default=None,
              help="Grid zone (default: the zone of the meter).")
@click.option("--interval", required=True, help="Delivery interval: +N (intervals from now), unix s, or ISO time.")
@click.option("--price", required=True, help="Per kWh, e.g. 0.12 (GEUR); a bid's is its all-in limit incl. grid fee.")
@click.option("--quantity", required=True, help="Energy, e.g. 1.2kWh or 500Wh.")
@click.option("--meter", default=None, help="0x meter id (default: the account's one suitable meter).")
@click.option("--green", is_flag=True, help="Bids: trade only with green (generation) asks.")
@tx_options
@common_options
def order_place(name: str, side: str, zone: int | None, interval: str, price: str, quantity: str,
                meter: str | None, green: bool, wait: str) -> None:
    """Place a bid or an ask for account NAME; it trades at once where it crosses the book."""
    s = current_settings()
    meter_id = hex32(meter, "--meter")
    kp = unlock(s, name)

    async def job(w: Wallet) -> tuple[Wallet, TxReport]:
        price_per_kwh, quantity_wh = _order_terms(w, price, quantity)
        t = units.parse_interval(interval, await w.now_s(), w.chain.interval_s)
        return w, await w.place_order(kp, side, t, price_per_kwh, quantity_wh, zone=zone, meter=meter_id,
                                      green_only=green, until=wait)
    w, r = run_job(s, job)
    finish_tx(s, r, lambda: _placed_text(w, r))


@order.command("cancel")
@click.argument("name")
@click.argument("order_id", type=click.IntRange(0, 2**64 - 1))
@tx_options
@common_options
def order_cancel(name: str, order_id: int, wait: str) -> None:
    """Cancel open order ORDER_ID of account NAME (before its gate closes)."""
    s = current_settings()
    kp = unlock(s, name)

    async def job(w: Wallet) -> tuple[Wallet, TxReport]:
        return w, await w.cancel_order(kp, order_id, until=wait)
    w, r = run_job(s, job)
    finish_tx(s, r, lambda: f"order {order_id} cancelled"
              + (f"; {money(w, r.result['released'])} of escrow returned" if r.result.get("released") else ""))


def _orders_text(w: Wallet, rows: list[dict]) -> str:
    if not rows:
        return "no open orders"
    return table([["id", "side", "zone", "interval", "price", "quantity", "remaining", "escrow", "green"]]
                 + [[str(o["orderId"]), o["side"], str(o["zone"]), units.format_time(o["intervalStart"]),
                     price_text(w, o["pricePerKwh"]), units.format_energy(o["quantityWh"]),
                     units.format_energy(o["remainingWh"]), money(w, o["escrowLocked"]),
                     "yes" if o["green"] else "no"] for o in rows])


@order.command("list")
@click.argument("account")
@common_options
def order_list(account: str) -> None:
    """List the open orders of ACCOUNT (a keystore name or an address)."""
    s = current_settings()
    who = parse_account(account, s.store())

    async def job(w: Wallet) -> tuple[Wallet, list[dict]]:
        return w, await w.open_orders(who)
    w, rows = run_job(s, job)
    emit(s, rows, lambda: _orders_text(w, rows))


# ---------------------------------------------------------------------------------------------
# standing orders
# ---------------------------------------------------------------------------------------------

@click.group(cls=WalletGroup)
@common_options
def standing() -> None:
    """Standing orders: a bid or ask the chain posts for every interval, until cancelled."""


@standing.command("set")
@click.argument("name")
@click.option("--side", type=SIDES, required=True, help="bid (buy) or ask (sell).")
@click.option("--zone", type=click.IntRange(0, 2**32 - 1), default=None,
              help="Grid zone (default: the zone of the meter).")
@click.option("--price", required=True, help="Per kWh, e.g. 0.12 (GEUR); a bid's is its all-in limit.")
@click.option("--quantity", required=True, help="Energy per interval, e.g. 1.2kWh or 500Wh.")
@click.option("--meter", default=None, help="0x meter id (default: the account's one suitable meter).")
@click.option("--green", is_flag=True, help="Bids: trade only with green (generation) asks.")
@tx_options
@common_options
def standing_set(name: str, side: str, zone: int | None, price: str, quantity: str, meter: str | None,
                 green: bool, wait: str) -> None:
    """Set a standing order for account NAME."""
    s = current_settings()
    meter_id = hex32(meter, "--meter")
    kp = unlock(s, name)

    async def job(w: Wallet) -> tuple[Wallet, TxReport]:
        price_per_kwh, quantity_wh = _order_terms(w, price, quantity)
        return w, await w.set_standing_order(kp, side, price_per_kwh, quantity_wh, zone=zone, meter=meter_id,
                                             green=green, until=wait)
    w, r = run_job(s, job)
    x = r.result
    finish_tx(s, r, lambda: f"standing order {x['standingId']} set: {x['side']} {units.format_energy(x['quantityWh'])} "
                            f"at {price_text(w, x['pricePerKwh'])} in zone {x['zone']} every interval, first for "
                            f"{units.format_time(x['firstInterval']) if x['firstInterval'] else '?'}")


@standing.command("cancel")
@click.argument("name")
@click.argument("standing_id", type=click.IntRange(0, 2**64 - 1))
@tx_options
@common_options
def standing_cancel(name: str, standing_id: int, wait: str) -> None:
    """Cancel standing order STANDING_ID of account NAME (orders it already posted stay open)."""
    s = current_settings()
    kp = unlock(s, name)

    async def job(w: Wallet) -> TxReport:
        return await w.cancel_standing_order(kp, standing_id, until=wait)
    r = run_job(s, job)
    finish_tx(s, r, lambda: f"standing order {standing_id} cancelled (orders it posted stay open)")


@standing.command("list")
@click.argument("account")
@common_options
def standing_list(account: str) -> None:
    """List the standing orders of ACCOUNT (a keystore name or an address)."""
    s = current_settings()
    who = parse_account(account, s.store())

    async def job(w: Wallet) -> tuple[Wallet, list[dict]]:
        return w, await w.standing_orders(who)
    w, rows = run_job(s, job)
    emit(s, rows, lambda: table(
        [["id", "side", "zone", "price", "quantity", "green", "next interval"]]
        + [[str(o["standingId"]), o["side"], str(o["zone"]), price_text(w, o["pricePerKwh"]),
            units.format_energy(o["quantityWh"]), "yes" if o["green"] else "no",
            units.format_time(o["nextInterval"])] for o in rows]) if rows else "no standing orders")


# ---------------------------------------------------------------------------------------------
# trades and disputes
# ---------------------------------------------------------------------------------------------

@click.command()
@click.argument("account")
@click.option("--from", "from_", default=None, help="First delivery interval (+N, unix s or ISO time).")
@click.option("--to", default=None, help="Last delivery interval (+N, unix s or ISO time).")
@common_options
def trades(account: str, from_: str | None, to: str | None) -> None:
    """Trade history of ACCOUNT (a keystore name or an address), with settlement status."""
    s = current_settings()
    who = parse_account(account, s.store())

    async def job(w: Wallet) -> tuple[Wallet, list[dict]]:
        now = await w.now_s() if (from_ or to) else 0
        lo = units.parse_interval(from_, now, w.chain.interval_s) if from_ else None
        hi = units.parse_interval(to, now, w.chain.interval_s) if to else None
        return w, await w.trades(who, lo, hi)
    w, rows = run_job(s, job)
    emit(s, rows, lambda: table(
        [["trade", "interval", "role", "energy", "price", "grid fee", "money", "status", "delivered"]]
        + [[str(t["tradeId"]), units.format_time(t["intervalStart"]), t["role"], units.format_energy(t["wh"]),
            price_text(w, t["pricePerKwh"]), price_text(w, t["feePerKwh"]),
            f"pays {money(w, t['amount'] + t['feeAmount'])}" if t["role"] == "buyer" else f"gets {money(w, t['amount'])}",
            t["status"], units.format_energy(t["outcome"]["deliveredWh"]) if t["outcome"] else "-"]
           for t in rows]) if rows else "no trades")


@click.group(cls=WalletGroup)
@common_options
def dispute() -> None:
    """Dispute a trade's delivery, and follow the dispute."""


@dispute.command("open")
@click.argument("name")
@click.argument("trade_id", type=click.IntRange(0, 2**64 - 1))
@click.option("--reason", default=None, help="Your statement; its keccak-256 hash goes on chain, keep the text.")
@click.option("--reason-hash", default=None, help="0x hash of a statement kept elsewhere (instead of --reason).")
@tx_options
@common_options
def dispute_open(name: str, trade_id: int, reason: str | None, reason_hash: str | None, wait: str) -> None:
    """Dispute trade TRADE_ID as its buyer or seller NAME (after its interval, before settlement)."""
    s = current_settings()
    if (reason is None) == (reason_hash is None):
        raise WalletError("give the dispute's reason with --reason TEXT or --reason-hash 0x..., one of them")
    digest = keccak256(reason.encode()) if reason is not None else hex32(reason_hash, "--reason-hash")
    kp = unlock(s, name)

    async def job(w: Wallet) -> TxReport:
        return await w.open_dispute(kp, trade_id, digest, until=wait)
    r = run_job(s, job)
    finish_tx(s, r, lambda: f"trade {trade_id} disputed (reason hash 0x{digest.hex()}); a registrar will decide")


def _dispute_text(w: Wallet, d: dict) -> str:
    t = d["trade"]
    lines = [(f"trade {d['tradeId']}: {units.format_energy(t['wh'])} at {price_text(w, t['pricePerKwh'])} for "
              f"{units.format_time(t['intervalStart'])}, seller {t['seller']}, buyer {t['buyer']}"),
             f"status        {d['status']}",
             (f"window        {units.format_time(d['disputeWindow']['opens'])} .. "
              f"{units.format_time(d['disputeWindow']['closes'])}")]
    if d["dispute"]:
        x = d["dispute"]
        lines.append(f"disputed by   {x['by']} (reason hash {x['reasonHash']}); settled by the meters if no "
                     f"registrar decides by {units.format_time(x['arbitrationDeadline'])}")
    if d["metered"]:
        m = d["metered"]
        lines.append(f"meters        seller {m['sellerWh'] if m['sellerWh'] is not None else 'no reading'} Wh, "
                     f"buyer {m['buyerWh'] if m['buyerWh'] is not None else 'no reading'} Wh")
    if d["outcome"]:
        o = d["outcome"]
        lines.append(f"outcome       delivered {units.format_energy(o['deliveredWh'])}; seller paid "
                     f"{money(w, o['paidSeller'])}, grid fee {money(w, o['feeToDso'])}, buyer refunded "
                     f"{money(w, o['refundBuyer'])}, penalty {money(w, o['penalty'])}"
                     + (f" ({o['atFault']} at fault)" if o["atFault"] else ""))
    return "\n".join(lines)


@dispute.command("show")
@click.argument("trade_id", type=click.IntRange(0, 2**64 - 1))
@common_options
def dispute_show(trade_id: int) -> None:
    """Show trade TRADE_ID's settlement status and its dispute, if any."""
    s = current_settings()

    async def job(w: Wallet) -> tuple[Wallet, dict]:
        return w, await w.dispute_status(trade_id)
    w, d = run_job(s, job)
    emit(s, d, lambda: _dispute_text(w, d))
