//! Keys and delegations, and the files they live in.
//!
//! A secret key file is text: a comment line naming the public key and one
//! line with the 32-byte ed25519 seed in hex. Text because operators copy
//! keys between machines and look at them; the comment lets them tell keys
//! apart without a tool. It is created with mode 0600, never overwritten,
//! and fsynced with its directory, since losing a freshly generated root key
//! to a power cut after its public half was handed out would strand every
//! node configured with it.
//!
//! A delegation file holds the same bencoded dictionary that travels inside
//! every release signed with the delegated key, so the origin copies it
//! verbatim.

use std::ffi::OsString;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use bt_bencode::{ByteString, Value};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};

use crate::release::{Fields, RELEASE_DOMAIN, put_bytes, put_int, put_str, valid_channel_name};
use crate::{Error, Policy, Rejection, Release, accept, hex};

/// What a delegation signature covers, before root, key, expiry, channel.
const DELEGATION_DOMAIN: &[u8] = b"swarmsync delegation v1\0";
/// The delegation channel that allows every channel of the root key.
pub(crate) const ANY_CHANNEL: &str = "*";
/// Key and delegation files are tiny; anything bigger is not one.
const MAX_FILE: u64 = 4096;

/// An ed25519 public key: what nodes configure (`public_key = "<hex>"`).
/// Displays and parses as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct PublicKey(pub [u8; 32]);

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(&self.0))
    }
}

impl FromStr for PublicKey {
    type Err = Error;

    /// 64 hex digits (either case) that encode a valid ed25519 point.
    fn from_str(s: &str) -> Result<PublicKey, Error> {
        let bytes = hex::decode::<32>(s.trim()).ok_or_else(|| Error::PublicKey {
            text: s.to_owned(),
            problem: "expected 64 hex digits",
        })?;
        VerifyingKey::from_bytes(&bytes).map_err(|_| Error::PublicKey {
            text: s.to_owned(),
            problem: "not a valid ed25519 public key",
        })?;
        Ok(PublicKey(bytes))
    }
}

impl PublicKey {
    /// Whether `sig` is this key's strict ed25519 signature of `msg`
    /// (small-order keys and non-canonical signatures are refused).
    pub(crate) fn verifies(&self, msg: &[u8], sig: &[u8; 64]) -> bool {
        VerifyingKey::from_bytes(&self.0)
            .is_ok_and(|k| k.verify_strict(msg, &Signature::from_bytes(sig)).is_ok())
    }
}

/// An ed25519 signing key. Its bytes are wiped from memory on drop and never
/// printed (`Debug` shows the public key only).
pub struct SecretKey(SigningKey);

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(public {})", self.public())
    }
}

impl SecretKey {
    /// A new key from the operating system's random source.
    ///
    /// # Panics
    /// If the operating system has no working random source; use
    /// [`SecretKey::try_generate`] to get an error instead.
    pub fn generate() -> SecretKey {
        match SecretKey::try_generate() {
            Ok(key) => key,
            Err(e) => panic!("{e}"),
        }
    }

    /// A new key from the operating system's random source.
    pub fn try_generate() -> Result<SecretKey, Error> {
        use ring::rand::SecureRandom;
        let mut seed = [0u8; 32];
        ring::rand::SystemRandom::new()
            .fill(&mut seed)
            .map_err(|_| Error::Random)?;
        let key = SecretKey(SigningKey::from_bytes(&seed));
        seed.fill(0);
        Ok(key)
    }

    /// The key whose seed is `seed` (tests and fixed fixtures).
    pub fn from_seed(seed: [u8; 32]) -> SecretKey {
        SecretKey(SigningKey::from_bytes(&seed))
    }

