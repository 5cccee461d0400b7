// The hall's dashboard (contract §11): live counts from the hall channel,
// today's charts (SVG drawn by the server), the rankings of the last 30
// days, and the follow-up cases still open. Admin token, kept as the
// console keeps its own.
import { FloorState, LEVELS, api, channel, clock, el, problem, storedToken } from './app.js';

const hall = location.pathname.split('/')[2];
const key = `hallcast.token.admin.${hall}`;
/** Charts, rankings and cases are read again this often. */
const REFRESH_MS = 60_000;

let token = storedToken(key);
let names = {};
let labels = {};
/** Live state from the hall channel: each floor's, as the screens keep it. */
const floors = new Map();
let started = false;

function signIn(message) {
  document.getElementById('app').classList.add('hidden');
  document.getElementById('signin').classList.remove('hidden');
  document.getElementById('signin-msg').textContent = message || '';
}

document.getElementById('token-save').addEventListener('click', () => {
  token = document.getElementById('token-input').value.trim();
  localStorage.setItem(key, token);
  start();
});
document.getElementById('signout').addEventListener('click', () => { localStorage.removeItem(key); token = null; signIn(); });

function pct(rate) { return rate === null || rate === undefined ? '–' : `${Math.round(rate * 1000) / 10}%`; }
function mins(s) { return s === null || s === undefined ? '–' : `${Math.round(s / 6) / 10} 分`; }

function daysBefore(day, n) {
  const d = new Date(`${day}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() - n);
  return d.toISOString().slice(0, 10);
}

function renderLive() {
  let serving = 0; let open = 0; let paused = 0;
  // A service shows on every floor that takes from it: counted once.
  const waiting = new Map();
  for (const f of floors.values()) {
    for (const w of f.windows.values()) {
      if (w.state === 'paused') paused += 1; else open += 1;
      if (w.number) serving += 1;
    }
    for (const [s, w] of f.waiting) waiting.set(s, w.count);
  }
  let total = 0;
  for (const c of waiting.values()) total += c;
  document.getElementById('k-waiting').textContent = String(total);
  document.getElementById('k-serving').textContent = String(serving);
  document.getElementById('k-open').textContent = String(open);
  document.getElementById('k-paused').textContent = String(paused);
  document.getElementById('waiting').replaceChildren(...[...waiting.entries()].map(([s, c]) =>
    el('tr', {}, el('td', {}, names[s] || s), el('td', { class: 'n', 'data-service': s }, String(c)))));
}

function onMessage(m) {
  if (m.type === 'snapshot') {
    floors.clear();
    for (const f of m.floors) floors.set(f.floor, new FloorState(f));
  } else if (floors.has(m.floor)) {
    floors.get(m.floor).apply(m);
  }
  renderLive();
}

async function chart(kind) {
  // Without dates: today in the hall's zone.
  const r = await fetch(`/api/v1/halls/${hall}/stats/chart.svg?kind=${kind}`, { headers: { authorization: `Bearer ${token}` } });
  if (!r.ok) return;
  // Our own server's SVG (no script, text escaped), inserted as markup.
  document.getElementById(`chart-${kind}`).innerHTML = await r.text();
}

async function refresh() {
  // Without dates the statistics are of today in the hall's zone; its
  // `from` names that day for the month's range.
  const todayStats = await api('GET', `/halls/${hall}/stats`, { token });
  if (todayStats.status === 401 || todayStats.status === 403) return signIn(problem(todayStats));
  if (todayStats.status !== 200) return;
  const day = todayStats.body.from;
  const [month, cases] = await Promise.all([
    api('GET', `/halls/${hall}/stats?from=${daysBefore(day, 29)}&to=${day}`, { token }),
    api('GET', `/halls/${hall}/cases`, { token }),
    chart('issued'),
    chart('waits'),
  ]);
  document.getElementById('k-issued').textContent = String(todayStats.body.totals.issued);
  document.getElementById('k-rate').textContent = pct(todayStats.body.totals.positive_rate);
  if (month.status === 200) {
    const ws = [...month.body.by_window].sort((a, b) => b.served - a.served || (b.positive_rate ?? -1) - (a.positive_rate ?? -1));
    document.getElementById('rank-windows').replaceChildren(...ws.slice(0, 10).map((w) => el('tr', {},
      el('td', {}, labels[w.window] || w.window), el('td', { class: 'n' }, String(w.served)),
      el('td', { class: 'n' }, mins(w.service_seconds.p50)), el('td', { class: 'n' }, pct(w.positive_rate)))));
    const ss = [...month.body.by_service].sort((a, b) => b.issued - a.issued);
    document.getElementById('rank-services').replaceChildren(...ss.map((s) => el('tr', {},
      el('td', {}, names[s.service] || s.service), el('td', { class: 'n' }, String(s.issued)),
      el('td', { class: 'n' }, mins(s.wait_seconds.p50)), el('td', { class: 'n' }, pct(s.positive_rate)))));
  }
  if (cases.status === 200) {
    const open = cases.body.filter((c) => c.status !== 'closed');
    // Overdue first, then the soonest due.
    open.sort((a, b) => (b.overdue - a.overdue) || a.due_at.localeCompare(b.due_at));
    document.getElementById('case-count').textContent = String(open.length);
    document.getElementById('case-overdue').textContent = String(open.filter((c) => c.overdue).length);
    const status = { open: '待处理', contacted: '已联系', rectified: '已整改' };
    document.getElementById('cases').replaceChildren(...(open.length ? open.map((c) => el('tr', { class: c.overdue ? 'overdue' : null },
      el('td', {}, c.number), el('td', {}, names[c.service] || c.service), el('td', {}, c.window ? (labels[c.window] || c.window) : '–'),
      el('td', {}, (LEVELS.find(([l]) => l === c.level) || [0, String(c.level)])[1]),
      el('td', {}, c.comment || ''), el('td', {}, `${status[c.status] || c.status}${c.overdue ? ' · 超期 overdue' : ''}`),
      el('td', {}, c.due_at.slice(0, 16).replace('T', ' ')))) : [el('tr', {}, el('td', { class: 'empty', colspan: '7' }, '没有待处理的差评 · No open cases'))]));
  }
}

async function start() {
  if (!token) return signIn();
  const probe = await api('GET', `/halls/${hall}/cases?status=open`, { token });
  if (probe.status === 401 || probe.status === 403) return signIn(problem(probe));
  const board = await api('GET', `/halls/${hall}`);
  if (board.status === 200) {
    document.getElementById('title').textContent = `${board.body.name} · 管理看板 Dashboard`;
    names = Object.fromEntries(board.body.services.map((s) => [s.id, s.name]));
    labels = Object.fromEntries(board.body.windows.map((w) => [w.id, `${w.floor}F ${w.label}号`]));
  }
  document.getElementById('signin').classList.add('hidden');
  document.getElementById('app').classList.remove('hidden');
  if (started) return;
  started = true;
  clock(document.getElementById('clock'));
  channel(`/ws/v1/halls/${hall}`, {
    onStatus: (up) => document.getElementById('offline').classList.toggle('hidden', up),
    onMessage,
  });
  await refresh();
  setInterval(refresh, REFRESH_MS);
}

start();
