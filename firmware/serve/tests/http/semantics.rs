//! HTTP semantics a mirror's clients rely on: validators, preconditions,
//! ranges, HEAD, listings, keep-alive.

use std::io::Write;
use std::net::TcpStream;

use crate::util::{Server, Tree, big, get, method, read_response};

fn server() -> (Tree, Server) {
    let tree = Tree::new();
    let server = Server::start(tree.mounts(), serve::Config::default());
    (tree, server)
}

#[test]
fn get_and_head_carry_validators() {
    let (_tree, s) = server();
    let r = get(s.addr, "/debian/hello.txt", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"hello world\n");
    assert_eq!(r.header("content-length"), Some("12"));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    let etag = r.header("etag").expect("etag");
    assert!(
        etag.starts_with('"') && etag.ends_with('"'),
        "strong etag: {etag}"
    );
    assert!(r.header("last-modified").is_some());

    let h = method(s.addr, "HEAD", "/debian/hello.txt", &[]);
    assert_eq!(h.status, 200);
    assert!(h.body.is_empty());
    assert_eq!(h.header("content-length"), Some("12"));
    assert_eq!(h.header("etag"), Some(etag));

    let deb = get(s.addr, "/debian/a%2Bb_1.0.deb", &[]);
    assert_eq!(deb.body, b"plus");
    assert_eq!(
        deb.header("content-type"),
        Some("application/vnd.debian.binary-package")
    );
    let plus = get(s.addr, "/debian/a+b_1.0.deb", &[]);
    assert_eq!(plus.header("etag"), deb.header("etag"));

    let m = method(s.addr, "POST", "/debian/hello.txt", &[]);
    assert_eq!(m.status, 405);
    assert_eq!(m.header("allow"), Some("GET, HEAD"));
    assert_eq!(get(s.addr, "/debian/missing", &[]).status, 404);
    assert_eq!(
        get(s.addr, "/debian/dir%20with%20space/x.txt", &[]).body,
        b"x"
    );
}

#[test]
fn conditional_requests() {
    let (_tree, s) = server();
    let first = get(s.addr, "/debian/hello.txt", &[]);
    let etag = first.header("etag").expect("etag").to_string();
    let lm = first
        .header("last-modified")
        .expect("last-modified")
        .to_string();
    let path = "/debian/hello.txt";

    let r = get(s.addr, path, &[("If-None-Match", &etag)]);
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    assert_eq!(
        get(s.addr, path, &[("If-None-Match", "\"other\"")]).status,
        200
    );
    assert_eq!(
        get(s.addr, path, &[("If-None-Match", &format!("W/{etag}"))]).status,
        304
    );
    assert_eq!(get(s.addr, path, &[("If-Modified-Since", &lm)]).status, 304);
    assert_eq!(
        method(s.addr, "HEAD", path, &[("If-Modified-Since", &lm)]).status,
        304
    );
    assert_eq!(
        get(
            s.addr,
            path,
            &[("If-Modified-Since", "Sat, 01 Jan 2000 00:00:00 GMT")]
        )
        .status,
        200
    );
    assert_eq!(get(s.addr, path, &[("If-Match", &etag)]).status, 200);
    assert_eq!(get(s.addr, path, &[("If-Match", "\"other\"")]).status, 412);
    assert_eq!(
        get(
            s.addr,
            path,
            &[("If-Unmodified-Since", "Sat, 01 Jan 2000 00:00:00 GMT")]
        )
        .status,
        412
    );
    assert_eq!(
        get(s.addr, path, &[("If-Unmodified-Since", &lm)]).status,
        200
    );
}

