//! Signed update channels: keys, releases, acceptance rules, feeds.
