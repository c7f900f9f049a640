//! A server fixture and a minimal raw HTTP/1.1 client.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::Duration;

use serve::{Config, Mount};

/// Content of the file placed next to (outside) the served root.
pub const SECRET: &[u8] = b"TOP-SECRET-7f3a9c-never-serve-this";

/// A running server; dropping it shuts the server down and joins it.
pub struct Server {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    pub fn start(mounts: Vec<Mount>, config: Config) -> Server {
        Server::start_with(serve::Server::new(mounts, config))
    }

    /// Runs a configured server (status board, special pages).
    pub fn start_with(server: serve::Server) -> Server {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                addr_tx
                    .send(listener.local_addr().expect("addr"))
                    .expect("send addr");
                server.run(listener, stop_rx).await.expect("serve::run");
            });
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("server address");
        Server {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Stops the server and returns how long `run` took to return.
    pub fn stop(mut self) -> Duration {
        let t = std::time::Instant::now();
        self.shutdown();
        t.elapsed()
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().expect("server thread panicked");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A temporary tree:
/// ```text
/// tmp/secret.txt                SECRET (outside the root)
/// tmp/root/hello.txt            "hello world\n"
/// tmp/root/a+b_1.0.deb          "plus"
/// tmp/root/big.bin              1 MiB, byte i = i * 7 mod 251
/// tmp/root/dir/inner.txt
/// tmp/root/dir with space/x.txt
/// tmp/root/link-in -> hello.txt
/// tmp/root/link-out -> ../secret.txt
/// tmp/root/link-abs -> /…/tmp/secret.txt
/// tmp/root/link-up -> ..
/// tmp/root/dir/link-root -> ..   (inside: the root itself)
/// tmp/root/dev-zero -> /dev/zero
/// tmp/root/fifo                  a named pipe (opening it would block)
/// ```
pub struct Tree {
    pub tmp: tempfile::TempDir,
    pub root: PathBuf,
}

pub fn big() -> Vec<u8> {
    (0..1024 * 1024u32).map(|i| (i * 7 % 251) as u8).collect()
}

impl Tree {
    pub fn new() -> Tree {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("root");
        let w = |p: &str, c: &[u8]| {
            let p = root.join(p);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, c).expect("write");
        };
        std::fs::write(tmp.path().join("secret.txt"), SECRET).expect("secret");
        w("hello.txt", b"hello world\n");
        w("a+b_1.0.deb", b"plus");
        w("big.bin", &big());
        w("dir/inner.txt", b"inner");
        w("dir with space/x.txt", b"x");
        let link = |target: &Path, name: &str| {
            std::os::unix::fs::symlink(target, root.join(name)).expect("symlink")
        };
        link(Path::new("hello.txt"), "link-in");
        link(Path::new("../secret.txt"), "link-out");
        link(&tmp.path().join("secret.txt"), "link-abs");
        link(Path::new(".."), "link-up");
        link(Path::new(".."), "dir/link-root");
        link(Path::new("/dev/zero"), "dev-zero");
        let fifo = std::process::Command::new("mkfifo")
            .arg(root.join("fifo"))
            .status();
        assert!(fifo.is_ok_and(|s| s.success()), "mkfifo failed");
        Tree { tmp, root }
    }

    pub fn mounts(&self) -> Vec<Mount> {
        vec![Mount::new("/debian", &self.root)]
    }
}

/// A parsed response.
#[derive(Debug, Default)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Everything received, head included.
    pub raw: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Parses one response head; returns it and the head's length.
fn parse_head(raw: &[u8]) -> Option<(Response, usize)> {
    let end = find(raw, b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Some((
        Response {
            status,
            headers,
            ..Response::default()
        },
        end,
    ))
}

/// Sends `request` bytes on a new connection and reads until the server
/// closes it (or 10 s pass).
pub fn raw(addr: SocketAddr, request: &[u8]) -> Response {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    // The server may answer and close before it has read everything.
    let _ = s.write_all(request);
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    match parse_head(&all) {
        Some((mut r, end)) => {
            r.body = all[end..].to_vec();
            r.raw = all;
            r
        }
        None => Response {
            raw: all,
            ..Response::default()
        },
    }
}

/// `GET path` from the loopback source address `from` (127.0.0.0/8).
pub fn get_from(from: std::net::Ipv4Addr, addr: SocketAddr, path: &str) -> Response {
    use socket2::{Domain, Socket, Type};
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    sock.bind(&SocketAddr::from((from, 0)).into())
        .expect("bind source");
    sock.connect(&addr.into()).expect("connect");
    let mut s: TcpStream = sock.into();
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).expect("write");
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    match parse_head(&all) {
        Some((mut r, end)) => {
            r.body = all[end..].to_vec();
            r
        }
        None => Response::default(),
    }
}

/// `GET path` with Connection: close and extra header lines.
pub fn get(addr: SocketAddr, path: &str, extra: &[(&str, &str)]) -> Response {
    method(addr, "GET", path, extra)
}

pub fn method(addr: SocketAddr, method: &str, path: &str, extra: &[(&str, &str)]) -> Response {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (k, v) in extra {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    raw(addr, req.as_bytes())
}

/// Reads one response with a Content-Length body from a kept-alive stream.
pub fn read_response(s: &mut TcpStream, head_request: bool) -> Response {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while find(&buf, b"\r\n\r\n").is_none() {
        match s.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            _ => {
                return Response {
                    raw: buf,
                    ..Response::default()
                };
            }
        }
    }
    let Some((mut r, _)) = parse_head(&buf) else {
        return Response {
            raw: buf,
            ..Response::default()
        };
    };
    let len: usize = r
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if !head_request && r.status != 304 {
        let mut body = vec![0u8; len];
        s.read_exact(&mut body).expect("body");
        r.body = body;
    }
    r.raw = buf;
    r
}
