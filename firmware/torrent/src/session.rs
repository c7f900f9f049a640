//! One torrent's swarm, as a state machine: peers, requests, choking.
//!
//! The driver calls, in this order per wake-up:
//! - inputs: [`Session::add_peer`], [`Session::handle_input`] (bytes read
//!   from a peer), [`Session::send_block`] (data it read for a
//!   [`Event::Read`]), [`Session::piece_checked`] (after hashing an
//!   [`Event::Block`] with `complete`), [`Session::remove_peer`];
//! - outputs: [`Session::poll_event`] until `None`, then
//!   [`Session::poll_transmit`] for every peer with bytes to send;
//! - timers: [`Session::handle_timeout`] at [`Session::next_timeout`].
//!
//! Nothing here reads a clock or touches a socket; `now` comes in from the
//! driver, which is what lets tests step whole swarms in memory.
//!
//! Invariants kept here:
//! - a peer's first message after the handshake may be a bitfield (or
//!   HaveAll/HaveNone); any other bitfield, a bitfield of the wrong length,
//!   a frame over [`Config::max_message`] or a request outside the torrent
//!   disconnects the peer with a reason;
//! - our outstanding requests to a peer are at most its queue target, and
//!   every one is either answered, rejected, cancelled or handed back to the
//!   picker when the peer chokes, times out or leaves;
//! - a peer that sent the only data of a piece that failed its hash check,
//!   or a block that differed from the verified one, is banned.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::bitfield::Bitfield;
use crate::hash::Sha256;
use crate::hashes::PieceTree;
use crate::layout::Layout;
use crate::metainfo::Metainfo;
use crate::picker::{BlockOutcome, BlockRef, PeerKey, Picker};
use crate::wire::{self, Handshake, Message, Reserved, WireError};

/// Session tunables.
#[derive(Debug, Clone)]
pub struct Config {
    /// Outstanding block requests to one peer, at most.
    pub max_requests: usize,
    /// Requests from one peer we queue before refusing more.
    pub max_peer_requests: usize,
    /// Largest frame accepted from a peer (bitfields of large torrents and
    /// extension messages are the big ones).
    pub max_message: u32,
    /// Unchoked peers at once.
    pub upload_slots: usize,
    /// Serve blocks to others at all.
    pub upload: bool,
    pub handshake_timeout: Duration,
    pub idle_timeout: Duration,
    pub keepalive: Duration,
    pub request_timeout: Duration,
    pub choke_interval: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_requests: 500,
            max_peer_requests: 500,
            max_message: 1 << 20,
            upload_slots: 8,
            upload: true,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            keepalive: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
            choke_interval: Duration::from_secs(10),
        }
    }
}

/// Who we are in this swarm.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The 20 bytes of the handshake: the v1 infohash, or the v2 infohash
    /// truncated (BEP 52).
    pub info_hash: [u8; 20],
    /// A hybrid's other handshake hash (the truncated v2 infohash): BEP 52
    /// lets a v2-capable peer answer a v1 handshake with it.
    pub alt_info_hash: Option<[u8; 20]>,
    pub peer_id: [u8; 20],
    /// Announce v2 support in the handshake.
    pub v2: bool,
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The handshake completed.
    Connected {
        peer: PeerKey,
        peer_id: [u8; 20],
        reserved: Reserved,
    },
    /// Store this block. When `complete`, the piece has all its blocks:
    /// hash it and call [`Session::piece_checked`].
    Block {
        peer: PeerKey,
        piece: u32,
        begin: u32,
        data: Vec<u8>,
        complete: bool,
    },
    /// Read this block from storage and pass it to [`Session::send_block`].
    Read { peer: PeerKey, block: BlockRef },
    /// A BEP 10 extension message for the driver (metadata, PEX, releases).
    Extended {
        peer: PeerKey,
        id: u8,
        payload: Vec<u8>,
    },
    /// Close the connection, then call [`Session::remove_peer`].
    Disconnect { peer: PeerKey, reason: String },
    /// Like Disconnect, and never connect to this peer again.
    Ban { peer: PeerKey, reason: String },
    /// A piece verified (for progress and resume records).
    Verified { piece: u32 },
    /// Every wanted piece is verified.
    Complete,
}

#[derive(Debug)]
struct Peer {
    outgoing: bool,
    /// A web seed: no wire, has everything, never chokes.
    virtual_peer: bool,
    handshaken: bool,
    sent_handshake: bool,
    messages: u64,
    reserved: Reserved,
    rx: Vec<u8>,
    tx: Vec<u8>,
    has: Bitfield,
    am_choking: bool,
    am_interested: bool,
    peer_choking: bool,
    peer_interested: bool,
    /// Our requests to them, oldest first.
    requests: VecDeque<(BlockRef, Instant)>,
    /// Our requests that timed out, newest last, at most
    /// [`Config::max_requests`] (12 bytes each, kept only for a peer that
    /// stalled): a stalled peer's late answer to one is not a block we
    /// never asked for, and earns no strike, even for a whole queue.
    timed_out: VecDeque<BlockRef>,
    /// Their requests to us, not yet read.
    incoming: VecDeque<BlockRef>,
    /// Reads handed to the driver and not yet answered.
    reads: Vec<BlockRef>,
    queue_target: usize,
    last_rx: Instant,
    last_tx: Instant,
    connected_at: Instant,
    /// Bytes of block data received / sent since the last choke round.
    down_round: u64,
    up_round: u64,
    downloaded: u64,
    uploaded: u64,
    strikes: u32,
    closing: bool,
}

/// A piece that failed its check: who sent which block, and the digest of
/// each block, to compare once a good copy arrives.
#[derive(Debug)]
struct Suspect {
    senders: Vec<Option<PeerKey>>,
    digests: Vec<[u8; 32]>,
}

/// Swarm statistics for status pages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub peers: usize,
    /// Block bytes received, duplicates included (what the link carried).
    pub downloaded: u64,
    /// Of `downloaded`, bytes from web seeds.
    pub from_web_seeds: u64,
    /// Of `downloaded`, bytes dropped: a block already received (endgame,
    /// a web seed's late answer) or never asked for.
    pub wasted: u64,
    pub uploaded: u64,
    pub hash_failures: u64,
}

