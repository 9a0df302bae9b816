// JSON-RPC 2.0 over one WebSocket (the node's only transport the app uses): requests matched to
// responses by id, batches, and subscriptions whose notifications are routed by subscription id.
// The connection does not reconnect by itself; chain.js owns that policy.

/** An error object the node answered with; `message` is the node's reason, fit for the page. */
export class RpcError extends Error {
  constructor(code, message, data) {
    // the node's message is the sentence ("Invalid Transaction: the account cannot pay the fee");
    // `data` names the kind of refusal, for code that wants to tell them apart
    super(message || (typeof data === 'string' && data) || `error ${code}`);
    this.name = 'RpcError';
    this.code = code;
    this.rpcMessage = message;
    this.data = data;
  }

  static fromJson(err) {
    if (!err || typeof err !== 'object') return new RpcError(-32603, 'malformed error object', null);
    return new RpcError(err.code ?? -32603, String(err.message ?? ''), err.data);
  }
}

/** The connection went away before an answer came. */
export class ConnectionLostError extends Error {
  constructor(message = 'the connection to the node was lost') {
    super(message);
    this.name = 'ConnectionLostError';
  }
}

const EARLY_NOTIFICATIONS_MAX = 64;

export class RpcConnection {
  /**
   * @param url        ws:// or wss:// URL of the node
   * @param WebSocketImpl  the WebSocket class (the browser's by default)
   * @param onClose    called once when the socket closes after it opened
   */
  constructor(url, { WebSocketImpl = globalThis.WebSocket, timeoutMs = 30000, onClose = () => {} } = {}) {
    if (!WebSocketImpl) throw new Error('this environment has no WebSocket');
    this.url = url;
    this.WebSocketImpl = WebSocketImpl;
    this.timeoutMs = timeoutMs;
    this.onClose = onClose;
    this.ws = null;
    this.open = false;
    this.nextId = 1;
    this.pending = new Map();        // id -> {resolve, reject, timer}
    this.subs = new Map();           // subscription id -> callback(result)
    this.early = new Map();          // subscription id -> results that came before its callback
  }

  /** Open the socket; resolves when open, rejects if it fails or closes first. */
  connect() {
    return new Promise((resolve, reject) => {
      let ws;
      try {
        ws = new this.WebSocketImpl(this.url);
      } catch (e) {
        reject(new ConnectionLostError(`cannot open ${this.url}: ${e.message}`));
        return;
      }
      this.ws = ws;
      let opened = false;
      ws.onopen = () => { opened = true; this.open = true; resolve(); };
      ws.onerror = () => { if (!opened) reject(new ConnectionLostError(`the node at ${this.url} does not answer`)); };
      ws.onclose = () => {
        const wasOpen = opened;
        this.#shutdown();
        if (!wasOpen) reject(new ConnectionLostError(`the node at ${this.url} does not answer`));
        else this.onClose();
      };
      ws.onmessage = (ev) => this.#onMessage(ev.data);
    });
  }

  close() {
    if (this.ws) {
      try { this.ws.close(); } catch { /* already closed */ }
    }
    this.#shutdown();
  }

  #shutdown() {
    this.open = false;
    for (const { reject, timer } of this.pending.values()) {
      clearTimeout(timer);
      reject(new ConnectionLostError());
    }
    this.pending.clear();
    const subs = [...this.subs.values()];
    this.subs.clear();
    this.early.clear();
    for (const cb of subs) cb(undefined, new ConnectionLostError());
  }

  #onMessage(data) {
    let obj;
    try {
      obj = JSON.parse(typeof data === 'string' ? data : new TextDecoder().decode(data));
    } catch {
      return;
    }
    for (const item of Array.isArray(obj) ? obj : [obj]) this.#dispatch(item);
  }

  #dispatch(item) {
    if (!item || typeof item !== 'object') return;
    if ('method' in item && !('id' in item)) {
      const params = item.params || {};
      const cb = this.subs.get(params.subscription);
      if (cb) {
        cb(params.result, null);
      } else if (this.early.size < EARLY_NOTIFICATIONS_MAX || this.early.has(params.subscription)) {
        const list = this.early.get(params.subscription) || [];
        list.push(params.result);
        this.early.set(params.subscription, list);
      }
      return;
    }
    const entry = this.pending.get(item.id);
    if (!entry) return;
    this.pending.delete(item.id);
    clearTimeout(entry.timer);
    entry.resolve(item);
  }

  #send(reqs) {
    if (!this.open) return Promise.reject(new ConnectionLostError('not connected to the node'));
    const promises = reqs.map((r) => new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(r.id);
        reject(new RpcError(-32000, `the node did not answer ${r.method} within ${this.timeoutMs / 1000} s`));
      }, this.timeoutMs);
      this.pending.set(r.id, { resolve, reject, timer });
    }));
    this.ws.send(JSON.stringify(reqs.length === 1 ? reqs[0] : reqs));
    return Promise.all(promises);
  }

  #req(method, params) {
    return { jsonrpc: '2.0', id: this.nextId++, method, params: params ?? [] };
  }

  /** One call; resolves to its result, rejects with RpcError or ConnectionLostError. */
  async request(method, params) {
    const [resp] = await this.#send([this.#req(method, params)]);
    if ('error' in resp) throw RpcError.fromJson(resp.error);
    return resp.result;
  }

  /** Several calls in one message; results in order, failures as RpcError objects in place. */
  async batch(calls) {
    if (!calls.length) return [];
    const resps = await this.#send(calls.map(([m, p]) => this.#req(m, p)));
    return resps.map((r) => ('error' in r ? RpcError.fromJson(r.error) : r.result));
  }

  /**
   * Open a subscription; `cb(result, error)` gets each notification, and `(undefined, error)` once
   * if the connection is lost. Resolves to an unsubscribe function.
   */
  async subscribe(method, params, unsubscribeMethod, cb) {
    const id = await this.request(method, params);
    this.subs.set(id, cb);
    const early = this.early.get(id) || [];
    this.early.delete(id);
    for (const r of early) cb(r, null);
    return () => {
      if (!this.subs.delete(id)) return Promise.resolve(false);
      return this.request(unsubscribeMethod, [id]).catch(() => false);
    };
  }
}
