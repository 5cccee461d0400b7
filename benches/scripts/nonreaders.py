# Memory of subscribers that never read (issue "Day after day"): 500 raw
# WebSocket subscribers ask ?after=1 on a floor at seq ~2,400 with 4 KiB
# receive buffers and never read; prints the server's VmRSS before and
# after, then checks that a reader with ?after=1 still gets every event
# in order.
#
#     python3 benches/scripts/nonreaders.py target/release/hallcast
import json, socket, subprocess, sys, time, urllib.request, os, tempfile
binary = sys.argv[1]
d = tempfile.mkdtemp()
p = subprocess.Popen([binary, "--listen", "127.0.0.1:0", "--data-dir", d], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
base = None
for line in p.stdout:
    if line.startswith("listening on "):
        base = line.split()[-1]; break
host, port = base.replace("http://", "").split(":")
def post(path, token, body):
    r = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    try:
        return json.loads(urllib.request.urlopen(r).read() or b"null")
    except Exception as e:
        return None
def rss():
    for l in open(f"/proc/{p.pid}/status"):
        if l.startswith("VmRSS"): return int(l.split()[1])
while True:
    seq = json.loads(urllib.request.urlopen(base + "/api/v1/halls/demo/floors/3").read())["seq"]
    if seq >= 2400: break
    for _ in range(50):
        post("/api/v1/halls/demo/tickets", "demo-admin-token-0000", {"service": "business"})
        post("/api/v1/halls/demo/windows/3-01/call", "demo-window-3-01-token", {})
print("floor 3 seq", seq)
time.sleep(1)
before = rss()
socks = []
for i in range(500):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect((host, int(port)))
    s.send(f"GET /ws/v1/halls/demo/floors/3?after=1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
    socks.append(s)
time.sleep(3)
after = rss()
print(f"RSS before {before/1024:.1f} MB, with 500 non-readers {after/1024:.1f} MB, delta {(after-before)/1024:.1f} MB ({(after-before)/500:.0f} KB each)")
# A reader with ?after=1 still gets every event in order.
r = socket.create_connection((host, int(port)))
r.send(b"GET /ws/v1/halls/demo/floors/3?after=1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
buf = b""; r.settimeout(20)
try:
    while True:
        c = r.recv(65536)
        if not c: break
        buf += c
except socket.timeout: pass
body = buf[buf.index(b"\r\n\r\n")+4:]
seqs = []; i = 0
while i + 2 <= len(body):
    b1 = body[i+1] & 127; j = i + 2
    if b1 == 126: n = int.from_bytes(body[j:j+2], "big"); j += 2
    elif b1 == 127: n = int.from_bytes(body[j:j+8], "big"); j += 8
    else: n = b1
    if j + n > len(body): break
    if body[i] & 15 == 1:
        m = json.loads(body[j:j+n]); ms = m if isinstance(m, list) else [m]
        seqs += [x["seq"] for x in ms]
    i = j + n
print("reader got", len(seqs), "events, in order and gapless:", seqs == list(range(2, seq + 1)))
p.terminate(); p.wait()
