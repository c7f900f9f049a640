//! Getting a torrent's `info` dictionary from peers (BEP 9), for magnet
//! links.
//!
//! Metadata is small (KiB to a few MiB) and any one honest peer has all of
//! it, so peers are tried one at a time, each for a bounded time, rather
//! than through the full engine: simple, and a peer that stalls or lies
//! costs one time slice. What comes back is checked against the magnet's
//! infohash by [`torrent::ext::MetadataAssembler`] before it is parsed.
//!
//! A v2-only torrent names its files by pieces root only: a file longer than
//! one piece cannot be checked piece by piece without its piece layer. So
//! once the dictionary is in, the same peer is asked for those layers with
//! BEP 52 hash requests (512 hashes at most each, with the uncle hashes up to
//! the root), and each answer is checked against the root by
//! [`torrent::hashes::verify`] before it is kept. What a peer can make us
//! hold is bounded by the torrent: one hash per piece of each file. A dictionary
//! that arrived is kept when its peer then fails, so the next peer is only
//! asked for the hashes.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use torrent::ext::{
    self, ExtHandshake, ExtMessage, InfoHashes, LOCAL_IDS, MetadataAssembler, MetadataMessage,
};
use torrent::hash::Sha256;
use torrent::hashes;
use torrent::magnet::Magnet;
use torrent::metainfo::{Info, Limits, Version};
use torrent::wire::{self, Handshake, HashRequest, Message, Reserved};

/// Time one peer gets to deliver the whole dictionary (and piece layers).
const PER_PEER: Duration = Duration::from_secs(15);
/// Hash requests in flight to one peer.
const HASH_REQUESTS_IN_FLIGHT: usize = 8;

/// What a magnet link's peers delivered.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub info: Info,
    /// For a v2-only torrent, the verified piece layer of every file longer
    /// than one piece, by pieces root (as in a .torrent's `piece layers`);
    /// empty otherwise.
    pub piece_layers: BTreeMap<Sha256, Vec<Sha256>>,
}

