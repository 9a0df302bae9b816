"""How each zone trades: continuously (the default), by call auction, or coupled with the other zones
of its region (see "Call auction" and "Coupled clearing" in the package docstring). Both sets are
fixed in genesis. Matching, placement and gate closure ask here, so the rule lives in one place."""
from __future__ import annotations

from pallets.market.state import ASK, BID, Error, book, call_auction_zones, coupled_regions
from pallets.market_engine import OWNER
from runtime.pallet import ensure

CONTINUOUS, CALL_AUCTION, COUPLED = "continuous", "call_auction", "coupled"


def is_call_auction_zone(zone: int) -> bool:
    return zone in call_auction_zones.get()


def region_of(zone: int) -> int | None:
    """The index of the coupled region a zone belongs to, or None."""
    for index, zones in enumerate(coupled_regions.get()):
        if zone in zones:
            return index
    return None


def coupled_zones() -> set[int]:
    return {z for zones in coupled_regions.get() for z in zones}


def zone_mode(zone: int) -> str:
    if is_call_auction_zone(zone):
        return CALL_AUCTION
    return COUPLED if region_of(zone) is not None else CONTINUOUS


def trades_at_gate_closure(zone: int) -> bool:
    """Orders in this zone rest until gate closure instead of matching when placed."""
    return zone_mode(zone) != CONTINUOUS


def ensure_one_side_in_region(who: bytes, zone: int, interval_start: int, side: int) -> None:
    """No self-trade in a coupled clearing: a participant's orders in a region for one interval are
    all bids or all asks. Refused at placement (a sealed auction has no "later" order to skip), so
    the clearing never has to split an owner's own supply from its own demand."""
    region = region_of(zone)
    if region is None:
        return
    other = ASK if side == BID else BID
    for z in coupled_regions.get()[region]:
        ensure(all(e[OWNER] != who for e in book.get((z, interval_start, other))), Error.BothSidesInRegion)
