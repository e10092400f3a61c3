//! The `mistral-cache` command line: `serve` (the default), `stats`, `list`, `purge`
//! and `inspect`. Every flag can also be set with a `MISTRAL_CACHE_*` environment
//! variable.
//!
//! Not public API: the binary runs it through [`super::main`]; `mistral-cache --help`
//! lists the flags.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{Args, Parser, Subcommand};

use super::config::redact_url;
use super::{
    AccessLog, CacheMode, CachedRoutes, Config, DEFAULT_CACHED_PATHS, ServerError,
    parse_cache_mode, parse_duration,
};

/// `mistral-cache`: a caching proxy for the Mistral API.
#[derive(Debug, Parser)]
#[command(
    name = "mistral-cache",
    bin_name = "mistral-cache",
    version,
    about = "A caching proxy for the Mistral API: serves the API on a local port and answers repeated requests from a cache.",
    long_about = None
)]
pub(crate) struct Cli {
    /// Log format on stderr (`RUST_LOG` sets the level, default `info`).
    #[arg(long, global = true, env = "MISTRAL_CACHE_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub(crate) log_format: String,
    /// What to do (default: `serve` with its defaults).
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

/// The sub-commands.
#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per process
pub(crate) enum Command {
    /// Serve the Mistral API on a local port, answering repeated requests from the cache.
    Serve(ServeArgs),
    /// Show the entries of an engine: count, bytes, oldest and newest, the tokens and money a hit on each saves, and what the proxies served from the cache (their savings ledger).
    Stats(StatsArgs),
    /// List the entries of an engine, one per line (key prefix, age, route, model, size, tokens, expiry), filtered.
    List(ListArgs),
    /// Delete entries of an engine (all of them, savings ledger records included, unless filtered).
    Purge(PurgeArgs),
    /// Print one stored entry: kind, status, headers and body.
    Inspect(InspectArgs),
}

/// Flags of `serve`. `Debug` hides the API key and the engine URL's password.
#[derive(Clone, Args)]
pub(crate) struct ServeArgs {
    /// Address of the API port.
    #[arg(long, env = "MISTRAL_CACHE_LISTEN", default_value = "127.0.0.1:8080")]
    pub(crate) listen: SocketAddr,
    /// Serve /healthz and /metrics on this separate address instead of under /_mistral-cache on the API port.
    #[arg(long, env = "MISTRAL_CACHE_ADMIN_LISTEN")]
    pub(crate) admin_listen: Option<SocketAddr>,
    /// The upstream API base URL.
    #[arg(
        long,
        env = "MISTRAL_CACHE_UPSTREAM",
        default_value = "https://api.mistral.ai"
    )]
    pub(crate) upstream: String,
    /// The cache engine URL: file://DIR, memory://, redis://..., postgres://..., s3://bucket/prefix.
    #[arg(
        long,
        env = "MISTRAL_CACHE_ENGINE",
        hide_env_values = true,
        default_value = "file://.mistral/cache"
    )]
    pub(crate) engine: String,
    /// Start even if the engine is unreachable (requests are then forwarded uncached).
    #[arg(long, env = "MISTRAL_CACHE_ENGINE_OPTIONAL", value_parser = BoolishValueParser::new())]
    pub(crate) engine_optional: bool,
    /// API key used when a client sends no Authorization header (also read from MISTRAL_API_KEY).
    #[arg(long, env = "MISTRAL_CACHE_API_KEY", hide_env_values = true)]
    pub(crate) api_key: Option<String>,
    /// Lifetime of stored entries, e.g. 3600, 30m, 12h, 7d (default: no expiry).
    #[arg(long, env = "MISTRAL_CACHE_TTL", value_parser = parse_duration)]
    pub(crate) ttl: Option<Duration>,
    /// Cache namespace for this proxy's entries.
    #[arg(long, env = "MISTRAL_CACHE_NAMESPACE")]
    pub(crate) namespace: Option<String>,
    /// Share entries across API keys (by default each Authorization value has its own entries).
    #[arg(long, env = "MISTRAL_CACHE_SHARE_ACROSS_KEYS", value_parser = BoolishValueParser::new())]
    pub(crate) share_across_keys: bool,
    /// Comma-separated POST paths to cache (a trailing * matches a prefix; "none" caches nothing).
    #[arg(long, env = "MISTRAL_CACHE_PATHS", value_delimiter = ',', default_values_t = DEFAULT_CACHED_PATHS.iter().map(|p| p.to_string()).collect::<Vec<_>>())]
    pub(crate) cache_paths: Vec<String>,
    /// Cache mode: read-write, read-only, write-only or replay-only.
    #[arg(long, env = "MISTRAL_CACHE_MODE", default_value = "read-write", value_parser = parse_cache_mode)]
    pub(crate) mode: CacheMode,
    /// Also read the standard Cache-Control request header as cache directives (by default only x-cache-control is: HTTP libraries send Cache-Control on their own).
    #[arg(long, env = "MISTRAL_CACHE_HONOR_CACHE_CONTROL", value_parser = BoolishValueParser::new())]
    pub(crate) honor_cache_control: bool,
    /// Turn off single-flight across replicas (on by default with a Redis or PostgreSQL engine: identical concurrent misses in every replica on that store make one upstream call).
    #[arg(long, env = "MISTRAL_CACHE_NO_FLEET_FLIGHT", value_parser = BoolishValueParser::new())]
    pub(crate) no_fleet_flight: bool,
    /// Largest request body considered for caching (bigger ones are forwarded uncached), e.g. 8MiB.
    #[arg(long, env = "MISTRAL_CACHE_MAX_REQUEST_BODY", default_value = "8MiB", value_parser = parse_size)]
    pub(crate) max_request_body: usize,
    /// Largest response stored in the cache, e.g. 32MiB.
    #[arg(long, env = "MISTRAL_CACHE_MAX_ENTRY_SIZE", default_value = "32MiB", value_parser = parse_size)]
    pub(crate) max_entry_size: usize,
    /// Total upstream timeout of a non-streaming request.
    #[arg(long, env = "MISTRAL_CACHE_TIMEOUT", default_value = "300", value_parser = parse_duration)]
    pub(crate) timeout: Duration,
    /// Timeout to connect to the upstream.
    #[arg(long, env = "MISTRAL_CACHE_CONNECT_TIMEOUT", default_value = "10", value_parser = parse_duration)]
    pub(crate) connect_timeout: Duration,
    /// Longest silence allowed inside an upstream stream.
    #[arg(long, env = "MISTRAL_CACHE_STREAM_IDLE_TIMEOUT", default_value = "120", value_parser = parse_duration)]
    pub(crate) stream_idle_timeout: Duration,
    /// Upstream retries of 429 and 5xx answers (and connection errors). Off by default: SDKs retry those themselves, and the answer, Retry-After included, reaches them untouched.
    #[arg(long, env = "MISTRAL_CACHE_MAX_RETRIES", default_value_t = 0)]
    pub(crate) max_retries: u32,
    /// Upstream retries of failures that never reached the upstream (connection errors, connect timeouts), used when --max-retries is 0.
    #[arg(long, env = "MISTRAL_CACHE_CONNECT_RETRIES", default_value_t = 2)]
    pub(crate) connect_retries: u32,
    /// How long in-flight requests and streams may run after SIGINT/SIGTERM.
    #[arg(long, env = "MISTRAL_CACHE_SHUTDOWN_TIMEOUT", default_value = "30", value_parser = parse_duration)]
    pub(crate) shutdown_timeout: Duration,
    /// Close a client connection that has not sent a complete request head this long after connecting (or after a later request's first byte).
    #[arg(long, env = "MISTRAL_CACHE_HEADER_READ_TIMEOUT", default_value = "30", value_parser = parse_duration)]
    pub(crate) header_read_timeout: Duration,
    /// Close a kept-alive client connection silent this long between requests.
    #[arg(long, env = "MISTRAL_CACHE_IDLE_TIMEOUT", default_value = "60", value_parser = parse_duration)]
    pub(crate) idle_timeout: Duration,
    /// Most client connections open at once; more are answered 503 and closed.
    #[arg(long, env = "MISTRAL_CACHE_MAX_CONNECTIONS", default_value_t = 512)]
    pub(crate) max_connections: usize,
    /// Most client connections open at once from one client address, so one client cannot take every slot (0, the default: no such limit; set it when clients come from several hosts).
    #[arg(
        long,
        env = "MISTRAL_CACHE_MAX_CONNECTIONS_PER_IP",
        default_value_t = 0
    )]
    pub(crate) max_connections_per_ip: usize,
    /// Most idle upstream connections kept per host.
    #[arg(
        long,
        env = "MISTRAL_CACHE_UPSTREAM_POOL_MAX_IDLE",
        default_value_t = 32
    )]
    pub(crate) upstream_pool_max_idle: usize,
    /// How long an idle upstream connection is kept.
    #[arg(long, env = "MISTRAL_CACHE_UPSTREAM_POOL_IDLE_TIMEOUT", default_value = "30", value_parser = parse_duration)]
    pub(crate) upstream_pool_idle_timeout: Duration,
    /// Access log: all, errors (status >= 400, upstream failures, cut bodies), off, or 1/N (every error and one request in N).
    #[arg(long, env = "MISTRAL_CACHE_ACCESS_LOG", default_value = "all")]
    pub(crate) access_log: AccessLog,
    /// JSON or TOML file of model prices (USD per million input/output tokens) added to the built-in Mistral list prices that value the tokens hits save.
    #[arg(long, env = "MISTRAL_CACHE_PRICES")]
    pub(crate) prices: Option<PathBuf>,
    /// The name of this replica's savings ledger record in the engine (what it served from the cache, summed by `stats`; continued after a restart). Default: host name and --listen address.
    #[arg(long, env = "MISTRAL_CACHE_INSTANCE")]
    pub(crate) instance: Option<String>,
    /// How often the savings ledger record is written when it changed (and at shutdown), e.g. 10, 1m; 0 or off: no ledger.
    #[arg(long, env = "MISTRAL_CACHE_LEDGER_INTERVAL", default_value = "10", value_parser = parse_ledger_interval)]
    pub(crate) ledger_interval: Duration,
    #[command(flatten)]
    pub(crate) secrets: EntrySecretArgs,
}

