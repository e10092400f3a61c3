//! The administration commands: `stats`, `purge` and `inspect` on an engine,
//! reading entries with the cache's entry decoder ([`CacheEntry::decode`]) and, with
//! `--entry-secret`, checking their signatures ([`EntrySecrets::verify`]); `list` is in
//! `list.rs`.
//!
//! The proxies' savings ledger records (`ledger.rs`) are stored beside the entries:
//! `stats` sums them ("served from the cache") instead of counting them as entries,
//! `list` leaves them out, `purge` deletes them only when unfiltered, and `inspect`
//! shows them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::cli::{InspectArgs, PurgeArgs, StatsArgs};
use super::config::redact_url;
use super::ledger::{self, ServedTotals};
use super::list::entry_saved;
use super::prices::PriceTable;
use super::{ServerError, open_engine};
use crate::cache::{
    BoxEngine, CacheEngine, CacheEntry, CacheError, EntryKind, EntrySecrets, SignatureError,
};

pub(super) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn engine_error(url: &str, source: CacheError) -> ServerError {
    ServerError::Engine {
        url: redact_url(url),
        source,
    }
}

pub(super) async fn list_keys(engine: &BoxEngine, url: &str) -> Result<Vec<String>, ServerError> {
    match engine.keys().await {
        Ok(keys) => Ok(keys),
        Err(CacheError::Unsupported(_)) => Err(ServerError::Admin(format!(
            "the engine {} cannot list its keys, so it cannot be administered this way",
            redact_url(url)
        ))),
        Err(e) => Err(engine_error(url, e)),
    }
}

/// One stored value, read and decoded.
pub(super) enum Read {
    /// The entry.
    Entry(Box<CacheEntry>, usize),
    /// Gone since it was listed (or expired and dropped by the engine).
    Gone,
    /// Stored bytes that do not decode.
    Unreadable(usize, String),
    /// An entry whose signature the secrets refuse: the cache would not serve it.
    Refused(Box<CacheEntry>, usize, SignatureError),
}

pub(super) async fn read(
    engine: &BoxEngine,
    url: &str,
    key: &str,
    secrets: Option<&EntrySecrets>,
) -> Result<Read, ServerError> {
    let bytes: Bytes = match engine.get(key).await {
        Ok(b) => b,
        Err(CacheError::Miss) => return Ok(Read::Gone),
        Err(e) => return Err(engine_error(url, e)),
    };
    let len = bytes.len();
    Ok(match secrets.map(|s| s.verify(&bytes)) {
        // Refused: shown as far as it decodes (its checksum may be off too).
        Some(Err(e)) => match CacheEntry::decode_unverified(&bytes) {
            Ok(entry) => Read::Refused(Box::new(entry), len, e),
            Err(why) => Read::Unreadable(len, format!("{why} (and {e})")),
        },
        _ => match CacheEntry::decode(&bytes) {
            Ok(entry) => Read::Entry(Box::new(entry), len),
            Err(e) => Read::Unreadable(len, e.to_string()),
        },
    })
}

/// Temporary files of a crashed writer older than this are removed by `serve` (at
/// start-up) and `purge`: no live write takes nearly as long.
const STALE_TEMP_AGE: std::time::Duration = std::time::Duration::from_secs(600);

/// The directory of a `file://` engine URL (also behind `tiered+`).
fn file_engine_dir(url: &str) -> Option<String> {
    let rest = url.strip_prefix("tiered+").unwrap_or(url);
    let rest = rest.strip_prefix("file://")?;
    let path = rest.split(['?', '#']).next().unwrap_or("");
    // Percent-decoded like the engine URL itself; undecodable: leave it alone.
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok().filter(|p| !p.is_empty())
}

/// Removes the stale temporary files of a `file://` engine (left by a writer that
/// crashed between writing and renaming); returns how many, `None` for other engines.
pub(crate) fn remove_stale_temp_files(url: &str) -> Option<usize> {
    let dir = file_engine_dir(url)?;
    let engine = crate::cache::FileEngine::new(dir.as_str()).ok()?;
    match engine.remove_stale_temp_files(STALE_TEMP_AGE) {
        Ok(n) => {
            if n > 0 {
                tracing::info!(removed = n, dir, "removed stale temporary cache files");
            }
            Some(n)
        }
        Err(e) => {
            tracing::warn!(error = %e, dir, "cannot remove stale temporary cache files");
            None
        }
    }
}

