//! The `/-/…` hook: what a `Special` answers, with the server's method,
//! path and header rules around it.

use std::sync::Arc;

use serve::{Special, SpecialResponse};

use crate::util::{Server, Tree, get, method, raw};

struct Feed;

impl Special for Feed {
    fn get(&self, path: &str) -> Option<SpecialResponse> {
        match path {
            "releases/deb" => Some(
                SpecialResponse::ok("application/x-bittorrent", "d4:seqi7ee")
                    .with_etag("seq-7")
                    .with_cache_control("max-age=10"),
            ),
            "echo" | "echo/" | "a b/c" | "" => {
                Some(SpecialResponse::ok("text/plain", path.to_string()))
            }
            "teapot" => Some(SpecialResponse::new(418, "text/plain", "short and stout")),
            "bad-status" => Some(SpecialResponse::new(1000, "text/plain", "x")),
            "bad-type" => Some(SpecialResponse::ok("text/plain\r\nx: y", "x")),
            "panic" => panic!("a special page that panics"),
            _ => None,
        }
    }
}

#[test]
fn special_pages() {
    let tree = Tree::new();
    let s = Server::start_with(
        serve::Server::new(tree.mounts(), serve::Config::default()).special(Arc::new(Feed)),
    );
    let r = get(s.addr, "/-/releases/deb", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"d4:seqi7ee");
    assert_eq!(r.header("content-type"), Some("application/x-bittorrent"));
    assert_eq!(r.header("content-length"), Some("10"));
    assert_eq!(r.header("cache-control"), Some("max-age=10"));
    assert_eq!(r.header("etag"), Some("\"seq-7\""));
    let r = get(s.addr, "/-/releases/deb", &[("If-None-Match", "\"seq-7\"")]);
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    let r = get(s.addr, "/-/releases/deb", &[("If-None-Match", "\"seq-6\"")]);
    assert_eq!(r.status, 200);
    let r = method(s.addr, "HEAD", "/-/releases/deb", &[]);
    assert_eq!((r.status, r.body.len()), (200, 0));
    assert_eq!(r.header("content-length"), Some("10"));
    let r = method(
        s.addr,
        "POST",
        "/-/releases/deb",
        &[("Content-Length", "0")],
    );
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    // Paths arrive decoded, joined, trailing slash kept.
    assert_eq!(get(s.addr, "/-/echo", &[]).body, b"echo");
    assert_eq!(get(s.addr, "/-/echo/", &[]).body, b"echo/");
    assert_eq!(get(s.addr, "/-//echo", &[]).body, b"echo");
    assert_eq!(get(s.addr, "/-/a%20b/c", &[]).body, b"a b/c");
    assert_eq!(get(s.addr, "/-/", &[]).body, b"");
    assert_eq!(get(s.addr, "/-/teapot", &[]).status, 418);
    assert_eq!(get(s.addr, "/-/nothing", &[]).status, 404);
    assert_eq!(get(s.addr, "/-/bad-status", &[]).status, 500);
    assert_eq!(get(s.addr, "/-/bad-type", &[]).status, 500);
    assert_eq!(get(s.addr, "/-/panic", &[]).status, 500);
    // The strict decoder runs first: nothing below /- can climb out.
    for hostile in [
        "/-/../debian/hello.txt",
        "/-/%2e%2e/debian/hello.txt",
        "/-/echo%2f..",
        "/-/%252e",
        "/-/a%00",
        "/-/a\\b",
    ] {
        let r = raw(
            s.addr,
            format!("GET {hostile} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        assert_eq!(r.status, 400, "{hostile}");
    }
    // Files are still served beside it.
    assert_eq!(get(s.addr, "/debian/hello.txt", &[]).status, 200);
}

#[test]
fn no_special_means_404() {
    let tree = Tree::new();
    let s = Server::start(tree.mounts(), serve::Config::default());
    assert_eq!(get(s.addr, "/-/status", &[]).status, 404);
    assert_eq!(get(s.addr, "/-/", &[]).status, 404);
}