/// `--ledger-interval`: a duration, `0` or `off`.
fn parse_ledger_interval(input: &str) -> Result<Duration, String> {
    match input.trim().to_ascii_lowercase().as_str() {
        "off" | "none" | "no" => Ok(Duration::ZERO),
        _ => parse_duration(input),
    }
}

/// The entry signing flags, shared by `serve` and the administration commands.
/// `Debug` hides the secrets.
#[derive(Clone, Default, Args)]
pub(crate) struct EntrySecretArgs {
    /// Sign stored entries with HMAC-SHA256 under this secret (at least 16 bytes) and treat unsigned, modified or forged entries as misses; for stores others can write.
    #[arg(long, env = "MISTRAL_CACHE_ENTRY_SECRET", hide_env_values = true)]
    pub(crate) entry_secret: Option<String>,
    /// A previous entry secret still accepted on read, for rotation (repeatable; the environment variable takes a comma-separated list).
    #[arg(
        long = "previous-entry-secret",
        env = "MISTRAL_CACHE_PREVIOUS_ENTRY_SECRETS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub(crate) previous_entry_secrets: Vec<String>,
}

impl EntrySecretArgs {
    /// The checked secrets (`None`: signing off).
    pub(crate) fn to_secrets(&self) -> Result<Option<crate::cache::EntrySecrets>, ServerError> {
        super::config::entry_secrets(self.entry_secret.as_deref(), &self.previous_entry_secrets)
    }
}

