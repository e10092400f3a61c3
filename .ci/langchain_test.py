"""Drives mistral-cache with LangChain (`langchain-mistralai`).

`ChatMistralAI.invoke`, `ChatMistralAI.stream` and
`MistralAIEmbeddings.embed_documents`, each twice through the proxy: the first
call of each reaches the fake upstream once, the second is answered from the
cache with an identical result. LangChain streams through `httpx-sse`, which
sends `Cache-Control: no-store` on every request; the proxy must not read that
as a cache directive.

Usage: langchain_test.py PROXY_URL FAKE_UPSTREAM_URL
(the fake upstream is `cargo run --example fake_upstream`, which counts calls
at /_fake/calls). Needs no network: HF_HUB_OFFLINE=1, and the embeddings get a
tokenizer built here instead of one downloaded from the hub.
"""

import sys

from langchain_mistralai import ChatMistralAI, MistralAIEmbeddings
from proxy_e2e import cached_twice, wait_until_up
from tokenizers import Tokenizer, models, pre_tokenizers


def twice(label, proxy, upstream, call):
    """Runs `call` twice; the second must come from the cache, identical."""
    first, second = cached_twice(label, proxy, upstream, call)
    assert first == second, f"{label}: the cached result differs from the live one:\n{first!r}\n{second!r}"
    print(f"ok: {label}: one upstream call, second answer from the cache, identical")
    return first


def local_tokenizer():
    """A whitespace word-level tokenizer: enough for LangChain's batch sizing."""
    tokenizer = Tokenizer(models.WordLevel(vocab={"[UNK]": 0}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    return tokenizer


def main():
    proxy, upstream = sys.argv[1].rstrip("/"), sys.argv[2].rstrip("/")
    wait_until_up(upstream + "/_fake/calls", "the fake upstream")
    wait_until_up(proxy + "/_mistral-cache/healthz", "the proxy")
    # Its own API key: entries of the Python SDK test (another key) are not shared.
    key = "langchain-key-not-real"
    chat = ChatMistralAI(model="mistral-large-latest", api_key=key, base_url=proxy + "/v1", max_retries=0)
    prompt = "How far is the Moon from the Earth? (LangChain)"

    def invoke():
        message = chat.invoke(prompt)
        return message.content

    text = twice("ChatMistralAI.invoke", proxy, upstream, invoke)
    assert text, "empty answer"

    def stream():
        return [chunk.content for chunk in chat.stream(prompt + " streamed")]

    chunks = twice("ChatMistralAI.stream", proxy, upstream, stream)
    assert len([c for c in chunks if c]) > 1, f"the stream should have several chunks: {chunks!r}"

    embeddings = MistralAIEmbeddings(
        model="mistral-embed",
        api_key=key,
        endpoint=proxy + "/v1/",
        tokenizer=local_tokenizer(),
        max_retries=None,
    )
    vectors = twice(
        "MistralAIEmbeddings.embed_documents",
        proxy,
        upstream,
        lambda: embeddings.embed_documents(["a cached sentence", "another one"]),
    )
    assert len(vectors) == 2 and all(vectors), vectors
    print("LangChain test passed")


if __name__ == "__main__":
    main()
