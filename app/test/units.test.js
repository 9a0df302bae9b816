// Units as the wallet reads and writes them (wallet/units.py): exact, never floats.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  UnitError, formatEnergy, formatMoney, formatPower, formatPrice, parseEnergy, parseMoney, parsePower, parsePrice,
} from '../src/chain/index.js';

test('money: GEUR with 6 decimals', () => {
  assert.equal(parseMoney('12.5'), 12500000);
  assert.equal(parseMoney('12.5 GEUR'), 12500000);
  assert.equal(parseMoney('0.000001geur'), 1);
  assert.equal(formatMoney(12500000), '12.5 GEUR');
  assert.equal(formatMoney(1234567890123), '1,234,567.890123 GEUR');
  assert.equal(parseMoney('18446744073709.551615'), 2n ** 64n - 1n);
  assert.throws(() => parseMoney('0.0000001'), /more decimal places than the smallest unit allows \(6\)/);
  assert.throws(() => parseMoney('12.5 GRID'), /is in GRID, but this asset is GEUR/);
  assert.throws(() => parseMoney('-1'), UnitError);
  assert.throws(() => parseMoney('18446744073709.551616'), /too large/);
  assert.throws(() => parseMoney('twelve'), /not an amount/);
});

test('energy, power and prices', () => {
  assert.equal(parseEnergy('1.2kWh'), 1200);
  assert.equal(parseEnergy('500Wh'), 500);
  assert.equal(parseEnergy('500'), 500);
  assert.equal(parseEnergy('0.25 MWh'), 250000);
  assert.throws(() => parseEnergy('1.2345kWh'), /not a whole number of Wh/);
  assert.throws(() => parseEnergy('5 kW'), /not an energy quantity/);
  assert.equal(formatEnergy(500), '500 Wh');
  assert.equal(formatEnergy(1200), '1.2 kWh');
  assert.equal(formatEnergy(2500000), '2,500 kWh');
  assert.equal(parsePower('250kW'), 250000);
  assert.equal(formatPower(1500000), '1,500 kW');
  assert.equal(parsePrice('0.12'), 120000);
  assert.equal(parsePrice('0.12 GEUR/kWh'), 120000);
  assert.equal(formatPrice(120000), '0.12 GEUR/kWh');
  assert.throws(() => parsePrice('0.12 USD/kWh'), /in USD, but the market trades in GEUR/);
});

test('what is formatted parses back to the same units', () => {
  const samples = [0, 1, 7, 999, 1000, 1001, 120000, 12500000, 987654321012, 2 ** 53 - 1, 2n ** 53n + 1n, 2n ** 64n - 1n];
  for (const n of samples) {
    const big = BigInt(n);
    assert.equal(BigInt(parseMoney(formatMoney(n))), big, `money ${n}`);
    assert.equal(BigInt(parsePrice(formatPrice(n))), big, `price ${n}`);
    assert.equal(BigInt(parseEnergy(formatEnergy(n))), big, `energy ${n}`);
    assert.equal(BigInt(parsePower(formatPower(n))), big, `power ${n}`);
  }
});
