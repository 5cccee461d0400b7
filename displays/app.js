// Shared by every page: the realtime channel with catch-up, the API, tokens,
// floor state, and small formatting helpers. No framework, no build step.

/** Reconnect delays: fast at first, then at most every 15 s, with jitter so a
 *  hall's screens do not all knock at once after a restart. */
const BACKOFF_MS = [250, 500, 1000, 2000, 4000, 8000, 15000];

/** A WebSocket that failed this many times without ever opening means a
 *  network or proxy that does not pass WebSockets: use server-sent events
 *  (contract §12) instead, with the same resume rules. */
const WS_TRIES_BEFORE_SSE = 2;

/**
 * A channel of contract §4 that never gives up. Floor and hall channels
 * resume with ?after=SEQ, so nothing is missed across drops and restarts.
 * onMessage gets each message (arrays are unpacked) in seq order, at most
 * once; onStatus gets true while connected. Where WebSockets cannot
 * connect, the same channel comes as server-sent events.
 */
export function channel(path, { onMessage, onStatus = () => {}, sequenced = true }) {
  let lastSeq = null;
  let attempt = 0;
  let conn = null;
  let timer = null;
  let stopped = false;
  let opened = false;
  let failures = 0;
  let sse = false;

  function after() {
    return sequenced && lastSeq !== null ? `?after=${lastSeq}` : '';
  }

  function handle(m) {
    if (sequenced) {
      if (m.type === 'snapshot') {
        lastSeq = m.seq;
      } else if (typeof m.seq === 'number') {
        if (lastSeq !== null && m.seq <= lastSeq) return; // seen already
        if (lastSeq !== null && m.seq !== lastSeq + 1) {
          // A gap cannot happen by the contract; if it does, start over.
          conn.close();
          return;
        }
        lastSeq = m.seq;
      }
    }
    onMessage(m);
  }

  function receive(text) {
    let data;
    try { data = JSON.parse(text); } catch { return; }
    for (const m of Array.isArray(data) ? data : [data]) handle(m);
  }

  function retry() {
    onStatus(false);
    if (stopped) return;
    const base = BACKOFF_MS[Math.min(attempt, BACKOFF_MS.length - 1)];
    attempt += 1;
    clearTimeout(timer);
    timer = setTimeout(connect, base / 2 + Math.random() * base / 2);
  }

  function connectWs() {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${proto}//${location.host}${path}${after()}`);
    conn = { close: () => ws.close(), isOpen: () => ws.readyState === WebSocket.OPEN };
    ws.onopen = () => { attempt = 0; opened = true; shown('websocket'); onStatus(true); };
    ws.onmessage = (ev) => receive(ev.data);
    ws.onclose = () => {
      if (!opened && !stopped && typeof EventSource !== 'undefined') {
        failures += 1;
        if (failures >= WS_TRIES_BEFORE_SSE) sse = true;
      }
      retry();
    };
    ws.onerror = () => { /* onclose follows */ };
  }

  function connectSse() {
    const es = new EventSource(`/sse/v1${path.slice('/ws/v1'.length)}${after()}`);
    let open = false;
    // The browser's own reconnection would resume from its last event id;
    // this one resumes from the last message handled, as the socket does.
    const end = () => { if (es.readyState !== EventSource.CLOSED) { es.close(); retry(); } };
    conn = { close: end, isOpen: () => open };
    es.onopen = () => { attempt = 0; open = true; shown('sse'); onStatus(true); };
    es.onmessage = (ev) => receive(ev.data);
    es.onerror = () => { open = false; end(); };
  }

  function connect() {
    if (stopped) return;
    if (sse) connectSse(); else connectWs();
  }

  /** Which transport is up, on the page's root (for staff and tests). */
  function shown(t) { document.documentElement.dataset.transport = t; }

  // A phone waking up should not wait out a long backoff.
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible' && conn && !conn.isOpen()) {
      clearTimeout(timer);
      attempt = 0;
      connect();
    }
  });
  connect();
  return {
    reconnectNow() { clearTimeout(timer); attempt = 0; if (conn) conn.close(); },
    stop() { stopped = true; clearTimeout(timer); if (conn) conn.close(); },
    get lastSeq() { return lastSeq; },
    get transport() { return sse ? 'sse' : 'websocket'; },
  };
}

