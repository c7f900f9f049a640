//! SHA-256 through `ring`, SHA-1 through RustCrypto's `sha1`.
//!
//! Why ring for SHA-256: its assembly uses the CPU's SHA extensions on
//! x86_64 and NEON on the Cortex-A8, which is what makes hashing a 2 GB
//! subset on a BeagleBone bearable; it matches `openssl speed`.
//!
//! Why not ring for SHA-1: ring 0.17 computes SHA-1 in portable Rust on every
//! target (only SHA-2 has assembly), a quarter of OpenSSL's speed on a CPU
//! with SHA extensions, and a hybrid torrent hashes every byte with both.
//! The `sha1` crate detects SHA-NI at run time on x86_64 and falls back to
//! portable Rust elsewhere (the Cortex-A8 has no SHA instructions, so there
//! neither crate has more than that). Its `unsafe` stays inside it; this
//! crate keeps `#![forbid(unsafe_code)]`. Figures: docs/benchmarks.md.
//!
//! Every hasher here is streaming: callers feed slices, nothing ever holds a
//! whole file.

use ring::digest;
use sha1::Digest as _;

/// A 20-byte SHA-1 digest (v1 pieces and v1 infohashes).
pub type Sha1 = [u8; 20];
/// A 32-byte SHA-256 digest (v2 merkle nodes and v2 infohashes).
pub type Sha256 = [u8; 32];

/// Streaming SHA-1 (BEP 3 piece hashes and v1 infohashes only).
#[derive(Clone, Default)]
pub struct Sha1Hasher(sha1::Sha1);

impl Sha1Hasher {
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    pub fn finish(self) -> Sha1 {
        self.0.finalize().into()
    }
}

/// Streaming SHA-256.
#[derive(Clone)]
pub struct Sha256Hasher(digest::Context);

impl Default for Sha256Hasher {
    fn default() -> Self {
        Self(digest::Context::new(&digest::SHA256))
    }
}

impl Sha256Hasher {
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    pub fn finish(self) -> Sha256 {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.0.finish().as_ref());
        out
    }
}

/// SHA-1 of one slice.
pub fn sha1(data: &[u8]) -> Sha1 {
    let mut h = Sha1Hasher::default();
    h.update(data);
    h.finish()
}

/// SHA-256 of one slice.
pub fn sha256(data: &[u8]) -> Sha256 {
    let mut h = Sha256Hasher::default();
    h.update(data);
    h.finish()
}

/// SHA-256 of two concatenated nodes: the merkle parent.
pub fn sha256_pair(left: &Sha256, right: &Sha256) -> Sha256 {
    let mut h = Sha256Hasher::default();
    h.update(left);
    h.update(right);
    h.finish()
}

/// Lower-case hex of any digest.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

/// Parses exactly `N` bytes of hex (either case).
pub fn from_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let bytes = s.as_bytes();
    if bytes.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let hi = char::from(pair[0]).to_digit(16)?;
        let lo = char::from(pair[1]).to_digit(16)?;
        out[i] = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        assert_eq!(
            to_hex(&sha1(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            to_hex(&sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn sha1_streaming_matches_one_shot() {
        // Split across the 64-byte block boundary and a long run, so the
        // buffering of the streaming hasher is exercised.
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
        let mut h = Sha1Hasher::default();
        for part in [&data[..1], &data[1..63], &data[63..65], &data[65..]] {
            h.update(part);
        }
        assert_eq!(h.finish(), sha1(&data));
        assert_eq!(
            to_hex(&sha1(&[0u8; 16384])),
            "897256b6709e1a4da9daba92b6bde39ccfccd8c1"
        );
    }

    #[test]
    fn hex_round_trip() {
        let h = sha256(b"x");
        assert_eq!(from_hex::<32>(&to_hex(&h)), Some(h));
        assert_eq!(from_hex::<32>("zz"), None);
        assert_eq!(from_hex::<2>("zzzz"), None);
    }
}
