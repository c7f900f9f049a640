//! A table of hostile requests, sent as raw bytes so no client library
//! normalises them. Every one must get its expected status, and no response
//! may contain the secret file that sits next to the served root.

use crate::util::{SECRET, Server, Tree, raw};

fn req(target: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").into_bytes()
}

fn with_method(method: &str, target: &str) -> Vec<u8> {
    format!("{method} {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").into_bytes()
}

#[test]
fn hostile_requests_never_leave_the_root() {
    let tree = Tree::new();
    let server = Server::start(tree.mounts(), serve::Config::default());
    let secret_abs = tree.tmp.path().join("secret.txt");
    let long_9k = format!("/debian/{}", "a".repeat(9 * 1024));
    let long_20k = format!("/debian/{}", "a".repeat(20 * 1024));
    let many_headers = {
        let mut r = String::from("GET /debian/hello.txt HTTP/1.1\r\nHost: test\r\n");
        for i in 0..100 {
            r.push_str(&format!("X-H{i}: v\r\n"));
        }
        r.push_str("Connection: close\r\n\r\n");
        r.into_bytes()
    };
    let huge_header = format!(
        "GET /debian/hello.txt HTTP/1.1\r\nHost: test\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "b".repeat(20 * 1024)
    )
    .into_bytes();

    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        // Dot segments in every spelling.
        ("plain ..", req("/debian/../secret.txt"), 400),
        ("nested ..", req("/debian/dir/../../secret.txt"), 400),
        ("leading ..", req("/../secret.txt"), 400),
        ("double-slash ..", req("//debian/../secret.txt"), 400),
        ("%2e%2e", req("/debian/%2e%2e/secret.txt"), 400),
        ("%2E%2E", req("/debian/%2E%2E/secret.txt"), 400),
        (".%2e", req("/debian/.%2e/secret.txt"), 400),
        ("%2e.", req("/debian/%2e./secret.txt"), 400),
        ("bare %2e%2e", req("/debian/%2e%2e"), 400),
        ("dot segment", req("/debian/./hello.txt"), 400),
        // Encoded separators.
        ("..%2f", req("/debian/..%2fsecret.txt"), 400),
        ("..%2F", req("/debian/..%2Fsecret.txt"), 400),
        ("%2e%2e%2f", req("/debian/%2e%2e%2fsecret.txt"), 400),
        ("mount%2f..", req("/debian%2f..%2fsecret.txt"), 400),
        ("top ..%2f", req("/..%2fsecret.txt"), 400),
        ("..%5c", req("/debian/..%5csecret.txt"), 400),
        ("raw backslash", req("/debian/..\\secret.txt"), 400),
        // Double encoding.
        ("%252e%252e", req("/debian/%252e%252e/secret.txt"), 400),
        ("%252e%252e%252f", req("/debian/%252e%252e%252fsecret.txt"), 400),
        ("%25%32%65", req("/debian/%25%32%65%25%32%65/secret.txt"), 400),
        // Invalid and overlong UTF-8.
        ("overlong %c0%ae", req("/debian/%c0%ae%c0%ae/secret.txt"), 400),
        ("overlong %c0%af", req("/debian/..%c0%afsecret.txt"), 400),
        ("overlong 3-byte", req("/debian/%e0%80%ae%e0%80%ae/secret.txt"), 400),
        ("invalid utf-8", req("/debian/%ff%fe"), 400),
        ("%u escape", req("/debian/%u002e%u002e/secret.txt"), 400),
        ("bad escape", req("/debian/%zz"), 400),
        ("truncated escape", req("/debian/%"), 400),
        // NUL and control bytes.
        ("%00 suffix", req("/debian/hello.txt%00"), 400),
        ("%00 infix", req("/debian/hello.txt%00.deb"), 400),
        ("CRLF injection", req("/debian/dir%0d%0aSet-Cookie:x"), 400),
        ("raw NUL", b"GET /debian/hello.txt\0 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".to_vec(), 400),
        // Symlinks that lead out.
        ("symlink out", req("/debian/link-out"), 404),
        ("absolute symlink out", req("/debian/link-abs"), 404),
        ("symlink dir out", req("/debian/link-up/secret.txt"), 404),
        ("symlink dir out listing", req("/debian/link-up/"), 404),
        ("symlink to root, then ..", req("/debian/dir/link-root/../secret.txt"), 400),
        ("symlink to root, then out", req("/debian/dir/link-root/link-out"), 404),
        ("symlink to a device", req("/debian/dev-zero"), 404),
        ("named pipe", req("/debian/fifo"), 404),
        // Outside any mount, odd targets.
        ("no mount", req("/secret.txt"), 404),
        ("absolute path of secret", req(&format!("/debian{}", secret_abs.display())), 404),
        ("four dots", req("/debian/..../secret.txt"), 404),
        ("file as dir", req("/debian/hello.txt/"), 404),
        ("absolute-form ..", req("http://127.0.0.1/debian/../secret.txt"), 400),
        ("absolute-form file:", req("file:///etc/passwd"), 400),
        ("asterisk", req("*"), 400),
        ("relative target", req("secret.txt"), 400),
        // Methods: read-only server.
        ("POST", with_method("POST", "/debian/hello.txt"), 405),
        ("PUT", b"PUT /debian/new HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc".to_vec(), 405),
        ("DELETE", with_method("DELETE", "/debian/hello.txt"), 405),
        ("OPTIONS", with_method("OPTIONS", "/debian/hello.txt"), 405),
        ("TRACE", with_method("TRACE", "/debian/../secret.txt"), 405),
        ("HEAD ..", with_method("HEAD", "/debian/../secret.txt"), 400),
        // Sizes.
        ("9 KiB URI", req(&long_9k), 414),
        ("20 KiB URI", req(&long_20k), 431),
        ("100 headers", many_headers, 431),
        ("20 KiB header", huge_header, 431),
        // Framing.
        (
            "CL and TE",
            b"GET /debian/hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n".to_vec(),
            400,
        ),
        (
            "chunked GET",
            b"GET /debian/hello.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n".to_vec(),
            400,
        ),
        (
            "TE gzip",
            b"GET /debian/hello.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\nConnection: close\r\n\r\n".to_vec(),
            400,
        ),
        (
            "two CLs",
            b"GET /debian/hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\nConnection: close\r\n\r\nab".to_vec(),
            400,
        ),
        ("garbage", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n".to_vec(), 400),
        ("bad version", b"GET /debian/hello.txt HTTP/9.9\r\nHost: t\r\n\r\n".to_vec(), 400),
    ];
    assert!(cases.len() >= 40, "{} cases", cases.len());
    let mut failures = Vec::new();
    for (name, request, want) in &cases {
        let resp = raw(server.addr, request);
        assert!(
            resp.raw.windows(SECRET.len()).all(|w| w != SECRET),
            "{name}: the secret leaked"
        );
        if resp.status != *want {
            let head = String::from_utf8_lossy(&resp.raw[..resp.raw.len().min(200)]).into_owned();
            failures.push(format!("{name}: got {} want {want}: {head:?}", resp.status));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );

    // Controls: the fixture is live and inside symlinks work.
    assert_eq!(
        raw(server.addr, &req("/debian/link-in")).body,
        b"hello world\n"
    );
    assert_eq!(
        raw(server.addr, &req("/debian/dir/link-root/hello.txt")).body,
        b"hello world\n"
    );
    assert_eq!(
        raw(server.addr, &req("/debian/a%2bb_1.0.deb")).body,
        b"plus"
    );
}
