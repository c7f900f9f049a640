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
    let Some(info_hash) = magnet.swarm_hash() else {
        return Err(crate::Error::Metadata("magnet has no infohash".into()));
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;
    use torrent::hash::sha256;
    use torrent::hashes::PieceTree;

    const PIECE: u64 = 16 * 1024;

    /// A v2-only info dictionary of one file with `layer` as its piece layer.
    fn v2_info(layer: &[Sha256], len: u64) -> (Vec<u8>, Sha256) {
        let root = PieceTree::new(layer, PIECE).expect("tree").root();
        let mut raw = Vec::new();
        raw.extend_from_slice(b"d9:file treed5:f.bind0:d6:lengthi");
        raw.extend_from_slice(len.to_string().as_bytes());
        raw.extend_from_slice(b"e11:pieces root32:");
        raw.extend_from_slice(&root);
        raw.extend_from_slice(b"eee12:meta versioni2e4:name1:t12:piece lengthi");
        raw.extend_from_slice(PIECE.to_string().as_bytes());
        raw.extend_from_slice(b"ee");
        (raw, root)
    }

    /// How a fake peer answers hash requests.
    #[derive(Clone, Copy, PartialEq)]
    enum Hashes {
        Honest,
        Tampered,
        Reject,
    }

    /// A peer that serves `raw` over BEP 9 and answers hash requests from
    /// `tree`; returns its address and a count of metadata requests.
    async fn fake_peer(
        raw: Vec<u8>,
        tree: PieceTree,
        mode: Hashes,
    ) -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        let asked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = asked.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let mut hs = [0u8; wire::HANDSHAKE_LEN];
                if s.read_exact(&mut hs).await.is_err() {
                    continue;
                }
                let Ok(Some(theirs)) = Handshake::decode(&hs) else {
                    continue;
                };
                let ours = Handshake {
                    reserved: Reserved {
                        extension_protocol: true,
                        fast: true,
                        dht: false,
                        v2: true,
                    },
                    info_hash: theirs.info_hash,
                    peer_id: [7; 20],
                };
                let mut out = ours.encode().to_vec();
                let mut ext = ExtHandshake::ours();
                ext.metadata_size = Some(raw.len() as u32);
                let mut p = Vec::new();
                ext.encode(&mut p);
                wire::encode(&Message::Extended { id: 0, payload: &p }, &mut out);
                if s.write_all(&out).await.is_err() {
                    continue;
                }
                let mut rx = Vec::new();
                let mut buf = vec![0u8; 4096];
                'conn: loop {
                    while let Ok(Some((msg, n))) = wire::decode(&rx, 1 << 20) {
                        let mut out = Vec::new();
                        match msg {
                            Message::Extended { id: 1, payload } => {
                                if let Ok(MetadataMessage::Request { piece }) =
                                    MetadataMessage::decode(payload)
                                {
                                    count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                                    let start = piece as usize * 16384;
                                    let end = (start + 16384).min(raw.len());
                                    let mut m = Vec::new();
                                    MetadataMessage::Data {
                                        piece,
                                        total_size: raw.len() as u32,
                                        data: &raw[start..end],
                                    }
                                    .encode(&mut m);
                                    wire::encode(
                                        &Message::Extended { id: 1, payload: &m },
                                        &mut out,
                                    );
                                }
                            }
                            Message::HashRequest(r) => match (mode, tree.serve(&r)) {
                                (Hashes::Reject, _) | (_, None) => {
                                    wire::encode(&Message::HashReject(r), &mut out)
                                }
                                (_, Some(h)) => {
                                    let mut bytes = h.concat();
                                    if mode == Hashes::Tampered {
                                        let last = bytes.len() - 1;
                                        bytes[last] ^= 1;
                                    }
                                    wire::encode(
                                        &Message::Hashes {
                                            req: r,
                                            hashes: &bytes,
                                        },
                                        &mut out,
                                    );
                                }
                            },
                            _ => {}
                        }
                        rx.drain(..n);
                        if s.write_all(&out).await.is_err() {
                            break 'conn;
                        }
                    }
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => rx.extend_from_slice(&buf[..n]),
                    }
                }
            }
        });
        (addr, asked)
    }

    fn magnet(raw: &[u8]) -> Magnet {
        let hex: String = sha256(raw).iter().map(|b| format!("{b:02x}")).collect();
        Magnet::parse(&format!("magnet:?xt=urn:btmh:1220{hex}")).expect("magnet")
    }

    fn layer(n: usize) -> Vec<Sha256> {
        (0..n as u32).map(|i| sha256(&i.to_be_bytes())).collect()
    }

    #[tokio::test]
    async fn lying_peer_is_skipped_and_the_next_one_only_sends_hashes() {
        let layer = layer(1300);
        let len = 1300 * PIECE - 77;
        let (raw, root) = v2_info(&layer, len);
        let tree = PieceTree::new(&layer, PIECE).expect("tree");
        let (liar, liar_asked) = fake_peer(raw.clone(), tree.clone(), Hashes::Tampered).await;
        let (rejecter, _) = fake_peer(raw.clone(), tree.clone(), Hashes::Reject).await;
        let (honest, honest_asked) = fake_peer(raw.clone(), tree, Hashes::Honest).await;
        let (_tx, rx) = mpsc::channel(1);
        let got = fetch(
            &magnet(&raw),
            vec![liar, rejecter, honest],
            rx,
            [1; 20],
            Duration::from_secs(20),
        )
        .await
        .expect("fetched");
        assert_eq!(got.info.raw, raw);
        assert_eq!(got.piece_layers.len(), 1);
        assert_eq!(got.piece_layers.get(&root), Some(&layer));
        // The dictionary came from the first peer; the others were only
        // asked for hashes.
        assert!(liar_asked.load(std::sync::atomic::Ordering::SeqCst) > 0);
        assert_eq!(honest_asked.load(std::sync::atomic::Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn no_honest_peer_is_an_error_naming_the_hashes() {
        let layer = layer(5);
        let (raw, _) = v2_info(&layer, 5 * PIECE);
        let tree = PieceTree::new(&layer, PIECE).expect("tree");
        let (liar, _) = fake_peer(raw.clone(), tree, Hashes::Tampered).await;
        let (_tx, rx) = mpsc::channel(1);
        let err = fetch(
            &magnet(&raw),
            vec![liar],
            rx,
            [1; 20],
            Duration::from_secs(3),
        )
        .await
        .expect_err("no good peer");
        let text = err.to_string();
        assert!(text.contains("piece hashes"), "{text}");
        assert!(text.contains("bad hashes"), "{text}");
    }
}
