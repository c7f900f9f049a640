//! Getting a torrent's `info` dictionary from peers (BEP 9), for magnet
//! links.
//!
//! Metadata is small (KiB to a few MiB) and any one honest peer has all of
//! it, so peers are tried one at a time, each for a bounded time, rather
//! than through the full engine: simple, and a peer that stalls or lies
//! costs one time slice. What comes back is checked against the magnet's
//! infohash by [`torrent::ext::MetadataAssembler`] before it is parsed.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use torrent::ext::{
    self, ExtHandshake, ExtMessage, InfoHashes, LOCAL_IDS, MetadataAssembler, MetadataMessage,
};
use torrent::magnet::Magnet;
use torrent::metainfo::{Info, Limits};
use torrent::wire::{self, Handshake, Message, Reserved};

/// Time one peer gets to deliver the whole dictionary.
const PER_PEER: Duration = Duration::from_secs(15);

/// Asks peers for the metadata of `magnet` until one delivers or
/// `deadline` passes. Addresses come from `peers` first, then from `found`
/// (trackers, LSD) as they arrive.
pub async fn fetch(
    magnet: &Magnet,
    peers: Vec<SocketAddr>,
    mut found: mpsc::Receiver<SocketAddr>,
    peer_id: [u8; 20],
    deadline: Duration,
) -> Result<Info, crate::Error> {
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
        match tokio::time::timeout(left, from_peer(addr, info_hash, peer_id, hashes)).await {
            Ok(Ok(info)) => return Ok(info),
            Ok(Err(e)) => {
                tracing::info!("metadata from {addr}: {e}");
                last_error = format!("{addr}: {e}");
            }
            Err(_) => last_error = format!("{addr}: timed out"),
        }
    }
    Err(crate::Error::Metadata(format!(
        "no peer delivered the torrent's metadata in {} s (last: {last_error})",
        deadline.as_secs()
    )))
}

async fn from_peer(
    addr: SocketAddr,
    info_hash: [u8; 20],
    peer_id: [u8; 20],
    hashes: InfoHashes,
) -> Result<Info, String> {
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
    if !theirs.reserved.extension_protocol {
        return Err("peer does not support the extension protocol".into());
    }
    let mut ours = Vec::new();
    ExtHandshake::ours().encode(&mut ours);
    let mut out = Vec::new();
    wire::encode(
        &Message::Extended {
            id: 0,
            payload: &ours,
        },
        &mut out,
    );
    s.write_all(&out).await.map_err(|e| e.to_string())?;

    let mut asm: Option<MetadataAssembler> = None;
    let mut their_id = 0u8;
    let mut rx: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        // Parse what we have.
        while let Some((msg, n)) = wire::decode(&rx, 1 << 20).map_err(|e| e.to_string())? {
            let mut reply = Vec::new();
            if let Message::Extended { id, payload } = msg {
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
                            if let Some(info) = a.on_message(&m).map_err(|e| e.to_string())? {
                                return Ok(info);
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
