// A reference point for the fan-out benchmark: the same API surface the
// load generator uses (issue tickets, call at a window, floor channel with
// a snapshot), served by Node's `ws` with one ~200-byte message per call —
// the set-up of the reference figures in the realtime issue. Running it
// beside hallcast on the same machine, at the same moment, shows how much
// of a difference in figures is the machine and how much is the server.
//
//   (cd benches/reference && npm ci)
//   HALLCAST_BENCH_SERVER="node benches/reference/ws-broadcast.mjs" \
//     taskset -c 1 target/release/deps/fanout-* --subs 10000 --scenario latency --server-cpu 0
//
// Not a hallcast: nothing is stored, nothing is checked.
import http from 'node:http';
import { WebSocketServer } from 'ws';

const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
const clients = new Set();
let seq = 0;
let issued = 0;
let called = 0;
const num = (n) => 'A' + String(n).padStart(3, '0');

function called_message(number, window) {
  const m = { type: 'called', seq: seq, floor: 3, number, window, zone: 'C', name: 'Comprehensive window', pad: '' };
  const s = JSON.stringify(m);
  m.pad = 'x'.repeat(Math.max(0, 200 - s.length));
  return JSON.stringify(m);
}

function answer(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(body === undefined ? '' : JSON.stringify(body));
}

const server = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    if (req.method === 'POST' && req.url === '/api/v1/halls/demo/tickets') {
      issued += 1;
      return answer(res, 201, { number: num(issued) });
    }
    const m = req.url.match(/^\/api\/v1\/halls\/demo\/windows\/([^/]+)\/call$/);
    if (req.method === 'POST' && m) {
      if (called >= issued) return answer(res, 204);
      called += 1;
      seq += 1;
      const msg = called_message(num(called), m[1]);
      for (const c of clients) c.send(msg);
      return answer(res, 200, { number: num(called) });
    }
    answer(res, 404, { error: 'not_found' });
  });
});

server.on('upgrade', (req, socket, head) => {
  if (!req.url.startsWith('/ws/v1/halls/demo/floors/')) return socket.destroy();
  wss.handleUpgrade(req, socket, head, (ws) => {
    clients.add(ws);
    ws.on('close', () => clients.delete(ws));
    ws.on('error', () => clients.delete(ws));
    ws.send(JSON.stringify({ type: 'snapshot', seq }));
  });
});

// The generator passes hallcast's arguments; only --listen matters here.
const at = process.argv.indexOf('--listen');
const [host, port] = (at > 0 ? process.argv[at + 1] : '127.0.0.1:0').split(':');
server.listen({ host, port: Number(port), backlog: 4096 }, () => {
  console.log(`listening on http://${host}:${server.address().port}`);
});
