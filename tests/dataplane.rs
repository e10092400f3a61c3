//! Files, models management, batch and audio against the fake, each request checked
//! against the OpenAPI spec (JSON, multipart and query parameters).

mod support;

use support::client;
use support::spec;

use bytes::Bytes;
use futures_util::TryStreamExt;
use mistral_tower::Client;
use mistral_tower::files::{
    FileListQuery, FilePurpose, FileSource, FileVisibility, SampleType, UploadFile,
};
use mistral_tower::models::{ModelListQuery, UpdateModelRequest};
use mistral_tower::testing::FakeMistral;

/// A client whose every request carries `x-fake-scenario: scenario`.
fn scenario_client(fake: &FakeMistral, scenario: &'static str) -> Client {
    Client::builder()
        .api_key("test-key")
        .service(fake.service())
        .layer(tower::util::MapRequestLayer::new(
            move |mut req: http::Request<mistral_tower::Body>| {
                req.headers_mut()
                    .insert("x-fake-scenario", http::HeaderValue::from_static(scenario));
                req
            },
        ))
        .build()
        .unwrap()
}

/// Every request the fake received validates against the spec; returns the
/// operation templates seen.
fn validate_all(fake: &FakeMistral) -> Vec<String> {
    let Some(spec) = spec::spec() else {
        return Vec::new();
    };
    fake.requests()
        .iter()
        .map(|r| spec::validate_request(spec, r))
        .collect()
}

#[tokio::test]
async fn files_upload_from_bytes_path_and_stream_then_list_get_download_url_delete() {
    let fake = FakeMistral::new();
    let client = client(&fake);
    let files = client.files();

    let a = files
        .upload(UploadFile::bytes("a.jsonl", "{\"x\":1}\n{\"x\":2}\n").purpose(FilePurpose::Batch))
        .await
        .unwrap();
    assert_eq!(a.filename, "a.jsonl");
    assert_eq!(a.purpose, Some(FilePurpose::Batch));
    assert_eq!(a.num_lines, Some(2));

    // From disk: streamed, with a Content-Length.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.jsonl");
    let content: Vec<u8> = (0..300_000u32)
        .flat_map(|i| format!("{{\"i\":{i}}}\n").into_bytes())
        .take(1_000_000)
        .collect();
    std::fs::write(&path, &content).unwrap();
    let b = files
        .upload(
            UploadFile::path(&path)
                .await
                .unwrap()
                .purpose(FilePurpose::FineTune)
                .expiry(48)
                .visibility(FileVisibility::User),
        )
        .await
        .unwrap();
    assert_eq!(b.bytes, Some(content.len() as u64));
    let rec = fake.last_request().unwrap();
    let len: usize = rec.headers["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(len, rec.body.len());
    assert!(
        rec.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("multipart/form-data; boundary=")
    );

    // From a stream of unknown length.
    let chunks = futures_util::stream::iter(vec![
        Ok::<_, std::io::Error>(Bytes::from_static(b"%PDF-1.7 ")),
        Ok(Bytes::from_static(b"fake")),
    ]);
    let c = files
        .upload(UploadFile::stream("doc.pdf", chunks, None).purpose(FilePurpose::Ocr))
        .await
        .unwrap();
    assert_eq!(c.bytes, Some(13));
    assert_eq!(c.mimetype.as_deref(), Some("application/pdf"));

    // list: filters and paging
    let page = files.list(FileListQuery::new().page_size(2)).await.unwrap();
    assert_eq!(page.items.len(), 2);
    assert_eq!(page.total, Some(3));
    let all: Vec<_> = page.into_data().into_stream().try_collect().await.unwrap();
    assert_eq!(
        all.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(),
        [&a.id, &b.id, &c.id]
    );
    let batch_only = files
        .list(
            FileListQuery::new()
                .purpose(FilePurpose::Batch)
                .search("a.json")
                .sample_type(vec![SampleType::BatchRequest])
                .source(vec![FileSource::Upload])
                .mimetypes(vec!["application/jsonl".into()])
                .include_total(true)
                .page(0),
        )
        .await
        .unwrap();
    assert_eq!(batch_only.items.len(), 1);
    assert_eq!(batch_only.items[0].id, a.id);

    // get, download (streamed), signed URL
    let got = files.get(&b.id).await.unwrap();
    assert_eq!(got.deleted, Some(false));
    let download = files.download(&b.id).await.unwrap();
    assert_eq!(download.content_length(), Some(content.len() as u64));
    let chunks: Vec<Bytes> = download.try_collect().await.unwrap();
    assert!(chunks.len() > 1, "the body arrives in chunks");
    assert_eq!(chunks.concat(), content);
    let saved = dir.path().join("copy.jsonl");
    let n = files
        .download(&b.id)
        .await
        .unwrap()
        .save(&saved)
        .await
        .unwrap();
    assert_eq!(n, content.len() as u64);
    assert_eq!(std::fs::read(&saved).unwrap(), content);
    let url = files.signed_url(&b.id, Some(2)).await.unwrap();
    assert!(url.url.contains("expiry=2h"), "{}", url.url);

    // delete: a JSON answer, then a bodiless 204
    let del = files.delete(&a.id).await.unwrap();
    assert!(del.deleted);
    assert_eq!(del.id, a.id);
    let err = files.get(&a.id).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(404));

    let templates = validate_all(&fake);
    if !templates.is_empty() {
        for t in [
            "/v1/files",
            "/v1/files/{file_id}",
            "/v1/files/{file_id}/content",
            "/v1/files/{file_id}/url",
        ] {
            assert!(templates.iter().any(|x| x == t), "{t} not exercised");
        }
    }
}

