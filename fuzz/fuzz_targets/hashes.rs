//! BEP 52 hashes: checking a peer's answer must never panic and must only
//! accept hashes that lead to the root; every answer our serving side gives
//! to a request with a full proof must check.
#![no_main]

use libfuzzer_sys::fuzz_target;
use torrent::hash::sha256;
use torrent::hashes::{self, PieceTree};
use torrent::wire::HashRequest;

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 24 {
        return;
    }
    let (head, hashes_in) = data.split_at(24);
    let pieces = 2 + u64::from(u16::from_be_bytes([head[0], head[1]]) % 1200);
    let piece_len = (16 * 1024u64) << (head[2] % 4);
    let tail = 1 + u64::from(be32(&head[3..7])) % piece_len;
    let file_len = (pieces - 1) * piece_len + tail;
    let layer: Vec<[u8; 32]> = (0..pieces as u32)
        .map(|i| sha256(&i.to_be_bytes()))
        .collect();
    let Some(tree) = PieceTree::new(&layer, piece_len) else {
        panic!("a valid layer must make a tree");
    };
    let root = tree.root();
    // Small values most of the time, raw ones otherwise.
    let small = head[7] & 1 == 0;
    let pick = |b: &[u8], m: u32| if small { be32(b) % m } else { be32(b) };
    let req = HashRequest {
        pieces_root: if head[7] & 2 == 0 {
            root
        } else {
            [head[8]; 32]
        },
        base_layer: pick(&head[8..12], 16),
        index: pick(&head[12..16], 4096),
        length: if small {
            1 << (head[16] % 11)
        } else {
            be32(&head[16..20])
        },
        proof_layers: pick(&head[20..24], 16),
    };
    let piece_layer = (piece_len / 16384).trailing_zeros();
    if let Ok(got) = hashes::verify(&root, file_len, &req, hashes_in) {
        assert!(got.len() <= req.length as usize);
        // Below the piece layer there is nothing to compare with (and no
        // forgery to find without breaking SHA-256).
        if req.base_layer >= piece_layer {
            let served = tree
                .serve(&req)
                .expect("a request that verified is servable");
            assert_eq!(got, served[..got.len()], "forged hashes accepted");
        }
    }
    if let Some(answer) = tree.serve(&req) {
        let bytes = answer.concat();
        let ok = hashes::verify(&root, file_len, &req, &bytes);
        let leaves = file_len
            .div_ceil(16384)
            .next_power_of_two()
            .trailing_zeros();
        let full = req.proof_layers + 1 == leaves - req.base_layer;
        if full {
            assert!(ok.is_ok(), "{req:?}: {ok:?}");
        }
    }
});
