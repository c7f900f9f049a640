//! The feed client against small HTTP and HTTPS servers on 127.0.0.1:
//! bodies, redirects, statuses, the body limit and the deadline, and trust
//! in an extra root certificate (made with the openssl CLI).

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use channel::feed::{MAX_BODY, MAX_REDIRECTS, fetch, fetch_limited, fetch_with_roots};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

const T: Duration = Duration::from_secs(5);

/// What the test server answers for a request path.
fn answer(path: &str) -> Reply {
    match path {
        "/release" => Reply::Body(b"signed release bytes".to_vec()),
        "/empty" => Reply::Body(Vec::new()),
        "/exact" => Reply::Body(vec![b'x'; MAX_BODY]),
        "/announced-too-big" => Reply::Raw(format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY + 1
        )),
        "/too-big" => Reply::CloseDelimited(vec![b'x'; MAX_BODY + 1]),
        "/torrent" => Reply::Body(vec![b't'; 3 * MAX_BODY]),
        "/trickle" => Reply::Trickle,
        "/missing" => Reply::Raw("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".into()),
        "/moved" => Reply::Redirect("/release".into()),
        p if p.starts_with("/hop/") => {
            let n: u32 = p["/hop/".len()..].parse().unwrap_or(0);
            if n == 0 {
                Reply::Body(b"arrived".to_vec())
            } else {
                Reply::Redirect(format!("/hop/{}", n - 1))
            }
        }
        "/redirect-relative" => Reply::Redirect("release".into()),
        _ => Reply::Raw("HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n".into()),
    }
}

enum Reply {
    Body(Vec<u8>),
    /// A body without Content-Length, ended by closing the connection.
    CloseDelimited(Vec<u8>),
    Raw(String),
    Redirect(String),
    /// Headers, then one byte every 50 ms, forever.
    Trickle,
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) {
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.ends_with(b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
        if request.len() > 16 * 1024 {
            return;
        }
    }
    let text = String::from_utf8_lossy(&request);
    let path = text.split(' ').nth(1).unwrap_or("/").to_owned();
    let bytes = match answer(&path) {
        Reply::Body(body) => {
            let mut out =
                format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
            out.extend_from_slice(&body);
            out
        }
        Reply::CloseDelimited(body) => {
            let mut out = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_vec();
            out.extend_from_slice(&body);
            out
        }
        Reply::Raw(head) => head.into_bytes(),
        Reply::Redirect(to) => {
            format!("HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\n\r\n")
                .into_bytes()
        }
        Reply::Trickle => {
            let head = "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n";
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            // Bounded: the client's deadline ends it long before.
            for _ in 0..400 {
                tokio::time::sleep(Duration::from_millis(50)).await;
                if stream.write_all(b"x").await.is_err() || stream.flush().await.is_err() {
                    return;
                }
            }
            return;
        }
    };
    let _ = stream.write_all(&bytes).await;
    let _ = stream.shutdown().await;
}

async fn http_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(serve(tcp));
        }
    });
    addr
}

#[tokio::test]
async fn fetches_bodies_and_follows_redirects() {
    let addr = http_server().await;
    let url = |p: &str| format!("http://{addr}{p}");
    assert_eq!(
        fetch(&url("/release"), T).await.expect("fetch"),
        b"signed release bytes"
    );
    assert_eq!(fetch(&url("/empty"), T).await.expect("fetch"), b"");
    assert_eq!(
        fetch(&url("/exact"), T).await.expect("fetch").len(),
        MAX_BODY
    );
    assert_eq!(
        fetch(&url("/moved"), T).await.expect("fetch"),
        b"signed release bytes"
    );
    let hops = format!("/hop/{MAX_REDIRECTS}");
    assert_eq!(fetch(&url(&hops), T).await.expect("fetch"), b"arrived");
    let hops = format!("/hop/{}", MAX_REDIRECTS + 1);
    let err = fetch(&url(&hops), T)
        .await
        .expect_err("too many")
        .to_string();
    assert!(err.contains("redirects"), "{err}");
    let err = fetch(&url("/redirect-relative"), T)
        .await
        .expect_err("unsupported")
        .to_string();
    assert!(err.contains("redirect"), "{err}");
}

