//! Local service discovery (BEP 14): finding peers on the LAN by multicast.
//!
//! Why it matters here: swarmsync appliances on one LAN should fetch from
//! each other first and go to the WAN only for what none of them has, and
//! LSD needs no tracker, no DHT and no configuration to find them.
//!
//! [`Lsd`] owns one IPv4 and (where the host has IPv6) one IPv6 UDP socket,
//! both bound to port 6771 with `SO_REUSEADDR` so that several clients on one
//! host (or one network namespace) can listen at once, and joined to the
//! BEP 14 groups. The driver calls [`Lsd::next`] in its event loop: it
//! announces the infohashes given to [`Lsd::set_infohashes`] every
//! [`Config::interval`] and returns the peers it hears. Announces carry a
//! random cookie; multicast loopback delivers our own announces back to us
//! and the cookie is how they are dropped. Only infohashes we announce
//! ourselves are reported: nothing else is of use to this node, and it
//! bounds what a noisy LAN can make us do.
//!
//! Choosing the interface: by default the kernel's routing table picks the
//! interface for the groups (on a board, the default route). In a network
//! namespace without a default route, or on a host with several LANs, set
//! [`Config::interface_v4`] (an address of the interface) and
//! [`Config::interface_v6`] (its index). The multicast TTL / hop limit is 1:
//! announces never leave the link.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::time::Instant;
use torrent::hash::Sha1;
use torrent::tracker::lsd;

use crate::Error;

/// How LSD runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The port we accept peer connections on (announced to others).
    pub peer_port: u16,
    /// Time between two announces of the same infohashes. BEP 14 asks for
    /// no more than one per minute per torrent; 5 minutes by default.
    pub interval: Duration,
    /// Use IPv4, on the interface with this address (`0.0.0.0`: the
    /// routing table decides). `None` turns IPv4 off.
    pub interface_v4: Option<Ipv4Addr>,
    /// Use IPv6, on the interface with this index (0: the routing table
    /// decides). `None` turns IPv6 off. IPv6 that cannot be set up (no
    /// IPv6 on the host) is skipped with a log line, not an error.
    pub interface_v6: Option<u32>,
    /// The multicast port, 6771 (BEP 14); another value only for tests.
    pub group_port: u16,
}

impl Config {
    /// Both address families, the routing table's interfaces, port 6771,
    /// announces every 5 minutes.
    pub fn new(peer_port: u16) -> Self {
        Self {
            peer_port,
            interval: Duration::from_secs(300),
            interface_v4: Some(Ipv4Addr::UNSPECIFIED),
            interface_v6: Some(0),
            group_port: lsd::PORT,
        }
    }
}

/// A peer heard on the LAN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    pub info_hash: Sha1,
    /// The sender's address with the port it announced.
    pub addr: SocketAddr,
}

/// Most heard peers kept before [`Lsd::next`] returns them; more are
/// dropped (they announce again in a few minutes).
const MAX_PENDING: usize = 256;

/// A running LSD endpoint; see the module documentation.
#[derive(Debug)]
pub struct Lsd {
    config: Config,
    v4: Option<UdpSocket>,
    v6: Option<UdpSocket>,
    cookie: String,
    infohashes: Vec<Sha1>,
    next_announce: Instant,
    pending: VecDeque<Peer>,
    buf_v4: Vec<u8>,
    buf_v6: Vec<u8>,
}

fn lsd_error(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let context = context.into();
    move |io| Error::Lsd { context, io }
}

