//! Streaming decompression of metadata files, bounded.
//!
//! The format is chosen by magic bytes, not by the file name: a mirror may
//! serve `Packages` under a by-hash name with no extension at all. A file
//! whose name promises compression but whose bytes carry no known magic is
//! refused rather than parsed as text. All three decoders are pure Rust so
//! the crate cross-compiles to static musl armv7.
//!
//! [`Capped`] sits between the decoder and the parser and bounds two things:
//! the total decompressed size (a 10 KB "zip bomb" must not become 100 GB of
//! parsing), and the bytes consumed since the parser last called
//! [`Capped::mark`], which bounds how much a single XML event can make
//! quick-xml buffer.

use std::io::{self, BufRead, BufReader, Read};

use crate::Error;
use crate::limits::{MAX_DECOMPRESSED, MAX_XZ_MEMORY_KIB, MAX_ZSTD_WINDOW};

const GZIP: &[u8] = &[0x1f, 0x8b];
const XZ: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0x00];
const ZSTD: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

/// File name endings of formats this crate cannot read; such a file is
/// never mistaken for plain text.
const UNSUPPORTED: &[&str] = &[".bz2", ".lzma", ".lz4", ".lz", ".zck", ".sqlite"];
/// Endings that promise one of the supported formats.
const COMPRESSED: &[&str] = &[".gz", ".xz", ".zst", ".zstd"];

/// Which limit [`Capped`] hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hit {
    Total,
    SinceMark,
}

/// A `BufRead` that refuses to hand out more than `limit` bytes in total,
/// or more than `mark_limit` bytes between two calls of [`Capped::mark`].
pub(crate) struct Capped<R> {
    inner: R,
    total: u64,
    limit: u64,
    since_mark: u64,
    mark_limit: u64,
    pub(crate) hit: Option<Hit>,
}

impl<R: BufRead> Capped<R> {
    pub(crate) fn new(inner: R, limit: u64, mark_limit: u64) -> Self {
        Capped {
            inner,
            total: 0,
            limit,
            since_mark: 0,
            mark_limit,
            hit: None,
        }
    }

    /// Bytes handed out so far.
    pub(crate) fn position(&self) -> u64 {
        self.total
    }

    /// Restarts the since-mark count.
    pub(crate) fn mark(&mut self) {
        self.since_mark = 0;
    }

    fn allowed(&self) -> (u64, Hit) {
        let total = self.limit.saturating_sub(self.total);
        let mark = self.mark_limit.saturating_sub(self.since_mark);
        if total <= mark {
            (total, Hit::Total)
        } else {
            (mark, Hit::SinceMark)
        }
    }
}

impl<R: BufRead> Read for Capped<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let buf = self.fill_buf()?;
        let n = buf.len().min(out.len());
        out[..n].copy_from_slice(&buf[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Capped<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        let (allowed, which) = self.allowed();
        let buf = self.inner.fill_buf()?;
        if allowed == 0 && !buf.is_empty() {
            self.hit = Some(which);
            return Err(io::Error::other("size limit reached"));
        }
        let n = usize::try_from(allowed).map_or(buf.len(), |a| a.min(buf.len()));
        Ok(&buf[..n])
    }

    fn consume(&mut self, n: usize) {
        self.inner.consume(n);
        self.total = self.total.saturating_add(n as u64);
        self.since_mark = self.since_mark.saturating_add(n as u64);
    }
}

/// The decompressed stream of one file.
pub(crate) type Stream<'a> = Capped<BufReader<Box<dyn Read + 'a>>>;

