// `/join/{hall}` (contract §8): a citizen takes a number on the phone,
// without a token, then follows it on the ticket's own page.
import { api, el, floorLabel, postOnce, problem, watchHours } from './app.js';
import { citizenProblem, phoneBox } from './verify.js';

const hall = location.pathname.split('/')[2];
const mine = `hallcast.join.${hall}`;
let busy = false;
/** The phone box, once the board says the hall sends messages. */
let phone = null;
const say = (text) => { document.getElementById('msg').textContent = text; };


/** The ticket this phone took here today, if it is still in line. */
async function showMine() {
  const saved = JSON.parse(localStorage.getItem(mine) || 'null');
  const box = document.getElementById('have');
  if (!saved) { box.classList.add('hidden'); return; }
  const r = await api('GET', `/tickets/${saved.token}`);
  const live = r.status === 200 && ['waiting', 'called', 'serving'].includes(r.body.status);
  if (!live) { localStorage.removeItem(mine); box.classList.add('hidden'); return; }
  box.replaceChildren(
    el('div', {}, '您已取号 ', el('a', { href: `/t/${saved.token}`, id: 'mine' }, r.body.number), ' · 点击查看'),
    el('div', { class: 'en' }, `You have number ${r.body.number}; tap it to follow it.`));
  box.classList.remove('hidden');
}

function render(board) {
  document.getElementById('hall').textContent = `${board.name} · 手机取号`;
  if (!board.mobile_tickets) {
    document.getElementById('choose').replaceChildren();
    document.getElementById('msg').textContent = '本厅不提供手机取号，请到取号机取号 · This hall does not give numbers by phone; please use a kiosk.';
    return;
  }
  document.getElementById('choose').classList.toggle('shut', board.takes_tickets === false);
  // A phone for the messages where the hall sends them (§9), proven by a
  // code where it asks (A2). Mounted once: a board refresh keeps what was typed.
  if (!phone && board.remind_ahead !== null) {
    const box = document.getElementById('phone-box');
    box.classList.remove('hidden');
    phone = phoneBox(box, hall, board, { say });
  }
  const floors = new Map(board.floors.map((f) => [f.number, f.name]));
  const byFloor = new Map();
  for (const s of board.services) {
    if (!byFloor.has(s.floor)) byFloor.set(s.floor, []);
    byFloor.get(s.floor).push(s);
  }
  document.getElementById('choose').replaceChildren(...[...byFloor.entries()].sort((a, b) => a[0] - b[0]).map(([floor, list]) => {
    const zones = new Map();
    for (const s of list.sort((a, b) => a.zone.localeCompare(b.zone))) {
      if (!zones.has(s.zone)) zones.set(s.zone, []);
      zones.get(s.zone).push(s);
    }
    return el('div', { class: 'floor' },
      el('h2', {}, floors.get(floor) || floorLabel(floor)),
      ...[...zones.entries()].map(([zone, services]) => el('div', {},
        el('div', { class: 'zone' }, `${floorLabel(floor)} ${zone}区 · Floor ${floor}, zone ${zone}`),
        ...services.map((s) => el('button', { class: 'svc', 'data-service': s.id, onclick: () => take(s) },
          el('div', { class: 'n' }, s.name),
          el('div', { class: 'e' }, s.name_en || ''),
          el('div', { class: 'w' }, `等候 ${s.waiting} 人 · ${s.waiting} waiting`))))));
  }));
}

async function take(service) {
  if (busy) return;
  busy = true;
  say('');
  // No green channel here (A1): staff give it, at the desk or a window.
  const body = { service: service.id, channel: 'mobile' };
  try {
    const notify = phone ? await phone.notify() : null;
    if (notify) body.notify = notify;
  } catch (e) {
    busy = false;
    say(e.message);
    return;
  }
  const r = await postOnce(`/halls/${hall}/tickets`, { body });
  busy = false;
  if (r.status !== 201) {
    if (r.status === 422 && body.notify && body.notify.phone_token) phone.forget();
    say(r.body && r.body.error ? citizenProblem(r) : problem(r));
    return;
  }
  localStorage.setItem(mine, JSON.stringify({ token: r.body.token }));
  location.assign(`/t/${r.body.token}`);
}

watchHours(hall, { tickets: true, onBoard: render });
showMine();
