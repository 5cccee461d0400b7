import { FloorState, channel, clock, el, floorLabel, watchHours } from './app.js';

const [, , hall] = location.pathname.split('/');
const floors = new Map();
let stream = [];
clock(document.getElementById('clock'));
watchHours(hall, { onBoard: (b) => { document.getElementById('hall').textContent = b.name; } });


function render() {
  document.getElementById('floors').replaceChildren(...[...floors.values()].map((f) => {
    const waiting = [...f.waiting.values()].reduce((a, w) => a + w.count, 0);
    return el('div', { class: 'floor', id: `floor-${f.floor}` },
      el('h3', {}, el('span', { class: 'name' }, f.name), el('small', {}, f.announce === 'voice' ? '语音' : '无声')),
      el('div', { class: 'calls' }, f.recent.slice(0, 3).map((r) => r.number).join('  ') || '—'),
      el('div', { class: 'wait' }, `等候 ${waiting} 人 · ${waiting} waiting`));
  }));
  document.getElementById('stream').replaceChildren(...stream.slice(0, 8).map((c) =>
    el('li', {}, el('span', {}, c.number), el('span', {}, `${floorLabel(c.floor)} ${c.label}号窗口`))));
}

function showBig(c, flash) {
  if (!c) return;
  document.getElementById('big-number').textContent = c.number;
  document.getElementById('big-where').textContent = `请到 ${floorLabel(c.floor)} ${c.zone}区 ${c.label}号窗口`;
  document.getElementById('big-where-en').textContent = `Floor ${c.floor}, zone ${c.zone}, window ${c.label}`;
  if (flash) {
    const b = document.getElementById('big');
    b.classList.remove('flash'); void b.offsetWidth; b.classList.add('flash');
  }
}

channel(`/ws/v1/halls/${hall}`, {
  onStatus: (up) => document.getElementById('offline').classList.toggle('hidden', up),
  onMessage: (m) => {
    if (m.type === 'snapshot') {
      floors.clear();
      for (const f of m.floors) floors.set(f.floor, new FloorState(f));
      stream = [...floors.values()]
        .flatMap((f) => f.recent.map((r) => ({ ...r, floor: f.floor })))
        .sort((a, b) => Date.parse(b.at) - Date.parse(a.at)).slice(0, 8);
      render();
      showBig(stream[0], false);
      return;
    }
    const f = floors.get(m.floor);
    if (!f) return;
    f.apply(m);
    if (m.type === 'called') {
      const c = { number: m.number, label: m.label, zone: m.zone, floor: m.floor, at: m.at };
      stream = [c, ...stream.filter((s) => s.number !== m.number)].slice(0, 8);
      showBig(c, true);
    }
    render();
  },
});
