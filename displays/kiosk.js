import { api, el, floorLabel, hallTime, postOnce, problem, storedToken, waitText, watchHours } from './app.js';

const hall = location.pathname.split('/')[2];
const key = `hallcast.token.kiosk.${hall}`;
let token = storedToken(key);
let board = null;
let back = null;
let busy = false;

/** A printed or shown ticket goes back to the service list after this. */
const SHOW_TICKET_MS = 30_000;


document.getElementById('token-save').addEventListener('click', () => {
  token = document.getElementById('token-input').value.trim();
  localStorage.setItem(key, token);
  document.getElementById('signin').classList.add('hidden');
});
if (!token) document.getElementById('signin').classList.remove('hidden');

function showChoose() {
  clearTimeout(back);
  document.getElementById('result').classList.add('hidden');
  document.getElementById('booking').classList.add('hidden');
  document.getElementById('head').classList.remove('hidden');
  document.getElementById('choose').classList.remove('hidden');
  document.getElementById('green').checked = false;
  document.getElementById('msg').textContent = '';
  refreshBoard();
}

function renderBoard() {
  const floors = new Map();
  for (const s of board.services) {
    if (!floors.has(s.floor)) floors.set(s.floor, []);
    floors.get(s.floor).push(s);
  }
  const names = new Map(board.floors.map((f) => [f.number, f.name]));
  document.getElementById('choose').replaceChildren(...[...floors.entries()].sort((a, b) => a[0] - b[0]).map(([floor, list]) =>
    el('div', { class: 'floor' },
      el('h2', {}, names.get(floor) || floorLabel(floor)),
      el('div', { class: 'services' }, ...list.sort((a, b) => a.zone.localeCompare(b.zone)).map((s) =>
        el('button', { class: 'svc', 'data-service': s.id, onclick: () => take(s) },
          el('div', { class: 'n' }, s.name),
          el('div', { class: 'e' }, `${s.name_en || ''} · ${floorLabel(s.floor)} ${s.zone}区`),
          el('div', { class: 'w' }, `等候 ${s.waiting} 人 · ${s.waiting} waiting`)))))));
}

async function refreshBoard() {
  const r = await api('GET', `/halls/${hall}`);
  if (r.status !== 200) { document.getElementById('msg').textContent = problem(r); return; }
  showBoard(r.body);
}

function showBoard(b) {
  board = b;
  document.getElementById('hall').textContent = `${board.name} · 自助取号`;
  // Closed: the banner says when numbers are given again; no buttons.
  document.getElementById('choose').classList.toggle('shut', board.takes_tickets === false);
  renderBoard();
}

watchHours(hall, { tickets: true, onBoard: (b) => { if (!document.getElementById('choose').classList.contains('hidden')) showBoard(b); } });

async function take(service) {
  if (busy) return;
  if (!token) { document.getElementById('signin').classList.remove('hidden'); return; }
  busy = true;
  const priority = document.getElementById('green').checked ? 'priority' : 'normal';
  const r = await postOnce(`/halls/${hall}/tickets`, { token, body: { service: service.id, priority, channel: 'kiosk' } });
  busy = false;
  if (r.status !== 201) {
    document.getElementById('msg').textContent = problem(r);
    if (r.status === 401 || r.status === 403) document.getElementById('signin').classList.remove('hidden');
    return;
  }
  showTicket(r.body);
}

// "I have an appointment": the booking's code turns into its ticket here.
const CODE_KEYS = 'ABCDEFGHJKMNPQRSTUVWXYZ23456789';
const codeInput = document.getElementById('code-input');
document.getElementById('keypad').replaceChildren(
  ...[...CODE_KEYS].map((k) => el('button', { 'data-key': k, onclick: () => { if (codeInput.value.length < 6) codeInput.value += k; } }, k)),
  el('button', { 'data-key': 'back', onclick: () => { codeInput.value = codeInput.value.slice(0, -1); } }, '⌫'));
document.getElementById('have-booking').addEventListener('click', () => {
  clearTimeout(back);
  document.getElementById('choose').classList.add('hidden');
  document.getElementById('result').classList.add('hidden');
  document.getElementById('head').classList.add('hidden');
  document.getElementById('booking').classList.remove('hidden');
  document.getElementById('msg').textContent = '';
  codeInput.value = '';
  codeInput.focus();
  // An abandoned code entry goes back to the service list.
  back = setTimeout(showChoose, SHOW_TICKET_MS);
});
document.getElementById('code-back').addEventListener('click', showChoose);
document.getElementById('code-submit').addEventListener('click', async () => {
  if (busy) return;
  if (!token) { document.getElementById('signin').classList.remove('hidden'); return; }
  const code = codeInput.value.trim();
  busy = true;
  const r = await postOnce(`/halls/${hall}/check-in`, { token, body: { code } });
  busy = false;
  if (r.status !== 201) {
    document.getElementById('msg').textContent = problem(r);
    if (r.status === 401 || r.status === 403) document.getElementById('signin').classList.remove('hidden');
    return;
  }
  document.getElementById('booking').classList.add('hidden');
  document.getElementById('head').classList.remove('hidden');
  showTicket(r.body);
});

function showTicket(t) {
  const [wz, we] = waitText(t.eta_seconds);
  document.getElementById('choose').classList.add('hidden');
  const res = document.getElementById('result');
  res.classList.remove('hidden');
  res.replaceChildren(el('div', { class: 'ticket', id: 'ticket' },
    el('div', { class: 'hall' }, board ? board.name : ''),
    el('div', { class: 'num', id: 'ticket-number' }, t.number),
    el('div', { class: 'svc-name' }, `${t.service_name}${t.service_name_en ? ` · ${t.service_name_en}` : ''}${t.priority === 'priority' ? ' · 绿色通道' : ''}${t.channel === 'appointment' ? ' · 预约 Booked' : ''}`),
    el('div', { class: 'go' }, `请到 ${floorLabel(t.floor)} ${t.zone}区 等候叫号 · Please wait on floor ${t.floor}, zone ${t.zone}`),
    t.where ? el('div', { class: 'go', id: 'ticket-guide' }, t.where) : null,
    el('div', { class: 'ahead' }, `前面 ${t.ahead} 人，${wz} · ${t.ahead} ahead, ${we}`),
    el('img', { src: t.qr_svg, alt: 'QR', id: 'ticket-qr' }),
    el('div', { class: 'small' }, '扫码用手机查看进度，叫号时手机提醒 · Scan to follow your turn on your phone'),
    // The hall's own time, whatever zone the kiosk's browser is set to.
    el('div', { class: 'small', id: 'ticket-time' }, `${t.created_at.slice(0, 4)}年${(hallTime(t.created_at) || [''])[0]}`)),
  el('div', { class: 'buttons' },
    el('button', { class: 'print', onclick: () => window.print() }, '打印 · Print'),
    el('button', { onclick: showChoose }, '完成 · Done')));
  back = setTimeout(showChoose, SHOW_TICKET_MS);
}

refreshBoard();