/** Calls the API; resolves to {status, body}. Network errors become status 0. */
export async function api(method, path, { token, body, key } = {}) {
  const headers = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (key) headers['idempotency-key'] = key;
  try {
    const r = await fetch(`/api/v1${path}`, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch { json = null; }
    return { status: r.status, body: json };
  } catch {
    return { status: 0, body: null };
  }
}

/** A fresh Idempotency-Key. */
export function newKey() {
  return crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random()}`;
}

/**
 * A POST that makes something (a ticket, a booking): keyed, and sent once
 * more with the same key when the network lost the answer, so one tap never
 * makes two.
 */
export async function postOnce(path, { token, body, key = newKey() } = {}) {
  let r = await api('POST', path, { token, body, key });
  if (r.status === 0) r = await api('POST', path, { token, body, key });
  return r;
}

/** A floor as the hall's signs name it: "3F", "B1". */
export function floorLabel(n) { return n < 0 ? `B${-n}` : `${n}F`; }

/** A plain-words message for a failed API call. */
export function problem(res) {
  if (res.status === 0) return '网络连接中断，请稍后重试 · The network is down; try again.';
  const m = res.body && res.body.error && res.body.error.message;
  return m || `请求失败 (${res.status}) · Request failed (${res.status})`;
}

/**
 * The page's token: from a #token=… fragment (kept, then removed from the
 * address bar) or from local storage.
 */
export function storedToken(key) {
  const m = location.hash.match(/token=([^&]+)/);
  if (m) {
    localStorage.setItem(key, decodeURIComponent(m[1]));
    history.replaceState(null, '', location.pathname + location.search);
  }
  return localStorage.getItem(key);
}

export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    // An absent attribute (null): `disabled: cond ? '' : null`.
    if (v === null || v === undefined) continue;
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) {
    if (c !== null && c !== undefined) e.append(c);
  }
  return e;
}

/** "约 12 分钟" / "about 12 min" for an ETA in seconds. */
export function waitText(seconds) {
  if (!seconds) return ['即将叫号', 'soon'];
  const min = Math.max(1, Math.round(seconds / 60));
  return [`约 ${min} 分钟`, `about ${min} min`];
}

export function clock(node) {
  const tick = () => {
    const d = new Date();
    node.textContent = d.toLocaleTimeString('zh-CN', { hour: '2-digit', minute: '2-digit' });
  };
  tick();
  setInterval(tick, 10_000);
}

/** Keeps a floor's state from its snapshot and events (contract §4). */
export class FloorState {
  constructor(snapshot) {
    this.floor = snapshot.floor;
    this.name = snapshot.name;
    this.announce = snapshot.announce;
    this.languages = snapshot.languages || ['zh'];
    this.windows = new Map(snapshot.windows.map((w) => [w.id, { ...w }]));
    this.recent = snapshot.recent.slice(0, 10);
    this.waiting = new Map(snapshot.waiting.map((w) => [w.service, { ...w }]));
  }

  /** Applies an event; returns true when it changed what is shown. */
  apply(e) {
    switch (e.type) {
      case 'called': {
        this.recent = [
          { seq: e.seq, number: e.number, window: e.window, label: e.label, zone: e.zone, at: e.at },
          ...this.recent.filter((r) => r.number !== e.number),
        ].slice(0, 10);
        const w = this.windows.get(e.window);
        if (w) { w.number = e.number; w.status = 'called'; }
        return true;
      }
      case 'ticket': {
        const w = this.windows.get(e.window);
        if (w && w.number === e.number) {
          if (e.status === 'serving') w.status = 'serving';
          else { w.number = null; w.status = null; }
        }
        return true;
      }
      case 'window': {
        const w = this.windows.get(e.window);
        if (w) w.state = e.state;
        return true;
      }
      case 'waiting': {
        const w = this.waiting.get(e.service);
        if (w) w.count = e.count;
        return true;
      }
      default:
        return false;
    }
  }
}

/** Plays announcement audio strictly one after another, in the order given. */
export class AudioQueue {
  constructor(onBlocked) {
    this.queue = [];
    this.playing = false;
    this.blocked = false;
    this.onBlocked = onBlocked;
    this.played = 0;
  }

  push(url) {
    this.queue.push(url);
    this.next();
  }

  /** After a user gesture: try again. */
  unblock() {
    this.blocked = false;
    this.next();
  }

  async next() {
    if (this.playing || this.blocked || this.queue.length === 0) return;
    this.playing = true;
    const url = this.queue[0];
    const audio = new Audio(url);
    try {
      await audio.play();
      await new Promise((resolve) => {
        audio.onended = resolve;
        audio.onerror = resolve;
      });
      this.queue.shift();
      this.played += 1;
    } catch (err) {
      if (err && err.name === 'NotAllowedError') {
        // Autoplay is blocked until someone taps: keep the queue, ask.
        this.blocked = true;
        this.onBlocked();
      } else {
        this.queue.shift(); // a broken clip must not stop the line
      }
    }
    this.playing = false;
    this.next();
  }
}

/** When a board's time (RFC 3339, already in the hall's zone) falls, as
 *  ["12月2日 09:00", "Dec 2, 09:00"]. */
export function hallTime(rfc3339) {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(rfc3339 || '');
  if (!m) return null;
  const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  const [, , mo, d, h, mi] = m;
  return [`${Number(mo)}月${Number(d)}日 ${h}:${mi}`, `${months[Number(mo) - 1]} ${Number(d)}, ${h}:${mi}`];
}

/** "10:30" of an RFC 3339 time already in the hall's zone. */
export function hhmm(rfc3339) { return rfc3339.slice(11, 16); }

/** How often a page rereads the hall's hours: a screen learns of an
 *  opening or closing within this, and at the change itself. */
const HOURS_EVERY_MS = 30_000;

/**
 * Keeps a banner (`#closed`) in step with the hall's opening hours (contract
 * §7): shown while the hall is closed — or, with `tickets`, while it takes
 * no walk-in ticket — with when it opens. Calls `onBoard(board)` on every
 * read. Rereads every 30 s and right after the next change.
 */