pub struct Session {
    id: Identity,
    config: Config,
    picker: Picker,
    peers: HashMap<PeerKey, Peer>,
    events: VecDeque<Event>,
    ext_handshake: Option<Vec<u8>>,
    suspects: HashMap<u32, Suspect>,
    next_choke: Option<Instant>,
    optimistic: Option<PeerKey>,
    round: u64,
    stats: Stats,
    completed_reported: bool,
    /// The torrent whose piece layers answer BEP 52 hash requests (see
    /// [`Session::share_piece_layers`]). The layers only: a file's whole
    /// tree is twice to four times its layer, and is built when a peer
    /// asks.
    hash_meta: Option<Arc<Metainfo>>,
    /// The tree of the file asked about last: peers ask for one file's
    /// hashes in a row of requests.
    last_tree: Option<(Sha256, PieceTree)>,
}

impl Session {
    pub fn new(id: Identity, layout: Layout, have: Bitfield, config: Config, seed: u64) -> Session {
        let picker = Picker::new(layout, have, seed);
        Session {
            id,
            config,
            picker,
            peers: HashMap::new(),
            events: VecDeque::new(),
            ext_handshake: None,
            suspects: HashMap::new(),
            next_choke: None,
            optimistic: None,
            round: 0,
            stats: Stats::default(),
            completed_reported: false,
            hash_meta: None,
            last_tree: None,
        }
    }

    /// The torrent whose piece layers answer BEP 52 hash requests (the
    /// parser checked each layer against its root), shared rather than
    /// copied: 2.5 MB for a 2 GB release of 32 KiB pieces. Without it every
    /// hash request gets a hash reject. Costs the tree of one file at a
    /// time on top.
    pub fn share_piece_layers(&mut self, meta: Arc<Metainfo>) {
        self.hash_meta = Some(meta);
        self.last_tree = None;
    }

    pub fn picker(&self) -> &Picker {
        &self.picker
    }

    pub fn picker_mut(&mut self) -> &mut Picker {
        &mut self.picker
    }

    /// Sets the download priority of `pieces` (0 = not wanted, 1 = normal,
    /// higher = sooner: see [`Picker::set_priority`]). While running, call
    /// [`Session::priorities_changed`] after a batch of these.
    pub fn set_priority(&mut self, pieces: std::ops::Range<u32>, priority: u8) {
        for p in pieces {
            self.picker.set_priority(p, priority);
        }
    }

    /// After [`Session::set_priority`]: tells peers whether we are
    /// interested now and fills their request queues, so the change acts at
    /// once. One call per batch: each costs a picker re-sort.
    pub fn priorities_changed(&mut self, now: Instant) {
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for k in keys {
            self.update_interest(k);
            self.fill_requests(k, now);
        }
    }

    pub fn stats(&self) -> Stats {
        Stats {
            peers: self.peers.values().filter(|p| p.handshaken).count(),
            ..self.stats
        }
    }

    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// The BEP 10 handshake payload to send to peers that support it.
    pub fn set_ext_handshake(&mut self, payload: Vec<u8>) {
        self.ext_handshake = Some(payload);
    }

    /// A new connection. Outgoing connections send their handshake at once;
    /// incoming ones answer the peer's.
    pub fn add_peer(&mut self, key: PeerKey, outgoing: bool, now: Instant) {
        let n = self.picker.layout().piece_count;
        let mut peer = Peer {
            outgoing,
            virtual_peer: false,
            handshaken: false,
            sent_handshake: false,
            messages: 0,
            reserved: Reserved::default(),
            rx: Vec::new(),
            tx: Vec::new(),
            has: Bitfield::new(n),
            am_choking: true,
            am_interested: false,
            peer_choking: true,
            peer_interested: false,
            requests: VecDeque::new(),
            timed_out: VecDeque::new(),
            incoming: VecDeque::new(),
            reads: Vec::new(),
            queue_target: self.config.max_requests.min(64),
            last_rx: now,
            last_tx: now,
            connected_at: now,
            down_round: 0,
            up_round: 0,
            downloaded: 0,
            uploaded: 0,
            strikes: 0,
            closing: false,
        };
        if outgoing {
            self.send_handshake(&mut peer);
        }
        self.peers.insert(key, peer);
    }

    fn send_handshake(&self, peer: &mut Peer) {
        let hs = Handshake {
            reserved: Reserved {
                extension_protocol: true,
                fast: true,
                dht: false,
                v2: self.id.v2,
            },
            info_hash: self.id.info_hash,
            peer_id: self.id.peer_id,
        };
        peer.tx.extend_from_slice(&hs.encode());
        peer.sent_handshake = true;
    }

    /// The peer's connection is gone; hands its requests back.
    pub fn remove_peer(&mut self, key: PeerKey) {
        if let Some(peer) = self.peers.remove(&key) {
            for (r, _) in peer.requests {
                self.picker.cancel_request(key, r);
            }
            self.picker.peer_lost_all(&peer.has);
            if self.optimistic == Some(key) {
                self.optimistic = None;
            }
        }
    }

    /// A web seed (BEP 19) joins as a peer that has every piece and speaks
    /// no wire protocol: the driver asks it for pieces with
    /// [`Session::virtual_pick`] and hands back data with
    /// [`Session::virtual_block`]. Its blocks are checked like any peer's,
    /// and a web seed serving bad data is banned like any peer.
    pub fn add_virtual_peer(&mut self, key: PeerKey, now: Instant) {
        let n = self.picker.layout().piece_count;
        self.add_peer(key, false, now);
        if let Some(p) = self.peers.get_mut(&key) {
            p.virtual_peer = true;
            p.handshaken = true;
            p.peer_choking = false;
            p.am_interested = true;
            p.has = Bitfield::full(n);
            p.tx.clear();
            let has = p.has.clone();
            self.picker.peer_has_all(&has);
        }
    }

    /// Up to `max` blocks for a web seed to fetch, whole pieces at a time.
    pub fn virtual_pick(&mut self, key: PeerKey, max: usize, now: Instant) -> Vec<BlockRef> {
        let mut picks = Vec::new();
        let Some(peer) = self.peers.get_mut(&key) else {
            return picks;
        };
        if !peer.virtual_peer || peer.closing {
            return picks;
        }
        self.picker.pick(key, &peer.has, max, now, &mut picks);
        // Only the last piece can have been cut at `max`.
        if let Some(last) = picks.last().map(|b| b.piece) {
            self.picker.pick_rest(key, last, now, &mut picks);
        }
        for r in &picks {
            peer.requests.push_back((*r, now));
        }
        picks
    }

