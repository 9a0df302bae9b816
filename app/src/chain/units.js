// Human units in, chain units out (and back), as wallet/units.py: money in the stablecoin's smallest
// unit (GEUR has 6 decimals), energy in Wh, power in W, prices in smallest units per kWh. Parsing is
// exact (decimal strings, never floats), so what the user typed is what is signed. Results are
// Numbers when safe and BigInts past 2^53 (codec.js); formatters take either.
import { normalizeInt } from './codec.js';

export const STABLECOIN_DECIMALS = 6;
export const STABLECOIN_SYMBOL = 'GEUR';
const U64_MAX = (1n << 64n) - 1n;

/** Text that is not a valid amount, energy, price or power; the message says what is expected. */
export class UnitError extends Error {
  constructor(message) {
    super(message);
    this.name = 'UnitError';
  }
}

const NUMBER = String.raw`(\d[\d_,]*(?:\.[\d_]*)?|\.\d[\d_]*)`;
const AMOUNT = new RegExp(String.raw`^${NUMBER}\s*([A-Za-z][A-Za-z0-9]*)?$`);
const ENERGY = new RegExp(String.raw`^${NUMBER}\s*([kKmM]?[wW][hH])?$`);
const POWER = new RegExp(String.raw`^${NUMBER}\s*([kKmM]?[wW])?$`);
const PRICE = new RegExp(String.raw`^${NUMBER}\s*([A-Za-z][A-Za-z0-9]*)?\s*(?:/\s*([kK][wW][hH]))?$`);

function scaled(num, decimals, what, text) {
  const clean = num.replaceAll('_', '').replaceAll(',', '');
  const [whole, fracRaw = ''] = clean.split('.');
  const frac = fracRaw.replace(/0+$/, '');
  if (frac.length > decimals) {
    throw new UnitError(`${what} "${text}" has more decimal places than the smallest unit allows (${decimals})`);
  }
  const value = BigInt(whole || '0') * 10n ** BigInt(decimals) + BigInt(frac.padEnd(decimals, '0') || '0');
  if (value > U64_MAX) throw new UnitError(`${what} "${text}" is too large`);
  return normalizeInt(value);
}

function big(n, what) {
  if (typeof n === 'bigint') return n;
  if (typeof n === 'number' && Number.isSafeInteger(n)) return BigInt(n);
  if (typeof n === 'string' && /^\d+$/.test(n)) return BigInt(n);
  throw new UnitError(`${what}: ${n} is not a whole number of units`);
}

function grouped(n) {
  return n.toString().replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** `12500000` (decimals 6) -> `12.5`; with a symbol `12.5 GEUR`. Never rounded, no trailing zeros. */
export function formatAmount(units, decimals, symbol = null) {
  const v = big(units, 'amount');
  const neg = v < 0n;
  const abs = neg ? -v : v;
  const scale = 10n ** BigInt(decimals);
  const whole = abs / scale;
  const frac = abs % scale;
  let text = (neg ? '-' : '') + grouped(whole);
  if (frac) text += '.' + frac.toString().padStart(decimals, '0').replace(/0+$/, '');
  return symbol ? `${text} ${symbol}` : text;
}

/** `12.5`, `12.5GEUR` or `12.5 GEUR` (decimals 6) -> 12500000 smallest units. */
export function parseAmount(text, decimals, symbol = null) {
  const m = AMOUNT.exec(String(text).trim());
  if (!m) {
    throw new UnitError(`not an amount: "${text}" (expected a non-negative decimal number, e.g. 12.5${symbol ? ` or 12.5 ${symbol}` : ''})`);
  }
  if (m[2] && symbol && m[2].toUpperCase() !== symbol.toUpperCase()) {
    throw new UnitError(`amount "${text}" is in ${m[2]}, but this asset is ${symbol}`);
  }
  return scaled(m[1], decimals, 'amount', text);
}

/** Stablecoin units as text: 12500000 -> `12.5 GEUR`. */
export function formatMoney(units, decimals = STABLECOIN_DECIMALS, symbol = STABLECOIN_SYMBOL) {
  return formatAmount(units, decimals, symbol);
}

/** `12.5` or `12.5 GEUR` -> 12500000 stablecoin units. */
export function parseMoney(text, decimals = STABLECOIN_DECIMALS, symbol = STABLECOIN_SYMBOL) {
  return parseAmount(text, decimals, symbol);
}

/** `1.2kWh` -> 1200, `500Wh` or `500` -> 500 (Wh); `0.25MWh` -> 250000. */
export function parseEnergy(text) {
  const m = ENERGY.exec(String(text).trim());
  if (!m) throw new UnitError(`not an energy quantity: "${text}" (expected e.g. 500Wh, 1.2kWh or 500)`);
  const digits = { wh: 0, kwh: 3, mwh: 6 }[(m[2] || 'wh').toLowerCase()];
  try {
    return scaled(m[1], digits, 'energy', text);
  } catch {
    throw new UnitError(`energy "${text}" is not a whole number of Wh (or is too large)`);
  }
}

/** 500 -> `500 Wh`, 1200 -> `1.2 kWh`, 2500000 -> `2,500 kWh`. */
export function formatEnergy(wh) {
  const v = big(wh, 'energy');
  if (v < 1000n && v > -1000n) return `${v} Wh`;
  return formatAmount(v, 3, 'kWh');
}

/** `250kW` -> 250000, `1.5MW` -> 1500000, `800W` or `800` -> 800 (W). */
export function parsePower(text) {
  const m = POWER.exec(String(text).trim());
  if (!m) throw new UnitError(`not a power: "${text}" (expected e.g. 250kW, 1.5MW, 800W or 800)`);
  const digits = { w: 0, kw: 3, mw: 6 }[(m[2] || 'w').toLowerCase()];
  try {
    return scaled(m[1], digits, 'power', text);
  } catch {
    throw new UnitError(`power "${text}" is not a whole number of W (or is too large)`);
  }
}

/** 800 -> `800 W`, 250000 -> `250 kW`. */
export function formatPower(w) {
  const v = big(w, 'power');
  if (v < 1000n && v > -1000n) return `${v} W`;
  return formatAmount(v, 3, 'kW');
}

/** A price in GEUR per kWh, `0.12`, `0.12 GEUR` or `0.12 GEUR/kWh` -> 120000 smallest units per kWh. */
export function parsePrice(text, decimals = STABLECOIN_DECIMALS, symbol = STABLECOIN_SYMBOL) {
  const m = PRICE.exec(String(text).trim());
  if (!m) {
    throw new UnitError(`not a price: "${text}" (expected ${symbol || 'currency units'} per kWh, e.g. 0.12 or 0.12 ${symbol || ''}/kWh)`.replace(' /', '/'));
  }
  if (m[2] && symbol && m[2].toUpperCase() !== symbol.toUpperCase()) {
    throw new UnitError(`price "${text}" is in ${m[2]}, but the market trades in ${symbol}`);
  }
  return scaled(m[1], decimals, 'price', text);
}

/** 120000 -> `0.12 GEUR/kWh`. */
export function formatPrice(unitsPerKwh, decimals = STABLECOIN_DECIMALS, symbol = STABLECOIN_SYMBOL) {
  return `${formatAmount(unitsPerKwh, decimals, symbol)}/kWh`;
}