pub(super) fn namespace_label(ns: &str) -> &str {
    if ns.is_empty() { "(default)" } else { ns }
}

pub(super) fn kind_label(kind: EntryKind) -> &'static str {
    match kind {
        EntryKind::Sse => "sse",
        _ => "json",
    }
}

/// `mistral-cache stats`.
pub(crate) async fn stats(args: &StatsArgs) -> Result<(), ServerError> {
    let url = &args.engine.engine;
    let secrets = args.engine.secrets.to_secrets()?;
    let engine = open_engine(url).await?;
    let keys = list_keys(&engine, url).await?;
    let now = now_ms();
    let prices = match &args.prices {
        Some(path) => PriceTable::load(path).map_err(ServerError::Config)?,
        None => PriceTable::built_in(),
    };

    let mut entries = 0u64;
    let mut refused = 0u64;
    let mut models: BTreeMap<String, ModelTokens> = BTreeMap::new();
    let mut stored_bytes = 0u64;
    let mut body_bytes = 0u64;
    let mut expired = 0u64;
    let mut unreadable = 0u64;
    let mut kinds: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut namespaces: BTreeMap<String, u64> = BTreeMap::new();
    let mut paths: BTreeMap<String, u64> = BTreeMap::new();
    let mut oldest: Option<u64> = None;
    let mut newest: Option<u64> = None;
    let mut served = ServedTotals::default();
    for key in &keys {
        match read(&engine, url, key, secrets.as_ref()).await? {
            Read::Gone => expired += 1,
            Read::Unreadable(len, _) => {
                unreadable += 1;
                stored_bytes += len as u64;
            }
            Read::Refused(entry, len, _) => {
                unreadable += 1;
                refused += 1;
                stored_bytes += len as u64;
                if ledger::is_record(&entry) {
                    served.unreadable += 1;
                }
            }
            Read::Entry(entry, _) if ledger::is_record(&entry) => {
                match ledger::parse(key, &entry) {
                    Ok(record) => served.add(&record, &prices),
                    Err(_) => {
                        served.unreadable += 1;
                        unreadable += 1;
                    }
                }
            }
            Read::Entry(entry, len) => {
                if entry.is_expired(now) {
                    expired += 1;
                    continue;
                }
                entries += 1;
                stored_bytes += len as u64;
                body_bytes += entry.body_len() as u64;
                *kinds.entry(kind_label(entry.kind())).or_default() += 1;
                *namespaces
                    .entry(namespace_label(entry.namespace()).to_owned())
                    .or_default() += 1;
                let path = entry.path().split('?').next().unwrap_or("").to_owned();
                *paths
                    .entry(format!("{} {path}", entry.method()))
                    .or_default() += 1;
                if let Some(saved) = entry_saved(&entry) {
                    let model = saved.model.unwrap_or_else(|| "unknown".to_owned());
                    let m = models.entry(model).or_default();
                    m.entries += 1;
                    m.prompt += saved.usage.prompt_tokens;
                    m.completion += saved.usage.completion_tokens;
                }
                let created = entry.created_ms();
                oldest = Some(oldest.map_or(created, |o| o.min(created)));
                newest = Some(newest.map_or(created, |n| n.max(created)));
            }
        }
    }

    if args.json {
        let v = serde_json::json!({
            "engine": redact_url(url),
            "entries": entries,
            "stored_bytes": stored_bytes,
            "body_bytes": body_bytes,
            "expired": expired,
            "unreadable": unreadable,
            "signature_invalid": refused,
            "kinds": kinds,
            "namespaces": namespaces,
            "routes": paths,
            "oldest": oldest.map(format_time),
            "newest": newest.map(format_time),
            "saved_per_hit": models.iter().map(|(name, m)| {
                (name.clone(), serde_json::json!({
                    "entries": m.entries,
                    "prompt_tokens": m.prompt,
                    "completion_tokens": m.completion,
                    "usd": m.usd(&prices, name),
                }))
            }).collect::<serde_json::Map<_, _>>(),
            "served": served.json(),
        });
        println!("{v:#}");
        return Ok(());
    }
    let mut out = String::new();
    let _ = writeln!(out, "engine:      {}", redact_url(url));
    let _ = writeln!(out, "entries:     {entries}");
    let _ = writeln!(
        out,
        "bytes:       {} stored ({} of response bodies)",
        human_bytes(stored_bytes),
        human_bytes(body_bytes)
    );
    if expired > 0 || unreadable > 0 {
        let refused = if refused > 0 {
            format!(" ({refused} with a signature invalid)")
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "stale:       {expired} expired, {unreadable} unreadable{refused} (remove with `purge --expired`)"
        );
    }
    if !kinds.is_empty() {
        let _ = writeln!(out, "kinds:       {}", join_counts(&kinds));
        let _ = writeln!(out, "namespaces:  {}", join_counts(&namespaces));
        let _ = writeln!(out, "routes:      {}", join_counts(&paths));
    }
    if !models.is_empty() {
        let _ = writeln!(
            out,
            "saved per hit (one more hit on every entry, from the stored usage):"
        );
        for (name, m) in &models {
            let usd = m
                .usd(&prices, name)
                .map_or("no price".to_owned(), |d| format!("${d:.6}"));
            let _ = writeln!(
                out,
                "  {name}: {} entries, {} prompt + {} completion tokens, {usd}",
                m.entries, m.prompt, m.completion
            );
        }
    }
    served.write_text(&mut out);
    match (oldest, newest) {
        (Some(o), Some(n)) => {
            let _ = writeln!(out, "oldest:      {} ({} ago)", format_time(o), age(now, o));
            let _ = writeln!(out, "newest:      {} ({} ago)", format_time(n), age(now, n));
        }
        _ => {
            let _ = writeln!(out, "oldest:      -\nnewest:      -");
        }
    }
    print!("{out}");
    Ok(())
}

