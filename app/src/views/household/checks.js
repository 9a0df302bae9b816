/**
 * The order form's checks before anything is signed, each a sentence for the page (null when the
 * order may go): terms within the market's limits (metadata constants `min_price_per_kwh`,
 * `max_price_per_kwh`, `min_quantity_wh`, `max_quantity_wh`), a coming interval whose gate is open
 * by chain time, a zone that is not paused, a meter of the account able to serve the side and rated
 * for the quantity, and an escrow the free GEUR covers. The chain checks all of these again; these spare the fee.
 */
import { parseEnergy, parsePrice } from '../../chain/index.js';
import { energy, money as fmtMoney, price, utc } from '../../ui/format.js';
import { gateOpen, marketConstant, meterServes } from './data.js';

/** A bid's escrow as the market computes it: quantity x all-in limit, rounded down (cost()). */
export function escrowFor(wh, pricePerKwh) {
  return (BigInt(wh) * BigInt(pricePerKwh)) / 1000n;
}

/** Quantity typed in kWh ("1.2", "1.2kWh") or with its unit ("500Wh"), in Wh. */
export function parseQuantityKwh(text) {
  const t = String(text).trim();
  return parseEnergy(/^\d+(\.\d+)?$/.test(t) ? `${t}kWh` : t);
}

/** `{ price, wh, escrow }` parsed from the form, or `{ error }` with the first reason it cannot be. */
export function parseTerms(chain, priceText, quantityText, side) {
  const coin = chain.properties.stablecoin;
  const money = { decimals: coin.decimals, symbol: coin.symbol };
  let p; let wh;
  try { p = parsePrice(priceText, coin.decimals, coin.symbol); } catch (e) { return { error: e.message }; }
  try { wh = parseQuantityKwh(quantityText); } catch (e) { return { error: e.message }; }
  const [minP, maxP] = [marketConstant(chain, 'min_price_per_kwh'), marketConstant(chain, 'max_price_per_kwh')];
  const [minQ, maxQ] = [marketConstant(chain, 'min_quantity_wh'), marketConstant(chain, 'max_quantity_wh')];
  if (BigInt(p) < BigInt(minP) || BigInt(p) > BigInt(maxP)) {
    return { error: `The price must lie between ${price(minP, money)} and ${price(maxP, money)}.` };
  }
  if (BigInt(wh) < BigInt(minQ) || BigInt(wh) > BigInt(maxQ)) {
    return { error: `The quantity must lie between ${energy(minQ)} and ${energy(maxQ)}.` };
  }
  return { price: p, wh, escrow: side === 'bid' ? escrowFor(wh, p) : 0n };
}

/** Energy a meter's rated power can move in one interval, rounded down, as the market's
 * `wh_in_interval` computes it (pallets/market/capacity.py). */
export function meterIntervalWh(ratedPowerW, intervalS) {
  return (BigInt(ratedPowerW) * BigInt(intervalS)) / 3600n;
}

/** The meter an order of `side` in `zone` goes on: the account's active one there that can serve it. */
export function orderMeter(meters, zone, side) {
  return meters.find((m) => Number(m.zone) === Number(zone) && meterServes(m, side)) || null;
}

/**
 * Why this order must not be sent (a sentence), or null. `free` is the free GEUR balance (smallest
 * units), `nowS` chain time.
 */
export function orderProblem(chain, { side, zone, interval, terms, zones, meters, free, nowS }) {
  const z = zones.find((x) => Number(x.zone) === Number(zone));
  if (!z) return 'Choose a zone.';
  if (z.paused) return `Zone ${z.zone} (${z.name}) is paused by its DSO: no orders are taken there now.`;
  if (!interval) return 'Choose a coming delivery interval.';
  if (!gateOpen(chain, Number(interval), nowS)) {
    return `The gate for the interval starting at ${utc(interval)} has closed: choose a coming interval.`;
  }
  if (terms.error) return terms.error;
  const meter = orderMeter(meters, zone, side);
  if (!meter) {
    return `You have no active meter in zone ${z.zone} that can ${side === 'bid' ? 'import (needed to buy)' : 'export (needed to sell)'}.`;
  }
  const most = meterIntervalWh(meter.ratedPowerW, Number(chain.constant('grid', 'interval_s')));
  if (BigInt(terms.wh) > most) {
    return `Your meter in zone ${z.zone} is rated ${meter.ratedPowerW} W: it can move at most ${energy(most)} in one `
      + `interval, less than ${energy(terms.wh)}.`;
  }
  if (side === 'bid' && terms.escrow > BigInt(free ?? 0)) {
    const coin = chain.properties.stablecoin;
    return `The escrow of ${fmtMoney(terms.escrow, coin)} (${energy(terms.wh)} at ${price(terms.price, coin)}) is more than `
      + `your free ${fmtMoney(free ?? 0, coin)}.`;
  }
  return null;
}
