import { api, channel, el, newKey, problem, storedToken } from './app.js';

const [, , hall, windowId] = location.pathname.split('/');
const key = `hallcast.token.window.${hall}.${windowId}`;
let token = storedToken(key);
let view = null;
let busy = false;

function say(text, ok) {
  const m = document.getElementById('msg');
  m.textContent = text;
  m.className = `msg ${ok ? 'ok' : 'err'}`;
}

function signIn(message) {
  document.getElementById('app').classList.add('hidden');
  document.getElementById('signin').classList.remove('hidden');
  document.getElementById('signin-msg').textContent = message || '';
  document.getElementById('token-input').focus();
}

document.getElementById('token-save').addEventListener('click', () => {
  token = document.getElementById('token-input').value.trim();
  localStorage.setItem(key, token);
  load();
});
document.getElementById('token-input').addEventListener('keydown', (e) => { if (e.key === 'Enter') document.getElementById('token-save').click(); });
document.getElementById('signout').addEventListener('click', () => { localStorage.removeItem(key); token = null; signIn(); });

function render() {
  const w = view.window;
  document.getElementById('title').textContent = `${w.label} 号窗口 · Window ${w.label} (${w.floor}F ${w.zone}区)`;
  const st = document.getElementById('state');
  st.textContent = w.state === 'paused' ? '暂停中 · Paused' : '受理中 · Open';
  st.className = `state ${w.state}`;
  const t = view.ticket;
  document.getElementById('number').textContent = t ? t.number : '—';
  const status = { called: '已叫号，等待到达 · Called', serving: '办理中 · Serving' };
  document.getElementById('meta').textContent = t
    ? `${t.service_name} · ${status[t.status] || t.status}${t.recall ? ` · 重呼 ${t.recall} 次` : ''}`
    : '暂无办理中的号 · No current ticket';
  const has = (s) => t && s.includes(t.status);
  document.getElementById('recall').disabled = !has(['called']);
  document.getElementById('start').disabled = !has(['called']);
  document.getElementById('complete').disabled = !has(['called', 'serving']);
  document.getElementById('no-show').disabled = !has(['called']);
  document.getElementById('transfer').disabled = !has(['called', 'serving']);
  document.getElementById('call').disabled = w.state === 'paused';
  document.getElementById('pause').classList.toggle('hidden', w.state === 'paused');
  document.getElementById('resume').classList.toggle('hidden', w.state !== 'paused');
  document.getElementById('count').textContent = String(view.line.length);
  document.getElementById('line').replaceChildren(...view.line.map((l) =>
    el('li', {}, l.number, l.priority === 'priority' ? el('span', { class: 'p' }, '绿色通道 priority') : null)));
}

async function load() {
  if (!token) return signIn();
  const r = await api('GET', `/halls/${hall}/windows/${windowId}`, { token });
  if (r.status === 401 || r.status === 403) return signIn(problem(r));
  if (r.status !== 200) return say(problem(r), false);
  view = r.body;
  document.getElementById('signin').classList.add('hidden');
  document.getElementById('app').classList.remove('hidden');
  render();
}

async function act(action, body) {
  if (busy) return;
  busy = true;
  const r = await api('POST', `/halls/${hall}/windows/${windowId}/${action}`, {
    token, body: body || {}, key: newKey(),
  });
  busy = false;
  if (r.status === 204) say('没有等候的号 · Nobody is waiting', true);
  else if (r.status === 200) {
    const t = r.body.ticket;
    const done = { call: '已叫号', recall: '已重呼', start: '已到达', complete: '已办结', 'no-show': '已过号', transfer: '已转办', pause: '已暂停', resume: '已恢复' };
    say(`${done[action] || 'OK'}${t ? ` ${t.number}` : ''}`, true);
  } else if (r.status === 401 || r.status === 403) return signIn(problem(r));
  else say(problem(r), false);
  await load();
}

for (const a of ['call', 'recall', 'start', 'complete', 'no-show', 'pause', 'resume']) {
  document.getElementById(a).addEventListener('click', () => act(a));
}
document.getElementById('call-number').addEventListener('click', () => {
  const n = document.getElementById('pick').value.trim().toUpperCase();
  if (n) act('call', { number: n }).then(() => { document.getElementById('pick').value = ''; });
});
document.getElementById('pick').addEventListener('keydown', (e) => { if (e.key === 'Enter') document.getElementById('call-number').click(); });
document.getElementById('transfer').addEventListener('click', () => act('transfer', { service: document.getElementById('transfer-to').value }));

document.addEventListener('keydown', (e) => {
  if (!view || e.target.tagName === 'INPUT' || e.target.tagName === 'SELECT') return;
  const keys = { ' ': 'call', F1: 'call', r: 'recall', s: 'start', c: 'complete', n: 'no-show', t: 'transfer', p: view.window.state === 'paused' ? 'resume' : 'pause' };
  const id = keys[e.key] || keys[e.key.toLowerCase()];
  if (!id) return;
  e.preventDefault();
  const b = document.getElementById(id);
  if (!b.disabled) b.click();
});

api('GET', `/halls/${hall}`).then((r) => {
  if (r.status !== 200) return;
  document.getElementById('transfer-to').replaceChildren(...r.body.services.map((s) => el('option', { value: s.id }, `${s.name} ${s.name_en || ''}`)));
});

await load();
// The line changes with every ticket taken anywhere in the hall: refresh on
// the hall channel's events, at most a few times a second.
let pending = null;
channel(`/ws/v1/halls/${hall}`, {
  onStatus: (up) => document.getElementById('offline').classList.toggle('hidden', up),
  onMessage: (m) => {
    if (m.type === 'snapshot' || !token || pending) return;
    pending = setTimeout(() => { pending = null; if (!busy) load(); }, 300);
  },
});
