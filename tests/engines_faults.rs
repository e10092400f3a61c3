//! Engines against backends that misbehave: a server that accepts connections
//! but never answers (every operation ends in `CacheError::Timeout`), and Redis
//! over TLS with a private CA (`rediss://` with `tls_ca_file=`), on servers the
//! tests start themselves on free ports.
#![cfg(any(feature = "redis", feature = "postgres", feature = "s3"))]

mod support;

use std::net::TcpListener;
use std::time::Duration;

use bytes::Bytes;
use mistral_tower::cache::{CacheEngine, CacheError, engine_from_url};

/// Guards against hangs only; never an assertion on speed.
const GUARD: Duration = Duration::from_secs(60);

/// A listener that completes TCP handshakes (through the kernel backlog) but
/// never reads or answers: a hung backend.
fn black_hole() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

async fn every_operation_times_out<E: CacheEngine>(name: &str, e: &E) {
    tokio::time::timeout(GUARD, async {
        let results = [
            e.get("k").await.map(|_| ()),
            e.set("k", Bytes::from_static(b"v")).await,
            e.set_with_ttl("k", Bytes::from_static(b"v"), Some(Duration::from_secs(5)))
                .await,
            e.delete("k").await,
            e.keys().await.map(|_| ()),
        ];
        for (i, r) in results.into_iter().enumerate() {
            assert!(
                matches!(r, Err(CacheError::Timeout(_))),
                "{name}: operation {i} on a hung backend gave {r:?}, not a Timeout"
            );
        }
    })
    .await
    .expect("operations on a hung backend must end by their timeout");
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn redis_hung_backend_times_out() {
    let (_hole, port) = black_hole();
    let e = engine_from_url(&format!("redis://127.0.0.1:{port}?timeout=300ms"))
        .await
        .unwrap();
    every_operation_times_out("redis", &e).await;
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn redis_cluster_hung_backend_times_out() {
    let (_hole, port) = black_hole();
    let e = engine_from_url(&format!("redis+cluster://127.0.0.1:{port}?timeout=300ms"))
        .await
        .unwrap();
    every_operation_times_out("redis cluster", &e).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_hung_backend_times_out() {
    let (_hole, port) = black_hole();
    let e = engine_from_url(&format!(
        "postgres://postgres@127.0.0.1:{port}/test?timeout=300ms"
    ))
    .await
    .unwrap();
    every_operation_times_out("postgres", &e).await;
}

#[cfg(feature = "s3")]
#[tokio::test]
async fn s3_hung_backend_times_out() {
    let (_hole, port) = black_hole();
    // Credentials given, so the client never asks an instance-metadata endpoint.
    let e = mistral_tower::cache::ObjectStoreEngine::s3(
        object_store::aws::AmazonS3Builder::new()
            .with_bucket_name("bucket")
            .with_region("us-east-1")
            .with_endpoint(format!("http://127.0.0.1:{port}"))
            .with_allow_http(true)
            .with_access_key_id("test")
            .with_secret_access_key("test"),
        "p",
    )
    .unwrap()
    .with_timeout(Duration::from_millis(300));
    every_operation_times_out("s3", &e).await;
}

#[cfg(feature = "redis")]
mod redis_tls {
    use super::*;
    use crate::support::engine_suite::{Caps, contract, require_services};
    use std::path::Path;
    use std::process::{Child, Command, Stdio};

    fn run(cmd: &mut Command) -> bool {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// A private CA and a server certificate for localhost / 127.0.0.1.
    fn make_certs(dir: &Path) -> bool {
        let p = |f: &str| dir.join(f);
        std::fs::write(
            p("ext.cnf"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
        )
        .unwrap();
        run(Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=mistral-tower test CA",
                "-keyout",
            ])
            .arg(p("ca.key"))
            .arg("-out")
            .arg(p("ca.pem")))
            && run(Command::new("openssl")
                .args([
                    "req",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:prime256v1",
                    "-nodes",
                    "-subj",
                    "/CN=localhost",
                    "-keyout",
                ])
                .arg(p("server.key"))
                .arg("-out")
                .arg(p("server.csr")))
            && run(Command::new("openssl")
                .args(["x509", "-req", "-days", "2", "-in"])
                .arg(p("server.csr"))
                .arg("-CA")
                .arg(p("ca.pem"))
                .arg("-CAkey")
                .arg(p("ca.key"))
                .arg("-CAcreateserial")
                .arg("-out")
                .arg(p("server.pem"))
                .arg("-extfile")
                .arg(p("ext.cnf")))
    }

    struct Server(Child);

    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn skip(why: &str) {
        if require_services() {
            panic!("{why}, and MISTRAL_TOWER_REQUIRE_SERVICES=1");
        }
        println!("skipped: {why}");
    }

    #[tokio::test]
    async fn rediss_with_a_private_ca_passes_the_contract() {
        if !run(Command::new("redis-server").arg("--version")) {
            return skip("redis-server not found");
        }
        let dir = tempfile::tempdir().unwrap();
        if !make_certs(dir.path()) {
            return skip("openssl could not make test certificates");
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                "0",
                "--tls-port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--tls-auth-clients",
                "no",
            ])
            .arg("--tls-cert-file")
            .arg(dir.path().join("server.pem"))
            .arg("--tls-key-file")
            .arg(dir.path().join("server.key"))
            .arg("--tls-ca-cert-file")
            .arg(dir.path().join("ca.pem"))
            .arg("--dir")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        let _server = Server(child);
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let ca = dir.path().join("ca.pem");
        let url = format!(
            "rediss://localhost:{port}?tls_ca_file={}&timeout=5s",
            ca.display()
        );
        let e = engine_from_url(&url).await.unwrap();
        tokio::time::timeout(GUARD, contract("rediss", &e, Caps::ALL))
            .await
            .expect("guard");

        // Without the private CA the server is not trusted: an error, not a hit.
        let untrusted = engine_from_url(&format!("rediss://localhost:{port}?timeout=5s"))
            .await
            .unwrap();
        let err = untrusted.get("k").await.unwrap_err();
        assert!(matches!(err, CacheError::Backend(_)), "{err:?}");
        // Plain text to a TLS port fails too.
        let plain = engine_from_url(&format!("redis://127.0.0.1:{port}?timeout=1s"))
            .await
            .unwrap();
        assert!(!plain.get("k").await.unwrap_err().is_miss());
    }
}
