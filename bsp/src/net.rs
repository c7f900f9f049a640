//! Whether the node has a network link, read from /sys/class/net.
//!
//! "Link" is what a person checks first when USR1 is dark: a cable in a
//! live switch port. So any interface but loopback whose operational state
//! is `up` counts; `unknown` (drivers that do not report it, such as some
//! virtual ones) counts when the interface has carrier. Addresses and routes
//! are not looked at: peers and feeds tell whether the network is useful.

use std::path::Path;

use crate::board::read_small;

/// More interfaces than this are not looked at (a bound, not a real limit).
const MAX_INTERFACES: usize = 256;

/// Whether any non-loopback interface below `root` (`/` on a real system)
/// has a link. Unreadable files mean "no link".
pub fn link_up(root: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(root.join("sys/class/net")) else {
        return false;
    };
    entries.flatten().take(MAX_INTERFACES).any(|entry| {
        if entry.file_name() == "lo" {
            return false;
        }
        let dir = entry.path();
        match read_small(&dir.join("operstate")).as_deref() {
            Some("up") => true,
            Some("unknown") => read_small(&dir.join("carrier")).as_deref() == Some("1"),
            _ => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(root: &Path, name: &str, operstate: &str, carrier: Option<&str>) {
        let dir = root.join("sys/class/net").join(name);
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("operstate"), format!("{operstate}\n")).expect("write");
        if let Some(c) = carrier {
            std::fs::write(dir.join("carrier"), format!("{c}\n")).expect("write");
        }
    }

    #[test]
    fn loopback_alone_is_no_link() {
        let root = tempfile::tempdir().expect("tempdir");
        assert!(!link_up(root.path()));
        iface(root.path(), "lo", "unknown", Some("1"));
        assert!(!link_up(root.path()));
    }

    #[test]
    fn an_interface_up_is_a_link() {
        let root = tempfile::tempdir().expect("tempdir");
        iface(root.path(), "lo", "unknown", Some("1"));
        iface(root.path(), "eth0", "down", None);
        assert!(!link_up(root.path()));
        iface(root.path(), "wlan0", "unknown", Some("0"));
        assert!(!link_up(root.path()));
        iface(root.path(), "tun0", "unknown", Some("1"));
        assert!(link_up(root.path()));
        iface(root.path(), "tun0", "down", None);
        iface(root.path(), "eth0", "up", Some("1"));
        assert!(link_up(root.path()));
    }
}
