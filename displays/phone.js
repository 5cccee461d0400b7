import { LEVELS, api, channel, el, floorLabel, postOnce, problem, waitText } from './app.js';

const token = location.pathname.split('/')[2];
const STATUS = {
  waiting: ['等候中', 'Waiting'], called: ['请到窗口', 'Called'], serving: ['办理中', 'Being served'],
  done: ['已办结', 'Done'], no_show: ['已过号', 'Missed'], cancelled: ['已取消', 'Cancelled'],
};
let ticket = null;
let alerted = null;
/** "N ahead of you" comes at this many (the hall's reminder, else 3). */
let remindAt = 3;
let reminded = false;
/** The level chosen on the rating card, before it is sent. */
let chosen = null;

/** The hall's zone guide ("出电梯右转"), when it has one. */
function guide(where) { return where ? `（${where}）` : ''; }

function render() {
  const t = ticket;
  document.getElementById('missing').classList.add('hidden');
  document.getElementById('main').classList.remove('hidden');
  document.getElementById('service').textContent = t.service_name_en ? `${t.service_name} · ${t.service_name_en}` : t.service_name;
  document.getElementById('number').textContent = t.number;
  const [zh, en] = STATUS[t.status] || [t.status, ''];
  const st = document.getElementById('status');
  st.textContent = `${zh} · ${en}`;
  st.className = `status ${t.status}`;
  const waiting = t.status === 'waiting';
  document.getElementById('facts').classList.toggle('hidden', !waiting);
  document.getElementById('cancel').classList.toggle('hidden', !waiting);
  document.getElementById('ahead').textContent = String(t.ahead);
  // The reminder the SMS sends, also here: once the turn is near.
  const soon = waiting && remindAt > 0 && t.ahead <= remindAt;
  const box = document.getElementById('soon');
  box.classList.toggle('hidden', !soon);
  if (soon) {
    box.replaceChildren(
      t.ahead === 0 ? '下一位就是您，请到等候区' : `前面还有 ${t.ahead} 人，请到等候区`,
      Object.assign(document.createElement('span'), { className: 'en', textContent: t.ahead === 0 ? 'You are next: please come to the waiting area.' : `${t.ahead} ahead of you: please come to the waiting area.` }));
    // Browsers refuse to vibrate before the user has touched the page.
    const touched = !navigator.userActivation || navigator.userActivation.hasBeenActive;
    if (!reminded && touched && navigator.vibrate) navigator.vibrate(300);
    reminded = true;
  }
  renderRating(t);
  const [wz] = waitText(t.eta_seconds);
  document.getElementById('eta').textContent = wz.replace('约 ', '');
  const where = document.getElementById('where');
  if (t.window && (t.status === 'called' || t.status === 'serving')) {
    where.textContent = `请到 ${floorLabel(t.window.floor)} ${t.window.zone}区 ${t.window.label}号窗口${guide(t.window.where)} · Floor ${t.window.floor}, zone ${t.window.zone}, window ${t.window.label}`;
  } else {
    where.textContent = `请在 ${floorLabel(t.floor)} ${t.zone}区 等候${guide(t.where)} · Please wait on floor ${t.floor}, zone ${t.zone}`;
  }
  if (!document.getElementById('qr').getAttribute('src')) {
    document.getElementById('qr').setAttribute('src', `/api/v1/tickets/${token}/qr.svg`);
  }
  // A phone that slept through the call still shows it when it wakes.
  if (t.status === 'called' && t.window && alerted !== `${t.number}/${t.recall}`) {
    showAlert(t.number, t.window, t.recall);
  }
}

/** Once done, the phone asks for a rating (§10); once rated, it thanks. */
function renderRating(t) {
  const done = t.status === 'done';
  document.getElementById('rate').classList.toggle('hidden', !done || !!t.rating);
  document.getElementById('rated').classList.toggle('hidden', !done || !t.rating);
  document.getElementById('where').classList.toggle('hidden', done);
  if (t.rating) {
    const [, zh, en] = LEVELS.find(([l]) => l === t.rating.level) || [0, '', ''];
    document.getElementById('rated-text').textContent = `感谢您的评价：${zh} · Thank you: ${en}`;
  }
}

