// `/a/{token}` (contract §8): the booking, its code and QR, cancel and
// check-in; once checked in, the ticket's own page takes over.
import { api, floorLabel, hallTime, hhmm, postOnce, problem } from './app.js';

const token = location.pathname.split('/')[2];
const STATUS = {
  booked: ['已预约', 'Booked'], checked_in: ['已签到', 'Checked in'],
  cancelled: ['已取消', 'Cancelled'], missed: ['已过期（未按时签到）', 'Missed (no check-in in time)'],
};
let booking = null;
let timer = null;

const msg = (text) => { document.getElementById('msg').textContent = text; };

function render() {
  const a = booking;
  if (a.status === 'checked_in' && a.ticket) {
    // The booking became a ticket: follow it as any ticket is followed.
    location.replace(a.ticket.ticket_url);
    return;
  }
  document.getElementById('missing').classList.add('hidden');
  document.getElementById('main').classList.remove('hidden');
  document.getElementById('service').textContent = a.service_name_en ? `${a.service_name} · ${a.service_name_en}` : a.service_name;
  const [day] = hallTime(a.start) || [''];
  document.getElementById('when').textContent = `${day.split(' ')[0]} ${hhmm(a.start)}-${hhmm(a.end)}`;
  const [zh, en] = STATUS[a.status] || [a.status, ''];
  const st = document.getElementById('status');
  st.textContent = `${zh} · ${en}`;
  st.className = `status ${a.status}`;
  document.getElementById('code').textContent = a.code;
  const opens = a.check_in_opens ? hhmm(a.check_in_opens) : null;
  const closes = a.check_in_closes ? hhmm(a.check_in_closes) : null;
  document.getElementById('window').textContent = opens && closes
    ? `签到时间 ${opens}-${closes} · Check in from ${opens} to ${closes}` : '';
  document.getElementById('where').textContent = `请到 ${floorLabel(a.floor)} ${a.zone}区${a.where ? `（${a.where}）` : ''} · Floor ${a.floor}, zone ${a.zone}`;
  const img = document.getElementById('qr');
  if (!img.getAttribute('src')) img.setAttribute('src', a.qr_svg);
  const open = a.status === 'booked';
  const now = Date.now();
  const canCheckIn = open && (!a.check_in_opens || Date.parse(a.check_in_opens) <= now);
  const btn = document.getElementById('check-in');
  btn.classList.toggle('hidden', !open);
  btn.disabled = !canCheckIn;
  btn.textContent = canCheckIn || !opens ? '签到取号 · Check in and get a number' : `${opens} 起可签到 · Check-in opens at ${opens}`;
  document.getElementById('cancel').classList.toggle('hidden', !open);
  document.getElementById('qr-card').classList.toggle('hidden', !open);
  // Look again when check-in opens and when the booking would be missed.
  clearTimeout(timer);
  const next = [a.check_in_opens, a.check_in_closes].map((t) => Date.parse(t || '')).filter((t) => t > now);
  if (open && next.length) timer = setTimeout(refresh, Math.min(...next) - now + 1000);
}

async function refresh() {
  const r = await api('GET', `/appointments/${token}`);
  if (r.status === 200) { booking = r.body; render(); }
  else if (r.status === 404) {
    document.getElementById('missing').classList.remove('hidden');
    document.getElementById('main').classList.add('hidden');
  } else msg(problem(r));
}

document.getElementById('check-in').addEventListener('click', async () => {
  msg('');
  const r = await postOnce(`/appointments/${token}/check-in`, { key: `check-in-${token.slice(0, 12)}` });
  if (r.status === 201) { location.replace(r.body.ticket_url); return; }
  msg(problem(r));
  refresh();
});
document.getElementById('cancel').addEventListener('click', async () => {
  if (!confirm('确定取消预约吗？ Cancel the booking?')) return;
  const r = await api('POST', `/appointments/${token}/cancel`, { key: `cancel-${token.slice(0, 12)}` });
  if (r.status === 200) { booking = r.body; render(); } else msg(problem(r));
});
document.addEventListener('visibilitychange', () => { if (document.visibilityState === 'visible') refresh(); });
refresh();
