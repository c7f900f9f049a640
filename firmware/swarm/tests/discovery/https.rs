//! An `https://` tracker on 127.0.0.1 with a certificate from a private CA
//! (made with the openssl CLI): trusted through `extra_roots`, refused
//! without them.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use swarm::tracker::{Client, Config, Event, Problem, Request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl (tools/setup installs it)");
    assert!(
        out.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes ca.der, server.pem and server.key for 127.0.0.1 into `dir`.
fn certificates(dir: &Path) {
    let key = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509", "-days", "1", "-subj", "/CN=tracker test CA"];
    ca.extend(key);
    ca.extend(["-keyout", "ca.key", "-out", "ca.pem"]);
    openssl(dir, &ca);
    let mut csr = vec!["req", "-subj", "/CN=127.0.0.1"];
    csr.extend(key);
    csr.extend(["-keyout", "server.key", "-out", "server.csr"]);
    openssl(dir, &csr);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write server.ext");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-days",
            "1",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ],
    );
    openssl(
        dir,
        &["x509", "-in", "ca.pem", "-outform", "DER", "-out", "ca.der"],
    );
}

/// Serves one bencoded announce reply over TLS to every connection.
async fn tls_tracker(dir: &Path) -> SocketAddr {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("server.pem"))
        .expect("server.pem")
        .collect::<Result<_, _>>()
        .expect("certificates");
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).expect("server.key");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.ends_with(b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let ok = request.starts_with(b"GET /announce?info_hash=%01%01");
                let body: &[u8] = if ok {
                    b"d8:intervali600e5:peers6:\x0a\x00\x00\x07\x1a\xe1e"
                } else {
                    b"d14:failure reason11:bad requeste"
                };
                let mut reply =
                    format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len())
                        .into_bytes();
                reply.extend_from_slice(body);
                let _ = tls.write_all(&reply).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    addr
}

fn request() -> Request {
    Request {
        info_hash: [1; 20],
        peer_id: [2; 20],
        port: 6881,
        uploaded: 0,
        downloaded: 0,
        left: 5,
        event: Event::Started,
        numwant: Some(10),
        key: 9,
    }
}

#[tokio::test]
async fn https_tracker_with_a_private_root_and_refusal_without_it() {
    let dir = tempfile::tempdir().expect("temporary directory");
    certificates(dir.path());
    let addr = tls_tracker(dir.path()).await;
    let url = format!("https://{addr}/announce");
    let ca = std::fs::read(dir.path().join("ca.der")).expect("ca.der");

    let trusted = Client::new(Config {
        http_timeout: Duration::from_secs(5),
        extra_roots: vec![ca],
        ..Config::default()
    });
    let r = trusted.announce(&url, &request()).await.expect("announce");
    assert_eq!(
        r.peers,
        vec!["10.0.0.7:6881".parse::<SocketAddr>().expect("addr")]
    );
    assert_eq!(r.interval, Duration::from_secs(600));

    let untrusted = Client::new(Config {
        http_timeout: Duration::from_secs(5),
        ..Config::default()
    });
    let e = untrusted
        .announce(&url, &request())
        .await
        .expect_err("unknown CA");
    assert!(
        matches!(
            e,
            swarm::Error::Tracker {
                problem: Problem::Tls(_),
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("certificate"), "{e}");
}
