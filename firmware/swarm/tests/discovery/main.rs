//! Finding peers for real: announces to Debian's opentracker over HTTP and
//! UDP, misbehaving fake trackers on loopback, and local service discovery
//! between two network namespaces made by the test.
//!
//! Every socket is on 127.0.0.1 or inside namespaces this binary creates
//! and deletes; every wait is bounded.

mod https;
mod lsd;
mod opentracker;
mod tracker_faults;