/// The tokens of the stored answers of one model.
#[derive(Default)]
struct ModelTokens {
    entries: u64,
    prompt: u64,
    completion: u64,
}

impl ModelTokens {
    /// What these tokens cost at `prices`, `None` for a model without a price.
    fn usd(&self, prices: &PriceTable, model: &str) -> Option<f64> {
        prices.usd(model, self.prompt, self.completion)
    }
}

fn join_counts<K: std::fmt::Display>(m: &BTreeMap<K, u64>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `mistral-cache purge`.
pub(crate) async fn purge(args: &PurgeArgs) -> Result<(), ServerError> {
    let url = &args.engine.engine;
    let secrets = args.engine.secrets.to_secrets()?;
    let engine = open_engine(url).await?;
    let keys = list_keys(&engine, url).await?;
    let now = now_ms();
    let filtered = args.namespace.is_some() || args.older_than.is_some() || args.expired;
    let cutoff = args
        .older_than
        .map(|d| now.saturating_sub(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)));

    let mut removed = 0u64;
    let mut removed_bytes = 0u64;
    let mut removed_records = 0u64;
    let mut kept = 0u64;
    for key in &keys {
        let mut record = false;
        let (matches, len) = match read(&engine, url, key, secrets.as_ref()).await? {
            Read::Gone => continue,
            // A savings ledger record has no expiry, namespace or age of an entry: only
            // an unfiltered purge deletes it.
            // One that does not parse (a newer version) or whose signature is refused
            // (a rotated secret) is kept too: a proxy never overwrites it, and it is the
            // only copy of what that instance served.
            Read::Entry(entry, len) | Read::Refused(entry, len, _) if ledger::is_record(&entry) => {
                record = ledger::parse(key, &entry).is_ok();
                (!filtered, len)
            }
            // Unreadable bytes and refused signatures can never be served: they go
            // unless a filter needs something they cannot tell (their namespace or
            // age, which a forger chose).
            Read::Unreadable(len, _) | Read::Refused(_, len, _) => {
                (args.namespace.is_none() && args.older_than.is_none(), len)
            }
            Read::Entry(entry, len) => {
                let ns_ok = args.namespace.as_deref().is_none_or(|ns| {
                    entry.namespace() == ns || (ns == "default" && entry.namespace().is_empty())
                });
                let age_ok = cutoff.is_none_or(|c| entry.created_ms() < c);
                let expired_ok = !args.expired || entry.is_expired(now);
                (ns_ok && age_ok && expired_ok, len)
            }
        };
        if !matches {
            kept += 1;
            continue;
        }
        if args.dry_run {
            println!("would delete {key}");
        } else {
            match engine.delete(key).await {
                Ok(()) => {}
                Err(CacheError::Unsupported(_)) => {
                    return Err(ServerError::Admin(format!(
                        "the engine {} cannot delete entries",
                        redact_url(url)
                    )));
                }
                Err(e) => return Err(engine_error(url, e)),
            }
        }
        if record {
            removed_records += 1;
        } else {
            removed += 1;
        }
        removed_bytes += len as u64;
    }
    let verb = if args.dry_run {
        "would purge"
    } else {
        "purged"
    };
    let scope = if filtered { "" } else { " (all entries)" };
    let records = if removed_records > 0 {
        format!(" and {removed_records} savings ledger records")
    } else {
        String::new()
    };
    println!(
        "{verb} {removed} entries{scope}{records}, {}; {kept} kept",
        human_bytes(removed_bytes)
    );
    if !args.dry_run
        && let Some(n) = remove_stale_temp_files(url)
        && n > 0
    {
        println!("removed {n} stale temporary files");
    }
    Ok(())
}

