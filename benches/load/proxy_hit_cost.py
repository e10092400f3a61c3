# Per-hit cost of a `mistral-cache` binary: N sequential keep-alive POSTs of a 2 KiB chat
# body that all hit a memory engine (or the engine URL in ENGINE, e.g.
# ENGINE=file:///tmp/mc-cache for the default file engine), in front of a Python upstream
# answering 4 KiB of JSON.
#
#   python3 benches/load/proxy_hit_cost.py target/release/mistral-cache 20000   # CPU us/req from /proc
#   WRAP="valgrind --tool=callgrind --callgrind-out-file=a.out" \
#     python3 benches/load/proxy_hit_cost.py target/release/mistral-cache 300
#   WRAP="valgrind --tool=callgrind --callgrind-out-file=b.out" \
#     python3 benches/load/proxy_hit_cost.py target/release/mistral-cache 2300
#   # instructions per hit: (totals of b.out - totals of a.out) / 2000
import http.client, http.server, json, os, socket, subprocess, sys, threading, time
binary, n = sys.argv[1], int(sys.argv[2])
resp = json.dumps({"id": "x", "object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant", "content": "a" * 3900}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}).encode()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200); self.send_header("content-type", "application/json"); self.send_header("content-length", str(len(resp))); self.end_headers(); self.wfile.write(resp)
    def log_message(self, *a): pass
up = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
threading.Thread(target=up.serve_forever, daemon=True).start()
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
env = dict(os.environ, RUST_LOG="warn")
p = subprocess.Popen(os.environ.get("WRAP", "").split() + [binary, "serve", "--listen", f"127.0.0.1:{port}", "--upstream", f"http://127.0.0.1:{up.server_address[1]}", "--engine", os.environ.get("ENGINE", "memory://")], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    for _ in range(600):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port); c.connect(); break
        except OSError: time.sleep(0.1)
    body = json.dumps({"model": "mistral-small-latest", "messages": [{"role": "user", "content": "b" * 1950}]}).encode()
    hdrs = {"content-type": "application/json", "authorization": "Bearer k"}
    def one():
        c.request("POST", "/v1/chat/completions", body, hdrs); r = c.getresponse(); r.read(); return r.getheader("x-cache")
    for _ in range(200): one()
    assert one() == "HIT"
    def cpu():
        f = open(f"/proc/{p.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    c0 = cpu(); t0 = time.time()
    for _ in range(n):
        assert one() == "HIT"
    c1 = cpu(); t1 = time.time()
    print(f"{binary}: {n} hits, CPU {1e6 * (c1 - c0) / n:.1f} us/req, wall {1e6 * (t1 - t0) / n:.1f} us/req")
finally:
    p.terminate(); p.wait()
