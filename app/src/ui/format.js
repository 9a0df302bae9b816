/**
 * Display formatting for the views: chain integers (money in smallest units, energy in Wh, prices
 * in smallest units per kWh, unix seconds) to short text, exactly (BigInt, no floats), and UTC
 * times as the wallet prints them. Parsing what the user types is the chain library's units.js.
 */

/** `value` (smallest units, number | bigint | string) as a decimal with `decimals` places, trailing zeros cut. */
export function fixed(value, decimals) {
  let v = BigInt(value ?? 0);
  const neg = v < 0n;
  if (neg) v = -v;
  const base = 10n ** BigInt(decimals);
  const whole = (v / base).toLocaleString('en-US');
  let frac = (v % base).toString().padStart(decimals, '0').replace(/0+$/, '');
  return `${neg ? '-' : ''}${whole}${frac ? `.${frac}` : ''}`;
}

/** Money in the stablecoin (default 6 decimals, GEUR). */
export function money(value, { decimals = 6, symbol = 'GEUR' } = {}) {
  return `${fixed(value, decimals)} ${symbol}`;
}

/** A price in smallest units per kWh as "0.11 GEUR/kWh". */
export function price(perKwh, { decimals = 6, symbol = 'GEUR' } = {}) {
  return `${fixed(perKwh, decimals)} ${symbol}/kWh`;
}

/** Energy in Wh: below 1 kWh in Wh ("500 Wh"), else kWh with up to 3 places ("1.2 kWh"). */
export function energy(wh) {
  const v = BigInt(wh ?? 0);
  return v < 1000n && v > -1000n ? `${v} Wh` : `${fixed(v, 3)} kWh`;
}

/** Unix seconds as "2026-11-25 02:45 UTC". */
export function utc(ts) {
  return `${new Date(Number(ts) * 1000).toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

/** Unix seconds as "02:45" (UTC time of day). */
export function hhmm(ts) {
  return new Date(Number(ts) * 1000).toISOString().slice(11, 16);
}

/** Seconds of the UTC day as "HH:MM" (86400 as "24:00"). */
export function secondsOfDay(s) {
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return `${String(h).padStart(2, '0')}:${String(m).padStart(2, '0')}`;
}

/** "HH:MM" to seconds of the day; "24:00" is 86400; null if malformed. */
export function parseTimeOfDay(text) {
  const m = /^(\d{1,2}):(\d{2})$/.exec(String(text).trim());
  if (!m) return null;
  const s = Number(m[1]) * 3600 + Number(m[2]) * 60;
  return Number(m[2]) < 60 && s <= 86400 ? s : null;
}

/** A short form of an address or hex: first 6 and last 4 characters. */
export function short(text) {
  const s = String(text ?? '');
  return s.length > 14 ? `${s.slice(0, 6)}…${s.slice(-4)}` : s;
}

/** 0x-hex of bytes (Uint8Array | number[]), or the string as is if it already is text. */
export function hex(bytes) {
  if (typeof bytes === 'string') return bytes;
  return `0x${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}