#[test]
fn ranges_and_if_range() {
    let (tree, s) = server();
    let data = big();
    let len = data.len();
    let path = "/debian/big.bin";
    let full = get(s.addr, path, &[]);
    assert_eq!(full.body, data);
    let etag = full.header("etag").expect("etag").to_string();
    let lm = full.header("last-modified").expect("lm").to_string();

    let r = get(s.addr, path, &[("Range", "bytes=100-199")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &data[100..200]);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 100-199/{len}").as_str())
    );
    assert_eq!(r.header("content-length"), Some("100"));

    let r = get(s.addr, path, &[("Range", "bytes=1000000-")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &data[1_000_000..]);
    let r = get(s.addr, path, &[("Range", "bytes=-10")]);
    assert_eq!(r.body, &data[len - 10..]);

    let r = get(s.addr, path, &[("Range", &format!("bytes={len}-"))]);
    assert_eq!(r.status, 416);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes */{len}").as_str())
    );
    let r = get(s.addr, path, &[("Range", "bytes=0-1,5-6")]);
    assert_eq!(
        (r.status, r.body.len()),
        (200, len),
        "multiple ranges fall back to 200"
    );

    // If-Range with the current validators: the range. With old ones: all.
    let r = get(
        s.addr,
        path,
        &[("Range", "bytes=10-19"), ("If-Range", &etag)],
    );
    assert_eq!((r.status, r.body.as_slice()), (206, &data[10..20]));
    let r = get(s.addr, path, &[("Range", "bytes=10-19"), ("If-Range", &lm)]);
    assert_eq!(r.status, 206);
    let r = get(
        s.addr,
        path,
        &[("Range", "bytes=10-19"), ("If-Range", "\"stale\"")],
    );
    assert_eq!((r.status, r.body.len()), (200, len));
    let r = get(
        s.addr,
        path,
        &[
            ("Range", "bytes=10-19"),
            ("If-Range", "Sat, 01 Jan 2000 00:00:00 GMT"),
        ],
    );
    assert_eq!((r.status, r.body.len()), (200, len));

    // Small files (read whole during the lookup) and files around that
    // size and the chunk size (streamed) honour ranges the same way.
    let r = get(s.addr, "/debian/hello.txt", &[("Range", "bytes=6-10")]);
    assert_eq!((r.status, r.body.as_slice()), (206, &b"world"[..]));
    for size in [16 * 1024, 16 * 1024 + 1, 64 * 1024, 64 * 1024 + 1, 200_000] {
        let name = format!("sized-{size}.bin");
        std::fs::write(tree.root.join(&name), &data[..size]).expect("write");
        let path = format!("/debian/{name}");
        assert_eq!(get(s.addr, &path, &[]).body, &data[..size], "{size}");
        let r = get(s.addr, &path, &[("Range", "bytes=1000-")]);
        assert_eq!(
            (r.status, r.body.as_slice()),
            (206, &data[1000..size]),
            "{size}"
        );
        let r = get(s.addr, &path, &[("Range", "bytes=-3")]);
        assert_eq!(r.body, &data[size - 3..size], "{size}");
    }

    // HEAD ignores Range.
    let r = method(s.addr, "HEAD", path, &[("Range", "bytes=0-0")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some(len.to_string().as_str()));
}

#[test]
fn replaced_file_is_not_spliced() {
    // A client resuming with validators from the old file must get the new
    // file whole, never its tail appended to the old head.
    let (tree, s) = server();
    let path = "/debian/hello.txt";
    let old = get(s.addr, path, &[]);
    let etag = old.header("etag").expect("etag").to_string();
    let tmp = tree.root.join(".hello.tmp");
    std::fs::write(&tmp, b"HELLO WORLD, now longer\n").expect("write");
    std::fs::rename(&tmp, tree.root.join("hello.txt")).expect("rename");
    let r = get(s.addr, path, &[("Range", "bytes=6-"), ("If-Range", &etag)]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"HELLO WORLD, now longer\n");
    assert_ne!(r.header("etag"), Some(etag.as_str()));
    assert_eq!(get(s.addr, path, &[("If-None-Match", &etag)]).status, 200);
}

#[test]
fn listings_and_redirects() {
    let (_tree, s) = server();
    let r = get(s.addr, "/debian/dir", &[]);
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("/debian/dir/"));
    let r = get(s.addr, "/debian/dir%20with%20space?format=json", &[]);
    assert_eq!(
        r.header("location"),
        Some("/debian/dir%20with%20space/?format=json")
    );

    let r = get(s.addr, "/debian", &[]);
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("/debian/"));
    let r = get(s.addr, "/debian/", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let page = String::from_utf8(r.body).expect("utf-8");
    assert!(page.contains("href=\"hello.txt\""), "{page}");
    assert!(page.contains("href=\"dir%20with%20space/\""));
    assert!(page.contains("href=\"a%2Bb_1.0.deb\""));
    assert!(page.contains("href=\"link-in\""));
    for hidden in ["link-out", "link-abs", "link-up", "dev-zero", "fifo"] {
        assert!(!page.contains(hidden), "{hidden} listed");
    }

    let j = get(s.addr, "/debian/dir/?format=json", &[]);
    assert_eq!(j.header("content-type"), Some("application/json"));
    let text = String::from_utf8(j.body).expect("utf-8");
    assert!(
        text.starts_with("{\"path\":\"/debian/dir/\",\"truncated\":false,\"entries\":["),
        "{text}"
    );
    assert!(text.contains("{\"name\":\"inner.txt\",\"type\":\"file\",\"size\":5,"));
    assert!(text.contains("{\"name\":\"link-root\",\"type\":\"dir\",\"size\":0,"));
    let j = get(s.addr, "/debian/dir/", &[("Accept", "application/json")]);
    assert_eq!(j.header("content-type"), Some("application/json"));
    // Above the mounts: a listing of them.
    let top = get(s.addr, "/", &[]);
    assert_eq!(top.status, 200);
    assert!(String::from_utf8_lossy(&top.body).contains("href=\"debian/\""));
    let top = get(s.addr, "/?format=json", &[]);
    assert!(String::from_utf8_lossy(&top.body).contains("{\"name\":\"debian\",\"type\":\"dir\""));
    assert_eq!(get(s.addr, "/other/", &[]).status, 404);
}