impl fmt::Debug for EntrySecretArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EntrySecretArgs")
            .field(
                "entry_secret",
                &self.entry_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("previous_entry_secrets", &self.previous_entry_secrets.len())
            .finish()
    }
}

impl ServeArgs {
    /// The validated [`Config`] these flags describe.
    pub(crate) fn to_config(&self) -> Result<Config, ServerError> {
        let cached_routes = if self.cache_paths.len() == 1 && self.cache_paths[0].trim() == "none" {
            CachedRoutes::none()
        } else {
            CachedRoutes::new(&self.cache_paths)?
        };
        let api_key = self
            .api_key
            .clone()
            .or_else(|| std::env::var("MISTRAL_API_KEY").ok())
            .filter(|k| !k.is_empty());
        let config = Config {
            listen: self.listen,
            admin_listen: self.admin_listen,
            upstream: self.upstream.trim_end_matches('/').to_owned(),
            engine: self.engine.clone(),
            engine_optional: self.engine_optional,
            api_key,
            ttl: self.ttl,
            namespace: self.namespace.clone(),
            share_across_keys: self.share_across_keys,
            cached_routes,
            mode: self.mode,
            honor_cache_control: self.honor_cache_control,
            fleet_flight: !self.no_fleet_flight,
            max_request_body: self.max_request_body,
            max_entry_size: self.max_entry_size,
            timeout: self.timeout,
            connect_timeout: self.connect_timeout,
            stream_idle_timeout: self.stream_idle_timeout,
            max_retries: self.max_retries,
            connect_retries: self.connect_retries,
            shutdown_timeout: self.shutdown_timeout,
            header_read_timeout: self.header_read_timeout,
            idle_timeout: self.idle_timeout,
            max_connections: self.max_connections,
            max_connections_per_ip: self.max_connections_per_ip,
            upstream_pool_max_idle: self.upstream_pool_max_idle,
            upstream_pool_idle_timeout: self.upstream_pool_idle_timeout,
            access_log: self.access_log,
            prices: self.prices.clone(),
            entry_secret: self.secrets.entry_secret.clone(),
            previous_entry_secrets: self.secrets.previous_entry_secrets.clone(),
            ledger_interval: (!self.ledger_interval.is_zero()).then_some(self.ledger_interval),
            instance: self.instance.clone(),
        };
        config.validate()?;
        Ok(config)
    }
}

