// The citizen's phone on /join and /book (contract v1.2 A2): where the hall
// asks, a number is proven by a 6-digit code sent to it (one a minute),
// and the phone token that buys is kept on this phone for its 24 hours,
// so a citizen verifies once a day. Also the plain-words messages for the
// refusals a citizen can meet (A1–A4).
import { api, el } from './app.js';

const MOBILE = /^1\d{10}$/;

/** What each cap of `[halls.citizens]` means to the citizen. */
const CAPS = {
  open_bookings_per_phone: '该手机号的有效预约已达上限，请先签到或取消已有预约 · This phone holds the most open bookings allowed; check in or cancel one first.',
  bookings_per_phone_per_date: '该手机号当天已预约此业务 · This phone already booked this service that day.',
  bookings_per_address_per_day: '今日从此网络预约的次数已达上限，请明天再试或咨询工作人员 · Too many bookings from this network today; try tomorrow or ask staff.',
  waiting_mobile_per_phone: '该手机号已有一个正在等候的号码，请关注该号码或先取消 · This phone already has a number waiting; follow it, or cancel it first.',
  mobile_per_address_per_day: '今日从此网络取号的次数已达上限，请到取号机取号 · Too many numbers from this network today; please use a kiosk.',
  require_id: '该身份证号已有此业务的有效预约 · This ID number already holds an open booking of this service.',
};

/** A refusal in plain words, both languages; the server's own otherwise. */
export function citizenProblem(r) {
  if (r.status === 0) return '网络连接中断，请稍后重试 · The network is down; try again.';
  const e = (r.body && r.body.error) || {};
  const m = e.message || '';
  if (e.code === 'limit_reached') {
    const cap = Object.keys(CAPS).find((k) => m.startsWith(k));
    if (cap) return CAPS[cap];
  }
  if (e.code === 'phone_unverified') {
    if (/tries left/.test(m)) return `验证码不正确，还可再试${m.match(/(\d+) tries left/)[1]}次 · Wrong code; ${m.match(/(\d+) tries left/)[1]} tries left.`;
    if (/last try/.test(m)) return '验证码错误次数过多，请重新获取验证码 · Too many wrong tries; ask for a new code.';
    return '手机号未验证，或验证码已失效，请重新获取验证码 · The phone is not verified, or the code has expired; ask for a new code.';
  }
  if (e.code === 'rate_limited' && /tomorrow/.test(m)) return '该手机号今日获取验证码次数已达上限，请明天再试或咨询工作人员 · This phone has had the most codes for today; try tomorrow or ask staff.';
  if (e.code === 'rate_limited') return '操作过于频繁，请稍后再试 · Too many tries; please wait a moment.';
  if (e.code === 'forbidden' && /green channel/.test(m)) return '绿色通道请到服务台或窗口由工作人员为您取号 · For the green channel, please ask staff.';
  return m || `请求失败 (${r.status}) · Request failed (${r.status})`;
}

const masked = (p) => `${p.slice(0, 3)}****${p.slice(-4)}`;

/**
 * Mounts the phone box in `box`. `board` is the hall's (its `verify_phones`
 * says whether a number needs a code); `required` makes a phone a must.
 * Returns `{notify()}`: resolves to the request's `notify` (or null for
 * none), verifying the code first where needed; throws a message.
 */
