# Outbox throughput and latency (the citizen's-visit issue): N tickets with
# phones issued through the API by 64 clients against a local receiver that
# answers 200 at once; reports messages/s delivered and commit-to-delivery
# p50/p99 (the receiver's arrival time against the message's created_at).
#
#     python3 benches/scripts/outbox.py target/release/hallcast 10000
#     python3 benches/scripts/outbox.py target/release/hallcast 10000 off   # no [halls.notify]: commands/s alone
import json, subprocess, sys, tempfile, threading, time, urllib.request, os
from datetime import datetime
from concurrent.futures import ThreadPoolExecutor

binary, n = sys.argv[1], int(sys.argv[2])
off = len(sys.argv) > 3 and sys.argv[3] == "off"
# The receiver runs in a process of its own: sharing this one's interpreter
# lock with the 64 issuing threads would slow the clients, not the server.
def receive(port_q, out_q, stop):
    import json, time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    got = []
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        def do_POST(self):
            body = self.rfile.read(int(self.headers["content-length"]))
            got.append((time.time(), json.loads(body)))
            self.send_response(200); self.send_header("content-length", "0"); self.end_headers()
        def log_message(self, *a): pass
    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    port_q.put(srv.server_port)
    import threading
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    stop.wait()
    out_q.put(got)
import multiprocessing as mp
port_q, out_q, stop = mp.Queue(), mp.Queue(), mp.Event()
rxp = mp.Process(target=receive, args=(port_q, out_q, stop), daemon=True)
rxp.start()
rx_port = port_q.get()
d = tempfile.mkdtemp()
demo = open(os.path.join(os.path.dirname(__file__), "../../src/demo.toml")).read()
cfg = demo.replace("[server]\n", "[server.limits]\nstreams_per_ip = 0\n\n[server]\n", 1)
if not off: cfg = cfg.replace(
    "  [[halls.floors]]", f'  [halls.notify]\n  webhook_url = "http://127.0.0.1:{rx_port}/hook"\n  secret = "bench-secret-0123456789"\n  remind_ahead = 0\n\n  [[halls.floors]]', 1)
open(os.path.join(d, "c.toml"), "w").write(cfg)
p = subprocess.Popen([binary, "--listen", "127.0.0.1:0", "--config", os.path.join(d, "c.toml"), "--data-dir", os.path.join(d, "data")],
                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
for line in p.stdout:
    if line.startswith("listening on "): base = line.split()[-1]; break
services = ["business", "property", "social", "fund", "tax", "household", "exit-entry", "pickup", "construction"]
def issue(i):
    r = urllib.request.Request(base + "/api/v1/halls/demo/tickets", method="POST",
        data=json.dumps({"service": services[i % len(services)], "notify": {"phone": "13800000000"}}).encode(),
        headers={"Authorization": "Bearer demo-kiosk-lobby-1-token", "Content-Type": "application/json"})
    urllib.request.urlopen(r).read()
def cpu(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
c0 = cpu(p.pid)
r0, me0 = cpu(rxp.pid), cpu(os.getpid())
t0 = time.time()
with ThreadPoolExecutor(64) as ex: list(ex.map(issue, range(n)))
t1 = time.time()
if off:
    print(f"issued {n} tickets with phones in {t1-t0:.2f} s ({n/(t1-t0):.0f} commands/s, 64 clients), no outbox; server CPU {cpu(p.pid)-c0:.2f} s = {(cpu(p.pid)-c0)/n*1e6:.0f} µs per ticket")
    print(f"clients' CPU {cpu(os.getpid())-me0:.2f} s (the same two cores)")
    p.terminate(); p.wait(); sys.exit(0)
# Wait until the server's outbox is empty of pending messages, then collect.
def pending():
    r = urllib.request.Request(base + "/api/v1/halls/demo/outbox?status=pending",
        headers={"Authorization": "Bearer demo-admin-token-0000"})
    return len(json.loads(urllib.request.urlopen(r).read()))
while pending() > 0 and time.time() - t1 < 120: time.sleep(0.05)
t2 = time.time()
time.sleep(0.2)
stop.set()
a = out_q.get()
lat = sorted(t - datetime.fromisoformat(m["created_at"]).timestamp() for t, m in a)
q = lambda f: lat[min(len(lat) - 1, int(f * len(lat)))] * 1000
first, last = min(t for t, _ in a), max(t for t, _ in a)
print(f"issued {n} tickets with phones in {t1-t0:.2f} s ({n/(t1-t0):.0f} commands/s, 64 clients)")
print(f"delivered {len(a)} messages; {len(a)/(last-first):.0f} messages/s from first to last delivery; all in {t2-t0:.2f} s")
print(f"commit-to-delivery ms: p50 {q(.5):.1f}  p99 {q(.99):.1f}  max {lat[-1]*1000:.1f}")
print(f"duplicates: {len(a) - len({m['id'] for _, m in a})}")
print(f"server CPU {cpu(p.pid)-c0:.2f} s = {(cpu(p.pid)-c0)/n*1e6:.0f} µs per ticket and its message")
print(f"receiver CPU {cpu(rxp.pid)-r0:.2f} s, clients' CPU {cpu(os.getpid())-me0:.2f} s (the same two cores)")
p.terminate(); p.wait()