impl Lsd {
    /// Opens the sockets and joins the groups. Fails if IPv4 is asked for
    /// and cannot be set up, or if neither family could be.
    pub fn bind(config: Config) -> Result<Lsd, Error> {
        let v4 = match config.interface_v4 {
            Some(iface) => Some(bind_v4(iface, config.group_port)?),
            None => None,
        };
        let v6 = match config.interface_v6 {
            Some(index) => match bind_v6(index, config.group_port) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::info!("local service discovery: IPv6 off: {e}");
                    None
                }
            },
            None => None,
        };
        if v4.is_none() && v6.is_none() {
            return Err(Error::Lsd {
                context: "no address family to announce on".into(),
                io: std::io::Error::new(
                    std::io::ErrorKind::AddrNotAvailable,
                    "IPv4 is off and IPv6 could not be set up",
                ),
            });
        }
        let cookie = format!("{:016x}", crate::tracker::random_u64());
        Ok(Lsd {
            config,
            v4,
            v6,
            cookie,
            infohashes: Vec::new(),
            next_announce: Instant::now(),
            pending: VecDeque::new(),
            buf_v4: vec![0u8; lsd::MAX_MESSAGE + 1],
            buf_v6: vec![0u8; lsd::MAX_MESSAGE + 1],
        })
    }

    /// The cookie our announces carry.
    pub fn cookie(&self) -> &str {
        &self.cookie
    }

    /// Whether the IPv4 and IPv6 sockets are up.
    pub fn families(&self) -> (bool, bool) {
        (self.v4.is_some(), self.v6.is_some())
    }

    /// Replaces the infohashes announced (and listened for), and announces
    /// them at the next call to [`Self::next`].
    pub fn set_infohashes(&mut self, infohashes: impl IntoIterator<Item = Sha1>) {
        self.infohashes = infohashes.into_iter().collect();
        self.infohashes.sort_unstable();
        self.infohashes.dedup();
        self.next_announce = Instant::now();
    }

    /// Announces when due and waits for the next peer heard from someone
    /// else. Cancel-safe: dropping the future loses no heard peer.
    pub async fn next(&mut self) -> Result<Peer, Error> {
        loop {
            if let Some(peer) = self.pending.pop_front() {
                return Ok(peer);
            }
            if Instant::now() >= self.next_announce {
                self.announce().await;
                // Never spin, whatever the configuration says.
                self.next_announce =
                    Instant::now() + self.config.interval.max(Duration::from_millis(50));
            }
            let Lsd {
                v4,
                v6,
                buf_v4,
                buf_v6,
                next_announce,
                ..
            } = self;
            let received = tokio::select! {
                r = recv(v4.as_ref(), buf_v4) => r.map(|(n, from)| (n, from, false)),
                r = recv(v6.as_ref(), buf_v6) => r.map(|(n, from)| (n, from, true)),
                () = tokio::time::sleep_until(*next_announce) => continue,
            };
            let (n, from, is_v6) =
                received.map_err(lsd_error("cannot receive on the multicast group"))?;
            let slot = if is_v6 {
                &mut self.buf_v6
            } else {
                &mut self.buf_v4
            };
            let buf = std::mem::take(slot);
            self.heard(&buf[..n.min(buf.len())], from);
            *(if is_v6 {
                &mut self.buf_v6
            } else {
                &mut self.buf_v4
            }) = buf;
        }
    }

    /// Runs [`Self::next`] until `peers` is closed (`Ok`) or receiving
    /// fails, handing every heard peer to `peers`; when the channel is full
    /// the peer is dropped (it announces again next interval). For drivers
    /// that take peers from a channel rather than polling `next` themselves.
    pub async fn forward(mut self, peers: tokio::sync::mpsc::Sender<Peer>) -> Result<(), Error> {
        use tokio::sync::mpsc::error::TrySendError;
        loop {
            tokio::select! {
                () = peers.closed() => return Ok(()),
                heard = self.next() => match peers.try_send(heard?) {
                    Ok(()) | Err(TrySendError::Full(_)) => {}
                    Err(TrySendError::Closed(_)) => return Ok(()),
                },
            }
        }
    }

    fn heard(&mut self, datagram: &[u8], from: SocketAddr) {
        let message = match lsd::parse(datagram) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!("local service discovery: ignoring a message from {from}: {e}");
                return;
            }
        };
        if message.cookie.as_deref() == Some(self.cookie.as_str()) {
            return;
        }
        let addr = SocketAddr::new(unmapped(from.ip()), message.port);
        let addr = match (addr, from) {
            (SocketAddr::V6(a), SocketAddr::V6(f)) => {
                SocketAddr::V6(SocketAddrV6::new(*a.ip(), a.port(), 0, f.scope_id()))
            }
            (a, _) => a,
        };
        for info_hash in message.infohashes {
            if self.infohashes.binary_search(&info_hash).is_ok() && self.pending.len() < MAX_PENDING
            {
                self.pending.push_back(Peer { info_hash, addr });
            }
        }
    }

    /// Sends our announces on every family. A failed send (interface down,
    /// no route) is logged, not fatal: LSD retries at the next interval.
    async fn announce(&mut self) {
        let port = self.config.peer_port;
        let group_port = self.config.group_port;
        for (socket, ipv6) in [(&self.v4, false), (&self.v6, true)] {
            let Some(socket) = socket else { continue };
            let messages = match lsd::build(ipv6, port, Some(&self.cookie), &self.infohashes) {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!("local service discovery: cannot build an announce: {e}");
                    return;
                }
            };
            let group: SocketAddr = if ipv6 {
                (lsd::GROUP_V6, group_port).into()
            } else {
                (lsd::GROUP_V4, group_port).into()
            };
            for m in messages {
                if let Err(e) = socket.send_to(&m, group).await {
                    tracing::warn!("local service discovery: cannot announce to {group}: {e}");
                    break;
                }
            }
        }
    }
}

fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

async fn recv(socket: Option<&UdpSocket>, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
    match socket {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

fn bind_v4(iface: Ipv4Addr, port: u16) -> Result<UdpSocket, Error> {
    let what = |s: &str| format!("IPv4 group {}:{port}: {s}", lsd::GROUP_V4);
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))
        .map_err(lsd_error(what("cannot open a socket")))?;
    socket
        .set_reuse_address(true)
        .map_err(lsd_error(what("cannot set SO_REUSEADDR")))?;
    // Bound to the group address, the socket receives only the group's
    // datagrams, not other groups' or unicast traffic to port 6771.
    socket
        .bind(&SocketAddrV4::new(lsd::GROUP_V4, port).into())
        .map_err(lsd_error(what("cannot bind")))?;
    socket
        .join_multicast_v4(&lsd::GROUP_V4, &iface)
        .map_err(lsd_error(what(&format!(
            "cannot join on interface {iface}"
        ))))?;
    if !iface.is_unspecified() {
        socket
            .set_multicast_if_v4(&iface)
            .map_err(lsd_error(what("cannot choose the interface")))?;
    }
    socket
        .set_multicast_loop_v4(true)
        .and_then(|()| socket.set_multicast_ttl_v4(1))
        .and_then(|()| socket.set_nonblocking(true))
        .map_err(lsd_error(what("cannot set socket options")))?;
    UdpSocket::from_std(socket.into()).map_err(lsd_error(what("cannot register with tokio")))
}

fn bind_v6(index: u32, port: u16) -> Result<UdpSocket, Error> {
    let what = |s: &str| format!("IPv6 group [{}]:{port}: {s}", lsd::GROUP_V6);
    let socket = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))
        .map_err(lsd_error(what("cannot open a socket")))?;
    socket
        .set_only_v6(true)
        .and_then(|()| socket.set_reuse_address(true))
        .map_err(lsd_error(what("cannot set socket options")))?;
    socket
        .bind(&SocketAddrV6::new(lsd::GROUP_V6, port, 0, 0).into())
        .or_else(|_| socket.bind(&SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, port, 0, 0).into()))
        .map_err(lsd_error(what("cannot bind")))?;
    socket
        .join_multicast_v6(&lsd::GROUP_V6, index)
        .map_err(lsd_error(what(&format!(
            "cannot join on interface {index}"
        ))))?;
    if index != 0 {
        socket
            .set_multicast_if_v6(index)
            .map_err(lsd_error(what("cannot choose the interface")))?;
    }
    socket
        .set_multicast_loop_v6(true)
        .and_then(|()| socket.set_multicast_hops_v6(1))
        .and_then(|()| socket.set_nonblocking(true))
        .map_err(lsd_error(what("cannot set socket options")))?;
    UdpSocket::from_std(socket.into()).map_err(lsd_error(what("cannot register with tokio")))
}