#[tokio::test]
async fn statuses_limits_and_deadline() {
    let addr = http_server().await;
    let url = |p: &str| format!("http://{addr}{p}");
    let err = fetch(&url("/missing"), T)
        .await
        .expect_err("404")
        .to_string();
    assert!(err.contains("404") && err.contains("/missing"), "{err}");
    let err = fetch(&url("/announced-too-big"), T)
        .await
        .expect_err("too big")
        .to_string();
    assert!(err.contains("limit"), "{err}");
    let err = fetch(&url("/too-big"), T)
        .await
        .expect_err("too big")
        .to_string();
    assert!(err.contains("limit"), "{err}");
    let start = Instant::now();
    let err = fetch(&url("/trickle"), Duration::from_millis(500))
        .await
        .expect_err("deadline")
        .to_string();
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert!(err.contains("within"), "{err}");
    // Nothing listens on the port any more once the listener is dropped.
    let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = closed.local_addr().expect("address").port();
    drop(closed);
    let err = fetch(&format!("http://127.0.0.1:{port}/x"), T)
        .await
        .expect_err("refused")
        .to_string();
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    let err = fetch("ftp://127.0.0.1/x", T)
        .await
        .expect_err("scheme")
        .to_string();
    assert!(err.contains("http"), "{err}");
}

#[tokio::test]
async fn larger_answers_with_their_own_limit() {
    let addr = http_server().await;
    let url = format!("http://{addr}/torrent");
    let body = fetch_limited(&url, T, 3 * MAX_BODY).await.expect("fetch");
    assert_eq!(body.len(), 3 * MAX_BODY);
    let err = fetch_limited(&url, T, 3 * MAX_BODY - 1)
        .await
        .expect_err("over")
        .to_string();
    assert!(err.contains("limit"), "{err}");
    assert!(fetch(&url, T).await.is_err(), "a release feed keeps 64 KiB");
}

/// A self-signed certificate for 127.0.0.1 (not a CA), trusted directly.
fn certificate(dir: &Path) {
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-addext",
            "extendedKeyUsage=serverAuth",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
        ])
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl (tools/setup installs it)");
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn https_server(dir: &Path) -> (SocketAddr, Vec<u8>) {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("cert.pem"))
        .expect("cert.pem")
        .collect::<Result<_, _>>()
        .expect("certificates");
    let der = certs[0].to_vec();
    let key = PrivateKeyDer::from_pem_file(dir.join("key.pem")).expect("key.pem");
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
                if let Ok(tls) = acceptor.accept(tcp).await {
                    serve(tls).await;
                }
            });
        }
    });
    (addr, der)
}

#[tokio::test]
async fn https_with_an_extra_root() {
    let dir = tempfile::tempdir().expect("tempdir");
    certificate(dir.path());
    let (addr, der) = https_server(dir.path()).await;
    let url = format!("https://{addr}/release");
    let body = fetch_with_roots(&url, T, std::slice::from_ref(&der))
        .await
        .expect("fetch over TLS");
    assert_eq!(body, b"signed release bytes");
    // A redirect stays on TLS and keeps the trust.
    let url = format!("https://{addr}/moved");
    assert!(fetch_with_roots(&url, T, &[der]).await.is_ok());
    // Without the extra root the server is not trusted.
    let err = fetch(&url, T).await.expect_err("untrusted").to_string();
    assert!(err.contains(&addr.to_string()), "{err}");
    assert!(
        err.to_lowercase().contains("certificate"),
        "names the certificate problem: {err}"
    );
    // Garbage as a root certificate is a clear error, not a panic.
    let err = fetch_with_roots(&url, T, &[vec![1, 2, 3]])
        .await
        .expect_err("bad root")
        .to_string();
    assert!(err.contains("root certificate"), "{err}");
}
