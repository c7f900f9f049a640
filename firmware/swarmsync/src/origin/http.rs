//! The origin's answers under `/-/`: the release feed and the torrents.
//!
//! Both are read from the state directory on each request, so a release
//! written by `publish --once` in another process is served at once.

use std::path::Path;

use serve::{Special, SpecialResponse};

use super::ChannelDir;

/// Largest torrent served (a 20,000-file tree is about 2 MiB).
const MAX_TORRENT: u64 = 64 << 20;

pub struct Feed {
    pub channel: ChannelDir,
}

impl Special for Feed {
    fn get(&self, path: &str) -> Option<SpecialResponse> {
        let name = &self.channel.channel;
        if path == format!("releases/{name}") {
            let bytes = read_small(&self.channel.release(), 1 << 16)?;
            return Some(
                SpecialResponse::ok("application/x-bittorrent-release", bytes)
                    .with_cache_control("no-cache"),
            );
        }
        let rest = path
            .strip_prefix("torrents/")?
            .strip_prefix(name.as_str())?;
        let seq: u64 = rest
            .strip_prefix('/')?
            .strip_suffix(".torrent")?
            .parse()
            .ok()?;
        let bytes = read_small(&self.channel.torrent(seq), MAX_TORRENT)?;
        Some(
            SpecialResponse::ok("application/x-bittorrent", bytes)
                .with_cache_control("max-age=31536000, immutable"),
        )
    }
}

fn read_small(path: &Path, limit: u64) -> Option<Vec<u8>> {
    let len = std::fs::metadata(path).ok()?.len();
    if len > limit {
        return None;
    }
    std::fs::read(path).ok()
}
