/**
 * A small block explorer: the recent blocks (author, extrinsics, time), one block's extrinsics
 * (signer and call decoded by the runtime metadata) and its events (decoded by the library's
 * `chain.events`), and a search by block hash, block number, extrinsic hash or address. The node
 * has no index of extrinsics or addresses, so those searches scan the recent blocks (SCAN_BLOCKS).
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { html } from '../../ui/html.js';
import { short, utc } from '../../ui/format.js';
import { ss58DecodeWithPrefix } from '../../chain/ss58.js';
import { authorOf, decodeExtrinsic, heightOf } from './decode.js';

/** Recent blocks listed. */
export const RECENT = 10;
/** Blocks an extrinsic-hash or address search reads back from the best block. */
export const SCAN_BLOCKS = 200;
/** Blocks read at once while scanning. */
const SCAN_CHUNK = 20;

/** The chain's SS58 encoder for 32-byte accounts. */
export function addressOf(chain) {
  return (bytes) => chain.address(bytes);
}

/** A block by hash, with its extrinsics decoded: `{ number, hash, header, author, time, extrinsics }`, or null. */
export async function readBlock(chain, hash) {
  const b = await chain.call('chain_getBlock', [hash]);
  if (!b) return null;
  const toAddress = addressOf(chain);
  const extrinsics = b.block.extrinsics.map((x, i) => decodeExtrinsic(x, i, chain.metadata, toAddress));
  const stamp = extrinsics.find((x) => x.pallet === 'timestamp' && x.call === 'set');
  return { number: heightOf(b.block.header), hash, header: b.block.header, author: authorOf(b.block.header, toAddress),
    time: stamp ? Math.floor(Number(stamp.args.now_ms) / 1000) : null, extrinsics, justified: Boolean(b.justifications) };
}

/** A block's events, or an `{ error }` naming why they cannot be read (a pruned state, for one). */
async function readEvents(chain, hash) {
  try {
    return { events: await chain.events(hash) };
  } catch (e) {
    return { error: e.message || String(e) };
  }
}

/** The hashes of blocks `first..last` (at most 1000), newest first. */
async function hashesOf(chain, first, last) {
  const numbers = [];
  for (let n = last; n >= Math.max(0, first); n -= 1) numbers.push(n);
  const hashes = numbers.length ? await chain.call('chain_getBlockHash', [numbers]) : [];
  return numbers.map((n, i) => ({ number: n, hash: hashes[i] })).filter((x) => x.hash);
}

/**
 * What `query` finds: `{ block }` for a block hash or number, `{ hits }` (blocks with the matching
 * extrinsics and events) for an extrinsic hash or an address, or `{ error }`.
 */
export async function search(chain, query) {
  const q = query.trim();
  const best = heightOf(await chain.call('chain_getHeader', []));
  if (/^\d+$/.test(q)) {
    const hash = await chain.call('chain_getBlockHash', [Number(q)]);
    return hash ? { block: await readBlock(chain, hash) } : { error: `no block ${q} (the best block is ${best})` };
  }
  const isHash = /^0x[0-9a-fA-F]{64}$/.test(q);
  if (isHash) {
    const block = await readBlock(chain, q.toLowerCase());
    if (block) return { block };
  } else {
    try {
      ss58DecodeWithPrefix(q);
    } catch {
      return { error: `not a block hash, block number, extrinsic hash or address: '${q}'` };
    }
  }
  const hits = [];
  const first = Math.max(0, best - SCAN_BLOCKS + 1);
  const hashes = await hashesOf(chain, first, best);
  for (let i = 0; i < hashes.length; i += SCAN_CHUNK) {
    const found = await Promise.all(hashes.slice(i, i + SCAN_CHUNK).map(async ({ hash }) => {
      const block = await readBlock(chain, hash);
      const exts = block.extrinsics.filter((x) => (isHash ? x.hash === q.toLowerCase() : x.signer === q));
      const r = isHash ? {} : await readEvents(chain, hash);
      const events = (r.events || []).filter((e) => JSON.stringify(e.fields).includes(`"${q}"`));
      return exts.length || events.length ? { block, extrinsics: exts, events } : null;
    }));
    hits.push(...found.filter(Boolean));
    if (isHash && hits.length) break;
  }
  return { hits, scanned: [first, best], isHash };
}

function EventList({ events }) {
  return html`<ul class="event-list">${events.map((e) => html`<li data-testid="event-row">
    <code>${e.pallet}.${e.name}</code>${e.extrinsicIndex != null ? ` (extrinsic ${e.extrinsicIndex})` : ''}
    ${' '}<span class="fields">${Object.entries(e.fields || {}).map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : v}`).join(' ')}</span>
  </li>`)}</ul>`;
}

function ExtrinsicList({ extrinsics }) {
  return html`<ul class="extrinsic-list">${extrinsics.map((x) => html`<li data-testid="extrinsic-row" data-hash=${x.hash}>
    <code>#${x.index} ${x.pallet}.${x.call}</code> <span title=${x.hash}>${short(x.hash)}</span>
    ${x.signed ? html` by <span title=${x.signer}>${short(x.signer)}</span> (nonce ${x.nonce})` : ' (unsigned)'}
    ${x.error ? html` <em>${x.error}</em>` : html` <span class="fields">${Object.entries(x.args || {}).map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : v}`).join(' ')}</span>`}
  </li>`)}</ul>`;
}