    /// Data a web seed returned for a block from [`Session::virtual_pick`].
    pub fn virtual_block(&mut self, key: PeerKey, block: BlockRef, data: &[u8], now: Instant) {
        if let Err(reason) = self.on_piece(key, block.piece, block.begin, data, now) {
            self.drop_peer(key, reason, false);
        }
        if let Some(p) = self.peers.get_mut(&key) {
            p.tx.clear();
        }
    }

    /// A web seed could not fetch these blocks: hand them back.
    pub fn virtual_failed(&mut self, key: PeerKey, blocks: &[BlockRef]) {
        if let Some(p) = self.peers.get_mut(&key) {
            p.requests.retain(|(r, _)| !blocks.contains(r));
        }
        for b in blocks {
            self.picker.cancel_request(key, *b);
        }
    }

    /// Bytes to send to `key`, appended to `out`.
    pub fn poll_transmit(&mut self, key: PeerKey, out: &mut Vec<u8>, now: Instant) {
        if let Some(p) = self.peers.get_mut(&key)
            && !p.tx.is_empty()
        {
            if p.virtual_peer {
                p.tx.clear();
            } else {
                out.append(&mut p.tx);
            }
            p.last_tx = now;
        }
        self.issue_reads(key);
    }

    /// Whether any bytes are waiting for `key`.
    pub fn wants_transmit(&self, key: PeerKey) -> bool {
        self.peers.get(&key).is_some_and(|p| !p.tx.is_empty())
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn drop_peer(&mut self, key: PeerKey, reason: String, ban: bool) {
        if let Some(p) = self.peers.get_mut(&key) {
            if p.closing {
                return;
            }
            p.closing = true;
            p.tx.clear();
        }
        self.events.push_back(if ban {
            Event::Ban { peer: key, reason }
        } else {
            Event::Disconnect { peer: key, reason }
        });
    }

    /// Bytes received from `key`.
    pub fn handle_input(&mut self, key: PeerKey, data: &[u8], now: Instant) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        if peer.closing {
            return;
        }
        peer.last_rx = now;
        peer.rx.extend_from_slice(data);
        let mut rx = std::mem::take(&mut peer.rx);
        let mut used = 0;
        let result = self.process(key, &rx, &mut used, now);
        rx.drain(..used);
        if let Some(peer) = self.peers.get_mut(&key) {
            peer.rx = rx;
        }
        if let Err(reason) = result {
            self.drop_peer(key, reason, false);
        }
        self.fill_requests(key, now);
        self.issue_reads(key);
    }

    fn process(
        &mut self,
        key: PeerKey,
        rx: &[u8],
        used: &mut usize,
        now: Instant,
    ) -> Result<(), String> {
        loop {
            let Some(peer) = self.peers.get_mut(&key) else {
                return Ok(());
            };
            if peer.closing {
                return Ok(());
            }
            if !peer.handshaken {
                let Some(hs) = Handshake::decode(&rx[*used..]).map_err(|e| e.to_string())? else {
                    return Ok(());
                };
                *used += wire::HANDSHAKE_LEN;
                self.on_handshake(key, hs, now)?;
                continue;
            }
            let max = self.config.max_message;
            let Some((msg, n)) = wire::decode(&rx[*used..], max).map_err(|e| match e {
                WireError::TooLong { len, limit } => {
                    format!("sent a message of {len} bytes (limit {limit})")
                }
                other => other.to_string(),
            })?
            else {
                return Ok(());
            };
            *used += n;
            self.on_message(key, msg, now)?;
        }
    }

    fn on_handshake(&mut self, key: PeerKey, hs: Handshake, _now: Instant) -> Result<(), String> {
        if hs.info_hash != self.id.info_hash && Some(hs.info_hash) != self.id.alt_info_hash {
            return Err("handshake for another torrent".into());
        }
        if hs.peer_id == self.id.peer_id {
            return Err("connected to ourselves".into());
        }
        let have = self.picker.have().clone();
        let ext = self.ext_handshake.clone();
        let Some(mut peer) = self.peers.remove(&key) else {
            return Ok(());
        };
        if !peer.sent_handshake {
            self.send_handshake(&mut peer);
        }
        peer.handshaken = true;
        peer.reserved = hs.reserved;
        if hs.reserved.fast && have.is_full() {
            send(&mut peer.tx, &Message::HaveAll);
        } else if hs.reserved.fast && have.count() == 0 {
            send(&mut peer.tx, &Message::HaveNone);
        } else if have.count() > 0 {
            send(&mut peer.tx, &Message::Bitfield(have.as_bytes()));
        }
        if hs.reserved.extension_protocol
            && let Some(payload) = ext
        {
            send(
                &mut peer.tx,
                &Message::Extended {
                    id: 0,
                    payload: &payload,
                },
            );
        }
        self.peers.insert(key, peer);
        self.events.push_back(Event::Connected {
            peer: key,
            peer_id: hs.peer_id,
            reserved: hs.reserved,
        });
        Ok(())
    }

