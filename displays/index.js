import { api, el } from './app.js';
const r = await api('GET', '/halls');
const halls = r.status === 200 ? r.body : [];
const boards = await Promise.all(halls.map((h) => api('GET', `/halls/${h.id}`)));
document.getElementById('halls').replaceChildren(...boards.filter((b) => b.status === 200).map(({ body: h }) =>
  el('section', { class: 'hall' },
    el('h2', {}, h.name),
    el('p', {}, el('a', { href: `/display/${h.id}` }, '大厅总览 Entrance screen'), ' · ',
      el('a', { href: `/kiosk/${h.id}` }, '自助取号 Kiosk'),
      ...(h.mobile_tickets ? [' · ', el('a', { href: `/join/${h.id}` }, '手机取号 Take a number by phone'),
        ' (', el('a', { href: `/api/v1/halls/${h.id}/join-qr.svg` }, '海报二维码 poster QR'), ')'] : []),
      ...(h.services.some((s) => s.appointments) ? [' · ', el('a', { href: `/book/${h.id}` }, '网上预约 Book an appointment')] : []),
      ' · ', el('a', { href: `/dashboard/${h.id}` }, '管理看板 Dashboard')),
    el('h3', {}, '楼层屏 Floor screens'),
    el('ul', {}, ...h.floors.map((f) => el('li', {}, el('a', { href: `/display/${h.id}/floors/${f.number}` }, f.name)))),
    el('h3', {}, '窗口 Window consoles'),
    el('ul', {}, ...h.windows.map((w) => el('li', {}, el('a', { href: `/window/${h.id}/${w.id}` }, `${w.floor}F ${w.label}号 (${w.id})`),
      ' · ', el('a', { href: `/rate/${h.id}/${w.id}` }, '评价器 rating pad')))))));
