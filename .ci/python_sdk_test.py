"""Drives mistral-cache with the official `mistralai` Python SDK.

Plain chat, streaming chat, embeddings and audio transcriptions (multipart, whole
and streamed), each sent twice through the proxy;
the second of each must be answered from the cache: the fake upstream's call
counter must not move, and the proxy's metrics must count the hits.

Usage: python_sdk_test.py PROXY_URL FAKE_UPSTREAM_URL
(the fake upstream is `cargo run --example fake_upstream`, which counts calls
at /_fake/calls).
"""

import json
import sys
import time
import urllib.request

try:  # mistralai >= 2
    from mistralai.client import Mistral
except ImportError:  # mistralai 1.x
    from mistralai import Mistral


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


def twice(label, proxy, upstream, call):
    """Runs `call` twice; the first reaches the upstream, the second must not."""
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
    print(f"ok: {label}: second answer served from the cache")
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


def main():
    proxy, upstream = sys.argv[1].rstrip("/"), sys.argv[2].rstrip("/")
    wait_until_up(upstream + "/_fake/calls", "the fake upstream")
    wait_until_up(proxy + "/_mistral-cache/healthz", "the proxy")
    client = Mistral(api_key="test-key-not-real", server_url=proxy)
    messages = [{"role": "user", "content": "How far is the Moon from the Earth?"}]

    first, second = twice(
        "chat.complete",
        proxy,
        upstream,
        lambda: client.chat.complete(model="mistral-large-latest", messages=messages),
    )
    assert first.choices[0].message.content == second.choices[0].message.content
    assert first.id == second.id
    assert second.usage.total_tokens == first.usage.total_tokens > 0

    def stream():
        chunks = []
        with client.chat.stream(model="mistral-large-latest", messages=messages) as events:
            for event in events:
                chunks.append(event.data.model_dump_json())
        return chunks

    first, second = twice("chat.stream", proxy, upstream, stream)
    assert len(first) > 1, "the stream should have several events"
    assert first == second, "the cached stream differs from the live one"

    first, second = twice(
        "embeddings.create",
        proxy,
        upstream,
        lambda: client.embeddings.create(model="mistral-embed", inputs=["a cached sentence", "another one"]),
    )
    assert len(second.data) == 2
    assert first.id == second.id, "the second embedding response was not the stored one"
    assert [d.embedding for d in first.data] == [d.embedding for d in second.data]

    # A transcription is keyed on the form's content, not its random boundary: the
    # same audio twice makes one upstream call, a different file makes another.
    audio_a = bytes(range(256)) * 200
    audio_b = bytes(range(128)) * 400

    def transcribe(data):
        return lambda: client.audio.transcriptions.complete(
            model="voxtral-mini-latest",
            file={"file_name": "a.mp3", "content": data, "content_type": "audio/mpeg"},
            language="en",
        )

    first, second = twice("audio.transcriptions.complete", proxy, upstream, transcribe(audio_a))
    assert first.text == second.text and first.text
    before = upstream_calls(upstream)
    other = transcribe(audio_b)()
    assert upstream_calls(upstream) == before + 1, "a different audio file was served another file's transcription"
    assert other.text != first.text
    print("ok: audio.transcriptions.complete: a different file reaches the upstream")

    # A streamed transcription ends with `transcription.done` (no `[DONE]`): stored
    # whole and replayed event for event.
    def stream_transcription():
        events = []
        with client.audio.transcriptions.stream(
            model="voxtral-mini-latest",
            file={"file_name": "s.wav", "content": audio_a, "content_type": "audio/wav"},
        ) as stream:
            for event in stream:
                events.append(event.data.model_dump_json())
        return events

    first, second = twice("audio.transcriptions.stream", proxy, upstream, stream_transcription)
    assert len(first) > 2 and "transcription.done" in first[-1], first
    assert first == second, "the cached transcription stream differs from the live one"

    # A different API key must not see the first key's entries.
    other = Mistral(api_key="another-key-not-real", server_url=proxy)
    before = upstream_calls(upstream)
    other.chat.complete(model="mistral-large-latest", messages=messages)
    assert upstream_calls(upstream) == before + 1, "a different API key was served another key's entry"
    print("ok: a different API key is not served the first key's entries")
    print("python SDK test passed")


if __name__ == "__main__":
    main()
