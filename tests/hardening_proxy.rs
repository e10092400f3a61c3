//! Issue 16, "what fuzzing and fault injection found": the `mistral-cache` proxy and
//! its administration commands under hostile input and failing dependencies.
#![cfg(feature = "server")]

use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use mistral_tower::cache::{CacheEngine, FileEngine};

/// The 41-byte entry of issue 16 (a valid checksum over a header count of 0xFFFF).
const ISSUE_16_ENTRY: &str =
    "4d54434501000000c800000000000000000000000000000000000000000000ffff7aa44c7e68584f86";

fn unhex(s: &str) -> Bytes {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect::<Vec<u8>>()
        .into()
}

fn bin() -> String {
    std::env::var("MISTRAL_CACHE_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_mistral-cache").to_owned())
}

/// Runs the binary to completion: (exit code, stdout, stderr).
fn run_bin(args: &[&str]) -> (i32, String, String) {
    let mut child = Command::new(bin())
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("mistral-cache {args:?} did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn admin_commands_report_and_purge_the_issue_entry() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    let files = FileEngine::new(dir.path()).unwrap();
    let key = "ab".repeat(32);
    files.set(&key, unhex(ISSUE_16_ENTRY)).await.unwrap();

    let (code, out, err) = run_bin(&["stats", "--engine", &url, "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["unreadable"], 1, "{v}");

    let (code, _, err) = run_bin(&["inspect", "--engine", &url, &key]);
    assert_eq!(code, 1, "an error, not a panic: {err}");
    assert!(err.contains("does not decode"), "{err}");

    let (code, out, err) = run_bin(&["purge", "--engine", &url, "--expired"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("purged 1 entries"), "{out}");
    assert!(files.get(&key).await.unwrap_err().is_miss());
}