export function phoneBox(box, hall, board, { required = false, say }) {
  const verify = board.verify_phones;
  const store = `hallcast.phone.${hall}`;
  const saved = () => {
    const s = JSON.parse(localStorage.getItem(store) || 'null');
    return s && Date.parse(s.expires_at) > Date.now() + 60_000 ? s : null;
  };
  const phone = el('input', { id: 'phone', type: 'tel', inputmode: 'tel', autocomplete: 'tel', maxlength: '16', placeholder: '138 0000 0000', 'aria-label': 'phone' });
  const send = el('button', { id: 'send-code', class: 'code-btn', type: 'button' }, '获取验证码 · Send code');
  const code = el('input', { id: 'code', type: 'text', inputmode: 'numeric', autocomplete: 'one-time-code', maxlength: '6', placeholder: '6位验证码 · 6-digit code', 'aria-label': 'code' });
  const codeRow = el('div', { class: 'code-row hidden' }, code);
  const done = el('div', { id: 'verified', class: 'verified hidden' });
  const hint = el('div', { class: 'hint' });
  let timer = null;

  const digits = () => phone.value.replace(/[\s-]/g, '');
  function showSaved() {
    const s = saved();
    if (!s) {
      done.classList.add('hidden');
      hint.classList.remove('hidden');
      phone.parentElement.classList.remove('hidden');
      return;
    }
    hint.classList.add('hidden');
    done.replaceChildren(`✓ 已验证 ${masked(s.phone)} · Verified `,
      el('button', { id: 'change-phone', type: 'button', class: 'link', onclick: () => { localStorage.removeItem(store); showSaved(); } }, '更换 · change'));
    done.classList.remove('hidden');
    phone.parentElement.classList.add('hidden');
    codeRow.classList.add('hidden');
  }
  function countdown(secs) {
    clearInterval(timer);
    let left = secs;
    send.disabled = true;
    const tick = () => {
      if (left <= 0) { clearInterval(timer); send.disabled = false; send.textContent = '重新获取 · Send again'; return; }
      send.textContent = `${left} 秒后可重发 · resend in ${left} s`;
      left -= 1;
    };
    tick();
    timer = setInterval(tick, 1000);
  }
  send.addEventListener('click', async () => {
    const p = digits();
    if (!MOBILE.test(p)) { say('请输入11位手机号 · Enter your 11-digit mobile number.'); return; }
    send.disabled = true;
    const r = await api('POST', `/halls/${hall}/phone-codes`, { body: { phone: p } });
    if (r.status !== 202) { send.disabled = false; say(citizenProblem(r)); return; }
    say('');
    codeRow.classList.remove('hidden');
    code.focus();
    hint.textContent = '验证码已发送，5分钟内有效 · Code sent; valid 5 minutes.';
    countdown(60);
  });

  const row = el('div', { class: 'phone-row' }, phone, verify ? send : null);
  box.replaceChildren(row, verify ? codeRow : null, done, hint);
  if (verify) {
    hint.textContent = required
      ? '需验证手机号，用于接收通知 · A verified mobile number is needed, for messages.'
      : '选填：验证手机号后可收到短信提醒 · Optional: verify your mobile to get text messages.';
    showSaved();
  } else {
    hint.textContent = required ? '' : '选填，用于短信提醒 · Optional, for text messages.';
  }

  return {
    async notify() {
      if (verify) {
        const s = saved();
        if (s) return { phone_token: s.phone_token };
        const p = digits();
        if (!p && !required) return null;
        if (!MOBILE.test(p)) throw new Error('请输入11位手机号并获取验证码 · Enter your mobile number and get a code.');
        const c = code.value.trim();
        if (!/^\d{6}$/.test(c)) throw new Error('请输入短信中的6位验证码 · Enter the 6-digit code from the message.');
        const r = await api('POST', `/halls/${hall}/phone-codes/verify`, { body: { phone: p, code: c } });
        if (r.status !== 200) throw new Error(citizenProblem(r));
        localStorage.setItem(store, JSON.stringify({ phone: p, phone_token: r.body.phone_token, expires_at: r.body.expires_at }));
        clearInterval(timer);
        showSaved();
        return { phone_token: r.body.phone_token };
      }
      const p = digits();
      if (!p) {
        if (required) throw new Error('请输入手机号 · Enter your phone number.');
        return null;
      }
      return { phone: p };
    },
    /** A phone token the server no longer takes: verify again. */
    forget() { localStorage.removeItem(store); showSaved(); },
  };
}
