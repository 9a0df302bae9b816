/**
 * The household view's reads, all over JSON-RPC: the `energy_*` methods for zones, books, orders,
 * trades and meters (docs/rpc.md §3.7), and metadata-decoded storage (chain library's `storage`)
 * for balances, tariffs, standing orders and certificates. Maps with no RPC method of their own
 * (the account's meters, standing orders and certificates) are enumerated as the wallet does, with
 * the library's `entries` (`state_getKeysPaged` under the item's prefix, keys read back from behind
 * their hashes, docs/protocol.md §6).
 */

/** What a household pays its retailer per kWh from the grid, for comparison only (the chain has no
 * retail prices): 0.30 GEUR/kWh, the reference the meter simulator's reports use. */
export const RETAIL_REFERENCE_PER_KWH = 300_000;

const PAGE = 1000;

/** The list a paged `energy_*` method answers, every page of it (at most `maxPages`). */
export async function allPages(chain, method, params, maxPages = 20) {
  const items = [];
  let cursor = null;
  for (let i = 0; i < maxPages; i++) {
    const page = await chain.call(method, cursor ? { ...params, limit: PAGE, cursor } : { ...params, limit: PAGE });
    items.push(...page.items);
    if (!page.next) break;
    cursor = page.next;
  }
  return items;
}

/** The account's certified meters (`energy_meter` shapes), found by scanning `metering.meters`. */
export async function myMeters(chain, address) {
  const all = await chain.entries('metering', 'meters');
  const mine = all.filter((e) => e.value && e.value.owner === address).map((e) => e.keys[0]);
  return (await Promise.all(mine.map((id) => chain.call('energy_meter', [id])))).filter(Boolean);
}

/** A meter's `kind` can back this side: bids need import, asks export. */
export function meterServes(meter, side) {
  return meter.status === 'active' && (meter.kind === 'bidirectional' || meter.kind === (side === 'bid' ? 'import' : 'export'));
}

/** Native and stablecoin balances, and the GEUR locked in open bids. */
export async function balances(chain, address) {
  const asset = chain.properties.stablecoin.assetId;
  const [info, geur, orders] = await Promise.all([
    chain.storage('system', 'account', address),
    chain.storage('balances', 'asset_balance', asset, address),
    chain.call('energy_orders', [address]),
  ]);
  const locked = orders.reduce((s, o) => s + BigInt(o.escrowLocked), 0n);
  return { native: info || { nonce: 0, free: 0, reserved: 0 }, geur: geur ?? 0, locked, orders };
}

/** Certificates the account holds and has retired (Wh), over every token (zone, interval). */
export async function certificates(chain, address) {
  const total = async (item) => (await chain.entries('certificates', item))
    .filter((e) => e.keys[1] === address)
    .reduce((sum, e) => sum + BigInt(e.value ?? 0), 0n);
  const [heldWh, retiredWh] = await Promise.all([total('balance'), total('retired')]);
  return { heldWh, retiredWh };
}

/** The account's standing orders with their windows (runtime version 2), by id. */
export async function myStanding(chain, address) {
  const ids = (await chain.entries('market', 'standing_of', [address], { limit: 64 })).map((e) => e.keys[1]);
  ids.sort((x, y) => Number(x) - Number(y));
  const windowed = hasStandingWindows(chain);
  const rows = await Promise.all(ids.map(async (id) => {
    const so = await chain.storage('market', 'standing_orders', id);
    const window = windowed ? await chain.storage('market', 'standing_windows', id) : null;
    return so && { standingId: id, ...so, window };
  }));
  return rows.filter(Boolean);
}

/** Whether the runtime has time-of-day windows for standing orders (spec version 2's call). */
export function hasStandingWindows(chain) {
  const market = chain.metadata.pallets.find((p) => p.name === 'market');
  return !!market && market.calls.some((c) => c.name === 'set_standing_order_window');
}

/** The band of a unix time under `tou_bands` ([[start second of the UTC day, band]]), as grid.band_of. */
export function bandOf(bands, ts) {
  const second = ((Number(ts) % 86400) + 86400) % 86400;
  let band = bands.length ? bands[0][1] : 0;
  for (const [start, b] of bands) {
    if (start > second) break;
    band = b;
  }
  return band;
}

/** The local grid fee (zone to itself) per kWh for each interval in `starts`; null where no tariff is set. */
export async function localFees(chain, zone, starts) {
  const bands = (await chain.storage('grid', 'tou_bands')) || [[0, 0]];
  const byBand = new Map();
  for (const [, b] of bands) {
    if (!byBand.has(b)) byBand.set(b, await chain.storage('grid', 'tariffs', [zone, zone], b));
  }
  return starts.map((t) => byBand.get(bandOf(bands, t)) ?? null);
}

/** A market constant (min/max price and quantity, gate closure, …) from the metadata. */
export function marketConstant(chain, name) {
  return Number(chain.constant('market', name));
}

/** Seconds kept between chain time and an interval's gate, so an order signed now still lands before it. */
export const GATE_MARGIN_S = 10;

/** Whether orders for the interval starting at `t` are still taken (the market's gate rule, with the margin). */
export function gateOpen(chain, t, nowS) {
  const step = Number(chain.constant('grid', 'interval_s'));
  const ahead = marketConstant(chain, 'max_intervals_ahead');
  return t % step === 0 && nowS + GATE_MARGIN_S < t - marketConstant(chain, 'gate_closure_s')
    && t <= nowS - (nowS % step) + ahead * step;
}

/** The next `count` interval starts whose gate is open, soonest first. */
export function comingIntervals(chain, nowS, count) {
  const step = Number(chain.constant('grid', 'interval_s'));
  const out = [];
  for (let t = nowS - (nowS % step) + step; out.length < count; t += step) {
    if (!gateOpen(chain, t, nowS)) {
      if (out.length || t > nowS + 2 * step + marketConstant(chain, 'gate_closure_s')) break;
      continue;
    }
    out.push(t);
  }
  return out;
}