    /// Reads a key file written by [`SecretKey::write_new`].
    pub fn read_file(path: &Path) -> Result<SecretKey, Error> {
        let text = read_small(path, "cannot read key file")?;
        let bad = |problem: &str| Error::KeyFile {
            path: path.to_owned(),
            problem: problem.to_owned(),
        };
        let text = std::str::from_utf8(&text).map_err(|_| bad("not a text file"))?;
        let mut lines = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'));
        let line = lines.next().ok_or_else(|| bad("no key in the file"))?;
        if lines.next().is_some() {
            return Err(bad("more than one line of key data"));
        }
        let seed = hex::decode::<32>(line).ok_or_else(|| {
            bad("not a secret key: expected one line of 64 hex digits (made by `swarmsync keygen`)")
        })?;
        Ok(SecretKey::from_seed(seed))
    }

    /// Writes the key to a new file with mode 0600 and fsyncs it and its
    /// directory. Refuses to overwrite an existing file.
    pub fn write_new(&self, path: &Path) -> Result<(), Error> {
        let text = format!(
            "# swarmsync secret key (ed25519); keep it secret. Public key: {}\n{}\n",
            self.public(),
            hex::encode(self.0.as_bytes())
        );
        let io = |action, source| Error::Io {
            action,
            path: path.to_owned(),
            source,
        };
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => Error::Exists {
                    path: path.to_owned(),
                },
                _ => io("cannot create key file", e),
            })?;
        if let Err(e) = file
            .write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
        {
            // A half-written key would block the next attempt ("already
            // exists") and hold nothing usable: remove it.
            drop(file);
            let _ = std::fs::remove_file(path);
            return Err(io("cannot write key file", e));
        }
        sync_parent(path)
    }

    /// The raw 32-byte seed, for other ed25519 users of the same key (the
    /// DHT's BEP 44 `put_mutable` takes a seed). Treat it as the secret it is.
    pub fn seed(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key().to_bytes())
    }

    fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.0.sign(msg).to_bytes()
    }
}

/// Reads at most [`MAX_FILE`] bytes of `path`; more is an error.
fn read_small(path: &Path, action: &'static str) -> Result<Vec<u8>, Error> {
    let io = |source| Error::Io {
        action,
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let mut buf = Vec::new();
    file.take(MAX_FILE + 1).read_to_end(&mut buf).map_err(io)?;
    if buf.len() as u64 > MAX_FILE {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {MAX_FILE} bytes, not a key or delegation file"),
        )));
    }
    Ok(buf)
}

/// fsyncs the directory holding `path`, so a new name survives a power cut.
fn sync_parent(path: &Path) -> Result<(), Error> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(parent)
        .and_then(|d| d.sync_all())
        .map_err(|source| Error::Io {
            action: "cannot sync directory",
            path: parent.to_owned(),
            source,
        })
}

/// A root key's statement "`key` may sign releases of `channel` (or of
/// every channel, `*`) until `expires`".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delegation {
    root: PublicKey,
    key: PublicKey,
    expires: u64,
    channel: String,
    sig: [u8; 64],
}

impl Delegation {
    /// `root` delegates every channel to `signing` until `expires` (Unix s).
    pub fn issue(root: &SecretKey, signing: &PublicKey, expires: u64) -> Delegation {
        Delegation::issue_for(root, signing, expires, ANY_CHANNEL)
    }

    /// `root` delegates one channel (or `*`) to `signing` until `expires`.
    pub fn issue_for(
        root: &SecretKey,
        signing: &PublicKey,
        expires: u64,
        channel: &str,
    ) -> Delegation {
        let root_public = root.public();
        let msg = delegation_message(&root_public, signing, expires, channel);
        Delegation {
            root: root_public,
            key: *signing,
            expires,
            channel: channel.to_owned(),
            sig: root.sign(&msg),
        }
    }

    /// The delegating (root) key: the one nodes configure.
    pub fn root(&self) -> PublicKey {
        self.root
    }

    /// The delegated (online) key.
    pub fn key(&self) -> PublicKey {
        self.key
    }

    /// Unix seconds after which the delegation is refused.
    pub fn expires(&self) -> u64 {
        self.expires
    }

