#!/usr/bin/env python3
"""Single-flight across replicas, end to end: three real `mistral-cache` processes on one
engine (Redis or PostgreSQL) in front of one upstream that counts its calls.

    python3 .ci/fleet_test.py BINARY ENGINE_URL

1. 60 concurrent identical JSON requests spread over the 3 proxies: one upstream call,
   60 identical complete answers.
2. 30 concurrent identical streams: one upstream call, 30 byte-identical streams ending
   with `data: [DONE]`.
3. The leader's proxy is killed (SIGKILL) mid-stream: the followers on the two others
   end (with an error: their stream is cut, never hangs) within a bounded time, and a
   later request gets a complete answer.

The upstream is a small threaded HTTP server in this process: JSON answers after 1 s,
streams send 8 events 150 ms apart; the first call of a `kill-` request stalls after two
events until the test ends. Every process started here is stopped by its pid.
"""

import http.client
import http.server
import json
import os
import random
import signal
import socketserver
import subprocess
import sys
import threading
import time
import urllib.request

AUTH = "Bearer ci-fleet"
PROXY_PORTS = [18181, 18182, 18183]
UPSTREAM_PORT = 18180
# Bounds against hangs only.
HEAD_WAIT = 30
FOLLOWER_END_WAIT = 45


class Upstream:
    def __init__(self):
        self.lock = threading.Lock()
        self.calls = {}
        self.release = threading.Event()

    def count(self, tag):
        with self.lock:
            self.calls[tag] = self.calls.get(tag, 0) + 1
            return self.calls[tag]

    def calls_for(self, tag):
        with self.lock:
            return self.calls.get(tag, 0)


UP = Upstream()


def stream_events(tag):
    events = [
        "data: " + json.dumps({"id": "cmpl-" + tag, "choices": [{"delta": {"content": f"w{i} "}}]}) + "\n\n"
        for i in range(8)
    ]
    events.append("data: [DONE]\n\n")
    return events


