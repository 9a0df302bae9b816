// The protocol vectors, computed by the Python implementation (tests/test_app_library.py writes them
// and passes the file's path in GRIDCHAIN_VECTORS), so nothing here is a copy that could drift.
import { readFileSync } from 'node:fs';

let cached = null;

export function vectors() {
  if (!cached) {
    const path = process.env.GRIDCHAIN_VECTORS;
    if (!path) {
      throw new Error('GRIDCHAIN_VECTORS is not set: run `.venv/bin/python -m pytest tests/test_app_library.py`, '
        + 'or write the file with `.venv/bin/python -m tests.test_app_library /tmp/vectors.json` first');
    }
    cached = JSON.parse(readFileSync(path, 'utf8'));
  }
  return cached;
}

/** A value as the Python side writes it in JSON: BigInts as decimal strings, bytes as 0x-hex. */
export function jsonish(value) {
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Uint8Array) return '0x' + Buffer.from(value).toString('hex');
  if (Array.isArray(value)) return value.map(jsonish);
  if (value && typeof value === 'object') {
    const out = {};
    for (const [k, v] of Object.entries(value)) out[k] = jsonish(v);
    return out;
  }
  return value;
}
