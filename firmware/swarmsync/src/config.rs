//! `swarmsync.toml`, the node's only configuration.
//!
//! On the images the file sits on the FAT boot partition and is edited on
//! whatever PC the card was plugged into, so every mistake must come back
//! as one line naming the table and key, and unknown keys are errors
//! (a typo silently ignored is a mirror silently misconfigured).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

/// Largest config file read (it is hand-written text).
const MAX_CONFIG: u64 = 1 << 20;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub node: Node,
    #[serde(default, rename = "channel")]
    pub channels: Vec<Channel>,
    #[serde(default)]
    pub network: Network,
    /// The `[leds]` table (board support; see docs/leds.md).
    #[serde(default)]
    pub leds: bsp::config::Leds,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    pub data_dir: PathBuf,
    #[serde(default = "default_peer_listen")]
    pub peer_listen: SocketAddr,
    #[serde(default = "default_http_listen")]
    pub http_listen: SocketAddr,
    /// Bytes the store may use, e.g. "1.6GiB"; "off" for no limit.
    #[serde(default)]
    pub disk_budget: Option<String>,
    /// How often each channel's feeds are polled, e.g. "60s".
    #[serde(default)]
    pub poll_interval: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Channel {
    pub name: String,
    pub public_key: String,
    #[serde(default)]
    pub feeds: Vec<String>,
    /// URL prefix on the node's HTTP server; default `/<name>`.
    #[serde(default)]
    pub mount: Option<String>,
    /// What to keep of the tree; default everything.
    #[serde(default)]
    pub subset: Option<repo::Subset>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    #[serde(default = "yes")]
    pub lsd: bool,
    #[serde(default)]
    pub dht: bool,
    /// "host:port" nodes the DHT joins through; empty: the public routers.
    #[serde(default)]
    pub dht_bootstrap: Vec<String>,
    #[serde(default)]
    pub trackers: Vec<String>,
    /// Static peers, "host:port".
    #[serde(default)]
    pub peers: Vec<String>,
    #[serde(default)]
    pub upload_limit: Option<String>,
    #[serde(default)]
    pub download_limit: Option<String>,
}

impl Default for Network {
    fn default() -> Self {
        Network {
            lsd: true,
            dht: false,
            dht_bootstrap: Vec::new(),
            trackers: Vec::new(),
            peers: Vec::new(),
            upload_limit: None,
            download_limit: None,
        }
    }
}

fn yes() -> bool {
    true
}

fn default_peer_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 6881))
}

fn default_http_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 80))
}

