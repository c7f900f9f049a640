//! A bounded, non-recursive pass over bencoded bytes before anything else
//! touches them.
//!
//! Why a separate pass: `bt_bencode` (which does the typed decoding) recurses
//! once per nesting level and trusts lengths, so a hostile torrent or BEP 9
//! metadata message could exhaust the stack or ask for huge allocations. This
//! pass walks the bytes once with an explicit, bounded stack, checks every
//! limit and the canonical forms, and only then hands the bytes to
//! `bt_bencode`. It also finds the exact byte span of a top-level key, which
//! is how infohashes are computed over the original `info` bytes.

use std::ops::Range;

/// Bounds on untrusted bencode. Defaults fit a snapshot of a large mirror
/// (a million files) and still bound memory to a few hundred MiB worst case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Total encoded size.
    pub max_size: usize,
    /// Deepest nesting of lists and dictionaries.
    pub max_depth: usize,
    /// Total number of values (integers, strings, lists, dictionaries).
    pub max_items: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_size: 64 << 20,
            max_depth: 64,
            max_items: 8_000_000,
        }
    }
}

/// Why bencode was refused. `at` is the byte offset of the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BencodeError {
    /// The input is longer than [`Limits::max_size`].
    #[error("bencode is {size} bytes, over the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    /// Nesting deeper than [`Limits::max_depth`].
    #[error("bencode nests deeper than {limit} levels at byte {at}")]
    TooDeep { at: usize, limit: usize },
    /// More values than [`Limits::max_items`].
    #[error("bencode has more than {limit} values")]
    TooManyItems { limit: usize },
    /// The input ended inside a value.
    #[error("bencode is truncated at byte {at}")]
    Truncated { at: usize },
    /// A byte that cannot start or continue a value here.
    #[error("unexpected byte {byte:#04x} in bencode at byte {at}")]
    Unexpected { at: usize, byte: u8 },
    /// An integer with a leading zero, `-0`, no digits, or out of i64 range.
    #[error("bad integer in bencode at byte {at}")]
    BadInteger { at: usize },
    /// A string length that is not canonical or runs past the end.
    #[error("bad string length in bencode at byte {at}")]
    BadLength { at: usize },
    /// A dictionary key that is not a string.
    #[error("dictionary key is not a string at byte {at}")]
    KeyNotString { at: usize },
    /// Bytes after the single top-level value.
    #[error("trailing data after bencode at byte {at}")]
    TrailingData { at: usize },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Frame {
    List,
    /// Inside a dictionary; `true` when the next value is a key.
    Dict {
        want_key: bool,
    },
}

/// Checks that `buf` is exactly one well-formed bencoded value within
/// `limits`. Returns the number of values it holds.
pub fn validate(buf: &[u8], limits: &Limits) -> Result<usize, BencodeError> {
    let mut items = 0usize;
    let end = scan_value(buf, 0, limits, Some(&mut items))?.end;
    if end != buf.len() {
        return Err(BencodeError::TrailingData { at: end });
    }
    Ok(items)
}

/// The end offset of the first value in `buf`, which may be followed by
/// other bytes (a BEP 9 data message is a dictionary and then raw bytes).
/// Checks the same limits as [`validate`] on that first value.
pub(crate) fn first_value_end(buf: &[u8], limits: &Limits) -> Result<usize, BencodeError> {
    Ok(scan_value(buf, 0, limits, None)?.end)
}

