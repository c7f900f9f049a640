//! The on-disk store (work in progress).
#![forbid(unsafe_code)]