#[tokio::test]
async fn delete_answered_204_without_a_body_is_a_success() {
    let fake = FakeMistral::new();
    let client = scenario_client(&fake, "delete-204");
    let f = client
        .files()
        .upload(UploadFile::bytes("x.txt", "x"))
        .await
        .unwrap();
    let del = client.files().delete(&f.id).await.unwrap();
    assert_eq!(del.status().as_u16(), 204);
    assert!(del.deleted);
    assert_eq!(del.id, f.id);

    // every delete: a scripted bodiless 204
    let empty = || mistral_tower::testing::FakeResponse::json("").with_status(204);
    let model = "ft:open-mistral-7b:abc123:20240101:def";
    fake.push_for(format!("/v1/models/{model}"), empty());
    let del = client.models().delete(model).await.unwrap();
    assert!(del.deleted && del.id == model);
    fake.push_for("/v1/batch/jobs/job-1", empty());
    let del = client.batch().delete("job-1").await.unwrap();
    assert!(del.deleted && del.id == "job-1");
    fake.push_for("/v1/audio/voices/v-1", empty());
    let del = client.audio().voices().delete("v-1").await.unwrap();
    assert_eq!(del.id, "v-1");
    assert_eq!(del.status().as_u16(), 204);
}

#[tokio::test]
async fn models_list_query_update_archive_unarchive() {
    let fake = FakeMistral::new();
    let client = client(&fake);
    let models = client.models();
    let list = models
        .list_with(
            &ModelListQuery::new()
                .provider("mistralai")
                .model("mistral-small-latest"),
        )
        .await
        .unwrap();
    assert!(!list.data.is_empty());
    assert_eq!(
        fake.last_request().unwrap().query.as_deref(),
        Some("provider=mistralai&model=mistral-small-latest")
    );
    let id = "ft:open-mistral-7b:587a6b29:20240514:7e773925";
    let updated = models
        .update(
            id,
            &UpdateModelRequest::new()
                .name("my model")
                .description("tuned"),
        )
        .await
        .unwrap();
    assert_eq!(updated.id, id);
    assert_eq!(updated.name.as_deref(), Some("my model"));
    assert_eq!(updated.description.as_deref(), Some("tuned"));
    assert!(updated.capabilities.completion_chat);
    let archived = models.archive(id).await.unwrap();
    assert_eq!(archived.archived, Some(true));
    let unarchived = models.unarchive(id).await.unwrap();
    assert_eq!(unarchived.archived, Some(false));
    let reqs = fake.requests();
    assert_eq!(
        reqs[2].path,
        "/v1/fine_tuning/models/ft:open-mistral-7b:587a6b29:20240514:7e773925/archive"
    );
    assert_eq!(reqs[3].method, http::Method::DELETE);
    validate_all(&fake);
}

mod batch {
    use std::time::Duration;