export function watchHours(hall, { tickets = false, onBoard = () => {} } = {}) {
  const banner = document.getElementById('closed');
  let timer = null;
  const read = async () => {
    clearTimeout(timer);
    let wait = HOURS_EVERY_MS;
    try {
      const r = await api('GET', `/halls/${hall}`);
      if (r.status === 200) {
        const b = r.body;
        const shut = tickets ? b.takes_tickets === false : b.open === false;
        if (banner) {
          banner.classList.toggle('hidden', !shut);
          const at = hallTime(b.next_open);
          banner.replaceChildren(
            el('div', { class: 'zh' }, tickets ? '暂停取号' : '本厅休息中', at ? ` · ${at[0]} 开放` : ''),
            el('div', { class: 'en' }, tickets ? 'Not taking numbers now' : 'Closed', at ? ` · opens ${at[1]}` : ''));
        }
        onBoard(b);
        const next = Date.parse(b.next_change || '');
        if (next) wait = Math.max(1000, Math.min(wait, next - Date.now() + 1000));
      }
    } finally {
      timer = setTimeout(read, wait);
    }
  };
  read();
  return read;
}

/** The five levels of 好差评 (contract §10), best first: [level, zh, en]. */
export const LEVELS = [
  [5, '非常满意', 'Very satisfied'],
  [4, '满意', 'Satisfied'],
  [3, '基本满意', 'Fair'],
  [2, '不满意', 'Dissatisfied'],
  [1, '非常不满意', 'Very dissatisfied'],
];
