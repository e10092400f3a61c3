//! `mistral-cache list`: the entries of an engine, one per line (key prefix, age,
//! namespace, route, model, size, tokens, expiry) or as JSON, filtered by namespace,
//! route, model and age, so `inspect` has keys to take. The proxies' savings ledger
//! records are not entries: they are left out (counted in the text listing's last line).

use std::fmt::Write as _;

use super::ServerError;
use super::admin::{
    Read, age, format_time, human_bytes, kind_label, list_keys, namespace_label, now_ms, read,
};
use super::cli::ListArgs;
use super::ledger;
use super::open_engine;
use crate::cache::{CacheEntry, EntryKind, SavedTokens, X_CACHE_SAVED_TOKENS};

/// Characters of the key shown in the text listing (`inspect` takes a unique prefix).
const KEY_PREFIX: usize = 16;

/// The tokens a hit on `entry` saves: the `x-cache-saved-tokens` stored with it, or,
/// for entries stored before it was, its body's `usage`.
pub(super) fn entry_saved(entry: &CacheEntry) -> Option<SavedTokens> {
    match entry.headers().get(X_CACHE_SAVED_TOKENS) {
        Some(v) => SavedTokens::from_header(v),
        None => SavedTokens::from_answer(entry.frames(), entry.kind() == EntryKind::Sse),
    }
}

/// `pattern` matches `value` exactly, or as a prefix when it ends with `*`.
fn matches(pattern: &str, value: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => value.starts_with(prefix),
        None => value == pattern,
    }
}

/// One listed entry.
struct Row {
    key: String,
    entry: Box<CacheEntry>,
    stored: usize,
    saved: Option<SavedTokens>,
}

impl Row {
    fn route(&self) -> &str {
        self.entry.path().split('?').next().unwrap_or("")
    }
    fn model(&self) -> &str {
        self.saved
            .as_ref()
            .and_then(|s| s.model.as_deref())
            .unwrap_or("-")
    }
    fn expiry(&self, now: u64) -> String {
        match self.entry.expires_ms() {
            None => "never".to_owned(),
            Some(e) if e <= now => "expired".to_owned(),
            Some(e) => format!("in {}", age(e, now)),
        }
    }
}

/// `mistral-cache list`.
pub(crate) async fn list(args: &ListArgs) -> Result<(), ServerError> {
    let url = &args.engine.engine;
    let engine = open_engine(url).await?;
    let keys = list_keys(&engine, url).await?;
    let secrets = args.engine.secrets.to_secrets()?;
    let now = now_ms();
    let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let older = args.older_than.map(|d| now.saturating_sub(ms(d)));
    let newer = args.newer_than.map(|d| now.saturating_sub(ms(d)));

    let mut rows = Vec::new();
    let mut unreadable = 0u64;
    let mut refused = 0u64;
    let mut records = 0u64;
    for key in keys {
        let (entry, stored) = match read(&engine, url, &key, secrets.as_ref()).await? {
            // Ledger records are not entries (`stats` sums them); one that does not
            // parse is counted as unreadable, as `stats` does.
            Read::Entry(entry, _) if ledger::is_record(&entry) => {
                match ledger::parse(&key, &entry) {
                    Ok(_) => records += 1,
                    Err(_) => unreadable += 1,
                }
                continue;
            }
            Read::Entry(entry, len) => (entry, len),
            Read::Gone => continue,
            Read::Unreadable(..) => {
                unreadable += 1;
                continue;
            }
            // The cache would not serve it (signature refused): not listed, counted.
            Read::Refused(..) => {
                refused += 1;
                continue;
            }
        };
        let ns_ok = args.namespace.as_deref().is_none_or(|ns| {
            entry.namespace() == ns || (ns == "default" && entry.namespace().is_empty())
        });
        let created = entry.created_ms();
        if !ns_ok || older.is_some_and(|c| created >= c) || newer.is_some_and(|c| created < c) {
            continue;
        }
        let saved = entry_saved(&entry);
        let row = Row {
            key,
            entry,
            stored,
            saved,
        };
        if args
            .route
            .as_deref()
            .is_some_and(|r| !matches(r, row.route()))
            || args
                .model
                .as_deref()
                .is_some_and(|m| !matches(m, row.model()))
        {
            continue;
        }
        rows.push(row);
    }
    // Newest first.
    rows.sort_by_key(|r| std::cmp::Reverse(r.entry.created_ms()));

    if args.json {
        let items: Vec<serde_json::Value> = rows.iter().map(|r| row_json(r, now)).collect();
        println!("{}", serde_json::Value::Array(items));
        return Ok(());
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<16}  {:>6}  {:<10}  {:<28}  {:<22}  {:>9}  {:>7}  EXPIRES",
        "KEY", "AGE", "NAMESPACE", "ROUTE", "MODEL", "SIZE", "TOKENS"
    );
    for r in &rows {
        let tokens = r
            .saved
            .as_ref()
            .map_or("-".to_owned(), |s| s.usage.total_tokens.to_string());
        let _ = writeln!(
            out,
            "{:<16}  {:>6}  {:<10}  {:<28}  {:<22}  {:>9}  {:>7}  {}",
            &r.key[..r.key.len().min(KEY_PREFIX)],
            age(now, r.entry.created_ms()),
            namespace_label(r.entry.namespace()),
            format!("{} {}", r.entry.method(), r.route()),
            r.model(),
            human_bytes(r.stored as u64),
            tokens,
            r.expiry(now),
        );
    }
    let _ = write!(out, "{} entries", rows.len());
    if unreadable > 0 {
        let _ = write!(out, " ({unreadable} unreadable not listed)");
    }
    if refused > 0 {
        let _ = write!(out, " ({refused} with a refused signature not listed)");
    }
    if records > 0 {
        let _ = write!(
            out,
            " ({records} savings ledger records not listed: see `stats`)"
        );
    }
    println!("{out}");
    Ok(())
}

fn row_json(r: &Row, now: u64) -> serde_json::Value {
    let e = &r.entry;
    let usage = r.saved.as_ref().map(|s| s.usage);
    serde_json::json!({
        "key": r.key,
        "namespace": e.namespace(),
        "method": e.method(),
        "route": r.route(),
        "path": e.path(),
        "kind": kind_label(e.kind()),
        "status": e.status().as_u16(),
        "model": r.saved.as_ref().and_then(|s| s.model.as_deref()),
        "created": format_time(e.created_ms()),
        "age_secs": now.saturating_sub(e.created_ms()) / 1000,
        "expires": e.expires_ms().map(format_time),
        "expired": e.is_expired(now),
        "size": r.stored,
        "body_bytes": e.body_len(),
        "prompt_tokens": usage.map(|u| u.prompt_tokens),
        "completion_tokens": usage.map(|u| u.completion_tokens),
        "total_tokens": usage.map(|u| u.total_tokens),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(matches("/v1/chat/completions", "/v1/chat/completions"));
        assert!(!matches("/v1/chat", "/v1/chat/completions"));
        assert!(matches("/v1/chat*", "/v1/chat/completions"));
        assert!(matches("mistral-small*", "mistral-small-2506"));
        assert!(matches("*", "-"));
    }
}
