/**
 * The regulator's report: every trade delivered in a range of intervals, with its grid fee and
 * penalties, as CSV with the columns of `gridchain report trades` (node/cli.py REPORT_COLUMNS),
 * built in the browser from `energy_intervalTrades`, paged with its cursor so every page reads the
 * same block. The data is public: anyone may download it.
 */
import { useState } from 'preact/hooks';
import { html } from '../../ui/html.js';
import { useFinalized } from '../../ui/live.js';

/** The report's columns, in order (node/cli.py REPORT_COLUMNS). */
export const REPORT_COLUMNS = ['tradeId', 'intervalStart', 'seller', 'buyer', 'fromZone', 'toZone', 'wh',
  'pricePerKwh', 'feePerKwh', 'amount', 'feeAmount', 'status', 'deliveredWh', 'paidSeller', 'feeToDso',
  'refundBuyer', 'penalty', 'atFault', 'certificatesRetiredWh'];
/** Trades asked for per call (the node's maximum page). */
const PAGE = 1000;

/** One CSV field as Python's csv module writes it (quoted only when it must be). */
function field(v) {
  const s = v == null ? '' : typeof v === 'boolean' ? (v ? 'True' : 'False') : String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** The CSV text of trades as `energy_intervalTrades` gives them (outcome fields merged into the row). */
export function tradesCsv(trades) {
  const lines = [REPORT_COLUMNS.join(',')];
  for (const t of trades) {
    const merged = { ...t, ...(t.outcome || {}) };
    lines.push(REPORT_COLUMNS.map((k) => field(merged[k])).join(','));
  }
  return `${lines.join('\r\n')}\r\n`;
}

/** Every trade of intervals `from..to`, all pages read at the block of the first: `{ items, at }`. */
export async function fetchTrades(chain, from, to, pageSize = PAGE) {
  const items = [];
  let cursor = null;
  let at = null;
  do {
    const params = { fromInterval: from, toInterval: to, limit: pageSize };
    if (cursor) params.cursor = cursor;
    const page = await chain.call('energy_intervalTrades', params);
    items.push(...page.items);
    at = at || page.at;
    cursor = page.next;
  } while (cursor);
  return { items, at };
}

/** "2026-12-08T03:45" (a datetime-local value, read as UTC) -> unix seconds, or null. */
function parseUtc(text) {
  const t = Date.parse(`${text}Z`);
  return Number.isFinite(t) ? Math.floor(t / 1000) : null;
}

function isoMinute(ts) {
  return new Date(ts * 1000).toISOString().slice(0, 16);
}

/** The range form and the download; the file is made in the page, nothing goes to a server. */
export function Regulator({ chain }) {
  const head = useFinalized();
  const day = head ? Math.floor(head.nowS / 86400) * 86400 : null;
  const [from, setFrom] = useState('');
  const [to, setTo] = useState('');
  const [msg, setMsg] = useState(null);
  const [busy, setBusy] = useState(false);
  const fromText = from || (day != null ? isoMinute(day) : '');
  const toText = to || (day != null ? isoMinute(day + 86400 - 900) : '');
  async function download(e) {
    e.preventDefault();
    const a = parseUtc(fromText);
    const b = parseUtc(toText);
    if (a == null || b == null) { setMsg('give the first and last interval as UTC date and time'); return; }
    if (b < a) { setMsg('the last interval is before the first'); return; }
    setBusy(true);
    setMsg('reading the trades…');
    try {
      const { items, at } = await fetchTrades(chain, a, b);
      const blob = new Blob([tradesCsv(items)], { type: 'text/csv' });
      const link = document.createElement('a');
      link.href = URL.createObjectURL(blob);
      link.download = `trades-${a}-${b}.csv`;
      document.body.appendChild(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 10000);
      setMsg(`${items.length} trade(s) (state at block ${at})`);
    } catch (err) {
      setMsg(`failed: ${err.message || err}`);
    } finally {
      setBusy(false);
    }
  }
  return html`<section class="regulator">
    <h3>Regulator: trades, fees and penalties</h3>
    <form onSubmit=${download}>
      <label>First interval (UTC) <input type="datetime-local" step="900" value=${fromText}
        data-testid="regulator-from" onInput=${(e) => setFrom(e.currentTarget.value)} /></label>
      <label>Last interval (UTC) <input type="datetime-local" step="900" value=${toText}
        data-testid="regulator-to" onInput=${(e) => setTo(e.currentTarget.value)} /></label>
      <button type="submit" data-testid="regulator-csv" disabled=${busy || !chain}>Download CSV</button>
    </form>
    ${msg && html`<p role="status" data-testid="regulator-status">${msg}</p>`}
  </section>`;
}