#[test]
fn keep_alive_serves_many_requests_on_one_connection() {
    let (_tree, s) = server();
    let mut c = TcpStream::connect(s.addr).expect("connect");
    for i in 0..20 {
        let (m, head) = if i % 3 == 0 {
            ("HEAD", true)
        } else {
            ("GET", false)
        };
        let req = format!("{m} /debian/hello.txt HTTP/1.1\r\nHost: t\r\n\r\n");
        c.write_all(req.as_bytes()).expect("write");
        let r = read_response(&mut c, head);
        assert_eq!(r.status, 200, "request {i}");
        if !head {
            assert_eq!(r.body, b"hello world\n");
        }
    }
    // HTTP/1.0 without keep-alive: answered, then closed.
    let r = crate::util::raw(s.addr, b"GET /debian/hello.txt HTTP/1.0\r\n\r\n");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"hello world\n"[..]));
    // Pipelined: two requests in one write.
    c.write_all(b"GET /debian/dir/inner.txt HTTP/1.1\r\nHost: t\r\n\r\nGET /debian/missing HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("write");
    assert_eq!(read_response(&mut c, false).body, b"inner");
    assert_eq!(read_response(&mut c, false).status, 404);
}

#[test]
fn snapshot_switch_under_a_symlinked_root() {
    // The node mounts `<data>/current`; switching it must be seen by the next
    // request without restarting the server.
    let tmp = tempfile::tempdir().expect("tmp");
    for (seq, body) in [("1", "one"), ("2", "two")] {
        std::fs::create_dir(tmp.path().join(seq)).expect("mkdir");
        std::fs::write(tmp.path().join(seq).join("Release"), body).expect("write");
    }
    let current = tmp.path().join("current");
    let s = Server::start(
        vec![serve::Mount::new("/d", &current)],
        serve::Config::default(),
    );
    assert_eq!(
        get(s.addr, "/d/Release", &[]).status,
        404,
        "no snapshot yet"
    );
    std::os::unix::fs::symlink("1", &current).expect("symlink");
    assert_eq!(get(s.addr, "/d/Release", &[]).body, b"one");
    std::os::unix::fs::symlink("2", tmp.path().join("next")).expect("symlink");
    std::fs::rename(tmp.path().join("next"), &current).expect("rename");
    assert_eq!(get(s.addr, "/d/Release", &[]).body, b"two");
}
