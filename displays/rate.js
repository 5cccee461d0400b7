// The counter's rating pad (评价器, contract §10): idle until the window
// finishes a ticket, then five large buttons; thanks, and back to idle
// after a few seconds. It hears "done" on the window's floor channel and
// rates with the window's token.
import { LEVELS, api, channel, el, newKey, problem, storedToken } from './app.js';

const [, , hall, windowId] = location.pathname.split('/');
const key = `hallcast.token.window.${hall}.${windowId}`;
/** The buttons stay this long for a citizen who has not pressed one. */
const ASK_MS = 60_000;
/** Thanks (or a refusal) shows this long before the pad is idle again. */
const THANKS_MS = 4_000;
/** How much each level's mouth smiles (negative: frowns). */
const SMILE = { 5: 12, 4: 6, 3: 0, 2: -6, 1: -12 };

/** A face drawn as SVG: emoji fonts differ from device to device. */
function face(level) {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 64 64');
  svg.setAttribute('class', 'face');
  svg.setAttribute('aria-hidden', 'true');
  const add = (tag, attrs) => {
    const n = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
    svg.append(n);
  };
  const line = { fill: 'none', stroke: '#fff', 'stroke-width': '4', 'stroke-linecap': 'round' };
  add('circle', { cx: 32, cy: 32, r: 28, ...line });
  add('circle', { cx: 22, cy: 25, r: 4, fill: '#fff' });
  add('circle', { cx: 42, cy: 25, r: 4, fill: '#fff' });
  const y = 44 - SMILE[level] / 3;
  add('path', { d: `M18 ${y} Q32 ${y + SMILE[level]} 46 ${y}`, ...line });
  return svg;
}

let token = storedToken(key);
let timer = null;
let busy = false;

function show(which) {
  for (const id of ['idle', 'ask', 'thanks']) document.getElementById(id).classList.toggle('hidden', id !== which);
  document.documentElement.dataset.pad = which;
}

function idleLater(ms) {
  clearTimeout(timer);
  timer = setTimeout(() => show('idle'), ms);
}

function signIn(message) {
  for (const id of ['pad', 'head']) document.getElementById(id).classList.add('hidden');
  document.getElementById('signin').classList.remove('hidden');
  document.getElementById('signin-msg').textContent = message || '';
}

document.getElementById('token-save').addEventListener('click', () => {
  token = document.getElementById('token-input').value.trim();
  localStorage.setItem(key, token);
  start();
});

function ask(number) {
  document.getElementById('ask-number').textContent = `${number} 号 · No. ${number}`;
  show('ask');
  idleLater(ASK_MS);
}

async function rate(level) {
  if (busy) return;
  busy = true;
  const r = await api('POST', `/halls/${hall}/windows/${windowId}/rating`, { token, body: { level }, key: newKey() });
  busy = false;
  const text = document.getElementById('thanks-text');
  if (r.status === 201) {
    const [, zh, en] = LEVELS.find(([l]) => l === level);
    text.textContent = `${zh} · ${en} — Thank you for your rating`;
  } else if (r.status === 401 || r.status === 403) {
    return signIn(problem(r));
  } else {
    text.textContent = problem(r);
  }
  show('thanks');
  idleLater(THANKS_MS);
}

document.getElementById('levels').replaceChildren(...LEVELS.map(([level, zh, en]) => el('button', {
  class: `l${level}`, id: `level-${level}`, 'aria-label': `${zh} ${en}`, onclick: () => rate(level),
}, face(level), zh, el('span', { class: 'en' }, en))));

async function start() {
  if (!token) return signIn();
  const r = await api('GET', `/halls/${hall}/windows/${windowId}`, { token });
  if (r.status === 401 || r.status === 403) return signIn(problem(r));
  if (r.status !== 200) return signIn(problem(r));
  const w = r.body.window;
  document.getElementById('signin').classList.add('hidden');
  for (const id of ['pad', 'head']) document.getElementById(id).classList.remove('hidden');
  document.getElementById('title').textContent = `${w.label} 号窗口 · Window ${w.label}`;
  show('idle');
  channel(`/ws/v1/halls/${hall}/floors/${w.floor}`, {
    onStatus: (up) => document.getElementById('offline').classList.toggle('hidden', up),
    onMessage: (m) => {
      if (m.type === 'ticket' && m.window === windowId && m.status === 'done' && !m.transferred_to) ask(m.number);
    },
  });
}

start();
