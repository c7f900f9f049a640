//! Which block to ask which peer for next.
//!
//! Rarest first within priority classes, finishing started pieces before
//! starting new ones (so verified pieces, and HAVEs for others, come
//! early), except at [`IN_ORDER`] priority and above, where a client is
//! waiting to be streamed the file from its start: those pieces go in
//! piece order, like a video player's deadline pieces. Then an endgame that duplicates the last outstanding requests so a
//! slow peer cannot hold the final piece hostage, but only requests that
//! have waited [`ENDGAME_AFTER`]: duplicating a request that is being
//! answered only doubles the bytes (a republish of ten small files
//! fetched each from the origin's peer and its web seed). Priorities exist for the
//! node's subsets (0 = not wanted) and fetch-on-miss (a file a client is
//! waiting for jumps the queue).
//!
//! Cost: the rarest-first order is a sorted list rebuilt lazily (at most
//! once per 64 picks, or per n / 64 picks for n pieces) rather than a heap
//! updated on every HAVE, so a burst of HAVEs costs O(1) each; our own
//! verified pieces do not trigger it, and scans start past the pieces
//! already taken. (Re-sorting every 64 picks and scanning every started
//! piece made a 12,000-piece download spend 30 s of CPU in the picker.)

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::bitfield::Bitfield;
use crate::layout::{BLOCK, Layout};

/// Pieces of this priority or higher are picked in piece order, not
/// rarest first (fetch-on-miss streams a file from its start).
pub const IN_ORDER: u8 = 200;

/// How long a request must go unanswered before the endgame asks a second
/// peer for the same block. Longer than a loaded host's answer to a queued
/// request, shorter than a user notices at the end of a download.
pub const ENDGAME_AFTER: Duration = Duration::from_secs(2);

/// Identifies a peer connection to the picker.
pub type PeerKey = u64;

/// A block request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockRef {
    pub piece: u32,
    pub begin: u32,
    pub len: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Free,
    /// `since`: when `by` was asked (the endgame waits [`ENDGAME_AFTER`]).
    Requested {
        by: PeerKey,
        dup: Option<PeerKey>,
        since: Instant,
    },
    Received {
        from: PeerKey,
    },
}

#[derive(Debug, Clone)]
struct Partial {
    blocks: Vec<Block>,
    received: u32,
}

/// What a received block meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockOutcome {
    /// New data; store it. `complete` when the piece now has every block.
    /// `cancel` lists other peers asked for the same block (endgame).
    New {
        complete: bool,
        cancel: Vec<PeerKey>,
    },
    /// Already received (endgame duplicate); drop it.
    Duplicate,
    /// Not something we asked for; drop it (and count it against the peer).
    Unrequested,
}

#[derive(Debug, Clone)]
pub struct Picker {
    layout: Layout,
    have: Bitfield,
    priority: Vec<u8>,
    avail: Vec<u16>,
    partial: BTreeMap<u32, Partial>,
    order: Vec<u32>,
    /// Entries of `order` before this index were started or verified when
    /// a pick passed them: scans begin here, not at 0 (a piece whose check
    /// failed moves it back).
    scan_from: usize,
    picks_since_sort: u32,
    dirty: bool,
    seed: u64,
}