impl Config {
    pub fn load(path: &Path) -> Result<Config> {
        let len = std::fs::metadata(path)
            .with_context(|| format!("cannot read config {}", path.display()))?
            .len();
        if len > MAX_CONFIG {
            bail!(
                "config {} is {len} bytes; the limit is {MAX_CONFIG}",
                path.display()
            );
        }
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config {}", path.display()))?;
        Config::parse(&text).with_context(|| format!("bad config {}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Config> {
        let mut c: Config = toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut seen = std::collections::HashSet::new();
        for ch in &mut c.channels {
            if !channel::valid_channel_name(&ch.name) {
                bail!(
                    "[[channel]] name {:?}: use up to 64 letters, digits, '-', '_' and '.'",
                    ch.name
                );
            }
            if !seen.insert(ch.name.clone()) {
                bail!("[[channel]] name {:?} appears twice", ch.name);
            }
            ch.public_key
                .parse::<channel::PublicKey>()
                .map_err(|e| anyhow::anyhow!("channel {:?} public_key: {e}", ch.name))?;
            let mount = ch.mount.clone().unwrap_or_else(|| format!("/{}", ch.name));
            if !mount.starts_with('/') || mount.starts_with("/-") || mount.ends_with('/') {
                bail!(
                    "channel {:?} mount {mount:?}: use a path like \"/debian\" (not under /-)",
                    ch.name
                );
            }
            ch.mount = Some(mount);
            for f in &ch.feeds {
                if !(f.starts_with("http://") || f.starts_with("https://")) {
                    bail!("channel {:?} feeds: {f:?} is not an http(s) URL", ch.name);
                }
            }
        }
        c.leds
            .validate()
            .map_err(|e| anyhow::anyhow!("[leds] {e}"))?;
        c.disk_budget()?;
        c.poll_interval()?;
        for p in &c.network.peers {
            if !p.contains(':') {
                bail!("[network] peers: {p:?} is not host:port");
            }
        }
        for p in &c.network.dht_bootstrap {
            if !p.contains(':') {
                bail!("[network] dht_bootstrap: {p:?} is not host:port");
            }
        }
        for (what, v) in [
            ("upload_limit", &c.network.upload_limit),
            ("download_limit", &c.network.download_limit),
        ] {
            if let Some(v) = v
                && swarm::rate::parse_rate(v).is_none()
            {
                bail!("[network] {what}: {v:?} is not a rate such as \"2MiB/s\" or \"off\"");
            }
        }
        Ok(c)
    }

    /// The store budget in bytes, if any.
    pub fn disk_budget(&self) -> Result<Option<u64>> {
        match &self.node.disk_budget {
            None => Ok(None),
            Some(s) => match swarm::rate::parse_rate(s) {
                Some(v) => Ok(v),
                None => bail!("[node] disk_budget: {s:?} is not a size such as \"1.6GiB\""),
            },
        }
    }

    pub fn poll_interval(&self) -> Result<Duration> {
        match &self.node.poll_interval {
            None => Ok(Duration::from_secs(60)),
            Some(s) => {
                let d =
                    parse_duration(s).with_context(|| format!("[node] poll_interval: {s:?}"))?;
                if d < Duration::from_millis(200) {
                    bail!("[node] poll_interval: {s:?} is below 200ms");
                }
                Ok(d)
            }
        }
    }
}

/// "90d", "12h", "10m", "30s", "500ms".
pub fn parse_duration(s: &str) -> Result<Duration> {
    humantime::parse_duration(s.trim())
        .map_err(|e| anyhow::anyhow!("{e} (use e.g. 30s, 10m, 12h, 90d)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29";

    #[test]
    fn reads_the_design_example() {
        let text = format!(
            r#"
[node]
data_dir = "/data"
peer_listen = "0.0.0.0:6881"
http_listen = "0.0.0.0:80"
disk_budget = "1.6GiB"

[[channel]]
name = "debian-bookworm"
public_key = "{KEY}"
feeds = ["https://mirror.example.org/-/releases/debian-bookworm"]
mount = "/debian"
[channel.subset]
kind = "apt"
suites = ["bookworm", "bookworm-updates"]
components = ["main"]
architectures = ["armhf"]
packages = ["*"]

[network]
lsd = true
dht = false
trackers = []
peers = []
upload_limit = "off"
[leds]
backend = "auto"
led_class_dir = "/sys/class/leds"
"#
        );
        let c = Config::parse(&text).expect("parse");
        assert_eq!(c.channels.len(), 1);
        assert_eq!(c.channels[0].mount.as_deref(), Some("/debian"));
        assert_eq!(c.disk_budget().expect("budget"), Some(1_717_986_918));
        assert!(c.channels[0].subset.is_some());
        assert_eq!(c.leds.led_class_dir, PathBuf::from("/sys/class/leds"));
    }

    #[test]
    fn names_what_is_wrong() {
        let base = format!(
            "[node]\ndata_dir = \"/d\"\n[[channel]]\nname = \"c\"\npublic_key = \"{KEY}\"\n"
        );
        let err = |extra: &str| {
            format!(
                "{:#}",
                Config::parse(&format!("{base}{extra}")).expect_err(extra)
            )
        };
        assert!(err("mount = \"debian\"\n").contains("mount"));
        assert!(err("feeds = [\"ftp://x\"]\n").contains("feeds"));
        assert!(err("colour = 1\n").contains("colour"));
        assert!(err("[network]\npeers = [\"nohost\"]\n").contains("peers"));
        assert!(err("[network]\ndht_bootstrap = [\"nohost\"]\n").contains("dht_bootstrap"));
        let bad_key = Config::parse(
            "[node]\ndata_dir = \"/d\"\n[[channel]]\nname = \"c\"\npublic_key = \"zz\"\n",
        )
        .expect_err("key");
        assert!(format!("{bad_key:#}").contains("public_key"));
        let c = Config::parse(&base).expect("defaults");
        assert_eq!(c.channels[0].mount.as_deref(), Some("/c"));
        assert!(c.network.lsd);
        assert!(!c.network.dht);
        assert!(c.network.dht_bootstrap.is_empty());
        let c = Config::parse(&format!(
            "{base}[network]\ndht = true\ndht_bootstrap = [\"10.0.0.1:6881\"]\n"
        ))
        .expect("dht_bootstrap");
        assert_eq!(c.network.dht_bootstrap, ["10.0.0.1:6881"]);
    }
}
