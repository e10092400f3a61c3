//! The `mistral-cache` proxy run in-process for the proxy tests; reach it as
//! `support::proxy` after `mod support;`.

use std::sync::Arc;
use std::time::Duration;

use mistral_tower::server::{Config, Metrics, Proxy, ServerError};
use tokio::sync::oneshot;

/// How long any awaited step of a test may take before it counts as a hang.
pub const GUARD: Duration = Duration::from_secs(10);

/// Awaits `f`, failing the test if it takes longer than [`GUARD`].
pub async fn guard<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(GUARD, f)
        .await
        .expect("did not finish within 10 s")
}

/// A proxy serving on a free port of 127.0.0.1 until [`shutdown`](Self::shutdown).
pub struct RunningProxy {
    pub url: String,
    pub metrics: Arc<Metrics>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), ServerError>>,
}

impl RunningProxy {
    /// Stops accepting, waits for the graceful shutdown and checks it ended cleanly.
    pub async fn shutdown(mut self) {
        let _ = self.stop.take().unwrap().send(());
        guard(self.task).await.unwrap().unwrap();
    }
}

/// Starts a proxy in front of `upstream` on the memory engine without retries;
/// `tweak` adjusts the rest of the configuration.
pub async fn start_proxy(upstream: &str, tweak: impl FnOnce(&mut Config)) -> RunningProxy {
    let mut config = Config::default();
    config.upstream = upstream.to_owned();
    config.engine = "memory://".to_owned();
    config.max_retries = 0;
    tweak(&mut config);
    let proxy = Proxy::new(config).await.unwrap();
    let metrics = proxy.metrics();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(proxy.run(listener, None, async move {
        let _ = rx.await;
    }));
    RunningProxy {
        url,
        metrics,
        stop: Some(tx),
        task,
    }
}
