//! Where a piece's bytes live on a web seed: pieces cut into file spans,
//! and the URL of each file.
//!
//! Kept free of IO so it can be checked against every torrent layout
//! (v1 pieces straddling files, hybrid pad files, v2 pieces that stop at the
//! end of their file) without a server.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use torrent::Info;
use torrent::metainfo::File;

use super::Problem;

/// One contiguous run of a piece's bytes inside one file of the torrent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Index into [`Info::files`].
    pub file: usize,
    /// Offset of the run inside that file.
    pub offset: u64,
    pub length: u64,
    /// A BEP 47 pad file: the bytes are zeros by definition and are never
    /// asked for.
    pub pad: bool,
}

/// The spans making up piece `piece`, in order.
///
/// For v1 and hybrid torrents they cover the whole piece (pads included),
/// so their bytes are what the v1 hash covers. For v2 torrents a piece
/// holds data of one file only and stops where the file ends, which is
/// what the v2 piece hash covers.
pub fn piece_spans(info: &Info, piece: u64) -> Result<Vec<Span>, Problem> {
    let count = info.piece_count();
    if piece >= count {
        return Err(Problem::NoSuchPiece { piece, count });
    }
    let pl = info.piece_length;
    let end = info
        .files
        .iter()
        .map(|f| f.offset.saturating_add(f.length))
        .max()
        .unwrap_or(0);
    let start = piece.saturating_mul(pl);
    let stop = start.saturating_add(pl).min(end);
    // Files are in piece-space order and their ends never decrease, so the
    // first file that ends after `start` is found by bisection.
    let first = info
        .files
        .partition_point(|f| f.offset.saturating_add(f.length) <= start);
    let mut spans = Vec::new();
    for (i, f) in info.files.iter().enumerate().skip(first) {
        if f.offset >= stop {
            break;
        }
        if f.length == 0 || f.symlink_target.is_some() {
            continue;
        }
        let from = start.max(f.offset);
        let to = stop.min(f.offset.saturating_add(f.length));
        if to > from {
            spans.push(Span {
                file: i,
                offset: from - f.offset,
                length: to - from,
                pad: f.attr.pad,
            });
        }
    }
    let covered: u64 = spans.iter().map(|s| s.length).sum();
    let consistent = if info.version.has_v1() {
        covered == stop - start
    } else {
        spans.len() == 1
    };
    if !consistent {
        return Err(Problem::Layout(format!(
            "piece {piece} is covered by {covered} file bytes in {} spans",
            spans.len()
        )));
    }
    Ok(spans)
}

/// Characters left as they are in a path component: RFC 3986 unreserved.
/// Everything else, `/`, `%`, `+`, `?`, `#` and non-ASCII included, is
/// percent-encoded, so a file name can never change the URL's structure.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Appends `component` percent-encoded to `out`.
pub(crate) fn push_component(out: &mut String, component: &str) {
    out.extend(utf8_percent_encode(component, COMPONENT));
}

/// The URL of `file` on the web seed whose (already validated) base URL is
/// `base`, following BEP 19: for a multi-file torrent the base is a
/// directory that holds the torrent's `name` directory; for a single-file
/// torrent a base ending in `/` is a directory holding the file, otherwise
/// it names the file itself.
pub(crate) fn file_url(base: &str, info: &Info, file: &File) -> String {
    let mut url = String::with_capacity(base.len() + 64);
    url.push_str(base);
    if info.single_file {
        if base.ends_with('/') {
            push_component(&mut url, &info.name);
        }
        return url;
    }
    if !base.ends_with('/') {
        url.push('/');
    }
    push_component(&mut url, &info.name);
    for c in file.path.components() {
        url.push('/');
        push_component(&mut url, c);
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;
    use torrent::Version;
    use torrent::metainfo::Attr;

    fn file(path: &str, length: u64, offset: u64, pad: bool) -> File {
        File {
            path: path.split('/').map(str::to_owned).collect(),
            length,
            offset,
            pieces_root: None,
            attr: Attr {
                pad,
                ..Attr::default()
            },
            symlink_target: None,
        }
    }

    fn info(version: Version, single: bool, files: Vec<File>, pl: u64) -> Info {
        Info {
            name: "t r+ee".into(),
            piece_length: pl,
            version,
            files,
            pieces: Vec::new(),
            private: false,
            single_file: single,
            v1_infohash: None,
            v2_infohash: None,
            raw: Vec::new(),
        }
    }

    #[test]
    fn v1_pieces_straddle_files() {
        let i = info(
            Version::V1,
            false,
            vec![
                file("a", 10, 0, false),
                file("e", 0, 10, false),
                file("b", 25, 10, false),
            ],
            16,
        );
        assert_eq!(i.piece_count(), 3);
        let p0 = piece_spans(&i, 0).expect("p0");
        assert_eq!(
            p0,
            [
                Span {
                    file: 0,
                    offset: 0,
                    length: 10,
                    pad: false
                },
                Span {
                    file: 2,
                    offset: 0,
                    length: 6,
                    pad: false
                }
            ]
        );
        let p2 = piece_spans(&i, 2).expect("p2");
        assert_eq!(p2.len(), 1);
        assert_eq!((p2[0].file, p2[0].offset, p2[0].length), (2, 22, 3));
        assert!(matches!(
            piece_spans(&i, 3),
            Err(Problem::NoSuchPiece { piece: 3, count: 3 })
        ));
    }

    #[test]
    fn hybrid_pads_are_marked_and_v2_stops_at_file_end() {
        let files = vec![
            file("a", 20, 0, false),
            file(".pad/12", 12, 20, true),
            file("b", 5, 32, false),
        ];
        let h = info(Version::Hybrid, false, files, 16);
        let p1 = piece_spans(&h, 1).expect("p1");
        assert_eq!(p1.len(), 2);
        assert!(!p1[0].pad && p1[1].pad);
        assert_eq!(p1[0].length + p1[1].length, 16);

        let v2 = info(
            Version::V2,
            false,
            vec![file("a", 20, 0, false), file("b", 5, 32, false)],
            16,
        );
        let p1 = piece_spans(&v2, 1).expect("p1");
        assert_eq!((p1[0].file, p1[0].offset, p1[0].length), (0, 16, 4));
        let p2 = piece_spans(&v2, 2).expect("p2");
        assert_eq!((p2[0].file, p2[0].length), (1, 5));
    }

    #[test]
    fn urls_follow_bep19_and_encode_components() {
        let multi = info(
            Version::V1,
            false,
            vec![file("d ir/é+%?#", 1, 0, false)],
            16,
        );
        let f = &multi.files[0];
        assert_eq!(
            file_url("http://h/seed", &multi, f),
            "http://h/seed/t%20r%2Bee/d%20ir/%C3%A9%2B%25%3F%23"
        );
        assert_eq!(
            file_url("http://h/seed/", &multi, f),
            "http://h/seed/t%20r%2Bee/d%20ir/%C3%A9%2B%25%3F%23"
        );
        let single = info(Version::V1, true, vec![file("t r+ee", 1, 0, false)], 16);
        let f = &single.files[0];
        assert_eq!(file_url("http://h/d/", &single, f), "http://h/d/t%20r%2Bee");
        assert_eq!(file_url("http://h/d/x.iso", &single, f), "http://h/d/x.iso");
    }
}
