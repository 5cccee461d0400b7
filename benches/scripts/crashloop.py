# Crash loop (issue "Day after day"): N rounds of mixed load against the
# real binary, each ended by `kill -9` at a random moment, then a restart on
# the same data dir. After every restart it checks: every answered ticket is
# still there (0 lost), no number was given twice in a day, hall and floor
# seqs are gapless in the store (over the newest 10,000 of each channel,
# which it must keep), and idempotent repeats are answered the
# same as the first time.
#
#     python3 benches/scripts/crashloop.py target/release/hallcast [ROUNDS]
import json, random, sqlite3, subprocess, sys, tempfile, threading, time, urllib.request

BIN = sys.argv[1]
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 50
KIOSK = "demo-kiosk-lobby-1-token"
SERVICES = ["business", "tax", "social", "property", "fund"]
data = tempfile.mkdtemp(prefix="crashloop-")
random.seed(7)


def start():
    p = subprocess.Popen([BIN, "--listen", "127.0.0.1:0", "--data-dir", data],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in p.stdout:
        if line.startswith("listening on "):
            return p, line.split()[-1]
    raise SystemExit("hallcast did not start")


def post(base, path, token, body, key=None, timeout=5):
    h = {"Content-Type": "application/json"}
    if token:
        h["Authorization"] = "Bearer " + token
    if key:
        h["Idempotency-Key"] = key
    r = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST", headers=h)
    try:
        with urllib.request.urlopen(r, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except Exception:
        return None, None  # killed mid-request: no answer, so nothing promised


answered = {}   # token -> number (201 answers)
keyed = {}      # (key, body) -> first answer bytes
lock = threading.Lock()
stats = {"answered": 0, "calls": 0, "lost": 0, "dup_numbers": 0, "gaps": 0, "idem_mismatch": 0}


def load(base, stop, n):
    i = 0
    while not stop.is_set():
        i += 1
        svc = random.choice(SERVICES)
        key = f"r{n}-t{threading.get_ident()}-{i}"
        body = {"service": svc}
        st, b = post(base, "/api/v1/halls/demo/tickets", KIOSK, body, key)
        if st == 201:
            t = json.loads(b)
            with lock:
                answered[t["token"]] = t["number"]
                keyed[(key, json.dumps(body))] = b
                stats["answered"] += 1
        w = f"3-{random.randint(1, 25):02d}"
        st, _ = post(base, f"/api/v1/halls/demo/windows/{w}/call", f"demo-window-{w}-token", {})
        if st == 200:
            with lock:
                stats["calls"] += 1


def check(base, every=False):
    """Every answered ticket at the end; 500 of them between rounds."""
    with lock:
        items = list(answered.items())
    numbers = [n for _, n in items]
    stats["dup_numbers"] += len(numbers) - len(set(numbers))
    if not every:
        items = random.sample(items, min(500, len(items)))
    with lock:
        sample = random.sample(list(keyed.items()), min(50, len(keyed)))
    for token, number in items:
        with urllib.request.urlopen(base + f"/api/v1/tickets/{token}") as r:
            t = json.loads(r.read())
        if r.status != 200 or t["number"] != number:
            stats["lost"] += 1
    for (key, body), first in sample:
        st, b = post(base, "/api/v1/halls/demo/tickets", KIOSK, json.loads(body), key)
        if b != first:
            stats["idem_mismatch"] += 1
    # Gapless where the store must keep every event: the newest 10,000 of
    # the hall channel and of each floor channel (older ones are pruned by
    # design; a replay that reaches them gets a snapshot).
    db = sqlite3.connect(f"{data}/hallcast.db")
    kept = 10_000
    (top,) = db.execute("SELECT COALESCE(MAX(hall_seq), 0) FROM events WHERE hall='demo'").fetchone()
    seqs = [r[0] for r in db.execute(
        "SELECT hall_seq FROM events WHERE hall='demo' AND hall_seq > ? ORDER BY hall_seq", (top - kept,))]
    stats["gaps"] += 0 if seqs == list(range(max(1, top - kept + 1), top + 1)) else 1
    for (floor, ftop) in db.execute(
            "SELECT floor, MAX(floor_seq) FROM events WHERE hall='demo' GROUP BY floor").fetchall():
        fs = [r[0] for r in db.execute(
            "SELECT floor_seq FROM events WHERE hall='demo' AND floor=? AND floor_seq > ? ORDER BY floor_seq",
            (floor, ftop - kept))]
        stats["gaps"] += 0 if fs == list(range(max(1, ftop - kept + 1), ftop + 1)) else 1
    db.close()


began = time.time()
for n in range(ROUNDS):
    p, base = start()
    check(base)
    stop = threading.Event()
    threads = [threading.Thread(target=load, args=(base, stop, n)) for _ in range(8)]
    for t in threads:
        t.start()
    time.sleep(random.uniform(0.2, 1.5))
    p.kill()  # kill -9, mid-load
    p.wait()
    stop.set()
    for t in threads:
        t.join()
p, base = start()
check(base, every=True)
p.terminate()
p.wait()
print(json.dumps({"rounds": ROUNDS, "seconds": round(time.time() - began, 1), **stats}))
