"""Helpers shared by the end-to-end scripts that drive mistral-cache with real
clients (`python_sdk_test.py`, `langchain_test.py`): the fake upstream's call
counter, the proxy's metrics, and the "second call is a hit" check.
"""

import json
import time
import urllib.request


def get_json(url):
    with urllib.request.urlopen(url, timeout=10) as res:
        return json.load(res)


def get_text(url):
    with urllib.request.urlopen(url, timeout=10) as res:
        return res.read().decode()


def upstream_calls(upstream):
    return get_json(upstream + "/_fake/calls")["total"]


def metric(proxy, name):
    for line in get_text(proxy + "/_mistral-cache/metrics").splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"metric {name} not found")


def cached_twice(label, proxy, upstream, call):
    """Runs `call` twice; the first reaches the upstream once, the second must not
    (and the proxy counts one hit). Returns both results."""
    before = upstream_calls(upstream)
    hits_before = metric(proxy, "mistral_cache_hits_total")
    first = call()
    after_first = upstream_calls(upstream)
    assert after_first == before + 1, f"{label}: first call should reach the upstream once ({before} -> {after_first})"
    second = call()
    after_second = upstream_calls(upstream)
    assert after_second == after_first, f"{label}: second call reached the upstream ({after_first} -> {after_second})"
    hits = metric(proxy, "mistral_cache_hits_total")
    assert hits == hits_before + 1, f"{label}: the proxy counted {hits - hits_before} hits, expected 1"
    return first, second


def wait_until_up(url, what):
    deadline = time.monotonic() + 30
    while True:
        try:
            get_text(url)
            return
        except OSError as e:
            if time.monotonic() > deadline:
                raise SystemExit(f"{what} at {url} is not answering: {e}")
            time.sleep(0.2)
