//! Which board the node runs on.
//!
//! The device tree names ARM boards (the kernel exposes the root node's
//! `model` under /proc/device-tree and /sys/firmware/devicetree/base); x86
//! boards are named by their firmware through DMI. Only what decides a
//! default is looked at: the board's name picks whether the hardware
//! watchdog is used by default and is shown by `swarmsync leds show`.
//! Every path is taken below a root so tests can use a temporary tree.

use std::fmt;
use std::path::Path;

/// Files that may hold the device-tree model, below the root.
const DT_MODEL: [&str; 2] = [
    "proc/device-tree/model",
    "sys/firmware/devicetree/base/model",
];
/// Files that may hold a DMI board or product name, below the root.
const DMI_NAMES: [&str; 2] = [
    "sys/class/dmi/id/board_name",
    "sys/class/dmi/id/product_name",
];
/// Model files are a line or two; anything longer is not one.
const MAX_MODEL_LEN: u64 = 4096;

/// A board swarmsync knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Board {
    /// BeagleBone Black (AM335x): four user LEDs in the LED class.
    BeagleBoneBlack,
    /// MinnowBoard (x86_64): LEDs through GPIO lines.
    MinnowBoard,
    /// Anything else.
    Generic,
}

impl Board {
    /// Detects the board from the files below `root` (`/` on a real system).
    /// Unreadable or missing files mean "not this board", never an error.
    pub fn detect(root: &Path) -> Board {
        for file in DT_MODEL {
            if let Some(model) = read_small(&root.join(file))
                && model.contains("BeagleBone Black")
            {
                return Board::BeagleBoneBlack;
            }
        }
        for file in DMI_NAMES {
            if let Some(name) = read_small(&root.join(file))
                && name.to_ascii_lowercase().contains("minnowboard")
            {
                return Board::MinnowBoard;
            }
        }
        Board::Generic
    }

    /// Whether the board has a hardware watchdog worth arming by default.
    pub fn has_watchdog(self) -> bool {
        !matches!(self, Board::Generic)
    }

    /// `BeagleBone Black`, `MinnowBoard`, `generic`.
    pub fn name(self) -> &'static str {
        match self {
            Board::BeagleBoneBlack => "BeagleBone Black",
            Board::MinnowBoard => "MinnowBoard",
            Board::Generic => "generic",
        }
    }
}

impl fmt::Display for Board {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The file's text if it exists and is small, with the device tree's
/// trailing NUL and whitespace removed.
pub(crate) fn read_small(path: &Path) -> Option<String> {
    use std::io::Read;
    let file = std::fs::File::open(path).ok()?;
    let mut bytes = Vec::new();
    file.take(MAX_MODEL_LEN).read_to_end(&mut bytes).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    Some(text.trim_end_matches(['\0', '\n', ' ']).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &[u8])]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        for (path, content) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, content).expect("write");
        }
        dir
    }

    #[test]
    fn beaglebone_black_by_device_tree() {
        let root = tree(&[("proc/device-tree/model", b"TI AM335x BeagleBone Black\0")]);
        assert_eq!(Board::detect(root.path()), Board::BeagleBoneBlack);
        let root = tree(&[(
            "sys/firmware/devicetree/base/model",
            b"TI AM335x BeagleBone Black\0",
        )]);
        assert_eq!(Board::detect(root.path()), Board::BeagleBoneBlack);
    }

    #[test]
    fn other_device_tree_is_generic() {
        let root = tree(&[("proc/device-tree/model", b"linux,dummy-virt\0")]);
        assert_eq!(Board::detect(root.path()), Board::Generic);
    }

    #[test]
    fn minnowboard_by_dmi() {
        let root = tree(&[("sys/class/dmi/id/board_name", b"MinnowBoard MAX\n")]);
        assert_eq!(Board::detect(root.path()), Board::MinnowBoard);
        let root = tree(&[
            ("sys/class/dmi/id/board_name", b"Standard PC\n"),
            (
                "sys/class/dmi/id/product_name",
                b"Minnowboard Turbot D0 PLATFORM\n",
            ),
        ]);
        assert_eq!(Board::detect(root.path()), Board::MinnowBoard);
    }

    #[test]
    fn empty_root_is_generic() {
        let root = tree(&[]);
        assert_eq!(Board::detect(root.path()), Board::Generic);
        assert!(!Board::Generic.has_watchdog());
    }
}