/// `mistral-cache inspect`.
pub(crate) async fn inspect(args: &InspectArgs) -> Result<(), ServerError> {
    let url = &args.engine.engine;
    let secrets = args.engine.secrets.to_secrets()?;
    let engine = open_engine(url).await?;
    let key = resolve_key(&engine, url, &args.key).await?;
    let now = now_ms();
    let (entry, len, signature) = match read(&engine, url, &key, secrets.as_ref()).await? {
        Read::Entry(entry, len) => {
            let signature = match (&secrets, entry.is_signed()) {
                (Some(_), _) => "valid",
                (None, true) => "signed (not checked: no --entry-secret)",
                (None, false) => "unsigned",
            };
            (entry, len, signature.to_owned())
        }
        Read::Refused(entry, len, e) => (
            entry,
            len,
            format!("signature invalid ({e}): the cache does not serve this entry"),
        ),
        Read::Gone => {
            return Err(ServerError::Admin(format!(
                "no entry under {key} (expired or deleted)"
            )));
        }
        Read::Unreadable(len, why) => {
            return Err(ServerError::Admin(format!(
                "the entry under {key} ({len} bytes) does not decode: {why}"
            )));
        }
    };
    let mut out = String::new();
    let _ = writeln!(out, "key:        {key}");
    let _ = writeln!(out, "namespace:  {}", namespace_label(entry.namespace()));
    let _ = writeln!(out, "request:    {} {}", entry.method(), entry.path());
    let kind = match entry.kind() {
        EntryKind::Sse => format!("sse ({} frames)", entry.frames().len()),
        _ => "json".to_owned(),
    };
    let _ = writeln!(out, "kind:       {kind}");
    let _ = writeln!(out, "status:     {}", entry.status());
    let _ = writeln!(
        out,
        "created:    {} ({} ago)",
        format_time(entry.created_ms()),
        age(now, entry.created_ms())
    );
    let expires = match entry.expires_ms() {
        None => "never".to_owned(),
        Some(e) if e <= now => format!("{} (expired)", format_time(e)),
        Some(e) => format!("{} (in {})", format_time(e), age(e, now)),
    };
    let _ = writeln!(out, "expires:    {expires}");
    let _ = writeln!(out, "signature:  {signature}");
    if ledger::is_record(&entry) {
        let what = match ledger::parse(&key, &entry) {
            Ok(r) => format!(
                "savings ledger of instance {:?} (what it served from the cache; `stats` sums these)",
                r.instance
            ),
            Err(why) => format!("savings ledger, unreadable: {why}"),
        };
        let _ = writeln!(out, "record:     {what}");
    }
    let _ = writeln!(
        out,
        "size:       {} body, {} stored",
        human_bytes(entry.body_len() as u64),
        human_bytes(len as u64)
    );
    if let Some(saved) = entry_saved(&entry) {
        let u = saved.usage;
        let _ = writeln!(
            out,
            "usage:      {} prompt + {} completion = {} tokens (saved by each hit)",
            u.prompt_tokens, u.completion_tokens, u.total_tokens
        );
        if let Some(model) = &saved.model {
            let _ = writeln!(out, "model:      {model}");
        }
    }
    let _ = writeln!(out, "headers:");
    for (name, value) in entry.headers() {
        let _ = writeln!(
            out,
            "  {name}: {}",
            String::from_utf8_lossy(value.as_bytes())
        );
    }
    let _ = writeln!(out, "body:");
    print!("{out}");
    let body = entry.body();
    if args.raw {
        use std::io::Write as _;
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(&body);
        let _ = stdout.flush();
        return Ok(());
    }
    match entry.kind() {
        EntryKind::Sse => print!("{}", pretty_sse(&body)),
        _ => println!("{}", pretty_json(&body)),
    }
    Ok(())
}