/// The engine flag shared by the administration commands.
#[derive(Clone, Args)]
pub(crate) struct EngineArgs {
    /// The cache engine URL.
    #[arg(
        long,
        env = "MISTRAL_CACHE_ENGINE",
        hide_env_values = true,
        default_value = "file://.mistral/cache"
    )]
    pub(crate) engine: String,
    /// The secrets the entries are signed with (to check their signatures).
    #[command(flatten)]
    pub(crate) secrets: EntrySecretArgs,
}

impl fmt::Debug for EngineArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineArgs")
            .field("engine", &redact_url(&self.engine))
            .field("secrets", &self.secrets)
            .finish()
    }
}

impl fmt::Debug for ServeArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServeArgs")
            .field("listen", &self.listen)
            .field("admin_listen", &self.admin_listen)
            .field("upstream", &self.upstream)
            .field("engine", &redact_url(&self.engine))
            .field("engine_optional", &self.engine_optional)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("ttl", &self.ttl)
            .field("namespace", &self.namespace)
            .field("share_across_keys", &self.share_across_keys)
            .field("cache_paths", &self.cache_paths)
            .field("mode", &self.mode)
            .field("honor_cache_control", &self.honor_cache_control)
            .field("no_fleet_flight", &self.no_fleet_flight)
            .field("max_request_body", &self.max_request_body)
            .field("max_entry_size", &self.max_entry_size)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("stream_idle_timeout", &self.stream_idle_timeout)
            .field("max_retries", &self.max_retries)
            .field("connect_retries", &self.connect_retries)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("header_read_timeout", &self.header_read_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_connections", &self.max_connections)
            .field("max_connections_per_ip", &self.max_connections_per_ip)
            .field("upstream_pool_max_idle", &self.upstream_pool_max_idle)
            .field(
                "upstream_pool_idle_timeout",
                &self.upstream_pool_idle_timeout,
            )
            .field("access_log", &self.access_log)
            .field("prices", &self.prices)
            .field("instance", &self.instance)
            .field("ledger_interval", &self.ledger_interval)
            .field("secrets", &self.secrets)
            .finish()
    }
}

/// Flags of `stats`.
#[derive(Debug, Clone, Args)]
pub(crate) struct StatsArgs {
    #[command(flatten)]
    /// The engine.
    pub(crate) engine: EngineArgs,
    /// Print the numbers as JSON.
    #[arg(long)]
    pub(crate) json: bool,
    /// JSON or TOML file of model prices added to the built-in ones (as `serve --prices`).
    #[arg(long, env = "MISTRAL_CACHE_PRICES")]
    pub(crate) prices: Option<PathBuf>,
}

/// Flags of `list`.
#[derive(Debug, Clone, Args)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    /// The engine.
    pub(crate) engine: EngineArgs,
    /// Only entries stored under this namespace (`default` for the default one).
    #[arg(long)]
    pub(crate) namespace: Option<String>,
    /// Only entries of this route: a path (`/v1/chat/completions`), its query ignored; a trailing * matches a prefix.
    #[arg(long)]
    pub(crate) route: Option<String>,
    /// Only entries answered by this model (as the stored answer names it; a trailing * matches a prefix).
    #[arg(long)]
    pub(crate) model: Option<String>,
    /// Only entries stored longer ago than this, e.g. 7d, 12h, 3600.
    #[arg(long, value_parser = parse_duration)]
    pub(crate) older_than: Option<Duration>,
    /// Only entries stored more recently than this, e.g. 30m, 1d.
    #[arg(long, value_parser = parse_duration)]
    pub(crate) newer_than: Option<Duration>,
    /// Print the entries as a JSON array, with full keys.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Flags of `purge`.
