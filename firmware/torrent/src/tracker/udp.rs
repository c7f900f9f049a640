//! UDP trackers (BEP 15): packets and the announce exchange.
//!
//! An announce is two round trips: `connect` gets a connection id (a
//! cookie proving we own our address), then `announce` uses it. UDP loses
//! packets, so each request is retransmitted after `base · 2^n` (BEP 15 says
//! 15 s · 2^n), and a connection id is reused for a minute to save the first
//! round trip. [`UdpAnnounce`] keeps that logic away from sockets:
//!
//! 1. [`UdpAnnounce::new`] with the request, a cached connection id if any,
//!    and `now`;
//! 2. loop: send what [`UdpAnnounce::poll_transmit`] returns; wait for a
//!    datagram ([`UdpAnnounce::handle_datagram`]) or the instant of
//!    [`UdpAnnounce::poll_timeout`] ([`UdpAnnounce::handle_timeout`]);
//!    stop when [`UdpAnnounce::poll_result`] gives the outcome;
//! 3. cache [`UdpAnnounce::connection_id`] for the next announce.
//!
//! Which peer list format to expect (6 or 18 bytes per peer) depends on the
//! address family the tracker was reached over, so the caller says.

use std::time::{Duration, Instant};

use super::{AnnounceRequest, AnnounceResponse, Limits, TrackerError, compact_peers, malformed};

/// The magic constant of a connect request.
pub const PROTOCOL_ID: u64 = 0x0417_2710_1980;
const CONNECT: u32 = 0;
const ANNOUNCE: u32 = 1;
const SCRAPE: u32 = 2;
const ERROR: u32 = 3;

/// How long a connection id may be used after it was received (BEP 15).
pub const CONNECTION_ID_LIFETIME: Duration = Duration::from_secs(60);

/// A connect request: protocol id, action, transaction id.
pub fn connect_request(transaction_id: u32) -> [u8; 16] {
    let mut p = [0u8; 16];
    p[..8].copy_from_slice(&PROTOCOL_ID.to_be_bytes());
    p[8..12].copy_from_slice(&CONNECT.to_be_bytes());
    p[12..].copy_from_slice(&transaction_id.to_be_bytes());
    p
}

/// An announce request. The IP field is 0 (the tracker uses the sender's
/// address); `numwant` of `None` is sent as -1 (the tracker's default).
pub fn announce_request(
    connection_id: u64,
    transaction_id: u32,
    req: &AnnounceRequest,
) -> [u8; 98] {
    let mut p = [0u8; 98];
    p[..8].copy_from_slice(&connection_id.to_be_bytes());
    p[8..12].copy_from_slice(&ANNOUNCE.to_be_bytes());
    p[12..16].copy_from_slice(&transaction_id.to_be_bytes());
    p[16..36].copy_from_slice(&req.info_hash);
    p[36..56].copy_from_slice(&req.peer_id);
    p[56..64].copy_from_slice(&req.downloaded.to_be_bytes());
    p[64..72].copy_from_slice(&req.left.to_be_bytes());
    p[72..80].copy_from_slice(&req.uploaded.to_be_bytes());
    p[80..84].copy_from_slice(&req.event.as_udp().to_be_bytes());
    // p[84..88]: IP address 0.
    p[88..92].copy_from_slice(&req.key.to_be_bytes());
    let numwant = req
        .numwant
        .map_or(-1, |n| i32::try_from(n).unwrap_or(i32::MAX));
    p[92..96].copy_from_slice(&numwant.to_be_bytes());
    p[96..98].copy_from_slice(&req.port.to_be_bytes());
    p
}

/// A packet from a UDP tracker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    Connect {
        transaction_id: u32,
        connection_id: u64,
    },
    Announce {
        transaction_id: u32,
        response: AnnounceResponse,
    },
    Error {
        transaction_id: u32,
        message: String,
    },
}