/// The full key for `wanted`: itself if stored, or the one stored key it prefixes.
async fn resolve_key(engine: &BoxEngine, url: &str, wanted: &str) -> Result<String, ServerError> {
    match engine.get(wanted).await {
        Ok(_) => return Ok(wanted.to_owned()),
        Err(CacheError::Miss | CacheError::InvalidKey(_)) => {}
        Err(e) => return Err(engine_error(url, e)),
    }
    let keys = list_keys(engine, url).await?;
    let mut matching = keys.into_iter().filter(|k| k.starts_with(wanted));
    match (matching.next(), matching.next()) {
        (Some(k), None) if !wanted.is_empty() => Ok(k),
        (Some(_), Some(_)) => Err(ServerError::Admin(format!(
            "the key prefix {wanted:?} matches several entries; give more characters"
        ))),
        _ => Err(ServerError::Admin(format!("no entry under {wanted:?}"))),
    }
}

/// A JSON body pretty-printed, or the text as it is when it is not JSON.
fn pretty_json(body: &[u8]) -> String {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) => serde_json::to_string_pretty(&v).unwrap_or_default(),
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    }
}

/// SSE events, numbered, each `data:` JSON on one line.
fn pretty_sse(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body).replace("\r\n", "\n");
    let mut out = String::new();
    for (i, event) in text
        .split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .enumerate()
    {
        let _ = writeln!(out, "[event {}]", i + 1);
        for line in event.lines() {
            let _ = writeln!(out, "  {line}");
        }
    }
    out
}

pub(super) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// `later - earlier` in words: `42s`, `5m`, `3h`, `2d`.
pub(super) fn age(later_ms: u64, earlier_ms: u64) -> String {
    let secs = later_ms.saturating_sub(earlier_ms) / 1000;
    match secs {
        0..60 => format!("{secs}s"),
        60..3_600 => format!("{}m", secs / 60),
        3_600..86_400 => format!("{}h{:02}m", secs / 3_600, secs % 3_600 / 60),
        _ => format!("{}d{:02}h", secs / 86_400, secs % 86_400 / 3_600),
    }
}

/// Unix milliseconds as an RFC 3339 UTC time (`2026-11-29T17:00:00Z`).
pub(super) fn format_time(ms: u64) -> String {
    let secs = ms / 1000;
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX);
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times_and_sizes() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_time(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(format_time(1_764_257_531_000), "2025-11-27T15:32:11Z");
        assert_eq!(human_bytes(10), "10 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 << 20), "5.0 MiB");
        assert_eq!(age(90_000, 0), "1m");
        assert_eq!(age(0, 5_000), "0s");
        assert_eq!(age(2 * 86_400_000 + 3_600_000, 0), "2d01h");
    }

    #[test]
    fn file_engine_dirs_from_urls() {
        assert_eq!(
            file_engine_dir("file://.mistral/cache").as_deref(),
            Some(".mistral/cache")
        );
        assert_eq!(
            file_engine_dir("tiered+file:///tmp/a%20b?x=1").as_deref(),
            Some("/tmp/a b")
        );
        assert_eq!(file_engine_dir("redis://localhost"), None);
        assert_eq!(file_engine_dir("file://"), None);
        assert_eq!(file_engine_dir("file://%zz"), None);
    }

    #[test]
    fn pretty_bodies() {
        assert_eq!(pretty_json(br#"{"a":1}"#), "{\n  \"a\": 1\n}");
        assert_eq!(pretty_json(b"plain"), "plain");
        let sse = pretty_sse(b"data: {\"x\":1}\n\ndata: [DONE]\n\n");
        assert_eq!(
            sse,
            "[event 1]\n  data: {\"x\":1}\n[event 2]\n  data: [DONE]\n"
        );
    }
}