    use futures_util::TryStreamExt;
    use mistral_tower::batch::{
        ApiEndpoint, BatchJobStatus, BatchListQuery, BatchOrder, BatchRequest,
        CreateBatchJobRequest, WaitOptions,
    };
    use mistral_tower::chat::{ChatCompletionRequest, ChatCompletionResponse, ChatMessage};
    use mistral_tower::embeddings::{EmbeddingRequest, EmbeddingResponse};
    use mistral_tower::files::{FilePurpose, UploadFile};
    use mistral_tower::testing::FakeMistral;
    use serde_json::{Map, json};

    use super::{client, validate_all};

    fn fast() -> WaitOptions {
        WaitOptions::new(Duration::from_millis(1), Duration::from_millis(5))
            .timeout(Duration::from_secs(10))
    }

    #[tokio::test]
    async fn batch_from_a_file_waits_and_reads_typed_results_and_errors() {
        let fake = FakeMistral::new();
        let client = client(&fake);
        let mut jsonl = String::new();
        for (id, q) in [("0", "one?"), ("1", "two?"), ("fail-2", "three?")] {
            let req =
                ChatCompletionRequest::new("mistral-small-latest", vec![ChatMessage::user(q)]);
            jsonl.push_str(&BatchRequest::new(id, &req).unwrap().to_jsonl_line());
        }
        let input = client
            .files()
            .upload(UploadFile::bytes("in.jsonl", jsonl).purpose(FilePurpose::Batch))
            .await
            .unwrap();
        let mut metadata = Map::new();
        metadata.insert("team".into(), json!("search"));
        let job = client
            .batch()
            .create(
                &CreateBatchJobRequest::from_files(
                    ApiEndpoint::ChatCompletions,
                    [input.id.clone()],
                )
                .model("mistral-small-latest")
                .metadata(metadata)
                .timeout_hours(2)
                .agent_id("ag-1"),
            )
            .await
            .unwrap();
        assert_eq!(job.status, BatchJobStatus::Queued);
        assert_eq!(job.total_requests, 3);

        let done = client.batch().wait(&job.id, fast()).await.unwrap();
        assert_eq!(done.status, BatchJobStatus::Success);
        assert_eq!(done.failed_requests, 1);
        let results = client
            .batch()
            .results::<ChatCompletionResponse>(&done)
            .await
            .unwrap();
        assert_eq!(results.len(), 3);
        assert_eq!(results[0].custom_id.as_deref(), Some("0"));
        assert_eq!(
            results[0].outcome.as_ref().unwrap().text(),
            "Answer 0: one?"
        );
        let err = results[2].outcome.as_ref().unwrap_err();
        assert_eq!(err.status_code, Some(400));
        assert_eq!(err.api_error.as_ref().unwrap().message, "Invalid request");

        // inline outputs
        let inline = client.batch().get_inline(&job.id).await.unwrap();
        assert_eq!(inline.outputs.as_ref().map(Vec::len), Some(3));
        validate_all(&fake);
    }

    #[tokio::test]
    async fn inline_embeddings_batch_list_cancel_delete() {
        let fake = FakeMistral::new();
        let client = client(&fake);
        let reqs = (0..3)
            .map(|i| {
                BatchRequest::new(
                    format!("e{i}"),
                    &EmbeddingRequest::new("mistral-embed", [format!("text {i}")]),
                )
            })
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let a = client
            .batch()
            .create(
                &CreateBatchJobRequest::inline(ApiEndpoint::Embeddings, reqs)
                    .model("mistral-embed"),
            )
            .await
            .unwrap();
        let done = client.batch().wait(&a.id, fast()).await.unwrap();
        let results = client
            .batch()
            .results::<EmbeddingResponse>(&done)
            .await
            .unwrap();
        assert_eq!(results.len(), 3);
        assert!(results.iter().all(|r| r.outcome.is_ok()));

        let b = client
            .batch()
            .create(&CreateBatchJobRequest::inline(ApiEndpoint::ChatCompletions, vec![]).model("m"))
            .await
            .unwrap();
        let cancelling = client.batch().cancel(&b.id).await.unwrap();
        assert_eq!(cancelling.status, BatchJobStatus::CancellationRequested);
        let cancelled = client.batch().wait(&b.id, fast()).await.unwrap();
        assert_eq!(cancelled.status, BatchJobStatus::Cancelled);

        let page = client
            .batch()
            .list(
                BatchListQuery::new()
                    .page_size(1)
                    .order_by(BatchOrder::Created)
                    .created_by_me(true)
                    .created_after("2026-01-01T00:00:00Z"),
            )
            .await
            .unwrap();
        assert_eq!(page.total, Some(2));
        let all: Vec<_> = page.into_data().into_stream().try_collect().await.unwrap();
        assert_eq!(
            all.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(),
            [a.id.as_str(), b.id.as_str()]
        );
        let succeeded = client
            .batch()
            .list(
                BatchListQuery::new()
                    .status(vec![BatchJobStatus::Success])
                    .model("mistral-embed"),
            )
            .await
            .unwrap();
        assert_eq!(succeeded.items.len(), 1);

        let del = client.batch().delete(&b.id).await.unwrap();
        assert!(del.deleted);
        assert!(
            client
                .batch()
                .get(&b.id)
                .await
                .unwrap_err()
                .status()
                .is_some()
        );
        validate_all(&fake);
    }

