"""Drives mistral-cache with the official `mistralai` Python SDK.

Plain chat, streaming chat, embeddings and audio transcriptions (multipart, whole
and streamed), each sent twice through the proxy;
the second of each must be answered from the cache: the fake upstream's call
counter must not move, and the proxy's metrics must count the hits.

Usage: python_sdk_test.py PROXY_URL FAKE_UPSTREAM_URL
(the fake upstream is `cargo run --example fake_upstream`, which counts calls
at /_fake/calls).
"""

import sys

from proxy_e2e import cached_twice, upstream_calls, wait_until_up

try:  # mistralai >= 2
    from mistralai.client import Mistral
except ImportError:  # mistralai 1.x
    from mistralai import Mistral


def twice(label, proxy, upstream, call):
    """Runs `call` twice; the second must come from the cache."""
    first, second = cached_twice(label, proxy, upstream, call)
    print(f"ok: {label}: second answer served from the cache")
    return first, second


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
