//! Submits N chat requests as one batch job, waits for it, and prints the N typed
//! answers.
//!
//! ```text
//! MISTRAL_API_KEY=... cargo run --example batch -- "Capital of France?" "Capital of Italy?"
//! ```
//!
//! `MISTRAL_BASE_URL` points it elsewhere (the `mistral-cache` server, the fake
//! upstream in CI: `cargo run --example fake_upstream`).

use std::time::Duration;

use mistral_tower::Client;
use mistral_tower::batch::{ApiEndpoint, BatchRequest, CreateBatchJobRequest, WaitOptions};
use mistral_tower::chat::{ChatCompletionRequest, ChatCompletionResponse, ChatMessage};
use mistral_tower::files::{FilePurpose, UploadFile};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let client = Client::from_env()?;
    let mut prompts: Vec<String> = std::env::args().skip(1).collect();
    if prompts.is_empty() {
        prompts = vec![
            "Capital of France?".into(),
            "Capital of Italy?".into(),
            "Capital of Spain?".into(),
        ];
    }

    // One request per prompt, written as a JSONL input file and uploaded.
    let mut jsonl = String::new();
    for (i, prompt) in prompts.iter().enumerate() {
        let req = ChatCompletionRequest::new(
            "mistral-small-latest",
            vec![ChatMessage::user(prompt.as_str())],
        )
        .max_tokens(100);
        jsonl.push_str(&BatchRequest::new(i.to_string(), &req)?.to_jsonl_line());
    }
    let input = client
        .files()
        .upload(UploadFile::bytes("requests.jsonl", jsonl).purpose(FilePurpose::Batch))
        .await?;

    let job = client
        .batch()
        .create(
            &CreateBatchJobRequest::from_files(ApiEndpoint::ChatCompletions, [input.id.as_str()])
                .model("mistral-small-latest"),
        )
        .await?;
    eprintln!("batch job {} ({})", job.id, job.status);

    let poll = WaitOptions::new(Duration::from_millis(200), Duration::from_secs(30))
        .timeout(Duration::from_secs(24 * 3600));
    let job = client.batch().wait(&job.id, poll).await?;
    eprintln!(
        "finished: {} ({} of {} succeeded)",
        job.status, job.succeeded_requests, job.total_requests
    );

    let mut results = client
        .batch()
        .results::<ChatCompletionResponse>(&job)
        .await?;
    results.sort_by_key(|r| r.custom_id.as_deref().and_then(|c| c.parse::<usize>().ok()));
    for result in &results {
        let i: usize = result
            .custom_id
            .as_deref()
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        match &result.outcome {
            Ok(answer) => println!("{} -> {}", prompts[i], answer.text()),
            Err(e) => println!("{} -> failed: {e}", prompts[i]),
        }
    }
    if results.len() != prompts.len() {
        return Err(format!("{} answers for {} prompts", results.len(), prompts.len()).into());
    }
    Ok(())
}