    #[tokio::test]
    async fn wait_gives_up_at_its_timeout() {
        let fake = FakeMistral::new();
        let client = client(&fake);
        let job = client
            .batch()
            .create(&CreateBatchJobRequest::inline(
                ApiEndpoint::ChatCompletions,
                vec![],
            ))
            .await
            .unwrap();
        // a job that stays queued
        for _ in 0..50 {
            fake.push_for(
                format!("/v1/batch/jobs/{}", job.id),
                mistral_tower::testing::FakeResponse::json(serde_json::to_value(&*job).unwrap()),
            );
        }
        let opts = WaitOptions::new(Duration::from_millis(1), Duration::from_millis(2))
            .timeout(Duration::from_millis(30));
        let err = client.batch().wait(&job.id, opts).await.unwrap_err();
        assert!(err.is_timeout(), "{err:?}");
    }
}

mod audio {
    use bytes::Bytes;
    use futures_util::{StreamExt, TryStreamExt};
    use mistral_tower::audio::{
        SpeechOutputFormat, SpeechRequest, SpeechStreamEvent, TimestampGranularity,
        TranscriptionRequest, TranscriptionStreamEvent, VoiceCreateRequest, VoiceKind,
        VoiceListQuery, VoiceUpdateRequest,
    };
    use mistral_tower::cache::{CacheLayer, MemoryEngine};
    use mistral_tower::testing::FakeMistral;
    use mistral_tower::{Body, Client};
    use serde_json::{Map, json};

    use super::{client, scenario_client, validate_all};

    const PATH: &str = "/v1/audio/transcriptions";

    fn audio(seed: u8) -> Vec<u8> {
        (0..50_000u32)
            .map(|i| (i as u8).wrapping_mul(seed))
            .collect()
    }

    #[tokio::test]
    async fn transcribe_a_file_a_path_a_stream_a_url_and_a_file_id() {
        let fake = FakeMistral::new();
        let client = client(&fake);
        let data = audio(3);
        let res = client
            .audio()
            .transcribe(
                TranscriptionRequest::bytes("voxtral-mini-latest", "a.mp3", data.clone())
                    .language("en")
                    .temperature(0.0)
                    .diarize(false)
                    .context_bias(vec!["Mistral".into(), "Voxtral".into()])
                    .timestamp_granularities(vec![
                        TimestampGranularity::Segment,
                        TimestampGranularity::Word,
                    ]),
            )
            .await
            .unwrap();
        assert!(
            res.text.starts_with("Transcript of a.mp3 (50000 bytes"),
            "{}",
            res.text
        );
        assert_eq!(res.language.as_deref(), Some("en"));
        assert_eq!(res.segments.len(), 1);
        assert!(res.usage.total_tokens > 0);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.wav");
        std::fs::write(&path, &data).unwrap();
        let by_path = client
            .audio()
            .transcribe(
                TranscriptionRequest::path("voxtral-mini-latest", &path)
                    .await
                    .unwrap(),
            )
            .await
            .unwrap();
        assert!(by_path.text.starts_with("Transcript of b.wav (50000 bytes"));
        let rec = fake.last_request().unwrap();
        assert!(rec.headers.contains_key("content-length"));

        let chunks = futures_util::stream::iter(
            data.chunks(7000)
                .map(|c| Ok::<_, std::io::Error>(Bytes::copy_from_slice(c)))
                .collect::<Vec<_>>(),
        );
        let by_stream = client
            .audio()
            .transcribe(TranscriptionRequest::stream(
                "voxtral-mini-latest",
                "c.flac",
                chunks,
                Some(data.len() as u64),
            ))
            .await
            .unwrap();
        assert!(
            by_stream
                .text
                .starts_with("Transcript of c.flac (50000 bytes")
        );

        let by_url = client
            .audio()
            .transcribe(TranscriptionRequest::url(
                "voxtral-mini-latest",
                "https://example.com/a.mp3",
            ))
            .await
            .unwrap();
        assert_eq!(by_url.text, "Transcript of https://example.com/a.mp3.");
        let by_id = client
            .audio()
            .transcribe(TranscriptionRequest::file_id(
                "voxtral-mini-latest",
                "file-1",
            ))
            .await
            .unwrap();
        assert_eq!(by_id.text, "Transcript of file file-1.");
        validate_all(&fake);
    }

