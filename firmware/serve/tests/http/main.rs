//! Cross-process tests of the LAN HTTP server: a real server on
//! 127.0.0.1:0 in its own thread and runtime, and clients that are raw TCP
//! sockets (so nothing normalises the hostile requests) or real programs
//! (curl, wget, apt-get). Network: loopback only. Tools come from
//! tools/setup.

mod apt;
mod byhash;
mod cache;
mod clients;
mod dnf;
mod hostile;
mod limits;
mod semantics;
mod special;
mod status;
mod sticky;
mod util;
