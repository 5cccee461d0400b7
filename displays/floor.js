import { channel, api, el, clock, FloorState, AudioQueue, waitText, watchHours } from './app.js';

const [, , hall, , floorNo] = location.pathname.split('/');
const path = `/ws/v1/halls/${hall}/floors/${floorNo}`;
let state = null;
let english = false;

const audio = new AudioQueue(() => document.getElementById('sound').classList.remove('hidden'));
document.getElementById('sound').addEventListener('click', () => {
  document.getElementById('sound').classList.add('hidden');
  audio.unblock();
});
clock(document.getElementById('clock'));

watchHours(hall, { onBoard: (b) => { document.getElementById('hall').textContent = b.name; } });

function renderNow(call, flash) {
  const now = document.getElementById('now');
  if (!call) return;
  now.classList.remove('idle');
  document.getElementById('now-number').textContent = call.number;
  document.getElementById('now-where').textContent = `请到 ${call.label} 号窗口`;
  document.getElementById('now-where-en').textContent = english ? `Please go to window ${call.label}` : '';
  if (flash) {
    now.classList.remove('flash');
    void now.offsetWidth; // restart the animation
    now.classList.add('flash');
  }
}

function render() {
  document.getElementById('floor').textContent = state.name;
  const mode = document.getElementById('mode');
  mode.textContent = state.announce === 'voice' ? '语音叫号 Voice' : '无声叫号 Silent';
  document.getElementById('recent').replaceChildren(
    ...state.recent.slice(0, 10).map((r) => el('li', {}, el('span', {}, r.number), el('span', {}, `${r.label}号窗口`))));
  document.getElementById('windows').replaceChildren(...[...state.windows.values()].map((w) => {
    const st = w.state === 'paused' ? '暂停' : (w.number ? w.number : '空闲');
    const cls = w.state === 'paused' ? 'win paused' : 'win';
    return el('div', { class: cls }, el('b', {}, `${w.label}号`), el('span', { class: `st ${w.status || ''}` }, st));
  }));
  const list = document.getElementById('waiting');
  list.classList.toggle('many', state.waiting.size > 4);
  list.replaceChildren(...[...state.waiting.values()].map((w) => {
    const [zh] = waitText(w.eta_seconds);
    return el('li', {}, el('span', {}, english && w.name_en && state.waiting.size <= 4 ? `${w.name} ${w.name_en}` : w.name),
      el('span', {}, el('b', {}, String(w.count)), w.count ? ` 人 · ${zh}` : ' 人'));
  }));
}

/** Calls older than this are not spoken when they arrive (after a long
 *  outage): the citizen was called minutes ago and has been told by the
 *  screen; speaking it now would only confuse. */
const STALE_MS = 120_000;

channel(path, {
  onStatus: (up) => document.getElementById('offline').classList.toggle('hidden', up),
  onMessage: (m) => {
    if (m.type === 'snapshot') {
      state = new FloorState(m);
      english = state.languages.includes('en');
      render();
      renderNow(state.recent[0], false);
      return;
    }
    if (!state) return;
    state.apply(m);
    render();
    if (m.type === 'called') {
      renderNow(m, true);
      const fresh = Date.now() - Date.parse(m.at) < STALE_MS;
      if (m.announcement && m.announcement.audio && fresh) audio.push(m.announcement.audio);
    }
  },
});
window.hallcast = { get state() { return state; }, audio };