    /// The channel it is valid for, or `*` for all.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// Whether the delegation covers `channel`.
    pub fn covers(&self, channel: &str) -> bool {
        self.channel == ANY_CHANNEL || self.channel == channel
    }

    /// Whether the root's signature is valid.
    pub fn signature_valid(&self) -> bool {
        let msg = delegation_message(&self.root, &self.key, self.expires, &self.channel);
        self.root.verifies(&msg, &self.sig)
    }

    /// The canonical bencoded dictionary (the file's content, and the
    /// `delegation` value inside a signed release).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(200);
        out.push(b'd');
        put_str(&mut out, "channel", self.channel.as_bytes());
        put_int(&mut out, "expires", self.expires);
        put_str(&mut out, "key", &self.key.0);
        put_str(&mut out, "root", &self.root.0);
        put_str(&mut out, "sig", &self.sig);
        out.push(b'e');
        out
    }

    /// Parses a delegation dictionary (structure only; the signature is
    /// checked by the caller).
    pub(crate) fn from_dict(
        dict: &std::collections::BTreeMap<ByteString, Value>,
    ) -> Result<Delegation, Rejection> {
        let f = Fields::new(dict, "delegation.");
        let channel = f.string("channel", crate::MAX_CHANNEL_LEN)?;
        if channel != ANY_CHANNEL && !valid_channel_name(&channel) {
            return Err(f.bad("channel", "neither a channel name nor \"*\""));
        }
        Ok(Delegation {
            root: PublicKey(f.bytes::<32>("root")?),
            key: PublicKey(f.bytes::<32>("key")?),
            expires: f.u64("expires")?,
            channel,
            sig: f.bytes::<64>("sig")?,
        })
    }

    /// Reads and checks (structure and signature) a delegation file.
    pub fn read_file(path: &Path) -> Result<Delegation, Error> {
        let bytes = read_small(path, "cannot read delegation")?;
        let bad = |problem: String| Error::Delegation {
            path: path.to_owned(),
            problem,
        };
        let limits = torrent::bencode::Limits {
            max_size: MAX_FILE as usize,
            max_depth: 2,
            max_items: 32,
        };
        torrent::bencode::validate(&bytes, &limits).map_err(|e| bad(e.to_string()))?;
        let value: Value =
            bt_bencode::from_slice(&bytes).map_err(|e| bad(format!("not bencode: {e}")))?;
        let Value::Dict(dict) = value else {
            return Err(bad("not a bencoded dictionary".into()));
        };
        let delegation = Delegation::from_dict(&dict).map_err(|e| bad(e.to_string()))?;
        if !delegation.signature_valid() {
            return Err(bad(format!(
                "the signature of root key {} is not valid",
                delegation.root
            )));
        }
        Ok(delegation)
    }

    /// Writes the delegation to `path`, replacing it atomically (a renewed
    /// delegation for the same online key replaces the old one).
    pub fn write_file(&self, path: &Path) -> Result<(), Error> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let io = |action, path: &Path, source| Error::Io {
            action,
            path: path.to_owned(),
            source,
        };
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&tmp)
            .map_err(|e| io("cannot create delegation", &tmp, e))?;
        file.write_all(&self.to_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| io("cannot write delegation", &tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| io("cannot rename delegation into", path, e))?;
        sync_parent(path)
    }
}

fn delegation_message(root: &PublicKey, key: &PublicKey, expires: u64, channel: &str) -> Vec<u8> {
    let mut msg = Vec::with_capacity(DELEGATION_DOMAIN.len() + 72 + channel.len());
    msg.extend_from_slice(DELEGATION_DOMAIN);
    msg.extend_from_slice(&root.0);
    msg.extend_from_slice(&key.0);
    msg.extend_from_slice(&expires.to_be_bytes());
    msg.extend_from_slice(channel.as_bytes());
    msg
}