/// Opens `data` (the bytes of `path` as published) for streaming reads of
/// its decompressed content.
pub(crate) fn open<'a>(path: &str, data: &'a [u8], mark_limit: u64) -> Result<Stream<'a>, Error> {
    let decoder: Box<dyn Read + 'a> = if data.starts_with(GZIP) {
        Box::new(flate2::read::MultiGzDecoder::new(data))
    } else if data.starts_with(XZ) {
        Box::new(lzma_rust2::XzReader::new_mem_limit(
            data,
            true,
            MAX_XZ_MEMORY_KIB,
        ))
    } else if data.starts_with(ZSTD) {
        Box::new(Zstd::new(path, data)?)
    } else {
        let name = path.rsplit('/').next().unwrap_or(path);
        if let Some(ext) = UNSUPPORTED
            .iter()
            .chain(COMPRESSED)
            .find(|ext| name.ends_with(**ext))
        {
            return Err(Error::Decompress {
                path: path.to_string(),
                reason: if COMPRESSED.contains(ext) {
                    format!("named {ext} but not in that format (bad magic bytes)")
                } else {
                    format!("{ext} files are not supported (gz, xz, zst or plain only)")
                },
            });
        }
        Box::new(data)
    };
    Ok(Capped::new(
        BufReader::with_capacity(64 * 1024, decoder),
        MAX_DECOMPRESSED,
        mark_limit,
    ))
}

/// Turns an I/O error from a [`Stream`] into the crate's error.
pub(crate) fn error<R: BufRead>(path: &str, stream: &Capped<R>, e: &io::Error) -> Error {
    match stream.hit {
        Some(Hit::Total) => Error::TooLarge {
            path: path.to_string(),
            limit: MAX_DECOMPRESSED,
        },
        Some(Hit::SinceMark) => Error::Decompress {
            path: path.to_string(),
            reason: format!(
                "a single element or line longer than {} bytes",
                stream.mark_limit
            ),
        },
        None => Error::Decompress {
            path: path.to_string(),
            reason: e.to_string(),
        },
    }
}

/// zstd, frame after frame: `zstd` writes one frame, `pzstd` and some
/// repository tools write several, and a reader must accept both.
struct Zstd<'a> {
    path: String,
    decoder: Option<ruzstd::decoding::StreamingDecoder<&'a [u8], ruzstd::decoding::FrameDecoder>>,
}

impl<'a> Zstd<'a> {
    fn new(path: &str, data: &'a [u8]) -> Result<Self, Error> {
        let decoder = Self::frame(data).map_err(|e| Error::Decompress {
            path: path.to_string(),
            reason: format!("zstd: {e}"),
        })?;
        Ok(Zstd {
            path: path.to_string(),
            decoder: Some(decoder),
        })
    }

    fn frame(
        data: &'a [u8],
    ) -> Result<
        ruzstd::decoding::StreamingDecoder<&'a [u8], ruzstd::decoding::FrameDecoder>,
        ruzstd::decoding::errors::FrameDecoderError,
    > {
        ruzstd::decoding::StreamingDecoder::new_with_max_window_size(data, MAX_ZSTD_WINDOW)
    }
}