    fn on_message(&mut self, key: PeerKey, msg: Message<'_>, now: Instant) -> Result<(), String> {
        let n = self.picker.layout().piece_count;
        let Some(peer) = self.peers.get_mut(&key) else {
            return Ok(());
        };
        peer.messages += 1;
        let fast = peer.reserved.fast;
        match msg {
            Message::KeepAlive
            | Message::Port(_)
            | Message::Suggest(_)
            | Message::AllowedFast(_) => {}
            Message::Unknown { .. } => {}
            Message::Choke => {
                peer.peer_choking = true;
                if !fast {
                    let reqs: Vec<BlockRef> = peer.requests.drain(..).map(|(r, _)| r).collect();
                    for r in reqs {
                        self.picker.cancel_request(key, r);
                    }
                }
            }
            Message::Unchoke => peer.peer_choking = false,
            Message::Interested => {
                peer.peer_interested = true;
                self.maybe_unchoke(key);
            }
            Message::NotInterested => peer.peer_interested = false,
            Message::Have(i) => {
                if i >= n {
                    return Err(format!("sent HAVE for piece {i} of {n}"));
                }
                if peer.has.set(i) {
                    self.picker.add_have(i);
                }
                self.update_interest(key);
            }
            Message::Bitfield(bytes) => {
                // BEP 3 wants it first, but aria2 sends HaveNone and then a
                // bitfield: accept a late one as a replacement of what we
                // knew, as libtorrent does.
                let bf = Bitfield::from_wire(bytes, n).ok_or_else(|| {
                    format!(
                        "sent a bitfield of {} bytes for {n} pieces (or with spare bits set)",
                        bytes.len()
                    )
                })?;
                let old = std::mem::replace(&mut peer.has, bf);
                let has = peer.has.clone();
                self.picker.peer_lost_all(&old);
                self.picker.peer_has_all(&has);
                self.update_interest(key);
            }
            Message::HaveAll | Message::HaveNone => {
                if !fast {
                    return Err("sent HaveAll/HaveNone without the fast extension".into());
                }
                let new = if matches!(msg, Message::HaveAll) {
                    Bitfield::full(n)
                } else {
                    Bitfield::new(n)
                };
                let old = std::mem::replace(&mut peer.has, new);
                let has = peer.has.clone();
                self.picker.peer_lost_all(&old);
                self.picker.peer_has_all(&has);
                self.update_interest(key);
            }
            Message::Request {
                index,
                begin,
                length,
            } => {
                let block = BlockRef {
                    piece: index,
                    begin,
                    len: length,
                };
                if !self.picker.layout().valid_request(index, begin, length) {
                    return Err(format!("requested a block outside the torrent: {block:?}"));
                }
                let have = self.picker.have().get(index);
                let Some(peer) = self.peers.get_mut(&key) else {
                    return Ok(());
                };
                if peer.am_choking || !have || !self.config.upload {
                    if fast {
                        send(
                            &mut peer.tx,
                            &Message::Reject {
                                index,
                                begin,
                                length,
                            },
                        );
                    }
                } else if peer.incoming.len() + peer.reads.len() >= self.config.max_peer_requests {
                    if fast {
                        send(
                            &mut peer.tx,
                            &Message::Reject {
                                index,
                                begin,
                                length,
                            },
                        );
                    } else {
                        return Err("flooded us with requests".into());
                    }
                } else {
                    peer.incoming.push_back(block);
                }
            }
            Message::Cancel {
                index,
                begin,
                length,
            } => {
                let block = BlockRef {
                    piece: index,
                    begin,
                    len: length,
                };
                peer.incoming.retain(|r| *r != block);
            }
            Message::Reject {
                index,
                begin,
                length,
            } => {
                let block = BlockRef {
                    piece: index,
                    begin,
                    len: length,
                };
                if let Some(pos) = peer.requests.iter().position(|(r, _)| *r == block) {
                    peer.requests.remove(pos);
                    self.picker.cancel_request(key, block);
                }
            }
            Message::Piece { index, begin, data } => {
                self.on_piece(key, index, begin, data, now)?;
            }
            Message::Extended { id, payload } => {
                self.events.push_back(Event::Extended {
                    peer: key,
                    id,
                    payload: payload.to_vec(),
                });
            }
            Message::HashRequest(r) => {
                // Answers are up to ~17 KiB for a 48-byte request: serve only
                // while the peer reads what we send, reject otherwise.
                let answer = if peer.tx.len() < self.config.max_message as usize {
                    let cached = self
                        .last_tree
                        .as_ref()
                        .is_some_and(|(root, _)| *root == r.pieces_root);
                    if !cached {
                        self.last_tree = self.hash_meta.as_ref().and_then(|m| {
                            let layer = m.piece_layers.get(&r.pieces_root)?;
                            Some((r.pieces_root, PieceTree::new(layer, m.info.piece_length)?))
                        });
                    }
                    self.last_tree
                        .as_ref()
                        .filter(|(root, _)| *root == r.pieces_root)
                        .and_then(|(_, tree)| tree.serve(&r))
                } else {
                    None
                };
                match answer {
                    Some(hashes) => {
                        let bytes = hashes.concat();
                        send(
                            &mut peer.tx,
                            &Message::Hashes {
                                req: r,
                                hashes: &bytes,
                            },
                        );
                    }
                    None => send(&mut peer.tx, &Message::HashReject(r)),
                }
            }
            Message::Hashes { .. } | Message::HashReject(_) => {}
        }
        Ok(())
    }

    fn on_piece(
        &mut self,
        key: PeerKey,
        index: u32,
        begin: u32,
        data: &[u8],
        now: Instant,
    ) -> Result<(), String> {
        let len = u32::try_from(data.len()).map_err(|_| "block too long".to_owned())?;
        let block = BlockRef {
            piece: index,
            begin,
            len,
        };
        let Some(peer) = self.peers.get_mut(&key) else {
            return Ok(());
        };
        let asked = peer.requests.iter().position(|(r, _)| *r == block);
        if let Some(pos) = asked {
            // Requests are answered roughly in order; grow the pipeline
            // while the peer keeps up.
            let (_, sent) = peer.requests.remove(pos).unwrap_or((block, now));
            let rtt = now.saturating_duration_since(sent);
            if rtt < Duration::from_millis(500) {
                peer.queue_target = (peer.queue_target + 1).min(self.config.max_requests);
            }
        }
        peer.down_round += u64::from(len);
        peer.downloaded += u64::from(len);
        self.stats.downloaded += u64::from(len);
        if peer.virtual_peer {
            self.stats.from_web_seeds += u64::from(len);
        }
        let outcome = self.picker.on_block(key, index, begin, len);
        if !matches!(outcome, BlockOutcome::New { .. }) {
            self.stats.wasted += u64::from(len);
        }
        match outcome {
            BlockOutcome::New { complete, cancel } => {
                for other in cancel {
                    if let Some(op) = self.peers.get_mut(&other)
                        && let Some(pos) = op.requests.iter().position(|(r, _)| *r == block)
                    {
                        op.requests.remove(pos);
                        send(
                            &mut op.tx,
                            &Message::Cancel {
                                index,
                                begin,
                                length: len,
                            },
                        );
                    }
                }
                self.events.push_back(Event::Block {
                    peer: key,
                    piece: index,
                    begin,
                    data: data.to_vec(),
                    complete,
                });
            }
            BlockOutcome::Duplicate => {}
            BlockOutcome::Unrequested => {
                if asked.is_none() {
                    let Some(peer) = self.peers.get_mut(&key) else {
                        return Ok(());
                    };
                    // A late answer to a request that timed out (30 s): a
                    // slow peer, or a web seed during a slow batch.
                    if let Some(pos) = peer.timed_out.iter().position(|r| *r == block) {
                        peer.timed_out.remove(pos);
                        return Ok(());
                    }
                    peer.strikes += 1;
                    if peer.strikes > 64 {
                        return Err("sent too many blocks we did not ask for".into());
                    }
                }
            }
        }
        Ok(())
    }