/// The origin's signing identity: a key, and the delegation that makes it
/// speak for a root key if it is not the root itself.
#[derive(Debug)]
pub struct Signer {
    key: SecretKey,
    delegation: Option<Delegation>,
}

impl Signer {
    /// Loads KEYFILE and, if present, KEYFILE + ".delegation" next to it.
    /// A delegation must name this key and carry a valid root signature.
    /// An expired one is accepted here (the release is then refused by
    /// [`Signer::sign_checked`] with a clear reason).
    pub fn load(key_file: &Path) -> Result<Signer, Error> {
        let key = SecretKey::read_file(key_file)?;
        let path = delegation_path(key_file);
        if !path.exists() {
            return Ok(Signer::new(key, None));
        }
        let delegation = Delegation::read_file(&path)?;
        if delegation.key != key.public() {
            return Err(Error::Delegation {
                path,
                problem: format!(
                    "it delegates to key {}, but {} holds key {}",
                    delegation.key,
                    key_file.display(),
                    key.public()
                ),
            });
        }
        Ok(Signer::new(key, Some(delegation)))
    }

    /// A signer from parts (tests; `load` for files).
    pub fn new(key: SecretKey, delegation: Option<Delegation>) -> Signer {
        Signer { key, delegation }
    }

    /// The key nodes configure: the ROOT key when delegated.
    pub fn public(&self) -> PublicKey {
        self.delegation
            .as_ref()
            .map_or_else(|| self.key.public(), Delegation::root)
    }

    /// The key that signs (the online key when delegated): what the DHT
    /// item of a channel is put under (see [`crate::dht`]).
    pub fn key(&self) -> &SecretKey {
        &self.key
    }

    /// The delegation in use, if any.
    pub fn delegation(&self) -> Option<&Delegation> {
        self.delegation.as_ref()
    }

    /// The signed, bencoded release bytes (what feeds serve and peers
    /// gossip). Nothing is checked: see [`Signer::sign_checked`].
    pub fn sign(&self, release: &Release) -> Vec<u8> {
        let raw = release.encode();
        let mut msg = Vec::with_capacity(RELEASE_DOMAIN.len() + raw.len());
        msg.extend_from_slice(RELEASE_DOMAIN);
        msg.extend_from_slice(&raw);
        let sig = self.key.sign(&msg);
        let mut out = Vec::with_capacity(raw.len() + 400);
        out.push(b'd');
        if let Some(d) = &self.delegation {
            put_bytes(&mut out, b"delegation");
            out.extend_from_slice(&d.to_bytes());
        }
        put_str(&mut out, "key", &self.key.public().0);
        put_bytes(&mut out, b"release");
        out.extend_from_slice(&raw);
        put_str(&mut out, "sig", &sig);
        out.push(b'e');
        out
    }

    /// Signs, then runs the node's [`accept`] on the result with the
    /// release's own `created` as the time: a release every node would
    /// refuse (too large, bad field, expired delegation, wrong delegated
    /// channel) is an error here instead of a silent publication.
    pub fn sign_checked(&self, release: &Release) -> Result<Vec<u8>, Error> {
        let bytes = self.sign(release);
        let policy = Policy {
            root: self.public(),
            channel: release.channel.clone(),
        };
        accept(&bytes, &policy, None, release.created).map_err(Error::Release)?;
        Ok(bytes)
    }
}

