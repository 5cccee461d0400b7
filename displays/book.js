// `/book/{hall}` (contract §8): choose a service, a day and a slot; book;
// then follow the booking on its own page, `/a/{token}`.
import { api, el, hhmm, postOnce, problem } from './app.js';
import { citizenProblem, phoneBox } from './verify.js';

const hall = location.pathname.split('/')[2];
const WEEKDAYS = [['日', 'Sun'], ['一', 'Mon'], ['二', 'Tue'], ['三', 'Wed'], ['四', 'Thu'], ['五', 'Fri'], ['六', 'Sat']];
let board = null;
let service = null;
let day = null;
let slot = null;
let busy = false;
let phone = null;

const msg = (text) => { document.getElementById('msg').textContent = text; };

/** A PRC resident ID number whose check character is right (GB 11643). */
function validId(id) {
  if (!/^\d{17}[\dXx]$/.test(id)) return false;
  const w = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
  const sum = w.reduce((a, k, i) => a + k * Number(id[i]), 0);
  return '10X98765432'[sum % 11] === id[17].toUpperCase();
}

/** A hall-local date `n` days from now, as YYYY-MM-DD and its weekday. */
function hallDate(n) {
  const at = new Date(Date.now() + n * 86_400_000);
  const fmt = (o) => new Intl.DateTimeFormat('en-CA', { timeZone: board.timezone, ...o }).format(at);
  const date = fmt({ year: 'numeric', month: '2-digit', day: '2-digit' });
  const wd = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'].indexOf(fmt({ weekday: 'short' }));
  return { date, weekday: WEEKDAYS[Math.max(0, wd)] };
}


function renderServices() {
  const list = board.services.filter((s) => s.appointments);
  if (!list.length) {
    document.getElementById('services').replaceChildren(el('p', { class: 'none' }, '本厅暂无可预约业务 · This hall takes no bookings.'));
    return;
  }
  document.getElementById('services').replaceChildren(...list.map((s) =>
    el('button', { class: `svc${service && service.id === s.id ? ' on' : ''}`, 'data-service': s.id, onclick: () => { service = s; day = null; slot = null; renderAll(); } },
      el('div', { class: 'n' }, s.name),
      el('div', { class: 'e' }, `${s.name_en || ''} · ${s.floor}F ${s.zone}区`))));
}

function renderDays() {
  const box = document.getElementById('days');
  if (!service) { box.replaceChildren(el('span', { class: 'none' }, '请先选择业务 · Choose a service first')); return; }
  const days = [];
  for (let n = 0; n <= service.appointments.days_ahead; n++) days.push(hallDate(n));
  box.replaceChildren(...days.map((d, n) =>
    el('button', { class: `day${day === d.date ? ' on' : ''}`, 'data-date': d.date, onclick: () => { day = d.date; slot = null; renderAll(); loadSlots(); } },
      n === 0 ? '今天' : `周${d.weekday[0]}`, el('div', { class: 'en' }, `${d.date.slice(5)} ${n === 0 ? 'today' : d.weekday[1]}`))));
}

let slots = [];
async function loadSlots() {
  slots = [];
  renderSlots();
  if (!service || !day) return;
  const r = await api('GET', `/halls/${hall}/services/${service.id}/slots?date=${day}`);
  if (r.status !== 200) { msg(problem(r)); return; }
  slots = r.body;
  renderSlots();
}

function renderSlots() {
  const box = document.getElementById('slots');
  if (!day) { box.replaceChildren(el('span', { class: 'none' }, '请先选择日期 · Choose a day first')); return; }
  if (!slots.length) { box.replaceChildren(el('span', { class: 'none' }, '当天没有可预约的时段 · No slots left that day')); return; }
  box.replaceChildren(...slots.map((s) =>
    el('button', { class: `slot${slot === s.start ? ' on' : ''}`, 'data-start': s.start, disabled: s.available === 0 ? '' : null, onclick: () => { slot = s.start; renderSlots(); renderBook(); } },
      `${hhmm(s.start)}-${hhmm(s.end)}`,
      el('span', { class: 'left' }, s.available ? `余 ${s.available} · ${s.available} left` : '已满 · full'))));
}

function renderBook() {
  document.getElementById('book').disabled = !(service && slot) || busy;
  const byName = Boolean(service && service.appointments.require_id);
  document.getElementById('holder').classList.toggle('hidden', !byName);
}

function renderAll() { renderServices(); renderDays(); renderSlots(); renderBook(); }

document.getElementById('book').addEventListener('click', async () => {
  if (busy || !service || !slot) return;
  const body = { service: service.id, start: slot };
  if (service.appointments.require_id) {
    const name = document.getElementById('holder-name').value.trim();
    const id = document.getElementById('holder-id').value.replace(/\s/g, '').toUpperCase();
    if (!name || name.length > 30) { msg('请填写办事人姓名 · Enter the name of the person the booking is for.'); return; }
    if (!validId(id)) { msg('身份证号不正确，请核对（18位，最后一位可能是X） · The ID number is not valid; check it (18 characters, the last may be X).'); return; }
    body.holder = { name, id_number: id };
  }
  busy = true;
  renderBook();
  msg('');
  try {
    const notify = await phone.notify();
    if (notify) body.notify = notify;
  } catch (e) {
    busy = false;
    renderBook();
    msg(e.message);
    return;
  }
  const r = await postOnce(`/halls/${hall}/appointments`, { body });
  busy = false;
  renderBook();
  if (r.status !== 201) {
    if (r.status === 422 && body.notify && body.notify.phone_token) phone.forget();
    msg(r.body && r.body.error ? citizenProblem(r) : problem(r));
    if (r.status === 409) loadSlots();
    return;
  }
  localStorage.setItem(`hallcast.booking.${hall}`, JSON.stringify({ token: r.body.token }));
  location.assign(r.body.appointment_url);
});

const r = await api('GET', `/halls/${hall}`);
if (r.status === 200) {
  board = r.body;
  document.getElementById('hall').textContent = `${board.name} · 网上预约`;
  // A2: where the hall sends messages and verifies phones, a booking
  // without staff needs a verified phone.
  const required = board.verify_phones;
  document.getElementById('phone-title').textContent = required
    ? '4 · 手机号（需验证） · Phone (verified)'
    : '4 · 手机号（选填，用于短信提醒） · Phone (optional, for text reminders)';
  phone = phoneBox(document.getElementById('phone-box'), hall, board, { required, say: msg });
  renderAll();
} else {
  msg(problem(r));
}
