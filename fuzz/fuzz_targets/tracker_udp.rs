//! Parsing a UDP tracker packet (BEP 15), as IPv4 and as IPv6, and feeding
//! it to the announce state machine must never panic on any datagram.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use torrent::tracker::{AnnounceRequest, Event, Limits, udp};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let _ = udp::parse_packet(data, false, &limits);
    let _ = udp::parse_packet(data, true, &limits);

    // The same bytes as the answer to a connect, then to an announce, with
    // the transaction id the fuzzer chose.
    let tid = udp::transaction_id(data).unwrap_or(0);
    let req = AnnounceRequest {
        info_hash: [1; 20],
        peer_id: [2; 20],
        port: 6881,
        uploaded: 0,
        downloaded: 0,
        left: 1,
        event: Event::Started,
        numwant: None,
        key: 3,
    };
    let now = Instant::now();
    for cached in [None, Some((7, now))] {
        let mut a = udp::UdpAnnounce::new(
            req.clone(),
            false,
            cached,
            tid,
            udp::Timing::default(),
            limits,
            now,
        );
        let _ = a.poll_transmit(now);
        a.handle_datagram(now, data);
        let _ = a.poll_transmit(now);
        a.handle_datagram(now, data);
        a.handle_timeout(now + Duration::from_secs(3600));
        let _ = a.poll_result();
    }
});