/// Asks peers for the metadata of `magnet` until one delivers or
/// `deadline` passes. Addresses come from `peers` first, then from `found`
/// (trackers, LSD) as they arrive.
pub async fn fetch(
    magnet: &Magnet,
    peers: Vec<SocketAddr>,
    mut found: mpsc::Receiver<SocketAddr>,
    peer_id: [u8; 20],
    deadline: Duration,
) -> Result<Fetched, crate::Error> {
    let hashes = InfoHashes::from(magnet);
    let info_hash = match (magnet.v1, magnet.v2) {
        (Some(v1), _) => v1,
        (None, Some(v2)) => {
            let mut t = [0u8; 20];
            t.copy_from_slice(&v2[..20]);
            t
        }
        (None, None) => return Err(crate::Error::Metadata("magnet has no infohash".into())),
    };
    let started = Instant::now();
    let mut tried: HashSet<SocketAddr> = HashSet::new();
    let mut queue: Vec<SocketAddr> = peers;
    let mut last_error = String::from("no peers to ask");
    let mut info: Option<Info> = None;
    while started.elapsed() < deadline {
        while let Ok(a) = found.try_recv() {
            queue.push(a);
        }
        let Some(addr) = queue.iter().copied().find(|a| !tried.contains(a)) else {
            // Wait for trackers/LSD, or retry everyone after a pause.
            match tokio::time::timeout(Duration::from_secs(1), found.recv()).await {
                Ok(Some(a)) => queue.push(a),
                _ => {
                    if !queue.is_empty() {
                        tried.clear();
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
            continue;
        };
        tried.insert(addr);
        let left = deadline.saturating_sub(started.elapsed()).min(PER_PEER);
        let attempt = from_peer(addr, info_hash, peer_id, hashes, &mut info);
        match tokio::time::timeout(left, attempt).await {
            Ok(Ok(piece_layers)) => {
                if let Some(info) = info.take() {
                    return Ok(Fetched { info, piece_layers });
                }
                last_error = format!("{addr}: no metadata");
            }
            Ok(Err(e)) => {
                tracing::info!("metadata from {addr}: {e}");
                last_error = format!("{addr}: {e}");
            }
            Err(_) => last_error = format!("{addr}: timed out"),
        }
    }
    let what = if info.is_some() {
        "the piece hashes of the torrent's big files"
    } else {
        "the torrent's metadata"
    };
    Err(crate::Error::Metadata(format!(
        "no peer delivered {what} in {} s (last: {last_error})",
        deadline.as_secs()
    )))
}

/// The files whose piece layers a torrent needs and has not got: v2-only
/// torrents' files longer than one piece.
fn needed_layers(info: &Info) -> BTreeMap<Sha256, u64> {
    if info.version != Version::V2 {
        return BTreeMap::new();
    }
    info.real_files()
        .filter(|f| f.length > info.piece_length)
        .filter_map(|f| Some((f.pieces_root?, f.length)))
        .collect()
}

/// Fetching the piece layers of one torrent from one peer.
struct LayerFetch {
    /// By pieces root: file length, the layer so far, hashes still missing.
    files: BTreeMap<Sha256, (u64, Vec<Sha256>, u64)>,
    queue: VecDeque<HashRequest>,
    in_flight: Vec<HashRequest>,
}

impl LayerFetch {
    fn new(info: &Info) -> LayerFetch {
        let piece_len = info.piece_length;
        let mut files = BTreeMap::new();
        let mut queue = VecDeque::new();
        for (root, len) in needed_layers(info) {
            let pieces = len.div_ceil(piece_len);
            // Bounded by the metainfo limits on pieces.
            files.insert(root, (len, vec![[0u8; 32]; pieces as usize], pieces));
            queue.extend(hashes::piece_layer_requests(root, len, piece_len));
        }
        LayerFetch {
            files,
            queue,
            in_flight: Vec::new(),
        }
    }

    fn done(&self) -> bool {
        self.queue.is_empty() && self.in_flight.is_empty()
    }

    /// Requests to send now.
    fn next_requests(&mut self, out: &mut Vec<u8>) {
        while self.in_flight.len() < HASH_REQUESTS_IN_FLIGHT {
            let Some(r) = self.queue.pop_front() else {
                break;
            };
            wire::encode(&Message::HashRequest(r), out);
            self.in_flight.push(r);
        }
    }

    fn on_hashes(&mut self, req: &HashRequest, bytes: &[u8]) -> Result<(), String> {
        let pos = self
            .in_flight
            .iter()
            .position(|r| r == req)
            .ok_or("peer sent hashes we did not ask for")?;
        let (len, layer, missing) = self
            .files
            .get_mut(&req.pieces_root)
            .ok_or("peer sent hashes for another file")?;
        let got = hashes::verify(&req.pieces_root, *len, req, bytes).map_err(|e| e.to_string())?;
        let start = req.index as usize;
        let dst = layer
            .get_mut(start..start + got.len())
            .ok_or("peer sent hashes past the end of the file")?;
        dst.copy_from_slice(&got);
        *missing = missing.saturating_sub(got.len() as u64);
        self.in_flight.swap_remove(pos);
        Ok(())
    }

    fn finish(self) -> Result<BTreeMap<Sha256, Vec<Sha256>>, String> {
        let mut out = BTreeMap::new();
        for (root, (_, layer, missing)) in self.files {
            if missing != 0 {
                return Err("peer left piece hashes out".into());
            }
            out.insert(root, layer);
        }
        Ok(out)
    }
}

async fn from_peer(
    addr: SocketAddr,
    info_hash: [u8; 20],
    peer_id: [u8; 20],
    hashes: InfoHashes,
    info: &mut Option<Info>,
) -> Result<BTreeMap<Sha256, Vec<Sha256>>, String> {
    let mut s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let hs = Handshake {
        reserved: Reserved {
            extension_protocol: true,
            fast: true,
            dht: false,
            v2: hashes.v2.is_some(),
        },
        info_hash,
        peer_id,
    };
    s.write_all(&hs.encode()).await.map_err(|e| e.to_string())?;
    let mut buf = [0u8; wire::HANDSHAKE_LEN];
    s.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
    let theirs = Handshake::decode(&buf)
        .map_err(|e| e.to_string())?
        .ok_or("short handshake")?;
    let mut layers: Option<LayerFetch> = None;
    let mut out = Vec::new();
    if let Some(known) = info.as_ref() {
        // Only the hashes are missing (an earlier peer sent the dictionary).
        let mut f = LayerFetch::new(known);
        if f.done() {
            return Ok(BTreeMap::new());
        }
        f.next_requests(&mut out);
        layers = Some(f);
    } else {
        if !theirs.reserved.extension_protocol {
            return Err("peer does not support the extension protocol".into());
        }
        let mut ours = Vec::new();
        ExtHandshake::ours().encode(&mut ours);
        wire::encode(
            &Message::Extended {
                id: 0,
                payload: &ours,
            },
            &mut out,
        );
    }
    s.write_all(&out).await.map_err(|e| e.to_string())?;

    let mut asm: Option<MetadataAssembler> = None;
    let mut their_id = 0u8;
    let mut rx: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        // Parse what we have.
        while let Some((msg, n)) = wire::decode(&rx, 1 << 20).map_err(|e| e.to_string())? {
            let mut reply = Vec::new();
            if let Some(f) = layers.as_mut() {
                match msg {
                    Message::Hashes { req, hashes } => f.on_hashes(&req, hashes)?,
                    Message::HashReject(req) if f.in_flight.contains(&req) => {
                        return Err("peer rejects hash requests".into());
                    }
                    _ => {}
                }
                f.next_requests(&mut reply);
                if f.done() {
                    return layers
                        .take()
                        .map_or(Ok(BTreeMap::new()), LayerFetch::finish);
                }
            } else if let Message::Extended { id, payload } = msg {
                match ext::decode_extended(id, payload, &LOCAL_IDS).map_err(|e| e.to_string())? {
                    ExtMessage::Handshake(h) => {
                        their_id = h
                            .ids
                            .id(ext::Extension::Metadata)
                            .ok_or("peer does not serve metadata")?;
                        let size = h
                            .metadata_size
                            .ok_or("peer did not say the metadata size")?;
                        asm = Some(
                            MetadataAssembler::new(hashes, size, Limits::default())
                                .map_err(|e| e.to_string())?,
                        );
                    }
                    ExtMessage::Metadata(m) => {
                        if let Some(a) = asm.as_mut() {
                            if let Some(got) = a.on_message(&m).map_err(|e| e.to_string())? {
                                let mut f = LayerFetch::new(&got);
                                *info = Some(got);
                                if f.done() {
                                    return Ok(BTreeMap::new());
                                }
                                f.next_requests(&mut reply);
                                layers = Some(f);
                            }
                            if matches!(m, MetadataMessage::Reject { .. }) && a.failures() > 3 {
                                return Err("peer rejects metadata requests".into());
                            }
                        }
                    }
                    _ => {}
                }
            }
            rx.drain(..n);
            if layers.is_some() {
                asm = None;
            }
            if let Some(a) = asm.as_mut() {
                while let Some(piece) = a.next_request(Instant::now()) {
                    let mut m = Vec::new();
                    MetadataMessage::Request { piece }.encode(&mut m);
                    wire::encode(
                        &Message::Extended {
                            id: their_id,
                            payload: &m,
                        },
                        &mut reply,
                    );
                }
            }
            if !reply.is_empty() {
                s.write_all(&reply).await.map_err(|e| e.to_string())?;
            }
        }
        let n = s.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("peer closed the connection".into());
        }
        rx.extend_from_slice(&chunk[..n]);
        if rx.len() > 2 << 20 {
            return Err("peer sent too much without a message boundary".into());
        }
    }
}