/// Scans one value starting at `start`; returns its span. Iterative: the
/// only state is a stack bounded by `limits.max_depth`.
fn scan_value(
    buf: &[u8],
    start: usize,
    limits: &Limits,
    mut items_out: Option<&mut usize>,
) -> Result<Range<usize>, BencodeError> {
    if buf.len() > limits.max_size {
        return Err(BencodeError::TooLarge {
            size: buf.len(),
            limit: limits.max_size,
        });
    }
    let mut stack: Vec<Frame> = Vec::new();
    let mut pos = start;
    let mut items = 0usize;
    loop {
        let at = pos;
        let byte = *buf.get(pos).ok_or(BencodeError::Truncated { at })?;
        if stack.last() == Some(&Frame::Dict { want_key: true })
            && byte != b'e'
            && !byte.is_ascii_digit()
        {
            return Err(BencodeError::KeyNotString { at });
        }
        // Whether a whole value (or key) ended at `pos`.
        let value_done = match byte {
            b'e' => {
                match stack.pop() {
                    Some(Frame::List) | Some(Frame::Dict { want_key: true }) => {}
                    // A key without its value, or an `e` outside a container.
                    Some(Frame::Dict { want_key: false }) | None => {
                        return Err(BencodeError::Unexpected { at, byte });
                    }
                }
                pos += 1;
                true
            }
            b'i' => {
                pos = scan_int(buf, pos + 1, b'e')?;
                items += 1;
                true
            }
            b'0'..=b'9' => {
                let (len, data_start) = scan_len(buf, pos)?;
                pos = data_start
                    .checked_add(len)
                    .filter(|_| len <= limits.max_size)
                    .ok_or(BencodeError::BadLength { at })?;
                // A plausible length past the end: the input was cut short.
                if pos > buf.len() {
                    return Err(BencodeError::Truncated { at });
                }
                items += 1;
                true
            }
            b'l' | b'd' => {
                if stack.len() >= limits.max_depth {
                    return Err(BencodeError::TooDeep {
                        at,
                        limit: limits.max_depth,
                    });
                }
                stack.push(if byte == b'l' {
                    Frame::List
                } else {
                    Frame::Dict { want_key: true }
                });
                pos += 1;
                items += 1;
                false
            }
            _ => return Err(BencodeError::Unexpected { at, byte }),
        };
        if items > limits.max_items {
            return Err(BencodeError::TooManyItems {
                limit: limits.max_items,
            });
        }
        if value_done {
            match stack.last_mut() {
                None => {
                    if let Some(out) = items_out.as_deref_mut() {
                        *out = items;
                    }
                    return Ok(start..pos);
                }
                Some(Frame::Dict { want_key }) => *want_key = !*want_key,
                Some(Frame::List) => {}
            }
        }
    }
}

/// Parses a canonical integer ending at `term`; returns the position after
/// the terminator.
fn scan_int(buf: &[u8], start: usize, term: u8) -> Result<usize, BencodeError> {
    let at = start;
    let rest = buf.get(start..).ok_or(BencodeError::Truncated { at })?;
    let len = rest
        .iter()
        .take(21)
        .position(|b| *b == term)
        .ok_or(if rest.len() < 21 {
            BencodeError::Truncated { at }
        } else {
            BencodeError::BadInteger { at }
        })?;
    let text = &rest[..len];
    let digits = text.strip_prefix(b"-").unwrap_or(text);
    let canonical = !digits.is_empty()
        && digits.iter().all(u8::is_ascii_digit)
        && (digits == b"0" && text.len() == 1 || digits[0] != b'0');
    if !canonical {
        return Err(BencodeError::BadInteger { at });
    }
    std::str::from_utf8(text)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or(BencodeError::BadInteger { at })?;
    Ok(start + len + 1)
}

/// Parses a string length prefix at `start`; returns (length, data start).
fn scan_len(buf: &[u8], start: usize) -> Result<(usize, usize), BencodeError> {
    let at = start;
    let rest = &buf[start..];
    let colon = rest
        .iter()
        .take(20)
        .position(|b| *b == b':')
        .ok_or(if rest.len() < 20 {
            BencodeError::Truncated { at }
        } else {
            BencodeError::BadLength { at }
        })?;
    let digits = &rest[..colon];
    if digits.is_empty()
        || !digits.iter().all(u8::is_ascii_digit)
        || (digits.len() > 1 && digits[0] == b'0')
    {
        return Err(BencodeError::BadLength { at });
    }
    let len = std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
        .ok_or(BencodeError::BadLength { at })?;
    Ok((len, start + colon + 1))
}