impl Packet {
    pub fn transaction_id(&self) -> u32 {
        match self {
            Packet::Connect { transaction_id, .. }
            | Packet::Announce { transaction_id, .. }
            | Packet::Error { transaction_id, .. } => *transaction_id,
        }
    }
}

fn be32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_be_bytes(a)
}

/// The transaction id of a tracker's packet, if it is at least 8 bytes long.
pub fn transaction_id(buf: &[u8]) -> Option<u32> {
    (buf.len() >= 8).then(|| be32(buf, 4))
}

/// Parses a packet from a tracker reached over IPv6 (`ipv6`, 18-byte peers)
/// or IPv4 (6-byte peers).
pub fn parse_packet(buf: &[u8], ipv6: bool, limits: &Limits) -> Result<Packet, TrackerError> {
    let what = "UDP tracker packet";
    if buf.len() > limits.max_message {
        return Err(TrackerError::TooLarge {
            what,
            size: buf.len(),
            limit: limits.max_message,
        });
    }
    if buf.len() < 8 {
        return Err(malformed(
            what,
            format!("{} bytes, shorter than a header", buf.len()),
        ));
    }
    let action = be32(buf, 0);
    let transaction_id = be32(buf, 4);
    match action {
        CONNECT => {
            if buf.len() < 16 {
                return Err(malformed("UDP connect response", "shorter than 16 bytes"));
            }
            let mut id = [0u8; 8];
            id.copy_from_slice(&buf[8..16]);
            Ok(Packet::Connect {
                transaction_id,
                connection_id: u64::from_be_bytes(id),
            })
        }
        ANNOUNCE => {
            if buf.len() < 20 {
                // opentracker answers so (the bare header) for a torrent
                // that is not on its whitelist.
                return Err(malformed(
                    "UDP announce response",
                    format!(
                        "{} bytes, shorter than 20 (trackers answer so for a torrent they do not track)",
                        buf.len()
                    ),
                ));
            }
            let mut response = AnnounceResponse {
                interval: Duration::from_secs(be32(buf, 8).into()),
                leechers: Some(be32(buf, 12)),
                seeders: Some(be32(buf, 16)),
                ..AnnounceResponse::default()
            };
            let what = if ipv6 { "UDP peers6" } else { "UDP peers" };
            compact_peers(
                &buf[20..],
                ipv6,
                what,
                limits.max_peers,
                &mut response.peers,
            )?;
            Ok(Packet::Announce {
                transaction_id,
                response,
            })
        }
        ERROR => Ok(Packet::Error {
            transaction_id,
            message: super::tracker_text(&buf[8..]),
        }),
        SCRAPE => Err(malformed(
            what,
            "a scrape response, which was not asked for",
        )),
        other => Err(malformed(what, format!("unknown action {other}"))),
    }
}

/// Retransmission policy of [`UdpAnnounce`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Wait after the first transmission; doubled after each one.
    pub base_timeout: Duration,
    /// Transmissions in all (connects and announces together) before
    /// giving up. BEP 15's schedule goes to 9; 4 bounds an announce to
    /// 15 s · (1+2+4+8) = 225 s.
    pub max_tries: u32,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            base_timeout: Duration::from_secs(15),
            max_tries: 4,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Connecting,
    Announcing {
        connection_id: u64,
        /// Whether the id came from the caller's cache rather than from
        /// a connect in this exchange: if such an announce gets no answer,
        /// the tracker may have forgotten the id, so connect again.
        cached: bool,
    },
    Done,
}

/// One announce to one UDP tracker; see the module documentation for the
/// order of calls.
#[derive(Debug)]
pub struct UdpAnnounce {
    request: AnnounceRequest,
    ipv6: bool,
    limits: Limits,
    timing: Timing,
    state: State,
    tries: u32,
    transmit: bool,
    deadline: Option<Instant>,
    transaction_id: u32,
    connection: Option<(u64, Instant)>,
    result: Option<Result<AnnounceResponse, TrackerError>>,
}