#[derive(Debug, Clone, Args)]
pub(crate) struct PurgeArgs {
    #[command(flatten)]
    /// The engine.
    pub(crate) engine: EngineArgs,
    /// Only entries stored under this namespace (`default` for the default one).
    #[arg(long)]
    pub(crate) namespace: Option<String>,
    /// Only entries stored longer ago than this, e.g. 7d, 12h, 3600.
    #[arg(long, value_parser = parse_duration)]
    pub(crate) older_than: Option<Duration>,
    /// Only expired entries (and entries that no longer decode).
    #[arg(long)]
    pub(crate) expired: bool,
    /// List what would be deleted without deleting it.
    #[arg(long)]
    pub(crate) dry_run: bool,
}

/// Flags of `inspect`.
#[derive(Debug, Clone, Args)]
pub(crate) struct InspectArgs {
    #[command(flatten)]
    /// The engine.
    pub(crate) engine: EngineArgs,
    /// The entry's key (as listed by the engine; a unique prefix is enough).
    pub(crate) key: String,
    /// Print the body as stored, without pretty-printing.
    #[arg(long)]
    pub(crate) raw: bool,
}

/// Parses a byte size: `1024`, `64KiB`, `8MiB`, `1GiB` (also `K`, `M`, `G`, `KB`, `MB`, `GB` as powers of 1024).
pub(crate) fn parse_size(input: &str) -> Result<usize, String> {
    let s = input.trim();
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(format!(
            "invalid size {input:?}: expected e.g. 1048576, 512KiB or 8MiB"
        ));
    }
    let (number, unit) = s.split_at(digits);
    let n: usize = number
        .parse()
        .map_err(|_| format!("size out of range: {input:?}"))?;
    let mult: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => {
            return Err(format!(
                "invalid size unit in {input:?}: use KiB, MiB or GiB"
            ));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size out of range: {input:?}"))
}

/// Runs the command line: parses the arguments, sets up logging, runs the command.
///
/// Exit codes: 0 success, 1 runtime failure, 2 invalid arguments or configuration
/// (including a taken port or an unusable engine).
pub(crate) fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mistral-cache: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(cli))
}