impl Read for Zstd<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(decoder) = self.decoder.as_mut() else {
                return Ok(0);
            };
            let n = decoder.read(out)?;
            if n > 0 || out.is_empty() {
                return Ok(n);
            }
            if !decoder.decoder.is_finished() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "zstd: truncated frame",
                ));
            }
            let rest = *decoder.get_ref();
            self.decoder = None;
            if rest.is_empty() {
                return Ok(0);
            }
            let next = Self::frame(rest).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("zstd ({}): next frame: {e}", self.path),
                )
            })?;
            self.decoder = Some(next);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn read_all(path: &str, data: &[u8]) -> Result<Vec<u8>, Error> {
        let mut s = open(path, data, u64::MAX)?;
        let mut out = Vec::new();
        match s.read_to_end(&mut out) {
            Ok(_) => Ok(out),
            Err(e) => Err(error(path, &s, &e)),
        }
    }

    fn text() -> Vec<u8> {
        (0..3_000u32)
            .flat_map(|i| format!("Package: p{i}\n\n").into_bytes())
            .collect()
    }

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).expect("gz");
        e.finish().expect("gz")
    }

    fn xz(data: &[u8]) -> Vec<u8> {
        let mut w = lzma_rust2::XzWriter::new(Vec::new(), lzma_rust2::XzOptions::with_preset(6))
            .expect("xz");
        w.write_all(data).expect("xz");
        w.finish().expect("xz")
    }

    fn zst(data: &[u8]) -> Vec<u8> {
        ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
    }

    #[test]
    fn every_format_round_trips() {
        let t = text();
        assert_eq!(read_all("Packages", &t).expect("plain"), t);
        assert_eq!(read_all("Packages.gz", &gz(&t)).expect("gz"), t);
        assert_eq!(read_all("Packages.xz", &xz(&t)).expect("xz"), t);
        assert_eq!(read_all("Packages.zst", &zst(&t)).expect("zst"), t);
        // By magic, not by name: a by-hash name has no extension.
        assert_eq!(read_all("by-hash/SHA256/ab", &xz(&t)).expect("xz"), t);
    }

    #[test]
    fn concatenated_streams_and_frames() {
        let t = text();
        let mut two = gz(&t[..1000]);
        two.extend(gz(&t[1000..]));
        assert_eq!(read_all("a.gz", &two).expect("gz members"), t);
        let mut two = zst(&t[..1000]);
        two.extend(zst(&t[1000..]));
        assert_eq!(read_all("a.zst", &two).expect("zstd frames"), t);
        let mut two = xz(&t[..1000]);
        two.extend(xz(&t[1000..]));
        assert_eq!(read_all("a.xz", &two).expect("xz streams"), t);
    }

    #[test]
    fn corrupt_and_truncated_input_is_an_error() {
        let t = text();
        for (name, data) in [("p.gz", gz(&t)), ("p.xz", xz(&t)), ("p.zst", zst(&t))] {
            let cut = &data[..data.len() / 2];
            let e = read_all(name, cut).expect_err(name);
            assert!(e.to_string().starts_with(name), "{e}");
            let mut flipped = data.clone();
            let mid = flipped.len() / 2;
            flipped[mid] ^= 0x55;
            flipped[mid + 1] ^= 0xaa;
            // Either an error or (rarely, for gzip without a checked
            // block) different bytes; never a panic.
            if let Ok(out) = read_all(name, &flipped) {
                assert_ne!(out, t, "{name}");
            }
        }
        let e = read_all("Packages.xz", b"Package: x\n").expect_err("bad magic");
        assert!(e.to_string().contains("bad magic"), "{e}");
        let e = read_all("Packages.bz2", b"BZh91AY").expect_err("bz2");
        assert!(e.to_string().contains("not supported"), "{e}");
    }

    #[test]
    fn limits_stop_a_bomb() {
        // 64 MiB of zeros compress to ~64 KiB of gzip; a limit of 1 MiB stops it.
        let zeros = vec![0u8; 8 * 1024 * 1024];
        let bomb = gz(&zeros);
        let s = open("bomb.gz", &bomb, u64::MAX).expect("open");
        let mut s = Capped::new(s, 1024 * 1024, u64::MAX);
        let mut out = Vec::new();
        let e = s.read_to_end(&mut out).expect_err("limit");
        assert_eq!(s.hit, Some(Hit::Total));
        assert!(out.len() <= 1024 * 1024);
        assert!(error("bomb.gz", &s, &e).to_string().contains("larger than"));
        // The since-mark limit, reset by mark().
        let t = text();
        let mut s = open("p", &t, 100).expect("open");
        let mut buf = [0u8; 60];
        s.read_exact(&mut buf).expect("60");
        s.mark();
        s.read_exact(&mut buf).expect("60 more after mark");
        let e = s.read_exact(&mut buf).expect_err("over 100 since mark");
        assert!(error("p", &s, &e).to_string().contains("longer than 100"));
    }
}