impl Picker {
    /// `have` holds the pieces already verified on disk.
    pub fn new(layout: Layout, have: Bitfield, seed: u64) -> Picker {
        let n = layout.piece_count as usize;
        Picker {
            layout,
            have,
            priority: vec![1; n],
            avail: vec![0; n],
            partial: BTreeMap::new(),
            order: Vec::new(),
            scan_from: 0,
            picks_since_sort: 0,
            dirty: true,
            seed,
        }
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub fn have(&self) -> &Bitfield {
        &self.have
    }

    /// 0 = do not download, 1 = normal, higher = sooner.
    pub fn set_priority(&mut self, piece: u32, p: u8) {
        if let Some(slot) = self.priority.get_mut(piece as usize) {
            *slot = p;
            // Re-sort on the next pick: priorities must act at once.
            self.order.clear();
            self.dirty = true;
        }
    }

    fn wanted(&self, piece: u32) -> bool {
        !self.have.get(piece) && self.priority.get(piece as usize).is_some_and(|p| *p > 0)
    }

    /// Every wanted piece is verified.
    pub fn is_complete(&self) -> bool {
        (0..self.layout.piece_count).all(|p| !self.wanted(p))
    }

    /// Bytes of wanted data still missing.
    pub fn left(&self) -> u64 {
        (0..self.layout.piece_count)
            .filter(|p| self.wanted(*p))
            .map(|p| u64::from(self.layout.data_len(p)))
            .sum()
    }

    /// Whether the peer has a piece we want.
    pub fn interesting(&self, peer_has: &Bitfield) -> bool {
        peer_has.ones().any(|p| self.wanted(p))
    }

    pub fn peer_has_all(&mut self, has: &Bitfield) {
        for p in has.ones() {
            self.add_have(p);
        }
    }

    pub fn peer_lost_all(&mut self, has: &Bitfield) {
        for p in has.ones() {
            if let Some(a) = self.avail.get_mut(p as usize) {
                *a = a.saturating_sub(1);
            }
        }
        self.dirty = true;
    }

    pub fn add_have(&mut self, piece: u32) {
        if let Some(a) = self.avail.get_mut(piece as usize) {
            *a = a.saturating_add(1);
            self.dirty = true;
        }
    }

    fn resort(&mut self) {
        let seed = self.seed;
        let mut order: Vec<u32> = (0..self.layout.piece_count)
            .filter(|p| self.wanted(*p))
            .collect();
        let key = |p: u32| {
            // A cheap per-piece shuffle so peers don't all start alike.
            let mut x = u64::from(p) ^ seed;
            x = x.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            x ^ (x >> 29)
        };
        order.sort_by_key(|p| {
            let prio = self.priority[*p as usize];
            if prio >= IN_ORDER {
                (std::cmp::Reverse(prio), 0, u64::from(*p))
            } else {
                (std::cmp::Reverse(prio), self.avail[*p as usize], key(*p))
            }
        });
        self.order = order;
        self.scan_from = 0;
        self.dirty = false;
        self.picks_since_sort = 0;
    }

    fn new_partial(&self, piece: u32) -> Partial {
        Partial {
            blocks: vec![Block::Free; self.layout.blocks(piece) as usize],
            received: 0,
        }
    }

    fn block_ref(&self, piece: u32, b: u32) -> BlockRef {
        BlockRef {
            piece,
            begin: b * BLOCK,
            len: self.layout.block_len(piece, b),
        }
    }

    /// Appends up to `max` new requests for `peer` to `out`.
    pub fn pick(
        &mut self,
        peer: PeerKey,
        peer_has: &Bitfield,
        max: usize,
        now: Instant,
        out: &mut Vec<BlockRef>,
    ) {
        let start = out.len();
        let limit = start + max;
        self.picks_since_sort += 1;
        // A re-sort costs O(n log n): at most once per 64 picks, and per
        // n / 64 picks on big torrents, so picking stays O(log n) a pick.
        let every = (self.order.len() / 64).max(64) as u32;
        if self.dirty && (self.order.is_empty() || self.picks_since_sort >= every) {
            self.resort();
        }
        while let Some(&p) = self.order.get(self.scan_from) {
            if self.wanted(p) && !self.partial.contains_key(&p) {
                break;
            }
            self.scan_from += 1;
        }
        // Started pieces with a block nobody was asked for.
        let mut started: Vec<u32> = self
            .partial
            .iter()
            .filter(|(p, part)| peer_has.get(**p) && part.blocks.contains(&Block::Free))
            .map(|(p, _)| *p)
            .collect();
        started.sort_by_key(|p| std::cmp::Reverse(self.priority[*p as usize]));
        // A new piece of higher priority than any started one goes first
        // (fetch-on-miss must not wait for unrelated pieces to finish).
        let best_new = self.order[self.scan_from..]
            .iter()
            .find(|p| self.wanted(**p) && !self.partial.contains_key(p) && peer_has.get(**p))
            .map_or(0, |p| self.priority[*p as usize]);
        // 1. Free blocks of started pieces at least as urgent.
        for &p in &started {
            if self.priority[p as usize] >= best_new {
                self.take_free(peer, p, limit, now, out);
            }
        }
        // 2. New pieces, by priority then rarest first.
        let mut i = self.scan_from;
        while out.len() < limit && i < self.order.len() {
            let p = self.order[i];
            i += 1;
            if !self.wanted(p) || self.partial.contains_key(&p) || !peer_has.get(p) {
                continue;
            }
            let partial = self.new_partial(p);
            self.partial.insert(p, partial);
            self.take_free(peer, p, limit, now, out);
        }
        // 1b. Less urgent started pieces.
        for &p in &started {
            self.take_free(peer, p, limit, now, out);
        }
        if out.len() > start {
            return;
        }
        // 3. Endgame: nothing free anywhere this peer can serve; duplicate
        // blocks requested from someone else that have waited too long.
        let keys: Vec<u32> = self.partial.keys().copied().collect();
        for p in keys {
            if !peer_has.get(p) {
                continue;
            }
            let n = self.partial.get(&p).map_or(0, |x| x.blocks.len());
            for b in 0..n as u32 {
                if out.len() >= limit {
                    return;
                }
                let r = self.block_ref(p, b);
                if let Some(part) = self.partial.get_mut(&p)
                    && let Block::Requested {
                        by,
                        dup: dup @ None,
                        since,
                    } = &mut part.blocks[b as usize]
                    && *by != peer
                    && now.saturating_duration_since(*since) >= ENDGAME_AFTER
                {
                    *dup = Some(peer);
                    out.push(r);
                }
            }
        }
    }

    /// The rest of started piece `p`'s unrequested blocks, for `peer`.
    /// A web seed fetches whole pieces: a piece that [`Picker::pick`] cut
    /// at `max` would be fetched again for its other blocks.
    pub fn pick_rest(&mut self, peer: PeerKey, p: u32, now: Instant, out: &mut Vec<BlockRef>) {
        self.take_free(peer, p, usize::MAX, now, out);
    }

    fn take_free(
        &mut self,
        peer: PeerKey,
        p: u32,
        limit: usize,
        now: Instant,
        out: &mut Vec<BlockRef>,
    ) {
        let n = self.partial.get(&p).map_or(0, |x| x.blocks.len());
        for b in 0..n as u32 {
            if out.len() >= limit {
                return;
            }
            let r = self.block_ref(p, b);
            if let Some(part) = self.partial.get_mut(&p)
                && part.blocks[b as usize] == Block::Free
            {
                part.blocks[b as usize] = Block::Requested {
                    by: peer,
                    dup: None,
                    since: now,
                };
                out.push(r);
            }
        }
    }

    /// A block arrived from `peer`.
    pub fn on_block(&mut self, peer: PeerKey, piece: u32, begin: u32, len: u32) -> BlockOutcome {
        let b = begin / BLOCK;
        let expected = self.layout.block_len(piece, b);
        let Some(part) = self.partial.get_mut(&piece) else {
            return BlockOutcome::Unrequested;
        };
        if !begin.is_multiple_of(BLOCK) || len != expected {
            return BlockOutcome::Unrequested;
        }
        let Some(slot) = part.blocks.get_mut(b as usize) else {
            return BlockOutcome::Unrequested;
        };
        match *slot {
            Block::Received { .. } => BlockOutcome::Duplicate,
            Block::Free => BlockOutcome::Unrequested,
            // From the requester, its endgame duplicate, or a peer we gave
            // up on (choke, timeout): good data either way, and cheaper to
            // keep than to refetch. The hash check decides.
            Block::Requested { by, dup, .. } => {
                *slot = Block::Received { from: peer };
                part.received += 1;
                let cancel = [Some(by), dup]
                    .into_iter()
                    .flatten()
                    .filter(|k| *k != peer)
                    .collect();
                BlockOutcome::New {
                    complete: part.received as usize == part.blocks.len(),
                    cancel,
                }
            }
        }
    }

    /// A request will not be answered (choke, reject, disconnect, timeout).
    pub fn cancel_request(&mut self, peer: PeerKey, r: BlockRef) {
        if let Some(part) = self.partial.get_mut(&r.piece)
            && let Some(slot) = part.blocks.get_mut((r.begin / BLOCK) as usize)
        {
            *slot = match *slot {
                // The duplicate inherits the wait: it was asked later, but
                // the block has been late since `since`.
                Block::Requested { by, dup, since } if by == peer => match dup {
                    Some(d) => Block::Requested {
                        by: d,
                        dup: None,
                        since,
                    },
                    None => Block::Free,
                },
                Block::Requested {
                    by,
                    dup: Some(d),
                    since,
                } if d == peer => Block::Requested {
                    by,
                    dup: None,
                    since,
                },
                other => other,
            };
        }
    }

    /// Who sent each block of a started piece (block order; `None` for a
    /// block not received).
    pub fn senders(&self, piece: u32) -> Vec<Option<PeerKey>> {
        self.partial.get(&piece).map_or_else(Vec::new, |p| {
            p.blocks
                .iter()
                .map(|b| match b {
                    Block::Received { from } => Some(*from),
                    _ => None,
                })
                .collect()
        })
    }

    /// The piece's hash was checked: on success it is ours, on failure it
    /// starts over from nothing.
    pub fn piece_checked(&mut self, piece: u32, ok: bool) {
        self.partial.remove(&piece);
        if ok {
            // Our own pieces do not change the order of the others: scans
            // skip verified pieces, so no re-sort.
            self.have.set(piece);
        } else {
            self.scan_from = 0;
        }
    }

    /// Pieces with every block received but not yet checked.
    pub fn in_progress(&self) -> usize {
        self.partial.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::create::{InputFile, MemSource, Options, Plan, create};
    use crate::metainfo::Version;
    use std::collections::BTreeMap as Map;

    fn layout(sizes: &[usize], pl: u64) -> Layout {
        let mut mem = Map::new();
        let mut files = Vec::new();
        for (i, s) in sizes.iter().enumerate() {
            let p = vec![format!("f{i}")];
            mem.insert(p.clone(), vec![1u8; *s]);
            files.push(InputFile {
                path: p,
                length: *s as u64,
                executable: false,
                symlink_target: None,
            });
        }
        let opts = Options {
            version: Version::Hybrid,
            piece_length: Some(pl),
            ..Options::default()
        };
        let plan = Plan::new("t", false, files, &opts).expect("plan");
        let info = create(&plan, &opts, &MemSource(mem), 1, &|_| {})
            .expect("create")
            .1
            .info;
        Layout::new(&info)
    }

    #[test]
    fn downloads_everything_once_then_completes() {
        let l = layout(&[100_000, 3, 70_000], 32768);
        let n = l.piece_count;
        let mut p = Picker::new(l, Bitfield::new(n), 1);
        let all = Bitfield::full(n);
        p.peer_has_all(&all);
        let mut seen = std::collections::HashSet::new();
        loop {
            let mut out = Vec::new();
            p.pick(1, &all, 8, Instant::now(), &mut out);
            if out.is_empty() {
                break;
            }
            for r in out {
                assert!(seen.insert(r), "requested twice: {r:?}");
                if let BlockOutcome::New { complete: true, .. } =
                    p.on_block(1, r.piece, r.begin, r.len)
                {
                    p.piece_checked(r.piece, true);
                }
            }
        }
        assert!(p.is_complete());
        assert_eq!(p.left(), 0);
    }

    #[test]
    fn rarest_first_and_priority() {
        let l = layout(&[32768 * 4], 32768);
        let mut p = Picker::new(l, Bitfield::new(4), 7);
        let mut common = Bitfield::new(4);
        for i in 0..4 {
            common.set(i);
        }
        p.peer_has_all(&common);
        p.peer_has_all(&common);
        let mut rare = Bitfield::new(4);
        rare.set(2);
        rare.set(3);
        p.peer_has_all(&rare);
        p.add_have(3);
        // Piece 2 has 3 sources... piece 3 has 4, 0 and 1 have 2.
        let mut out = Vec::new();
        p.pick(9, &common, 1, Instant::now(), &mut out);
        assert!(out[0].piece == 0 || out[0].piece == 1, "{out:?}");
        p.set_priority(3, 7);
        let mut out = Vec::new();
        p.pick(10, &common, 1, Instant::now(), &mut out);
        assert_eq!(out[0].piece, 3);
    }

    #[test]
    fn urgent_pieces_go_in_piece_order() {
        let n: u32 = 16;
        let l = layout(&[16384 * n as usize], 16384);
        let mut p = Picker::new(l, Bitfield::new(n), 11);
        let all = Bitfield::full(n);
        p.peer_has_all(&all);
        // Rarity would say otherwise: the later pieces are rarest.
        let mut late = Bitfield::new(n);
        for i in 0..8 {
            late.set(i);
        }
        p.peer_has_all(&late);
        for i in 4..12 {
            p.set_priority(i, IN_ORDER);
        }
        let mut out = Vec::new();
        p.pick(1, &all, 8, Instant::now(), &mut out);
        let pieces: Vec<u32> = out.iter().map(|r| r.piece).collect();
        assert_eq!(pieces, (4..12).collect::<Vec<u32>>());
    }

    #[test]
    fn endgame_duplicates_and_cancels() {
        let l = layout(&[16384], 16384);
        let mut p = Picker::new(l, Bitfield::new(1), 3);
        let all = Bitfield::full(1);
        let t0 = Instant::now();
        let mut a = Vec::new();
        p.pick(1, &all, 4, t0, &mut a);
        assert_eq!(a.len(), 1);
        let mut b = Vec::new();
        p.pick(2, &all, 4, t0 + ENDGAME_AFTER / 2, &mut b);
        assert!(b.is_empty(), "duplicated a request being answered: {b:?}");
        p.pick(2, &all, 4, t0 + ENDGAME_AFTER, &mut b);
        assert_eq!(b, a, "endgame duplicate");
        let mut c = Vec::new();
        p.pick(3, &all, 4, t0 + ENDGAME_AFTER * 3, &mut c);
        assert!(c.is_empty(), "a third copy: {c:?}");
        match p.on_block(2, a[0].piece, a[0].begin, a[0].len) {
            BlockOutcome::New { complete, cancel } => {
                assert!(complete);
                assert_eq!(cancel, vec![1]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            p.on_block(1, a[0].piece, a[0].begin, a[0].len),
            BlockOutcome::Duplicate
        );
    }

    #[test]
    fn failed_piece_blames_and_is_refetched() {
        let l = layout(&[16384], 16384);
        let mut p = Picker::new(l, Bitfield::new(1), 3);
        let all = Bitfield::full(1);
        let mut a = Vec::new();
        p.pick(5, &all, 4, Instant::now(), &mut a);
        let _ = p.on_block(5, 0, 0, a[0].len);
        assert_eq!(p.senders(0), vec![Some(5)]);
        p.piece_checked(0, false);
        let mut again = Vec::new();
        p.pick(6, &all, 4, Instant::now(), &mut again);
        assert_eq!(again, a);
    }

    #[test]
    fn cancelled_requests_become_free() {
        let l = layout(&[65536], 16384);
        let mut p = Picker::new(l, Bitfield::new(4), 3);
        let all = Bitfield::full(4);
        let mut a = Vec::new();
        p.pick(1, &all, 2, Instant::now(), &mut a);
        for r in &a {
            p.cancel_request(1, *r);
        }
        let mut b = Vec::new();
        p.pick(2, &all, 2, Instant::now(), &mut b);
        a.sort();
        b.sort();
        assert_eq!(a, b);
        let untouched = (0..4)
            .find(|i| b.iter().all(|r| r.piece != *i))
            .unwrap_or(0);
        assert_eq!(
            p.on_block(3, untouched, 0, 16384),
            BlockOutcome::Unrequested
        );
    }
}