    #[tokio::test]
    async fn a_streamed_transcription_ends_cleanly_on_its_done_event() {
        let fake = FakeMistral::new();
        let client = client(&fake);
        let req =
            TranscriptionRequest::bytes("voxtral-mini-latest", "a.mp3", audio(5)).language("fr");
        let events: Vec<_> = client
            .audio()
            .transcribe_stream(req)
            .await
            .unwrap()
            .collect()
            .await;
        let events: Vec<TranscriptionStreamEvent> =
            events.into_iter().map(Result::unwrap).collect();
        assert!(
            matches!(&events[0], TranscriptionStreamEvent::Language { audio_language } if audio_language == "fr")
        );
        let text: String = events
            .iter()
            .filter_map(|e| match e {
                TranscriptionStreamEvent::TextDelta { text } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        let TranscriptionStreamEvent::Done(done) = events.last().unwrap() else {
            panic!("the last event is transcription.done: {events:?}");
        };
        assert_eq!(done.text, text);
        let templates = validate_all(&fake);
        if let Some(t) = templates.first() {
            assert_eq!(t, "/v1/audio/transcriptions#stream");
        }

        // cut before its done event: truncated
        let client = scenario_client(&fake, "stream-truncated");
        let req = TranscriptionRequest::url("voxtral-mini-latest", "https://example.com/a.mp3");
        let events: Vec<_> = client
            .audio()
            .transcribe_stream(req)
            .await
            .unwrap()
            .collect()
            .await;
        assert!(events.last().unwrap().as_ref().unwrap_err().is_stream());
    }

    #[tokio::test]
    async fn speech_whole_and_streamed() {
        let fake = FakeMistral::new();
        let client = client(&fake);
        let mut metadata = Map::new();
        metadata.insert("user".into(), json!("u-1"));
        let req = SpeechRequest::new("Bonjour")
            .model("voxtral-tts")
            .voice_id("00000000-0000-4000-9000-000000000000")
            .response_format(SpeechOutputFormat::Wav)
            .metadata(metadata)
            .prompt_cache_key("k")
            .ref_audio("UklGRg==");
        let res = client
            .audio()
            .speech(req.clone().stream(true))
            .await
            .unwrap();
        assert_eq!(res.audio().unwrap(), b"RIFF....WAVEfake speech: Bonjour");
        let events: Vec<SpeechStreamEvent> = client
            .audio()
            .speech_stream(req)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert!(matches!(
            events.last(),
            Some(SpeechStreamEvent::Done { .. })
        ));
        let audio: Vec<u8> = events
            .iter()
            .filter_map(|e| match e {
                SpeechStreamEvent::AudioDelta { audio_data } => {
                    use base64::Engine as _;
                    Some(
                        base64::engine::general_purpose::STANDARD
                            .decode(audio_data)
                            .unwrap(),
                    )
                }
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(audio, b"RIFF....WAVEfake speech: Bonjour");
        validate_all(&fake);
    }

    #[tokio::test]
    async fn voices_list_create_get_update_sample_delete() {
        let fake = FakeMistral::new();
        let client = client(&fake);
        let voices = client.audio().voices();
        let created = voices
            .create(
                &VoiceCreateRequest::new("Mine", b"RIFF....")
                    .slug("mine")
                    .languages(vec!["en".into()])
                    .gender("female")
                    .age(30)
                    .tags(vec!["calm".into()])
                    .color("#ff0000")
                    .description("my voice")
                    .retention_notice(7)
                    .sample_filename("me.wav"),
            )
            .await
            .unwrap();
        assert_eq!(created.name, "Mine");
        assert_eq!(created.user_id.as_deref(), Some("user-1"));
        let page = voices.list(VoiceListQuery::new().limit(2)).await.unwrap();
        assert_eq!(page.items.len(), 2);
        assert_eq!(page.total, Some(4));
        let all: Vec<_> = page.into_data().into_stream().try_collect().await.unwrap();
        assert_eq!(all.len(), 4);
        // from an offset that is not a page boundary
        let from_one = voices
            .list(VoiceListQuery::new().limit(2).offset(1))
            .await
            .unwrap();
        let rest: Vec<_> = from_one
            .into_data()
            .into_stream()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(
            rest.iter().map(|v| v.id.as_str()).collect::<Vec<_>>(),
            all[1..].iter().map(|v| v.id.as_str()).collect::<Vec<_>>()
        );
        let custom = voices
            .list(
                VoiceListQuery::new()
                    .kind(VoiceKind::Custom)
                    .offset(0)
                    .limit(10),
            )
            .await
            .unwrap();
        assert_eq!(custom.items.len(), 1);
        let got = voices.get(&created.id).await.unwrap();
        assert_eq!(got.description.as_deref(), Some("my voice"));
        let updated = voices
            .update(
                &created.id,
                &VoiceUpdateRequest::new()
                    .name("Renamed")
                    .languages(vec!["fr".into()])
                    .gender("female")
                    .age(31)
                    .tags(vec![])
                    .description("d"),
            )
            .await
            .unwrap();
        assert_eq!(updated.name, "Renamed");
        let sample = voices
            .sample(&created.id)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert!(sample.starts_with(b"RIFF"));
        let deleted = voices.delete(&created.id).await.unwrap();
        assert_eq!(deleted.id, created.id);
        assert!(
            voices
                .get(&created.id)
                .await
                .unwrap_err()
                .status()
                .is_some()
        );
        validate_all(&fake);
    }

    fn cached_client(fake: &FakeMistral, max_request_body: usize) -> Client {
        Client::builder()
            .api_key("test-key")
            .service(fake.service())
            .cache_layer(
                CacheLayer::new(MemoryEngine::new(64 << 20)).max_request_body(max_request_body),
            )
            .build()
            .unwrap()
    }

    #[tokio::test]
    async fn the_cache_keys_a_transcription_on_its_content_not_its_boundary() {
        let fake = FakeMistral::new();
        let client = cached_client(&fake, 1 << 20);
        let req = |data: Vec<u8>| {
            TranscriptionRequest::bytes("voxtral-mini-latest", "a.mp3", data).language("en")
        };
        let first = client.audio().transcribe(req(audio(3))).await.unwrap();
        assert_eq!(first.headers()["x-cache"], "MISS");
        // a new random boundary, same content: one upstream call
        let second = client.audio().transcribe(req(audio(3))).await.unwrap();
        assert_eq!(second.headers()["x-cache"], "HIT");
        assert_eq!(second.text, first.text);
        assert_eq!(fake.calls(PATH), 1);
        // a different file: two
        let third = client.audio().transcribe(req(audio(7))).await.unwrap();
        assert_eq!(third.headers()["x-cache"], "MISS");
        assert_eq!(fake.calls(PATH), 2);

        // larger than the request-body limit: forwarded, never cached
        let small = cached_client(&fake, 10_000);
        for _ in 0..2 {
            let res = small.audio().transcribe(req(audio(3))).await.unwrap();
            assert_eq!(res.headers()["x-cache"], "BYPASS");
        }
        assert_eq!(fake.calls(PATH), 4);
    }

    /// The raw bytes of a streamed transcription sent through `client`.
    async fn raw_stream(client: &Client, data: Vec<u8>) -> (String, Bytes) {
        let form =
            TranscriptionRequest::bytes("voxtral-mini-latest", "a.mp3", data).into_form(true);
        let req = http::Request::post(PATH)
            .header("content-type", form.content_type())
            .header("accept", "text/event-stream")
            .body(form.into_body())
            .unwrap();
        let res = client.send(req).await.unwrap();
        let x_cache = res.headers()["x-cache"].to_str().unwrap().to_owned();
        let body = Body::collect_bytes(res.into_body())
            .await
            .unwrap_or_default();
        (x_cache, body)
    }

    #[tokio::test]
    async fn a_whole_streamed_transcription_is_stored_and_replayed_byte_for_byte_a_cut_one_never() {
        let fake = FakeMistral::new();
        let client = cached_client(&fake, 1 << 20);
        let (x, first) = raw_stream(&client, audio(3)).await;
        assert_eq!(x, "MISS");
        assert!(
            std::str::from_utf8(&first)
                .unwrap()
                .contains("transcription.done")
        );
        let mut replay = None;
        for _ in 0..50 {
            let (x, body) = raw_stream(&client, audio(3)).await;
            if x == "HIT" {
                replay = Some(body);
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(replay.expect("a hit"), first);
        let upstream = fake.calls(PATH);

        // a stream cut before its done event is never stored
        let cut = Client::builder()
            .api_key("test-key")
            .service(fake.service())
            .layer(tower::util::MapRequestLayer::new(
                |mut req: http::Request<Body>| {
                    req.headers_mut().insert(
                        "x-fake-scenario",
                        http::HeaderValue::from_static("stream-truncated"),
                    );
                    req
                },
            ))
            .cache_layer(CacheLayer::new(MemoryEngine::new(64 << 20)))
            .build()
            .unwrap();
        for _ in 0..2 {
            let (x, _) = raw_stream(&cut, audio(9)).await;
            assert_eq!(x, "MISS");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(fake.calls(PATH), upstream + 2);
    }
}

/// The fake's answers match the spec's response schemas, so code tested against it
/// meets the real API's shapes.
#[tokio::test]
async fn the_fakes_data_plane_answers_match_the_spec() {
    use mistral_tower::Body;
    use mistral_tower::multipart::{Form, Part};
    use serde_json::{Value, json};

    let Some(spec) = spec::spec() else {
        return;
    };
    let fake = FakeMistral::new();
    let client = client(&fake);
    let send = |method: &str, path: &str, body: Option<Value>, form: Option<Form>| {
        let mut req = http::Request::builder().method(method).uri(path);
        let body = match (body, form) {
            (Some(b), _) => {
                req = req.header("content-type", "application/json");
                Body::from(b.to_string())
            }
            (_, Some(f)) => {
                req = req.header("content-type", f.content_type());
                f.into_body()
            }
            _ => Body::empty(),
        };
        let req = req.body(body).unwrap();
        let client = client.clone();
        let (method, path) = (method.to_owned(), path.to_owned());
        async move {
            let res = client.send(req).await.unwrap();
            assert!(
                res.status().is_success(),
                "{method} {path}: {}",
                res.status()
            );
            let bytes = res.into_body().collect_bytes().await.unwrap();
            let v: Value = serde_json::from_slice(&bytes).unwrap();
            spec::validate_response(spec, &method, &path, &v);
            v
        }
    };
    let upload = Form::new()
        .text("purpose", "batch")
        .part("file", Part::bytes("{\"body\":{}}\n").file_name("in.jsonl"));
    let file = send("POST", "/v1/files", None, Some(upload)).await;
    let id = file["id"].as_str().unwrap().to_owned();
    send("GET", "/v1/files", None, None).await;
    send("GET", &format!("/v1/files/{id}"), None, None).await;
    send("GET", &format!("/v1/files/{id}/url?expiry=2"), None, None).await;

    let model = "/v1/fine_tuning/models/ft:open-mistral-7b:587a6b29:20240514:7e773925";
    send("PATCH", model, Some(json!({"name": "n"})), None).await;
    send("POST", &format!("{model}/archive"), None, None).await;
    send("DELETE", &format!("{model}/archive"), None, None).await;

    let job = send(
        "POST",
        "/v1/batch/jobs",
        Some(json!({"endpoint": "/v1/chat/completions", "input_files": [id], "model": "m"})),
        None,
    )
    .await;
    let job_path = format!("/v1/batch/jobs/{}", job["id"].as_str().unwrap());
    for _ in 0..3 {
        send("GET", &job_path, None, None).await;
    }
    send("GET", &format!("{job_path}?inline=true"), None, None).await;
    send("GET", "/v1/batch/jobs", None, None).await;
    send("POST", &format!("{job_path}/cancel"), None, None).await;
    send("DELETE", &job_path, None, None).await;
    send("DELETE", &format!("/v1/files/{id}"), None, None).await;

    let audio = Form::new()
        .text("model", "voxtral-mini-latest")
        .text("timestamp_granularities", "segment")
        .part("file", Part::bytes(vec![1u8; 100]).file_name("a.wav"));
    send("POST", "/v1/audio/transcriptions", None, Some(audio)).await;
    send(
        "POST",
        "/v1/audio/speech",
        Some(json!({"input": "Hi"})),
        None,
    )
    .await;
    send("GET", "/v1/audio/voices?limit=2", None, None).await;
    let voice = send(
        "POST",
        "/v1/audio/voices",
        Some(json!({"name": "v", "sample_audio": "UklGRg=="})),
        None,
    )
    .await;
    let voice_path = format!("/v1/audio/voices/{}", voice["id"].as_str().unwrap());
    send("GET", &voice_path, None, None).await;
    send("PATCH", &voice_path, Some(json!({"name": "w"})), None).await;
    send("DELETE", &voice_path, None, None).await;
}

/// The spec's own response examples read into the typed responses.
#[test]
fn the_specs_response_examples_read_into_the_typed_responses() {
    use mistral_tower::audio::TranscriptionResponse;
    use mistral_tower::files::{DeleteFileResponse, FileList, FileObject, SignedUrl};
    use serde_json::Value;

    let Some(spec) = spec::spec() else {
        return;
    };
    let example = |path: &str, method: &str| -> Value {
        spec["paths"][path][method]["responses"]["200"]["content"]["application/json"]["examples"]
            ["userExample"]["value"]
            .clone()
    };
    let list: FileList = serde_json::from_value(example("/v1/files", "get")).unwrap();
    assert_eq!(list.data.len(), 2);
    assert_eq!(list.data[0].sample_type, Some(SampleType::BatchResult));
    assert_eq!(list.data[0].source, Some(FileSource::Mistral));
    let up: FileObject = serde_json::from_value(example("/v1/files", "post")).unwrap();
    assert_eq!(up.purpose, Some(FilePurpose::FineTune));
    let got: FileObject = serde_json::from_value(example("/v1/files/{file_id}", "get")).unwrap();
    assert_eq!(got.deleted, Some(false));
    let del: DeleteFileResponse =
        serde_json::from_value(example("/v1/files/{file_id}", "delete")).unwrap();
    assert!(del.deleted);
    let url: SignedUrl = serde_json::from_value(example("/v1/files/{file_id}/url", "get")).unwrap();
    assert!(url.url.starts_with("https://"));
    let t: TranscriptionResponse =
        serde_json::from_value(example("/v1/audio/transcriptions", "post")).unwrap();
    assert!(!t.text.is_empty());
    // tolerant reading, exact writing: what we write back reads the same
    let again: TranscriptionResponse =
        serde_json::from_value(serde_json::to_value(&t).unwrap()).unwrap();
    assert_eq!(again, t);
}

/// The data-plane handles pass their `RequestOptions` on, pages and voices included.
#[tokio::test]
async fn the_data_plane_handles_take_request_options() {
    use futures_util::TryStreamExt;
    use mistral_tower::RequestOptions;

    let fake = FakeMistral::new();
    let client = client(&fake);
    let opts = || RequestOptions::new().header("x-request-tag", "nightly");
    for i in 0..3 {
        client
            .files()
            .with_options(opts())
            .upload(UploadFile::bytes(format!("{i}.txt"), "x"))
            .await
            .unwrap();
    }
    let page = client
        .files()
        .with_options(opts())
        .list(FileListQuery::new().page_size(1))
        .await
        .unwrap();
    let all: Vec<_> = page.into_data().into_stream().try_collect().await.unwrap();
    assert_eq!(all.len(), 3);
    client
        .audio()
        .with_options(opts())
        .voices()
        .list(mistral_tower::audio::VoiceListQuery::new())
        .await
        .unwrap();
    client
        .batch()
        .with_options(opts())
        .list(mistral_tower::batch::BatchListQuery::new())
        .await
        .unwrap();
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 3 + 3 + 2);
    for r in &reqs {
        assert_eq!(
            r.headers["x-request-tag"], "nightly",
            "{} {}",
            r.method, r.path
        );
    }
}