impl UdpAnnounce {
    /// Starts an announce. `connection` is a cached connection id and the
    /// instant it was received; it is used if it is younger than
    /// [`CONNECTION_ID_LIFETIME`]. `transaction_id` should be random: it is
    /// what stops an off-path attacker from injecting answers.
    pub fn new(
        request: AnnounceRequest,
        ipv6: bool,
        connection: Option<(u64, Instant)>,
        transaction_id: u32,
        timing: Timing,
        limits: Limits,
        now: Instant,
    ) -> Self {
        let connection = connection
            .filter(|(_, at)| now.saturating_duration_since(*at) < CONNECTION_ID_LIFETIME);
        let state = match connection {
            Some((connection_id, _)) => State::Announcing {
                connection_id,
                cached: true,
            },
            None => State::Connecting,
        };
        Self {
            request,
            ipv6,
            limits,
            timing,
            state,
            tries: 0,
            transmit: true,
            deadline: None,
            transaction_id,
            connection,
            result: None,
        }
    }

    /// The next datagram to send, if one is due.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Vec<u8>> {
        if !self.transmit {
            return None;
        }
        let packet = match self.state {
            State::Connecting => connect_request(self.transaction_id).to_vec(),
            State::Announcing { connection_id, .. } => {
                announce_request(connection_id, self.transaction_id, &self.request).to_vec()
            }
            State::Done => return None,
        };
        self.transmit = false;
        let wait = self
            .timing
            .base_timeout
            .saturating_mul(1u32.checked_shl(self.tries.min(16)).unwrap_or(u32::MAX));
        self.deadline = Some(now + wait);
        self.tries += 1;
        Some(packet)
    }

    /// When [`Self::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Done => None,
            _ => self.deadline,
        }
    }

    /// Retransmits, or gives up after [`Timing::max_tries`].
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(deadline) = self.deadline else {
            return;
        };
        if now < deadline || self.state == State::Done {
            return;
        }
        self.deadline = None;
        if self.tries >= self.timing.max_tries {
            self.finish(Err(TrackerError::Timeout { tries: self.tries }));
            return;
        }
        if let State::Announcing { cached, .. } = self.state {
            let expired = self
                .connection
                .is_none_or(|(_, at)| now.saturating_duration_since(at) >= CONNECTION_ID_LIFETIME);
            if cached || expired {
                self.connection = None;
                self.state = State::Connecting;
                self.next_transaction();
            }
        }
        self.transmit = true;
    }

    /// Takes a datagram from the tracker. Packets for another transaction
    /// (late answers, spoofing attempts) are ignored; a malformed packet of
    /// this transaction ends the announce with its error.
    pub fn handle_datagram(&mut self, now: Instant, buf: &[u8]) {
        if self.state == State::Done || transaction_id(buf) != Some(self.transaction_id) {
            return;
        }
        match (parse_packet(buf, self.ipv6, &self.limits), self.state) {
            (
                Ok(Packet::Connect {
                    connection_id: id, ..
                }),
                State::Connecting,
            ) => {
                self.connection = Some((id, now));
                self.state = State::Announcing {
                    connection_id: id,
                    cached: false,
                };
                self.next_transaction();
                self.deadline = None;
                self.transmit = true;
            }
            (Ok(Packet::Announce { response, .. }), State::Announcing { .. }) => {
                self.finish(Ok(response));
            }
            (Ok(Packet::Error { message, .. }), _) => {
                self.finish(Err(TrackerError::Failure(message)));
            }
            (Ok(_), _) => self.finish(Err(malformed(
                "UDP tracker packet",
                "an answer to a request that was not sent",
            ))),
            (Err(e), _) => self.finish(Err(e)),
        }
    }

    /// The outcome, once; `None` while the exchange goes on.
    pub fn poll_result(&mut self) -> Option<Result<AnnounceResponse, TrackerError>> {
        self.result.take()
    }

    /// Whether the exchange is over (the result may already be taken).
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The connection id in use and when it was received, for the caller's
    /// cache; `None` if there is none (or it should not be reused).
    pub fn connection_id(&self) -> Option<(u64, Instant)> {
        self.connection
    }

    fn next_transaction(&mut self) {
        // Derived from the random first id: still unknown to anyone who did
        // not see the first packet, and never equal to the previous one.
        self.transaction_id = self.transaction_id.wrapping_add(0x9e37_79b9);
    }

    fn finish(&mut self, result: Result<AnnounceResponse, TrackerError>) {
        if matches!(
            result,
            Err(TrackerError::Failure(_) | TrackerError::Timeout { .. })
        ) {
            // The id may be what the tracker objected to, or stale.
            self.connection = None;
        }
        self.result = Some(result);
        self.state = State::Done;
        self.deadline = None;
        self.transmit = false;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // in tests a panic is the failure report
mod tests {
    use super::*;
    use crate::tracker::Event;
    use std::net::SocketAddr;

    fn req() -> AnnounceRequest {
        AnnounceRequest {
            info_hash: [0x11; 20],
            peer_id: [0x22; 20],
            port: 0x1ae1,
            uploaded: 3,
            downloaded: 1,
            left: 2,
            event: Event::Completed,
            numwant: None,
            key: 0x0a0b_0c0d,
        }
    }

    fn connect_reply(tid: u32, id: u64) -> Vec<u8> {
        let mut p = Vec::new();
        p.extend_from_slice(&0u32.to_be_bytes());
        p.extend_from_slice(&tid.to_be_bytes());
        p.extend_from_slice(&id.to_be_bytes());
        p
    }

    fn announce_reply(tid: u32, peers: &[u8]) -> Vec<u8> {
        let mut p = Vec::new();
        for n in [1u32, tid, 1800, 4, 5] {
            p.extend_from_slice(&n.to_be_bytes());
        }
        p.extend_from_slice(peers);
        p
    }

    #[test]
    fn request_layout() {
        let c = connect_request(0x0102_0304);
        assert_eq!(
            c,
            [
                0, 0, 4, 0x17, 0x27, 0x10, 0x19, 0x80, 0, 0, 0, 0, 1, 2, 3, 4
            ]
        );
        let a = announce_request(0x55, 7, &req());
        assert_eq!(&a[..8], &[0, 0, 0, 0, 0, 0, 0, 0x55]);
        assert_eq!(&a[8..16], &[0, 0, 0, 1, 0, 0, 0, 7]);
        assert_eq!(&a[16..36], &[0x11; 20]);
        assert_eq!(&a[36..56], &[0x22; 20]);
        assert_eq!(a[63], 1); // downloaded
        assert_eq!(a[71], 2); // left
        assert_eq!(a[79], 3); // uploaded
        assert_eq!(a[83], 1); // completed
        assert_eq!(&a[84..88], &[0; 4]);
        assert_eq!(&a[88..92], &[0x0a, 0x0b, 0x0c, 0x0d]);
        assert_eq!(&a[92..96], &[0xff; 4]);
        assert_eq!(&a[96..], &[0x1a, 0xe1]);
        let mut r = req();
        r.numwant = Some(u32::MAX);
        assert_eq!(&announce_request(0, 0, &r)[92..96], &i32::MAX.to_be_bytes());
    }

    #[test]
    fn packets() {
        let l = Limits::default();
        assert_eq!(
            parse_packet(&connect_reply(9, 0xabc), false, &l),
            Ok(Packet::Connect {
                transaction_id: 9,
                connection_id: 0xabc
            })
        );
        let p = parse_packet(&announce_reply(9, &[127, 0, 0, 1, 0, 80]), false, &l).unwrap();
        let Packet::Announce { response, .. } = p else {
            panic!("{p:?}")
        };
        assert_eq!(response.interval, Duration::from_secs(1800));
        assert_eq!((response.leechers, response.seeders), (Some(4), Some(5)));
        assert_eq!(
            response.peers,
            vec!["127.0.0.1:80".parse::<SocketAddr>().unwrap()]
        );
        let mut v6 = [0u8; 18];
        v6[15] = 1;
        v6[17] = 81;
        let p = parse_packet(&announce_reply(9, &v6), true, &l).unwrap();
        assert!(
            matches!(p, Packet::Announce { ref response, .. } if response.peers == vec!["[::1]:81".parse::<SocketAddr>().unwrap()])
        );
        // 18 bytes read as IPv4: three entries, two with port 0 (dropped).
        let p = parse_packet(&announce_reply(9, &v6), false, &l).unwrap();
        assert!(matches!(p, Packet::Announce { ref response, .. } if response.peers.len() == 1));

        let mut e = vec![0, 0, 0, 3, 0, 0, 0, 9];
        e.extend_from_slice(b"bad\x00id");
        assert_eq!(
            parse_packet(&e, false, &l),
            Ok(Packet::Error {
                transaction_id: 9,
                message: "bad?id".into()
            })
        );

        for (bad, what) in [
            (&[0u8, 0, 0, 0, 0, 0, 0][..], "UDP tracker packet"),
            (&[0, 0, 0, 0, 0, 0, 0, 9, 1], "UDP connect response"),
            (&[0, 0, 0, 1, 0, 0, 0, 9, 1], "UDP announce response"),
            (&[0, 0, 0, 2, 0, 0, 0, 9], "UDP tracker packet"),
            (&[0, 0, 0, 7, 0, 0, 0, 9], "UDP tracker packet"),
        ] {
            assert!(
                matches!(parse_packet(bad, false, &l), Err(TrackerError::Malformed { what: w, .. }) if w == what),
                "{bad:?}"
            );
        }
        assert!(matches!(
            parse_packet(&announce_reply(9, &[1; 7]), false, &l),
            Err(TrackerError::Malformed {
                what: "UDP peers",
                ..
            })
        ));
        let small = Limits {
            max_message: 40,
            max_peers: 2,
        };
        assert!(matches!(
            parse_packet(&announce_reply(9, &[1; 18]), false, &small),
            Err(TrackerError::TooManyPeers { count: 3, .. })
        ));
        assert!(matches!(
            parse_packet(&[0; 41], false, &small),
            Err(TrackerError::TooLarge { .. })
        ));
    }

    fn timing() -> Timing {
        Timing {
            base_timeout: Duration::from_secs(15),
            max_tries: 4,
        }
    }

    #[test]
    fn connect_then_announce() {
        let t0 = Instant::now();
        let mut a = UdpAnnounce::new(req(), false, None, 100, timing(), Limits::default(), t0);
        let p = a.poll_transmit(t0).unwrap();
        assert_eq!(p, connect_request(100));
        assert_eq!(a.poll_transmit(t0), None);
        assert_eq!(a.poll_timeout(), Some(t0 + Duration::from_secs(15)));
        // A late or forged answer for another transaction is ignored.
        a.handle_datagram(t0, &connect_reply(99, 1));
        a.handle_datagram(t0, &[1, 2]);
        assert!(a.poll_result().is_none());
        let t1 = t0 + Duration::from_secs(1);
        a.handle_datagram(t1, &connect_reply(100, 0x77));
        let p = a.poll_transmit(t1).unwrap();
        assert_eq!(p.len(), 98);
        assert_eq!(&p[..8], &0x77u64.to_be_bytes());
        let tid = u32::from_be_bytes([p[12], p[13], p[14], p[15]]);
        assert_ne!(tid, 100);
        // The announce is the second transmission: 30 s.
        assert_eq!(a.poll_timeout(), Some(t1 + Duration::from_secs(30)));
        a.handle_datagram(t1, &announce_reply(tid, &[10, 0, 0, 1, 0x1a, 0xe1]));
        let r = a.poll_result().unwrap().unwrap();
        assert_eq!(
            r.peers,
            vec!["10.0.0.1:6881".parse::<SocketAddr>().unwrap()]
        );
        assert!(a.is_done());
        assert_eq!(a.poll_timeout(), None);
        assert_eq!(a.connection_id(), Some((0x77, t1)));
    }

    #[test]
    fn retransmits_with_doubling_and_gives_up() {
        let t0 = Instant::now();
        let mut a = UdpAnnounce::new(req(), false, None, 5, timing(), Limits::default(), t0);
        let mut now = t0;
        let mut waits = Vec::new();
        for _ in 0..4 {
            let p = a.poll_transmit(now).unwrap();
            assert_eq!(p, connect_request(5), "a retransmission keeps its id");
            let deadline = a.poll_timeout().unwrap();
            waits.push((deadline - now).as_secs());
            a.handle_timeout(deadline - Duration::from_millis(1));
            assert_eq!(a.poll_transmit(now), None, "not yet");
            now = deadline;
            a.handle_timeout(now);
        }
        assert_eq!(waits, [15, 30, 60, 120]);
        assert_eq!(
            a.poll_result(),
            Some(Err(TrackerError::Timeout { tries: 4 }))
        );
        assert_eq!(a.poll_transmit(now), None);
    }

    #[test]
    fn cached_id_skips_connect_and_falls_back() {
        let t0 = Instant::now();
        let cached = Some((0x42, t0));
        let later = t0 + Duration::from_secs(10);
        let mut a = UdpAnnounce::new(req(), false, cached, 5, timing(), Limits::default(), later);
        let p = a.poll_transmit(later).unwrap();
        assert_eq!(p.len(), 98);
        assert_eq!(&p[..8], &0x42u64.to_be_bytes());
        // No answer: the tracker may have forgotten the id, so connect.
        let d = a.poll_timeout().unwrap();
        a.handle_timeout(d);
        let p = a.poll_transmit(d).unwrap();
        assert_eq!(p.len(), 16);
        assert_eq!(a.connection_id(), None);

        // An expired id is not used at all.
        let expired = t0 + CONNECTION_ID_LIFETIME;
        let mut a = UdpAnnounce::new(
            req(),
            false,
            cached,
            5,
            timing(),
            Limits::default(),
            expired,
        );
        assert_eq!(a.poll_transmit(expired).unwrap().len(), 16);
    }

    #[test]
    fn fresh_id_is_resent_not_reconnected() {
        let t0 = Instant::now();
        let mut a = UdpAnnounce::new(req(), false, None, 5, timing(), Limits::default(), t0);
        a.poll_transmit(t0);
        a.handle_datagram(t0, &connect_reply(5, 9));
        let first = a.poll_transmit(t0).unwrap();
        let d = a.poll_timeout().unwrap();
        a.handle_timeout(d);
        assert_eq!(a.poll_transmit(d).unwrap(), first);
    }

    #[test]
    fn error_packets_and_bad_answers_end_the_exchange() {
        let t0 = Instant::now();
        let mut a = UdpAnnounce::new(req(), false, None, 5, timing(), Limits::default(), t0);
        a.poll_transmit(t0);
        let mut e = vec![0, 0, 0, 3, 0, 0, 0, 5];
        e.extend_from_slice(b"go away");
        a.handle_datagram(t0, &e);
        assert_eq!(
            a.poll_result(),
            Some(Err(TrackerError::Failure("go away".into())))
        );
        assert_eq!(a.poll_result(), None);

        let mut a = UdpAnnounce::new(req(), false, None, 5, timing(), Limits::default(), t0);
        a.poll_transmit(t0);
        a.handle_datagram(t0, &announce_reply(5, &[]));
        assert!(matches!(
            a.poll_result(),
            Some(Err(TrackerError::Malformed { .. }))
        ));

        let mut a = UdpAnnounce::new(req(), false, None, 5, timing(), Limits::default(), t0);
        a.poll_transmit(t0);
        a.handle_datagram(t0, &[0, 0, 0, 0, 0, 0, 0, 5, 1]);
        assert!(matches!(
            a.poll_result(),
            Some(Err(TrackerError::Malformed { .. }))
        ));
    }
}