/// KEYFILE + ".delegation".
pub fn delegation_path(key_file: &Path) -> PathBuf {
    let mut name: OsString = key_file.as_os_str().to_owned();
    name.push(".delegation");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn public_key_text_round_trip() {
        let key = SecretKey::from_seed([7; 32]).public();
        let text = key.to_string();
        assert_eq!(text.len(), 64);
        assert_eq!(text, text.to_lowercase());
        assert_eq!(text.parse::<PublicKey>().expect("parse"), key);
        assert_eq!(
            text.to_uppercase().parse::<PublicKey>().expect("parse"),
            key
        );
        assert!("abc".parse::<PublicKey>().is_err());
        assert!("zz".repeat(32).parse::<PublicKey>().is_err());
    }

    #[test]
    fn key_file_is_0600_not_overwritten_and_reads_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("root.key");
        let key = SecretKey::generate();
        key.write_new(&path).expect("write");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let back = SecretKey::read_file(&path).expect("read");
        assert_eq!(back.public(), key.public());
        assert_eq!(SecretKey::from_seed(key.seed()).public(), key.public());
        let other = SecretKey::generate();
        assert!(matches!(other.write_new(&path), Err(Error::Exists { .. })));
        assert_eq!(
            SecretKey::read_file(&path).expect("read").public(),
            key.public(),
            "the first key is intact"
        );
        assert!(!format!("{key:?}").contains(&hex::encode(key.0.as_bytes())));
    }

    #[test]
    fn a_planted_symlink_is_not_followed() {
        // O_EXCL: a dangling symlink at the key's path counts as existing,
        // so the key is never written to wherever it points.
        let dir = tempfile::tempdir().expect("tempdir");
        let link = dir.path().join("root.key");
        let target = dir.path().join("elsewhere");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        assert!(matches!(
            SecretKey::generate().write_new(&link),
            Err(Error::Exists { .. })
        ));
        assert!(!target.exists());
    }

    #[test]
    fn bad_key_files_name_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bad.key");
        for content in [
            &b""[..],
            b"# only a comment\n",
            b"xyz\n",
            b"00\n",
            &[0xff; 10],
            &[b'a'; 5000],
        ] {
            std::fs::write(&path, content).expect("write");
            let err = SecretKey::read_file(&path)
                .expect_err("refused")
                .to_string();
            assert!(err.contains("bad.key"), "{err}");
        }
        let missing = dir.path().join("missing.key");
        let err = SecretKey::read_file(&missing)
            .expect_err("refused")
            .to_string();
        assert!(err.contains("missing.key"), "{err}");
    }

    #[test]
    fn delegation_round_trip_and_signature() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = SecretKey::from_seed([1; 32]);
        let online = SecretKey::from_seed([2; 32]);
        let d = Delegation::issue(&root, &online.public(), 2_000_000_000);
        assert!(d.signature_valid());
        assert!(d.covers("anything"));
        let path = dir.path().join("online.key.delegation");
        d.write_file(&path).expect("write");
        assert_eq!(Delegation::read_file(&path).expect("read"), d);
        // Any change to what the root signed breaks the signature.
        let mut later = d.clone();
        later.expires += 1;
        assert!(!later.signature_valid());
        later.write_file(&path).expect("write");
        let err = Delegation::read_file(&path)
            .expect_err("refused")
            .to_string();
        assert!(err.contains("signature"), "{err}");
        let one = Delegation::issue_for(&root, &online.public(), 2_000_000_000, "a");
        assert!(one.covers("a") && !one.covers("b"));
    }

    #[test]
    fn signer_loads_its_delegation_and_reports_the_root() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = SecretKey::from_seed([1; 32]);
        let online = SecretKey::from_seed([2; 32]);
        let key_file = dir.path().join("online.key");
        online.write_new(&key_file).expect("write");
        assert_eq!(
            Signer::load(&key_file).expect("load").public(),
            online.public()
        );
        Delegation::issue(&root, &online.public(), 2_000_000_000)
            .write_file(&delegation_path(&key_file))
            .expect("write");
        let signer = Signer::load(&key_file).expect("load");
        assert_eq!(signer.public(), root.public());
        // A delegation to another key is refused, naming the file.
        let stranger = SecretKey::from_seed([3; 32]);
        Delegation::issue(&root, &stranger.public(), 2_000_000_000)
            .write_file(&delegation_path(&key_file))
            .expect("write");
        let err = Signer::load(&key_file).expect_err("refused").to_string();
        assert!(err.contains("online.key.delegation"), "{err}");
    }
}