function choose(level) {
  chosen = level;
  for (const [l] of LEVELS) document.getElementById(`level-${l}`).setAttribute('aria-pressed', String(l === level));
  document.getElementById('rate-send').disabled = false;
}

document.getElementById('levels').replaceChildren(...LEVELS.map(([level, zh, en]) => el('button', {
  id: `level-${level}`, 'aria-pressed': 'false', onclick: () => choose(level),
}, zh, el('span', { class: 'en' }, en))));

document.getElementById('rate-send').addEventListener('click', async () => {
  if (!chosen) return;
  const comment = document.getElementById('rate-comment').value.trim();
  const body = comment ? { level: chosen, comment } : { level: chosen };
  document.getElementById('rate-send').disabled = true;
  // Sent once more with the same key if the answer was lost.
  const r = await postOnce(`/tickets/${token}/rating`, { body });
  if (r.status === 201) {
    ticket = { ...ticket, rating: r.body };
    render();
  } else {
    document.getElementById('rate-msg').textContent = problem(r);
    document.getElementById('rate-send').disabled = false;
  }
});

function chime() {
  try {
    const a = new Audio('/assets/chime.wav');
    a.play().catch(() => {});
  } catch { /* no sound on this device */ }
}

function showAlert(number, w, recall, where = w.where) {
  alerted = `${number}/${recall}`;
  document.getElementById('alert-number').textContent = number;
  document.getElementById('alert-window').textContent = `${w.label} 号窗口 · Window ${w.label}`;
  document.getElementById('alert-where').textContent = `${floorLabel(w.floor)} ${w.zone}区 · Floor ${w.floor}, zone ${w.zone}`;
  document.getElementById('alert-guide').textContent = where || '';
  document.getElementById('alert').classList.remove('hidden');
  if (navigator.vibrate) navigator.vibrate([400, 150, 400, 150, 400]);
  chime();
  if ('Notification' in window && Notification.permission === 'granted') {
    try { new Notification(`请 ${number} 号到 ${w.label} 号窗口`, { body: `${floorLabel(w.floor)} ${w.zone}区 · Window ${w.label}`, tag: 'hallcast-call' }); } catch { /* ignore */ }
  }
}

document.getElementById('alert-ok').addEventListener('click', () => document.getElementById('alert').classList.add('hidden'));
const notifyBtn = document.getElementById('notify');
if (!('Notification' in window) || Notification.permission !== 'default') notifyBtn.classList.add('hidden');
notifyBtn.addEventListener('click', async () => {
  try { await Notification.requestPermission(); } catch { /* ignore */ }
  notifyBtn.classList.add('hidden');
});
document.getElementById('cancel').addEventListener('click', async () => {
  if (!confirm('确定取消排号吗？ Leave the line?')) return;
  const r = await api('POST', `/tickets/${token}/cancel`, { key: `cancel-${token.slice(0, 8)}` });
  if (r.status === 200) { ticket = r.body; render(); } else alert(problem(r));
});

async function refresh() {
  const r = await api('GET', `/tickets/${token}`);
  if (r.status === 200) {
    ticket = r.body;
    const b = await api('GET', `/halls/${ticket.hall}`);
    if (b.status === 200 && typeof b.body.remind_ahead === 'number') remindAt = b.body.remind_ahead;
    render();
  }
  else if (r.status === 404) {
    document.getElementById('missing').classList.remove('hidden');
    document.getElementById('main').classList.add('hidden');
  }
}

await refresh();
if (ticket) {
  channel(`/ws/v1/tickets/${token}`, {
    sequenced: false,
    onStatus: (up) => document.getElementById('offline').classList.toggle('hidden', up),
    onMessage: (m) => {
      if (m.type === 'ticket') { ticket = m; render(); }
      else if (m.type === 'called' && alerted !== `${m.number}/${m.recall}`) { showAlert(m.number, m.window, m.recall, m.where); }
    },
  });
  // Back from sleep: show the truth at once, whatever the socket does.
  document.addEventListener('visibilitychange', () => { if (document.visibilityState === 'visible') refresh(); });
}