/// The byte span of the value stored under `key` in the top-level
/// dictionary of an already validated `buf`, if any.
pub fn top_level_span(buf: &[u8], key: &[u8], limits: &Limits) -> Option<Range<usize>> {
    if buf.first() != Some(&b'd') {
        return None;
    }
    let mut pos = 1;
    while buf.get(pos).is_some_and(|b| *b != b'e') {
        let (len, data) = scan_len(buf, pos).ok()?;
        let k = buf.get(data..data + len)?;
        let value = scan_value(buf, data + len, limits, None).ok()?;
        if k == key {
            return Some(value);
        }
        pos = value.end;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &[u8]) -> usize {
        match validate(s, &Limits::default()) {
            Ok(n) => n,
            Err(e) => panic!("{:?}: {e}", String::from_utf8_lossy(s)),
        }
    }

    fn err(s: &[u8]) -> BencodeError {
        match validate(s, &Limits::default()) {
            Ok(_) => panic!("accepted {:?}", String::from_utf8_lossy(s)),
            Err(e) => e,
        }
    }

    #[test]
    fn accepts_well_formed() {
        assert_eq!(ok(b"i0e"), 1);
        assert_eq!(ok(b"i-42e"), 1);
        assert_eq!(ok(b"4:spam"), 1);
        assert_eq!(ok(b"0:"), 1);
        assert_eq!(ok(b"le"), 1);
        assert_eq!(ok(b"de"), 1);
        assert_eq!(ok(b"l4:spami3ee"), 3);
        assert_eq!(ok(b"d3:cow3:moo4:spaml1:a1:bee"), 7);
        assert_eq!(ok(b"d1:ad1:bd1:cleeee"), 7);
    }

    #[test]
    fn refuses_malformed() {
        assert!(matches!(err(b""), BencodeError::Truncated { .. }));
        assert!(matches!(err(b"i01e"), BencodeError::BadInteger { .. }));
        assert!(matches!(err(b"i-0e"), BencodeError::BadInteger { .. }));
        assert!(matches!(err(b"ie"), BencodeError::BadInteger { .. }));
        assert!(matches!(
            err(b"i99999999999999999999e"),
            BencodeError::BadInteger { .. }
        ));
        assert!(matches!(err(b"i12"), BencodeError::Truncated { .. }));
        assert!(matches!(err(b"5:abc"), BencodeError::Truncated { .. }));
        assert!(matches!(err(b"05:abcde"), BencodeError::BadLength { .. }));
        assert!(matches!(
            err(b"99999999999999999999999:x"),
            BencodeError::BadLength { .. }
        ));
        assert!(matches!(
            err(b"di1ei2ee"),
            BencodeError::KeyNotString { .. }
        ));
        assert!(matches!(err(b"d1:ae"), BencodeError::Unexpected { .. }));
        assert!(matches!(err(b"l"), BencodeError::Truncated { .. }));
        assert!(matches!(err(b"i1ei2e"), BencodeError::TrailingData { .. }));
        assert!(matches!(err(b"x"), BencodeError::Unexpected { .. }));
        assert!(matches!(err(b"e"), BencodeError::Unexpected { .. }));
    }

    #[test]
    fn depth_and_count_are_bounded() {
        let deep = [vec![b'l'; 100_000], vec![b'e'; 100_000]].concat();
        assert!(matches!(err(&deep), BencodeError::TooDeep { .. }));
        let limits = Limits {
            max_items: 3,
            ..Limits::default()
        };
        assert!(matches!(
            validate(b"li1ei2ei3ee", &limits),
            Err(BencodeError::TooManyItems { .. })
        ));
        let limits = Limits {
            max_size: 2,
            ..Limits::default()
        };
        assert!(matches!(
            validate(b"i10e", &limits),
            Err(BencodeError::TooLarge { .. })
        ));
    }

    #[test]
    fn first_value_end_stops_before_trailing_bytes() {
        let l = Limits::default();
        assert_eq!(first_value_end(b"d1:ai1ee\x00\xffraw", &l), Ok(8));
        assert_eq!(first_value_end(b"i1e", &l), Ok(3));
        assert!(matches!(
            first_value_end(b"d1:ai1e", &l),
            Err(BencodeError::Truncated { .. })
        ));
    }

    #[test]
    fn finds_exact_top_level_span() {
        let buf = b"d8:announce3:url4:infod4:name1:xe5:otheri1ee";
        let span = top_level_span(buf, b"info", &Limits::default());
        assert_eq!(span.map(|r| &buf[r]), Some(&b"d4:name1:xe"[..]));
        assert_eq!(top_level_span(buf, b"nope", &Limits::default()), None);
    }
}