    /// Who sent each block of `piece` (block order). The driver calls this
    /// before [`Session::piece_checked`] only to know whether per-block
    /// digests are needed: see that method.
    pub fn needs_digests(&self, piece: u32, ok: bool) -> bool {
        !ok || self.suspects.contains_key(&piece)
    }

    /// The result of hashing a complete piece. `digests` holds one SHA-256
    /// per block of the data that was checked, and is required (non-empty)
    /// when [`Session::needs_digests`] says so: it is how a peer that sent
    /// one bad block among good ones from others is found.
    pub fn piece_checked(&mut self, piece: u32, ok: bool, digests: &[[u8; 32]], now: Instant) {
        let senders = self.picker.senders(piece);
        self.picker.piece_checked(piece, ok);
        if ok {
            if let Some(s) = self.suspects.remove(&piece) {
                let culprits: Vec<PeerKey> = s
                    .senders
                    .iter()
                    .zip(&s.digests)
                    .zip(digests)
                    .filter(|((_, bad), good)| bad != good)
                    .filter_map(|((from, _), _)| *from)
                    .collect();
                for c in culprits {
                    self.drop_peer(c, format!("sent corrupt data for piece {piece}"), true);
                }
            }
            self.events.push_back(Event::Verified { piece });
            let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
            for k in keys {
                if let Some(p) = self.peers.get_mut(&k)
                    && p.handshaken
                {
                    send(&mut p.tx, &Message::Have(piece));
                }
                self.update_interest(k);
            }
            if self.picker.is_complete() && !self.completed_reported {
                self.completed_reported = true;
                self.events.push_back(Event::Complete);
            }
        } else {
            self.stats.hash_failures += 1;
            let mut unique: Vec<PeerKey> = senders.iter().flatten().copied().collect();
            unique.sort_unstable();
            unique.dedup();
            if let [only] = unique[..] {
                self.drop_peer(only, format!("sent corrupt data for piece {piece}"), true);
            } else {
                for k in &unique {
                    if let Some(p) = self.peers.get_mut(k) {
                        p.strikes += 8;
                        if p.strikes > 64 {
                            self.drop_peer(*k, "sent corrupt data repeatedly".into(), true);
                        }
                    }
                }
                self.suspects.insert(
                    piece,
                    Suspect {
                        senders,
                        digests: digests.to_vec(),
                    },
                );
            }
        }
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for k in keys {
            self.fill_requests(k, now);
        }
    }

    /// Data read for an [`Event::Read`]; `None` if the read failed.
    pub fn send_block(&mut self, key: PeerKey, block: BlockRef, data: Option<&[u8]>) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        let Some(pos) = peer.reads.iter().position(|r| *r == block) else {
            return;
        };
        peer.reads.swap_remove(pos);
        match data {
            Some(d) if !peer.am_choking => {
                send(
                    &mut peer.tx,
                    &Message::Piece {
                        index: block.piece,
                        begin: block.begin,
                        data: d,
                    },
                );
                peer.up_round += d.len() as u64;
                peer.uploaded += d.len() as u64;
                self.stats.uploaded += d.len() as u64;
            }
            _ if peer.reserved.fast => send(
                &mut peer.tx,
                &Message::Reject {
                    index: block.piece,
                    begin: block.begin,
                    length: block.len,
                },
            ),
            _ => {}
        }
        self.issue_reads(key);
    }

    /// Hands queued requests to the driver while the send buffer is small,
    /// so a fast reader cannot make us buffer without bound.
    fn issue_reads(&mut self, key: PeerKey) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        while peer.reads.len() < 8 && peer.tx.len() < 256 * 1024 {
            let Some(block) = peer.incoming.pop_front() else {
                break;
            };
            peer.reads.push(block);
            self.events.push_back(Event::Read { peer: key, block });
        }
    }

    fn update_interest(&mut self, key: PeerKey) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        let want = self.picker.interesting(&peer.has);
        if want != peer.am_interested && peer.handshaken {
            peer.am_interested = want;
            send(
                &mut peer.tx,
                if want {
                    &Message::Interested
                } else {
                    &Message::NotInterested
                },
            );
        }
    }

    fn maybe_unchoke(&mut self, key: PeerKey) {
        let unchoked = self.peers.values().filter(|p| !p.am_choking).count();
        if unchoked < self.config.upload_slots
            && self.config.upload
            && let Some(peer) = self.peers.get_mut(&key)
            && peer.am_choking
        {
            peer.am_choking = false;
            send(&mut peer.tx, &Message::Unchoke);
        }
    }

    fn fill_requests(&mut self, key: PeerKey, now: Instant) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        if peer.peer_choking || !peer.am_interested || peer.closing || peer.virtual_peer {
            return;
        }
        let target = peer.queue_target;
        if peer.requests.len() >= target {
            return;
        }
        let mut picks = Vec::new();
        self.picker.pick(
            key,
            &peer.has,
            target - peer.requests.len(),
            now,
            &mut picks,
        );
        for r in picks {
            send(
                &mut peer.tx,
                &Message::Request {
                    index: r.piece,
                    begin: r.begin,
                    length: r.len,
                },
            );
            peer.requests.push_back((r, now));
        }
    }

    /// When [`Session::handle_timeout`] next has work.
    pub fn next_timeout(&self, now: Instant) -> Instant {
        let mut t = now + Duration::from_secs(1);
        if let Some(c) = self.next_choke {
            t = t.min(c);
        }
        t
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for k in &keys {
            let Some(p) = self.peers.get_mut(k) else {
                continue;
            };
            if p.closing {
                continue;
            }
            if !p.handshaken
                && now.saturating_duration_since(p.connected_at) > self.config.handshake_timeout
            {
                self.drop_peer(*k, "handshake timed out".into(), false);
                continue;
            }
            // A web seed has no connection to go quiet, and nothing it
            // sends refreshes `last_rx`: dropped as idle 120 s after it was
            // added, a download with no peer stalled for good.
            if !p.virtual_peer
                && now.saturating_duration_since(p.last_rx) > self.config.idle_timeout
            {
                self.drop_peer(*k, "idle".into(), false);
                continue;
            }
            if p.handshaken && now.saturating_duration_since(p.last_tx) > self.config.keepalive {
                send(&mut p.tx, &Message::KeepAlive);
            }
            // Requests that went unanswered too long go back to the picker;
            // a late answer is still accepted.
            let timeout = self.config.request_timeout;
            let mut expired = Vec::new();
            while let Some((r, at)) = p.requests.front() {
                if now.saturating_duration_since(*at) <= timeout {
                    break;
                }
                expired.push(*r);
                p.requests.pop_front();
            }
            for r in &expired {
                if p.timed_out.len() >= self.config.max_requests {
                    p.timed_out.pop_front();
                }
                p.timed_out.push_back(*r);
            }
            if !expired.is_empty() {
                p.queue_target = (p.queue_target / 2).max(2);
            }
            for r in expired {
                self.picker.cancel_request(*k, r);
            }
        }
        if self.next_choke.is_none_or(|t| now >= t) {
            self.choke_round(now);
            self.next_choke = Some(now + self.config.choke_interval);
        }
        for k in keys {
            self.fill_requests(k, now);
        }
    }

    /// Tit-for-tat: unchoke the peers that gave us most (or, as a seed, that
    /// took most), plus one optimistic slot rotated every third round.
    fn choke_round(&mut self, _now: Instant) {
        self.round += 1;
        let seeding = self.picker.is_complete();
        let mut ranked: Vec<(u64, PeerKey)> = self
            .peers
            .iter()
            .filter(|(_, p)| p.handshaken && p.peer_interested && !p.closing)
            .map(|(k, p)| (if seeding { p.up_round } else { p.down_round }, *k))
            .collect();
        ranked.sort_unstable_by(|a, b| b.cmp(a));
        let slots = if self.config.upload {
            self.config.upload_slots
        } else {
            0
        };
        let regular = slots.saturating_sub(1);
        let mut unchoke: Vec<PeerKey> = ranked.iter().take(regular).map(|(_, k)| *k).collect();
        if self.round % 3 == 1 || self.optimistic.is_none_or(|o| !self.peers.contains_key(&o)) {
            let candidates: Vec<PeerKey> = ranked
                .iter()
                .map(|(_, k)| *k)
                .filter(|k| !unchoke.contains(k))
                .collect();
            self.optimistic = if candidates.is_empty() {
                None
            } else {
                Some(candidates[(self.round as usize) % candidates.len()])
            };
        }
        if let Some(o) = self.optimistic
            && slots > 0
        {
            unchoke.push(o);
        }
        for (k, p) in self.peers.iter_mut() {
            p.down_round = 0;
            p.up_round = 0;
            if !p.handshaken || p.closing {
                continue;
            }
            let should = unchoke.contains(k);
            if should && p.am_choking {
                p.am_choking = false;
                send(&mut p.tx, &Message::Unchoke);
            } else if !should && !p.am_choking && p.peer_interested {
                p.am_choking = true;
                send(&mut p.tx, &Message::Choke);
                p.incoming.clear();
            }
        }
    }

    /// Sends a BEP 10 extension message.
    pub fn send_extended(&mut self, key: PeerKey, id: u8, payload: &[u8]) {
        if let Some(p) = self.peers.get_mut(&key) {
            send(&mut p.tx, &Message::Extended { id, payload });
        }
    }

    /// Peers' outgoing flag, for the driver's bookkeeping.
    pub fn is_outgoing(&self, key: PeerKey) -> Option<bool> {
        self.peers.get(&key).map(|p| p.outgoing)
    }
}

