//! Response bodies: nothing, a small in-memory page, or a file streamed in
//! fixed-size chunks.
//!
//! A file body reads at most one chunk ahead of the socket (hyper polls the
//! next frame only once the previous one is written), so memory per
//! connection is bounded by the chunk size whatever the file size. The reads
//! go through tokio's file type, which runs them on the blocking pool and
//! keeps the single-threaded reactor free.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use tokio::io::{AsyncRead, ReadBuf};

/// The body of every response this server sends.
#[derive(Debug)]
pub enum Body {
    /// No body (HEAD, 304, 416 …).
    Empty,
    /// A small generated page (listing, error text).
    Bytes(Option<Bytes>),
    /// `remaining` bytes of an open file, from its current position.
    File(FileBody),
}

/// The streaming part of [`Body::File`].
#[derive(Debug)]
pub struct FileBody {
    file: tokio::fs::File,
    remaining: u64,
    chunk: usize,
}

impl Body {
    /// A body holding `bytes`.
    pub fn bytes(bytes: impl Into<Bytes>) -> Self {
        Body::Bytes(Some(bytes.into()))
    }

    /// Streams `len` bytes from `file`'s current position, `chunk` at a time.
    pub fn file(file: tokio::fs::File, len: u64, chunk: usize) -> Self {
        Body::File(FileBody {
            file,
            remaining: len,
            chunk: chunk.max(1),
        })
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.get_mut() {
            Body::Empty => Poll::Ready(None),
            Body::Bytes(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Body::File(f) => {
                if f.remaining == 0 {
                    return Poll::Ready(None);
                }
                let want = usize::try_from(f.remaining)
                    .unwrap_or(usize::MAX)
                    .min(f.chunk);
                let mut buf = vec![0u8; want];
                let mut rb = ReadBuf::new(&mut buf);
                ready!(Pin::new(&mut f.file).poll_read(cx, &mut rb))?;
                let n = rb.filled().len();
                if n == 0 {
                    // The file shrank under us: abort the response rather than
                    // send fewer bytes than Content-Length promised.
                    f.remaining = 0;
                    return Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file ended before its announced length",
                    ))));
                }
                buf.truncate(n);
                f.remaining -= n as u64;
                Poll::Ready(Some(Ok(Frame::data(Bytes::from(buf)))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Empty => true,
            Body::Bytes(b) => b.is_none(),
            Body::File(f) => f.remaining == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Empty => SizeHint::with_exact(0),
            Body::Bytes(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Body::File(f) => SizeHint::with_exact(f.remaining),
        }
    }
}

/// Content-Type by file name: the small table a package mirror needs.
/// Anything else is `application/octet-stream`, which no client mangles.
pub fn content_type(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("deb" | "udeb" | "ddeb") => "application/vnd.debian.binary-package",
        Some("rpm") => "application/x-rpm",
        Some("xml") => "application/xml",
        Some("gz") => "application/gzip",
        Some("xz") => "application/x-xz",
        Some("zst") => "application/zstd",
        Some("bz2") => "application/x-bzip2",
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("json") => "application/json",
        Some("txt" | "asc" | "sha256" | "md5") => "text/plain; charset=utf-8",
        _ => match name {
            "Release" | "InRelease" | "Packages" | "Sources" | "Index" => {
                "text/plain; charset=utf-8"
            }
            _ => "application/octet-stream",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        assert_eq!(
            content_type("a_1.0_all.deb"),
            "application/vnd.debian.binary-package"
        );
        assert_eq!(content_type("x.rpm"), "application/x-rpm");
        assert_eq!(content_type("repomd.xml"), "application/xml");
        assert_eq!(content_type("Packages.GZ"), "application/gzip");
        assert_eq!(content_type("Packages.xz"), "application/x-xz");
        assert_eq!(content_type("primary.xml.zst"), "application/zstd");
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("a.json"), "application/json");
        assert_eq!(content_type("InRelease"), "text/plain; charset=utf-8");
        assert_eq!(content_type("README.txt"), "text/plain; charset=utf-8");
        assert_eq!(content_type("blob"), "application/octet-stream");
    }
}
