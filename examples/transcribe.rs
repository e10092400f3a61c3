//! Transcribes an audio file (streamed from disk), whole and then streamed, and
//! prints the text.
//!
//! ```text
//! MISTRAL_API_KEY=... cargo run --example transcribe -- meeting.mp3
//! ```
//!
//! Without an argument it transcribes a generated second of silence. `MISTRAL_BASE_URL`
//! points it elsewhere (the `mistral-cache` server, the fake upstream in CI:
//! `cargo run --example fake_upstream`).

use std::io::Write;

use futures_util::StreamExt;
use mistral_tower::Client;
use mistral_tower::audio::{TimestampGranularity, TranscriptionRequest, TranscriptionStreamEvent};

const MODEL: &str = "voxtral-mini-latest";

/// A WAV file holding one second of 8 kHz silence.
fn silence() -> Vec<u8> {
    let data_len: u32 = 8000;
    let mut w = Vec::new();
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + data_len).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes()); // PCM
    w.extend_from_slice(&1u16.to_le_bytes()); // mono
    w.extend_from_slice(&8000u32.to_le_bytes());
    w.extend_from_slice(&8000u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&8u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&data_len.to_le_bytes());
    w.extend(std::iter::repeat_n(128u8, data_len as usize));
    w
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let client = Client::from_env()?;
    let dir = std::env::temp_dir();
    let path = match std::env::args().nth(1) {
        Some(p) => std::path::PathBuf::from(p),
        None => {
            let p = dir.join(format!("mistral-tower-silence-{}.wav", std::process::id()));
            std::fs::write(&p, silence())?;
            p
        }
    };

    let req = TranscriptionRequest::path(MODEL, &path)
        .await?
        .timestamp_granularities(vec![TimestampGranularity::Segment]);
    let res = client.audio().transcribe(req).await?;
    println!("{}", res.text);
    for s in &res.segments {
        eprintln!("[{:>6.2} - {:>6.2}] {}", s.start, s.end, s.text);
    }

    // The same audio, streamed: text deltas, then `transcription.done`, where the
    // stream ends (the API sends no `data: [DONE]`).
    let mut events = client
        .audio()
        .transcribe_stream(TranscriptionRequest::path(MODEL, &path).await?)
        .await?;
    let mut done = false;
    while let Some(event) = events.next().await {
        match event? {
            TranscriptionStreamEvent::TextDelta { text } => {
                print!("{text}");
                std::io::stdout().flush()?;
            }
            TranscriptionStreamEvent::Done(whole) => {
                println!();
                eprintln!("usage: {:?}", whole.usage);
                done = true;
            }
            _ => {}
        }
    }
    if !done {
        return Err("the stream ended without transcription.done".into());
    }
    Ok(())
}