fn send(tx: &mut Vec<u8>, msg: &Message<'_>) {
    wire::encode(msg, tx);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::create::{InputFile, MemSource, Options, Plan, create};
    use crate::hash::{sha1, sha256};
    use crate::metainfo::{Metainfo, Version};
    use std::collections::BTreeMap;

    struct Node {
        s: Session,
        /// Piece data as it arrives (piece -> bytes).
        pieces: BTreeMap<u32, Vec<u8>>,
        complete: bool,
        banned: Vec<PeerKey>,
        /// Corrupt every block this node serves.
        evil: bool,
    }

    fn torrent() -> (Metainfo, MemSource) {
        torrent_of(&[200_000, 7, 65_536, 0])
    }

    fn torrent_of(sizes: &[usize]) -> (Metainfo, MemSource) {
        let mut mem = BTreeMap::new();
        let mut files = Vec::new();
        for (i, len) in sizes.iter().enumerate() {
            let p = vec![format!("f{i}")];
            mem.insert(p.clone(), (0..*len).map(|j| (j * 13 + i) as u8).collect());
            files.push(InputFile {
                path: p,
                length: *len as u64,
                executable: false,
                symlink_target: None,
            });
        }
        let src = MemSource(mem);
        let opts = Options {
            version: Version::Hybrid,
            piece_length: Some(32768),
            ..Options::default()
        };
        let plan = Plan::new("t", false, files, &opts).expect("plan");
        let (_, meta) = create(&plan, &opts, &src, 1, &|_| {}).expect("create");
        (meta, src)
    }

    fn piece_bytes(meta: &Metainfo, src: &MemSource, layout: &Layout, piece: u32) -> Vec<u8> {
        let mut out = vec![0u8; layout.piece_size(piece) as usize];
        for sp in layout.spans(piece, 0, layout.piece_size(piece)) {
            let f = &meta.info.files[sp.file];
            let data = &src.0[&f.path.to_vec()];
            let a = sp.file_offset as usize;
            out[sp.piece_offset as usize..(sp.piece_offset + sp.len) as usize]
                .copy_from_slice(&data[a..a + sp.len as usize]);
        }
        out
    }

    /// The handshake of a plain peer 9 (no extensions) for `meta`.
    fn handshake_of_9(meta: &Metainfo) -> Vec<u8> {
        let hs = Handshake {
            reserved: Reserved::default(),
            info_hash: meta.info.v1_infohash.unwrap_or_default(),
            peer_id: [9; 20],
        };
        hs.encode().to_vec()
    }

    fn node(meta: &Metainfo, seed: bool, n: u8) -> Node {
        node_with(meta, seed, n, Config::default())
    }

    fn node_with(meta: &Metainfo, seed: bool, n: u8, config: Config) -> Node {
        let layout = Layout::new(&meta.info);
        let count = layout.piece_count;
        let id = Identity {
            info_hash: meta.info.v1_infohash.unwrap_or_default(),
            alt_info_hash: None,
            peer_id: [n; 20],
            v2: true,
        };
        let have = if seed {
            Bitfield::full(count)
        } else {
            Bitfield::new(count)
        };
        Node {
            s: Session::new(id, layout, have, config, u64::from(n)),
            pieces: BTreeMap::new(),
            complete: seed,
            banned: Vec::new(),
            evil: false,
        }
    }

    /// Steps a full mesh of nodes until every leecher completes or `steps`
    /// run out. Peer keys: node j is known to node i as key j.
    #[allow(clippy::needless_range_loop)]
    fn run(nodes: &mut [Node], meta: &Metainfo, src: &MemSource, steps: usize) {
        let layout = Layout::new(&meta.info);
        let now = Instant::now();
        for i in 0..nodes.len() {
            for j in 0..nodes.len() {
                if i != j {
                    nodes[i].s.add_peer(j as PeerKey, i < j, now);
                }
            }
        }
        for step in 0..steps {
            let t = now + Duration::from_millis(step as u64 * 10);
            for i in 0..nodes.len() {
                nodes[i].s.handle_timeout(t);
                while let Some(ev) = nodes[i].s.poll_event() {
                    match ev {
                        Event::Read { peer, block } => {
                            let mut p = piece_bytes(meta, src, &layout, block.piece);
                            if nodes[i].evil {
                                p.iter_mut().for_each(|b| *b ^= 0x55);
                            }
                            let d = &p[block.begin as usize..(block.begin + block.len) as usize];
                            nodes[i].s.send_block(peer, block, Some(d));
                        }
                        Event::Block {
                            piece,
                            begin,
                            data,
                            complete,
                            ..
                        } => {
                            let size = layout.piece_size(piece) as usize;
                            let buf = nodes[i]
                                .pieces
                                .entry(piece)
                                .or_insert_with(|| vec![0; size]);
                            buf[begin as usize..begin as usize + data.len()].copy_from_slice(&data);
                            if complete {
                                let ok = sha1(buf) == meta.info.pieces[piece as usize];
                                let digests: Vec<[u8; 32]> =
                                    buf.chunks(16384).map(sha256).collect();
                                nodes[i].s.piece_checked(piece, ok, &digests, t);
                                if !ok {
                                    nodes[i].pieces.remove(&piece);
                                }
                            }
                        }
                        Event::Complete => nodes[i].complete = true,
                        Event::Ban { peer, .. } => {
                            nodes[i].banned.push(peer);
                            nodes[i].s.remove_peer(peer);
                        }
                        Event::Disconnect { peer, reason } => {
                            panic!("{i} dropped {peer}: {reason}")
                        }
                        _ => {}
                    }
                }
            }
            for i in 0..nodes.len() {
                for j in 0..nodes.len() {
                    if i == j
                        || nodes[j].banned.contains(&(i as PeerKey))
                        || nodes[i].banned.contains(&(j as PeerKey))
                    {
                        continue;
                    }
                    let mut out = Vec::new();
                    nodes[i].s.poll_transmit(j as PeerKey, &mut out, t);
                    if !out.is_empty() {
                        nodes[j].s.handle_input(i as PeerKey, &out, t);
                    }
                }
            }
            if nodes.iter().all(|n| n.complete || n.evil) {
                return;
            }
        }
    }

    #[test]
    fn one_seed_three_leechers_complete_with_correct_data() {
        let (meta, src) = torrent();
        let mut nodes: Vec<Node> = (0..4).map(|i| node(&meta, i == 0, i as u8 + 1)).collect();
        run(&mut nodes, &meta, &src, 2000);
        let layout = Layout::new(&meta.info);
        for (i, n) in nodes.iter().enumerate().skip(1) {
            assert!(n.complete, "leecher {i} did not finish");
            for (p, data) in &n.pieces {
                assert_eq!(
                    *data,
                    piece_bytes(&meta, &src, &layout, *p),
                    "leecher {i} piece {p}"
                );
            }
        }
    }

    #[test]
    fn a_peer_serving_corrupt_blocks_is_banned_and_the_download_completes() {
        let (meta, src) = torrent();
        // A short request queue makes the leecher take blocks of one piece
        // from both seeds, so bad blocks must be told from good ones.
        let small = Config {
            max_requests: 2,
            ..Config::default()
        };
        let mut nodes: Vec<Node> = (0..3)
            .map(|i| node_with(&meta, i != 2, i as u8 + 1, small.clone()))
            .collect();
        nodes[1].evil = true;
        run(&mut nodes, &meta, &src, 4000);
        assert!(nodes[2].complete, "leecher did not finish");
        assert!(
            nodes[2].banned.contains(&1),
            "evil peer not banned: {:?}",
            nodes[2].banned
        );
        assert!(!nodes[2].banned.contains(&0), "honest seed banned");
    }

    #[test]
    fn a_web_seed_is_not_dropped_as_idle() {
        // Its requests time out while it fetches (30 s), it answers late,
        // and it never receives anything that would refresh `last_rx`: it
        // was dropped as idle after 120 s, or for the late answers after 64
        // of them, and the download had no source left.
        let (meta, src) = torrent();
        let layout = Layout::new(&meta.info);
        let mut n = node(&meta, false, 1);
        let mut t = Instant::now();
        let ws: PeerKey = 1 << 48;
        n.s.add_virtual_peer(ws, t);
        for round in 0..8 {
            let picks = n.s.virtual_pick(ws, 64, t);
            assert!(!picks.is_empty(), "round {round}: no work for the web seed");
            t += Duration::from_secs(31);
            n.s.handle_timeout(t);
            for b in &picks {
                let data = piece_bytes(&meta, &src, &layout, b.piece);
                let block = &data[b.begin as usize..(b.begin + b.len) as usize];
                n.s.virtual_block(ws, *b, block, t);
            }
            while let Some(ev) = n.s.poll_event() {
                if let Event::Disconnect { peer, reason } = &ev {
                    assert_ne!(*peer, ws, "round {round}: web seed dropped: {reason}");
                }
            }
        }
    }

    #[test]
    fn a_web_seed_is_given_whole_pieces() {
        // It fetches a piece whole; a piece split between two batches was
        // fetched from the server twice.
        let (meta, _) = torrent();
        let layout = Layout::new(&meta.info);
        let mut n = node(&meta, false, 1);
        let t = Instant::now();
        let ws: PeerKey = 1 << 48;
        n.s.add_virtual_peer(ws, t);
        for max in [3, 1, 5, 64] {
            let mut batch = std::collections::BTreeMap::new();
            for b in n.s.virtual_pick(ws, max, t) {
                *batch.entry(b.piece).or_insert(0) += 1;
            }
            assert!(!batch.is_empty(), "max {max}: nothing picked");
            for (piece, blocks) in batch {
                assert_eq!(blocks, layout.blocks(piece), "max {max}: piece {piece}");
            }
        }
    }

    #[test]
    fn a_slow_peer_answering_timed_out_requests_is_not_struck_off() {
        // A seed on a slow link: every request times out (30 s) and is
        // answered a little later, by when the picker has handed some of
        // the blocks out again or not at all. Those answers are late, not
        // unasked; counted as unasked, 64 of them dropped the peer.
        let (meta, src) = torrent_of(&[4 << 20]);
        let layout = Layout::new(&meta.info);
        let mut n = node(&meta, false, 1);
        let mut t = Instant::now();
        n.s.add_peer(9, false, t);
        let mut bytes = handshake_of_9(&meta);
        let full = Bitfield::full(layout.piece_count);
        wire::encode(&Message::Bitfield(full.as_bytes()), &mut bytes);
        wire::encode(&Message::Unchoke, &mut bytes);
        n.s.handle_input(9, &bytes, t);
        n.s.handle_timeout(t);
        let mut late = 0;
        for round in 0..12 {
            let asked: Vec<BlockRef> = n.s.peers[&9].requests.iter().map(|(r, _)| *r).collect();
            t += Duration::from_secs(31);
            n.s.handle_timeout(t);
            let mut bytes = Vec::new();
            for b in &asked {
                let data = piece_bytes(&meta, &src, &layout, b.piece);
                let data = &data[b.begin as usize..(b.begin + b.len) as usize];
                wire::encode(
                    &Message::Piece {
                        index: b.piece,
                        begin: b.begin,
                        data,
                    },
                    &mut bytes,
                );
                late += usize::from(!n.s.peers[&9].requests.iter().any(|(r, _)| r == b));
            }
            n.s.handle_input(9, &bytes, t);
            while let Some(ev) = n.s.poll_event() {
                if let Event::Disconnect { reason, .. } = &ev {
                    panic!("round {round}: slow peer dropped: {reason}");
                }
            }
            if n.s.peers[&9].requests.is_empty() {
                break;
            }
        }
        assert!(
            late > 64,
            "only {late} late answers: the test proves nothing"
        );
    }

    #[test]
    fn a_bitfield_of_the_wrong_length_disconnects() {
        let (meta, _) = torrent();
        let mut n = node(&meta, false, 1);
        let now = Instant::now();
        n.s.add_peer(9, false, now);
        let mut bytes = handshake_of_9(&meta);
        wire::encode(&Message::Bitfield(&[0xff; 40]), &mut bytes);
        n.s.handle_input(9, &bytes, now);
        let mut saw = None;
        while let Some(e) = n.s.poll_event() {
            if let Event::Disconnect { reason, .. } = e {
                saw = Some(reason);
            }
        }
        assert!(saw.is_some_and(|r| r.contains("bitfield")));
    }

    #[test]
    fn an_oversized_message_disconnects() {
        let (meta, _) = torrent();
        let mut n = node(&meta, true, 1);
        let now = Instant::now();
        n.s.add_peer(9, false, now);
        let mut bytes = handshake_of_9(&meta);
        bytes.extend_from_slice(&[0x7f, 0xff, 0xff, 0xff, 7]);
        n.s.handle_input(9, &bytes, now);
        let mut saw = None;
        while let Some(e) = n.s.poll_event() {
            if let Event::Disconnect { reason, .. } = e {
                saw = Some(reason);
            }
        }
        assert!(saw.is_some_and(|r| r.contains("limit")));
    }

    /// What `n` sends to peer 9 for `msgs` after a handshake: the hash
    /// messages only.
    fn hash_answers(n: &mut Node, meta: &Metainfo, msgs: &[Message<'_>]) -> Vec<Vec<u8>> {
        let now = Instant::now();
        n.s.add_peer(9, false, now);
        let mut bytes = handshake_of_9(meta);
        for m in msgs {
            wire::encode(m, &mut bytes);
        }
        n.s.handle_input(9, &bytes, now);
        while n.s.poll_event().is_some() {}
        let mut out = Vec::new();
        n.s.poll_transmit(9, &mut out, now);
        let mut rest = &out[wire::HANDSHAKE_LEN..];
        let mut answers = Vec::new();
        while let Some((m, used)) = wire::decode(rest, 1 << 20).expect("valid") {
            if matches!(m, Message::Hashes { .. } | Message::HashReject(_)) {
                answers.push(rest[..used].to_vec());
            }
            rest = &rest[used..];
        }
        answers
    }

    #[test]
    fn hash_requests_are_answered_from_piece_layers() {
        let (meta, _) = torrent();
        let file = meta
            .info
            .real_files()
            .find(|f| f.length > meta.info.piece_length)
            .expect("a multi-piece file")
            .clone();
        let root = file.pieces_root.expect("v2");
        let reqs = crate::hashes::piece_layer_requests(root, file.length, meta.info.piece_length);
        let unknown = wire::HashRequest {
            pieces_root: [3; 32],
            ..reqs[0]
        };
        let mut msgs: Vec<Message<'_>> = reqs.iter().map(|r| Message::HashRequest(*r)).collect();
        msgs.push(Message::HashRequest(unknown));

        // Without piece layers: rejects only.
        let mut n = node(&meta, true, 1);
        let answers = hash_answers(&mut n, &meta, &msgs);
        assert_eq!(answers.len(), msgs.len());
        for a in &answers {
            assert!(matches!(
                wire::decode(a, 1 << 20),
                Ok(Some((Message::HashReject(_), _)))
            ));
        }

        {
            let mut n = node(&meta, true, 1);
            n.s.share_piece_layers(Arc::new(meta.clone()));
            let answers = hash_answers(&mut n, &meta, &msgs);
            assert_eq!(answers.len(), msgs.len());
            let mut layer = Vec::new();
            for (a, r) in answers.iter().zip(&reqs) {
                let Ok(Some((Message::Hashes { req, hashes }, _))) = wire::decode(a, 1 << 20)
                else {
                    panic!("expected hashes for {r:?}");
                };
                assert_eq!(req, *r);
                layer.extend(
                    crate::hashes::verify(&root, file.length, &req, hashes).expect("proof"),
                );
            }
            assert_eq!(Some(&layer), meta.piece_layers.get(&root));
            assert!(matches!(
                wire::decode(answers.last().expect("last"), 1 << 20),
                Ok(Some((Message::HashReject(r), _))) if r == unknown
            ));
        }
    }
}