def json_answer(tag):
    return json.dumps(
        {"id": "cmpl-" + tag, "object": "chat.completion", "choices": [{"message": {"role": "assistant", "content": "hello " + tag}}]}
    ).encode()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        req = json.loads(body)
        tag = req["messages"][0]["content"]
        n = UP.count(tag)
        try:
            if req.get("stream"):
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()
                for i, ev in enumerate(stream_events(tag)):
                    data = ev.encode()
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                    self.wfile.flush()
                    if tag.startswith("kill-") and n == 1 and i == 1:
                        UP.release.wait(120)
                        return
                    time.sleep(0.15)
                self.wfile.write(b"0\r\n\r\n")
            else:
                time.sleep(1.0)
                data = json_answer(tag)
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        # The killed proxy's kept-alive connections are reset: expected, not an error.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def post(port, tag, stream, on_head=None):
    """One request; returns (status, x-cache, body bytes, error string or None)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=FOLLOWER_END_WAIT + 30)
    body = json.dumps({"model": "mistral-small-latest", "stream": stream, "messages": [{"role": "user", "content": tag}]})
    conn.request("POST", "/v1/chat/completions", body=body, headers={"content-type": "application/json", "authorization": AUTH})
    res = conn.getresponse()
    xc = res.getheader("x-cache", "")
    if on_head:
        on_head(xc)
    chunks, err = [], None
    try:
        while True:
            chunk = res.read1(65536) if hasattr(res, "read1") else res.read(65536)
            if not chunk:
                break
            chunks.append(chunk)
    except Exception as e:  # a cut stream: IncompleteRead, reset, ...
        err = repr(e)
    conn.close()
    return res.status, xc, b"".join(chunks), err


def concurrently(n, fn):
    results = [None] * n
    barrier = threading.Barrier(n)

    def run(i):
        barrier.wait()
        try:
            results[i] = fn(i)
        except Exception as e:
            results[i] = ("exception", repr(e))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results


def metric_total(port, name):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_mistral-cache/metrics", timeout=10) as r:
        text = r.read().decode()
    return {line.split()[0]: float(line.split()[-1]) for line in text.splitlines() if line.startswith(name)}


def wait_up(port):
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/_mistral-cache/healthz", timeout=2).read()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"proxy on {port} did not start")
            time.sleep(0.2)


def main():
    binary, engine = sys.argv[1], sys.argv[2]
    run = f"{os.getpid()}-{random.randrange(1 << 30):x}"
    server = Server(("127.0.0.1", UPSTREAM_PORT), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    logs, procs = [], []

    def start(port):
        log = open(f"/tmp/fleet-proxy-{port}.log", "w")
        p = subprocess.Popen(
            [binary, "serve", "--listen", f"127.0.0.1:{port}", "--upstream", f"http://127.0.0.1:{UPSTREAM_PORT}",
             "--engine", engine, "--ttl", "10m", "--access-log", "off"],
            stdout=log, stderr=subprocess.STDOUT)
        logs.append(log)
        return p

    failed = False
    try:
        procs = [start(p) for p in PROXY_PORTS]
        for p in PROXY_PORTS:
            wait_up(p)

        # 1. JSON
        tag = f"json-{run}"
        res = concurrently(60, lambda i: post(PROXY_PORTS[i % 3], tag, False))
        expected = json_answer(tag)
        bad = [r for r in res if r[0] != 200 or r[2] != expected or r[3] is not None]
        assert not bad, f"JSON: {len(bad)} wrong answers, e.g. {bad[:2]}"
        assert UP.calls_for(tag) == 1, f"JSON: {UP.calls_for(tag)} upstream calls, expected 1"
        print(f"json: 60 requests over 3 proxies, 1 upstream call, x-cache {sorted(set(r[1] for r in res))}")

        # 2. Streams
        tag = f"stream-{run}"
        res = concurrently(30, lambda i: post(PROXY_PORTS[i % 3], tag, True))
        expected = "".join(stream_events(tag)).encode()
        bad = [r for r in res if r[0] != 200 or r[2] != expected or r[3] is not None]
        assert not bad, f"streams: {len(bad)} wrong answers, e.g. {bad[:2]}"
        assert UP.calls_for(tag) == 1, f"streams: {UP.calls_for(tag)} upstream calls, expected 1"
        print(f"streams: 30 over 3 proxies, 1 upstream call, byte-identical, x-cache {sorted(set(r[1] for r in res))}")
        fleet = {}
        for p in PROXY_PORTS:
            for k, v in metric_total(p, "mistral_cache_fleet_total").items():
                fleet[k] = fleet.get(k, 0) + v
        print(f"fleet counters over the 3 proxies: {fleet}")
        assert fleet.get('mistral_cache_fleet_total{role="leader"}') == 2, fleet

        # 3. Kill the leader's process mid-stream.
        tag = f"kill-{run}"
        leader = threading.Thread(target=lambda: post_quiet(PROXY_PORTS[0], tag), daemon=True)
        leader.start()
        deadline = time.monotonic() + HEAD_WAIT
        while UP.calls_for(tag) < 1:
            assert time.monotonic() < deadline, "the leader never called upstream"
            time.sleep(0.05)
        heads = []
        heads_lock = threading.Lock()

        def on_head(xc):
            with heads_lock:
                heads.append(xc)

        results = [None] * 10

        def follower(i):
            results[i] = post(PROXY_PORTS[1 + i % 2], tag, True, on_head)

        threads = [threading.Thread(target=follower, args=(i,), daemon=True) for i in range(10)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + HEAD_WAIT
        while len(heads) < 10:
            assert time.monotonic() < deadline, f"only {len(heads)} followers got a head"
            time.sleep(0.05)
        assert set(heads) == {"COALESCED"}, heads
        killed_at = time.monotonic()
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait()
        for t in threads:
            t.join(max(0, killed_at + FOLLOWER_END_WAIT - time.monotonic()))
        stranded = sum(t.is_alive() for t in threads)
        assert stranded == 0, f"{stranded} followers still hang {FOLLOWER_END_WAIT}s after the leader died"
        took = time.monotonic() - killed_at
        complete = [r for r in results if r[3] is None and r[2].endswith(b"data: [DONE]\n\n")]
        assert not complete, "a follower of a killed leader got a complete-looking stream"
        print(f"kill: 10 followers on the 2 other proxies ended {took:.1f}s after the leader's SIGKILL "
              f"({sum(r[3] is not None for r in results)} with a cut stream)")
        status, xc, body, err = post(PROXY_PORTS[1], tag, True)
        assert status == 200 and err is None and body == "".join(stream_events(tag)).encode(), (status, xc, err)
        assert UP.calls_for(tag) == 2, UP.calls_for(tag)
        print(f"kill: a later request got the complete answer (x-cache {xc}, upstream call 2)")
    except AssertionError as e:
        failed = True
        print(f"FAILED: {e}")
    finally:
        UP.release.set()
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        server.shutdown()
        for log in logs:
            log.close()
    if failed:
        for port in PROXY_PORTS:
            print(f"--- proxy {port} log (tail)")
            with open(f"/tmp/fleet-proxy-{port}.log") as f:
                print("".join(f.readlines()[-30:]))
        sys.exit(1)


def post_quiet(port, tag):
    try:
        post(port, tag, True)
    except Exception:
        pass


if __name__ == "__main__":
    main()