/// Runs a parsed command line and returns the process exit code.
pub(crate) async fn run(cli: Cli) -> ExitCode {
    let command = match cli.command {
        Some(c) => c,
        None => match Cli::try_parse_from(["mistral-cache", "serve"]) {
            Ok(Cli {
                command: Some(c), ..
            }) => c,
            Ok(_) => unreachable!("serve parses to a command"),
            Err(e) => e.exit(),
        },
    };
    let result = match command {
        Command::Serve(args) => match args.to_config() {
            Ok(config) => super::serve(config, shutdown_signal()).await,
            Err(e) => Err(e),
        },
        Command::Stats(args) => super::admin::stats(&args).await,
        Command::List(args) => super::list::list(&args).await,
        Command::Purge(args) => super::admin::purge(&args).await,
        Command::Inspect(args) => super::admin::inspect(&args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mistral-cache: {e}");
            match e {
                ServerError::Config(_)
                | ServerError::Bind { .. }
                | ServerError::Engine { .. }
                | ServerError::EngineUnreachable { .. } => ExitCode::from(2),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

fn init_logging(format: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = if format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// A future that completes on SIGINT (Ctrl-C) or, on Unix, SIGTERM.
///
/// The handlers are installed when this function is called (inside a tokio
/// runtime), not when the future is first polled, so a signal that arrives while
/// the server is still starting is not lost (and does not kill the process).
pub(crate) fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let interrupt = signal(SignalKind::interrupt());
        let terminate = signal(SignalKind::terminate());
        async move {
            let (mut interrupt, mut terminate) = match (interrupt, terminate) {
                (Ok(i), Ok(t)) => (i, t),
                _ => {
                    tracing::warn!("cannot install signal handlers; falling back to Ctrl-C only");
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
            tokio::select! {
                _ = interrupt.recv() => tracing::info!("SIGINT received"),
                _ = terminate.recv() => tracing::info!("SIGTERM received"),
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("Ctrl-C received");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serve_flags_become_a_config() {
        let cli = Cli::try_parse_from([
            "mistral-cache",
            "serve",
            "--listen",
            "127.0.0.1:9000",
            "--ttl",
            "1d",
        ])
        .unwrap();
        let Some(Command::Serve(args)) = cli.command else {
            panic!("not a serve command")
        };
        let config = args.to_config().unwrap();
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.ttl, Some(std::time::Duration::from_secs(86_400)));
    }

    #[test]
    fn debug_hides_secrets() {
        let cli = Cli::try_parse_from([
            "mistral-cache",
            "serve",
            "--api-key",
            "sk-secret-1",
            "--engine",
            "redis://user:hunter2@localhost:6379/0",
            "--entry-secret",
            "entry-hunter2-current",
            "--previous-entry-secret",
            "entry-hunter2-previous",
        ])
        .unwrap();
        let text = format!("{cli:?}");
        assert!(
            !text.contains("sk-secret-1") && !text.contains("hunter2"),
            "{text}"
        );
        let Some(Command::Serve(args)) = &cli.command else {
            panic!("not a serve command")
        };
        let text = format!("{:?}", args.to_config().unwrap());
        assert!(!text.contains("hunter2"), "{text}");
        let cli =
            Cli::try_parse_from(["mistral-cache", "stats", "--engine", "redis://:hunter2@h/0"])
                .unwrap();
        let text = format!("{cli:?}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_defaults_are_the_documented_ones() {
        let cli = Cli::try_parse_from(["mistral-cache", "serve"]).unwrap();
        let Some(Command::Serve(args)) = cli.command else {
            panic!("serve expected")
        };
        let c = args.to_config().unwrap();
        assert_eq!(c.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(c.upstream, "https://api.mistral.ai");
        assert_eq!(c.engine, "file://.mistral/cache");
        assert_eq!(c.cached_routes, CachedRoutes::default());
        assert_eq!(c.max_request_body, 8 << 20);
        assert!(
            !c.honor_cache_control,
            "Cache-Control is ignored by default"
        );
        assert!(
            c.fleet_flight,
            "single-flight across replicas is on by default"
        );
        assert_eq!(c.ledger_interval, Some(Duration::from_secs(10)));
        assert_eq!(c.instance, None);
    }

    #[test]
    fn ledger_flags_parse() {
        let config = |args: &[&str]| {
            let cli = Cli::try_parse_from(["mistral-cache", "serve"].iter().chain(args)).unwrap();
            let Some(Command::Serve(args)) = cli.command else {
                panic!("serve expected")
            };
            args.to_config()
        };
        let c = config(&["--instance", "replica-1", "--ledger-interval", "1m"]).unwrap();
        assert_eq!(c.instance.as_deref(), Some("replica-1"));
        assert_eq!(c.ledger_interval, Some(Duration::from_secs(60)));
        for off in ["off", "0"] {
            let c = config(&["--ledger-interval", off]).unwrap();
            assert_eq!(c.ledger_interval, None, "{off}");
        }
        assert!(config(&["--instance", " "]).is_err());
    }

    #[test]
    fn flags_parse() {
        let cli = Cli::try_parse_from([
            "mistral-cache",
            "serve",
            "--upstream",
            "http://127.0.0.1:7000/",
            "--cache-paths",
            "/v1/embeddings,/v1/x/*",
            "--mode",
            "replay-only",
            "--max-request-body",
            "64KiB",
            "--share-across-keys",
            "--honor-cache-control",
            "--no-fleet-flight",
        ])
        .unwrap();
        let Some(Command::Serve(args)) = cli.command else {
            panic!("serve expected")
        };
        let c = args.to_config().unwrap();
        assert_eq!(c.upstream, "http://127.0.0.1:7000");
        assert!(c.share_across_keys);
        assert!(c.honor_cache_control);
        assert!(!c.fleet_flight);
        assert_eq!(c.mode, CacheMode::ReplayOnly);
        assert_eq!(c.max_request_body, 64 << 10);
        assert!(c.cached_routes.matches(&http::Method::POST, "/v1/x/y"));
        assert!(
            !c.cached_routes
                .matches(&http::Method::POST, "/v1/chat/completions")
        );
    }

    #[test]
    fn admin_commands_parse() {
        let cli = Cli::try_parse_from([
            "mistral-cache",
            "purge",
            "--engine",
            "file:///tmp/x",
            "--namespace",
            "n",
            "--older-than",
            "7d",
        ])
        .unwrap();
        let Some(Command::Purge(p)) = cli.command else {
            panic!("purge expected")
        };
        assert_eq!(p.older_than, Some(Duration::from_secs(7 * 86_400)));
        assert_eq!(p.engine.engine, "file:///tmp/x");
        assert!(Cli::try_parse_from(["mistral-cache", "purge", "--older-than", "7 days"]).is_err());
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("8MiB"), Ok(8 << 20));
        assert_eq!(parse_size("2 k"), Ok(2048));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("3TB").is_err());
    }
}