/** One block in full: header fields, extrinsics, events. */
export function BlockDetail({ chain, block }) {
  const [ev, setEv] = useState(null);
  useEffect(() => { setEv(null); readEvents(chain, block.hash).then(setEv); }, [chain, block.hash]);
  return html`<article class="block-detail" data-testid="block-detail">
    <h4>Block ${block.number}</h4>
    <dl>
      <dt>Hash</dt><dd><code>${block.hash}</code></dd>
      <dt>Parent</dt><dd><code>${block.header.parentHash}</code></dd>
      <dt>Author</dt><dd>${block.author || '-'}</dd>
      <dt>Time</dt><dd>${block.time == null ? '-' : utc(block.time)}</dd>
      <dt>State root</dt><dd><code>${block.header.stateRoot}</code></dd>
    </dl>
    <h5>Extrinsics (${block.extrinsics.length})</h5>
    <${ExtrinsicList} extrinsics=${block.extrinsics} />
    <h5>Events</h5>
    ${!ev ? html`<p>…</p>` : ev.error ? html`<p role="alert">${ev.error}</p>` : html`<${EventList} events=${ev.events} />`}
  </article>`;
}

/** The recent blocks, following the best head; a click opens one. */
export function Explorer({ chain, best }) {
  const [rows, setRows] = useState([]);
  const [open, setOpen] = useState(null);
  const [query, setQuery] = useState('');
  const [found, setFound] = useState(null);
  const cache = useRef(new Map());
  useEffect(() => {
    if (best == null) return;
    let live = true;
    const known = (hash) => cache.current.get(hash)
      || readBlock(chain, hash).then((b) => { if (b) cache.current.set(hash, b); return b; });
    hashesOf(chain, best - RECENT + 1, best)
      .then((list) => Promise.all(list.map(({ hash }) => known(hash))))
      .then((blocks) => {
        const keep = new Set(blocks.filter(Boolean).map((b) => b.hash));
        for (const h of [...cache.current.keys()]) if (!keep.has(h)) cache.current.delete(h);
        if (live) setRows(blocks.filter(Boolean));
      }, () => {});
    return () => { live = false; };
  }, [chain, best]);
  async function onSearch(e) {
    e.preventDefault();
    if (!query.trim()) return;
    setFound({ busy: true });
    try {
      setFound(await search(chain, query));
    } catch (err) {
      setFound({ error: err.message || String(err) });
    }
  }
  return html`<section class="explorer">
    <h3>Blocks</h3>
    <form class="search-form" onSubmit=${onSearch}>
      <label for="explorer-search">Search by block hash or number, extrinsic hash or address</label>
      <input id="explorer-search" data-testid="explorer-search" value=${query}
        onInput=${(e) => setQuery(e.currentTarget.value)} placeholder="0x… or fM…" />
      <button type="submit" data-testid="explorer-search-submit">Search</button>
    </form>
    ${found && html`<div class="search-result" data-testid="explorer-result">
      ${found.busy && html`<p>Searching…</p>`}
      ${found.error && html`<p role="alert">${found.error}</p>`}
      ${found.block && html`<${BlockDetail} chain=${chain} block=${found.block} />`}
      ${found.hits && html`<p>${found.hits.length ? `Found in ${found.hits.length} block(s)` : 'Nothing found'}${
        ` among blocks ${found.scanned[0]}..${found.scanned[1]}.`}</p>
        ${found.hits.map((h) => html`<div class="hit"><h5><a href="#/network" onClick=${(e) => { e.preventDefault(); setOpen(h.block); }}>
          Block ${h.block.number}</a></h5><${ExtrinsicList} extrinsics=${h.extrinsics} /><${EventList} events=${h.events} /></div>`)}`}
    </div>`}
    <div class="table-scroll" style="overflow-x:auto;max-width:100%"><table>
      <thead><tr><th>Block</th><th>Hash</th><th>Author</th><th>Extrinsics</th><th>Time</th></tr></thead>
      <tbody>${rows.map((b) => html`<tr data-testid="block-row" data-number=${b.number} data-hash=${b.hash}>
        <td><a href="#/network" onClick=${(e) => { e.preventDefault(); setOpen(b); }}>${b.number}</a></td>
        <td title=${b.hash}>${short(b.hash)}</td><td title=${b.author}>${short(b.author)}</td>
        <td>${b.extrinsics.length}</td><td>${b.time == null ? '-' : utc(b.time)}</td></tr>`)}</tbody>
    </table></div>
    ${open && html`<${BlockDetail} chain=${chain} block=${open} />`}
  </section>`;
}
