//! The acceptance rules, all of them, in the order a node applies them.
//!
//! The order matters for what a node reports: structure first (nothing else
//! can be read without it), then who signed (a stranger's release is
//! "wrong key", not a list of complaints about its fields), then the
//! signature over the raw bytes, then the fields, then the rules that depend
//! on the node's state (channel, delegation scope and time, sequence,
//! expiry). Sequence comes before expiry so that an old release replayed
//! after its expiry is reported as the rollback it is.
//!
//! Time: nothing here reads a clock. The caller passes `now`, which on a
//! board without a real-time clock must be [`time_floor`]: the newest of the
//! system clock, the `created` of the newest valid release seen, and the
//! build time. Otherwise a board that boots in 1970 would accept any
//! expired release forever.

use crate::Release;
use crate::key::PublicKey;
use crate::release::{RELEASE_DOMAIN, parse_envelope, parse_release};

include!(concat!(env!("OUT_DIR"), "/build_time.rs"));

/// What a node trusts for one channel: the root key it was configured with
/// and the channel name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub root: PublicKey,
    pub channel: String,
}

/// Why a release was refused. [`Rejection::code`] is the short, stable form
/// for status pages and metrics; `Display` is the sentence for logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// The signed release is bigger than [`crate::MAX_SIGNED`].
    #[error("signed release is {size} bytes, over the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    /// Not well-formed, or a field is missing, of the wrong type, too long
    /// or out of range. `field` names it (`release.seq`,
    /// `delegation.expires`, or `signed release` for the whole).
    #[error("malformed release: {field}: {problem}")]
    Malformed { field: String, problem: String },
    /// Signed by (or delegated from) a key other than the one configured,
    /// or signed by a key other than the one its delegation names.
    #[error("signed by key {found}, expected key {expected}")]
    WrongKey {
        found: PublicKey,
        expected: PublicKey,
    },
    /// The root key's signature on the delegation does not verify.
    #[error("the delegation's signature by the root key is not valid")]
    DelegationBadSignature,
    /// The release signature does not verify: the bytes were changed after
    /// signing, or the signature was made by another key.
    #[error("the release signature is not valid")]
    BadSignature,
    /// A valid release of another channel of the same key.
    #[error("release is for channel {channel:?}, expected {expected:?}")]
    WrongChannel { channel: String, expected: String },
    /// The delegation only covers another channel.
    #[error("the delegation covers channel {delegated:?} only, not {channel:?}")]
    DelegationWrongChannel { delegated: String, channel: String },
    /// The delegation to the signing key has expired.
    #[error("the delegation expired at {expires} (now is {now})")]
    DelegationExpired { expires: u64, now: u64 },
    /// Older than the installed release: an attempt (or a stale mirror)
    /// to go back.
    #[error("release seq {seq} is older than the installed seq {installed}")]
    Rollback { seq: u64, installed: u64 },
    /// The same seq as the installed release: nothing new. If the bytes
    /// differ from the installed release's, the signer published two
    /// releases with one seq, which a caller holding both may report.
    #[error("release seq {seq} is already installed")]
    Replay { seq: u64 },
    /// The release's own expiry has passed: the feed is frozen or stale.
    #[error("release expired at {expires} (now is {now})")]
    Expired { expires: u64, now: u64 },
}

impl Rejection {
    /// A short, stable code for status pages and metrics labels.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::TooLarge { .. } => "too_large",
            Rejection::Malformed { .. } => "malformed",
            Rejection::WrongKey { .. } => "wrong_key",
            Rejection::DelegationBadSignature => "delegation_bad_signature",
            Rejection::BadSignature => "bad_signature",
            Rejection::WrongChannel { .. } => "wrong_channel",
            Rejection::DelegationWrongChannel { .. } => "delegation_wrong_channel",
            Rejection::DelegationExpired { .. } => "delegation_expired",
            Rejection::Rollback { .. } => "rollback",
            Rejection::Replay { .. } => "replay",
            Rejection::Expired { .. } => "expired",
        }
    }
}

/// Every acceptance rule; `installed` = seq of the installed release;
/// `now` = the time floor ([`time_floor`]). Returns the release when it
/// may replace the installed one.
pub fn accept(
    bytes: &[u8],
    policy: &Policy,
    installed: Option<u64>,
    now: u64,
) -> Result<Release, Rejection> {
    let envelope = parse_envelope(bytes)?;
    match &envelope.delegation {
        None if envelope.key != policy.root => {
            return Err(Rejection::WrongKey {
                found: envelope.key,
                expected: policy.root,
            });
        }
        None => {}
        Some(d) => {
            if d.root() != policy.root {
                return Err(Rejection::WrongKey {
                    found: d.root(),
                    expected: policy.root,
                });
            }
            if !d.signature_valid() {
                return Err(Rejection::DelegationBadSignature);
            }
            if envelope.key != d.key() {
                return Err(Rejection::WrongKey {
                    found: envelope.key,
                    expected: d.key(),
                });
            }
        }
    }
    let mut msg = Vec::with_capacity(RELEASE_DOMAIN.len() + envelope.release_raw.len());
    msg.extend_from_slice(RELEASE_DOMAIN);
    msg.extend_from_slice(envelope.release_raw);
    if !envelope.key.verifies(&msg, &envelope.sig) {
        return Err(Rejection::BadSignature);
    }
    let release = parse_release(&envelope.release)?;
    if release.channel != policy.channel {
        return Err(Rejection::WrongChannel {
            channel: release.channel,
            expected: policy.channel.clone(),
        });
    }
    if let Some(d) = &envelope.delegation {
        if !d.covers(&release.channel) {
            return Err(Rejection::DelegationWrongChannel {
                delegated: d.channel().to_owned(),
                channel: release.channel,
            });
        }
        if now >= d.expires() {
            return Err(Rejection::DelegationExpired {
                expires: d.expires(),
                now,
            });
        }
    }
    match installed {
        Some(installed) if release.seq < installed => {
            return Err(Rejection::Rollback {
                seq: release.seq,
                installed,
            });
        }
        Some(installed) if release.seq == installed => {
            return Err(Rejection::Replay { seq: release.seq });
        }
        _ => {}
    }
    if now >= release.expires {
        return Err(Rejection::Expired {
            expires: release.expires,
            now,
        });
    }
    Ok(release)
}

/// The "now" for [`accept`]: the newest of the system clock, the `created`
/// of the newest valid release seen, and [`BUILD_TIME`]. A clock that is
/// behind can only move it forward, never back.
pub fn time_floor(system_now: u64, newest_created_seen: Option<u64>) -> u64 {
    system_now
        .max(newest_created_seen.unwrap_or(0))
        .max(BUILD_TIME)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Delegation, MAX_SIGNED, SecretKey, Signer};

    const T0: u64 = 1_900_000_000;

    fn root() -> SecretKey {
        SecretKey::from_seed([1; 32])
    }

    fn release(seq: u64) -> Release {
        Release {
            channel: "stable".into(),
            seq,
            created: T0,
            expires: T0 + 3600,
            v2: [9; 32],
            v1: Some([8; 20]),
            size: 1000,
            files: 3,
            torrents: vec!["http://origin.example/-/torrents/1.torrent".into()],
            feeds: vec!["http://origin.example/-/releases/stable".into()],
            web_seeds: vec!["http://origin.example/stable/".into()],
            peers: vec!["origin.example:6881".into()],
            trackers: vec![],
        }
    }

    fn policy() -> Policy {
        Policy {
            root: root().public(),
            channel: "stable".into(),
        }
    }

    fn signed(seq: u64) -> Vec<u8> {
        Signer::new(root(), None).sign(&release(seq))
    }

    fn delegated(channel: &str, expires: u64) -> Signer {
        let online = SecretKey::from_seed([2; 32]);
        let d = Delegation::issue_for(&root(), &online.public(), expires, channel);
        Signer::new(online, Some(d))
    }

    fn code(bytes: &[u8], installed: Option<u64>, now: u64) -> &'static str {
        match accept(bytes, &policy(), installed, now) {
            Ok(r) => panic!("accepted seq {}", r.seq),
            Err(e) => {
                assert!(!e.to_string().is_empty());
                e.code()
            }
        }
    }

    #[test]
    fn accepts_a_valid_release_and_returns_its_fields() {
        assert_eq!(accept(&signed(5), &policy(), None, T0), Ok(release(5)));
        assert_eq!(
            accept(&signed(5), &policy(), Some(4), T0 + 3599),
            Ok(release(5))
        );
        let signer = Signer::new(root(), None);
        assert_eq!(
            signer.sign_checked(&release(1)).expect("checked"),
            signed(1)
        );
    }

    #[test]
    fn rollback_and_replay() {
        assert_eq!(
            accept(&signed(3), &policy(), Some(5), T0),
            Err(Rejection::Rollback {
                seq: 3,
                installed: 5
            })
        );
        assert_eq!(
            accept(&signed(5), &policy(), Some(5), T0),
            Err(Rejection::Replay { seq: 5 })
        );
        // An old release replayed after its expiry is still a rollback.
        assert_eq!(code(&signed(3), Some(5), T0 + 10_000), "rollback");
    }

    #[test]
    fn expired() {
        assert_eq!(
            accept(&signed(5), &policy(), None, T0 + 3600),
            Err(Rejection::Expired {
                expires: T0 + 3600,
                now: T0 + 3600
            })
        );
    }

    #[test]
    fn wrong_key_and_bad_signature() {
        let stranger = Signer::new(SecretKey::from_seed([3; 32]), None).sign(&release(5));
        assert_eq!(code(&stranger, None, T0), "wrong_key");
        // Flip one byte inside the signed release (the size field's digits).
        let mut bytes = signed(5);
        let at = find(&bytes, b"4:sizei1000e") + 8;
        bytes[at] = b'2';
        assert_eq!(code(&bytes, None, T0), "bad_signature");
        // Flip one bit of the signature.
        let mut bytes = signed(5);
        let at = find(&bytes, b"3:sig64:") + 8;
        bytes[at] ^= 1;
        assert_eq!(code(&bytes, None, T0), "bad_signature");
        // A stranger's signature under the right key's name.
        let mut bytes = stranger.clone();
        let key_at = find(&bytes, b"3:key32:") + 8;
        bytes[key_at..key_at + 32].copy_from_slice(&root().public().0);
        assert_eq!(code(&bytes, None, T0), "bad_signature");
    }

    #[test]
    fn wrong_channel() {
        let other = Release {
            channel: "testing".into(),
            ..release(5)
        };
        let bytes = Signer::new(root(), None).sign(&other);
        assert_eq!(
            accept(&bytes, &policy(), None, T0),
            Err(Rejection::WrongChannel {
                channel: "testing".into(),
                expected: "stable".into()
            })
        );
    }

    #[test]
    fn delegation_rules() {
        let ok = delegated("*", T0 + 100).sign(&release(5));
        assert_eq!(accept(&ok, &policy(), None, T0), Ok(release(5)));
        let one = delegated("stable", T0 + 100).sign(&release(5));
        assert_eq!(accept(&one, &policy(), None, T0), Ok(release(5)));
        assert_eq!(
            accept(&ok, &policy(), None, T0 + 100),
            Err(Rejection::DelegationExpired {
                expires: T0 + 100,
                now: T0 + 100
            })
        );
        let other = delegated("testing", T0 + 100).sign(&release(5));
        assert_eq!(code(&other, None, T0), "delegation_wrong_channel");
        // A delegation from another root.
        let online = SecretKey::from_seed([2; 32]);
        let foreign_root = SecretKey::from_seed([4; 32]);
        let d = Delegation::issue(&foreign_root, &online.public(), T0 + 100);
        let bytes = Signer::new(online, Some(d)).sign(&release(5));
        assert_eq!(code(&bytes, None, T0), "wrong_key");
        // A delegation whose expiry was pushed out after signing.
        let mut bytes = ok.clone();
        let at = find(&bytes, format!("7:expiresi{}e", T0 + 100).as_bytes()) + 10;
        bytes[at] = b'2';
        assert_eq!(code(&bytes, None, T0), "delegation_bad_signature");
        // Release signed by the root itself but carrying a delegation to
        // another key: the delegation does not name the signer.
        let stranger_signed = {
            let stranger = SecretKey::from_seed([5; 32]);
            let d = Delegation::issue(&root(), &SecretKey::from_seed([2; 32]).public(), T0 + 100);
            Signer::new(stranger, Some(d)).sign(&release(5))
        };
        assert_eq!(code(&stranger_signed, None, T0), "wrong_key");
        // sign_checked refuses what nodes would refuse.
        let err = delegated("*", T0).sign_checked(&release(5));
        assert!(matches!(
            err,
            Err(crate::Error::Release(Rejection::DelegationExpired { .. }))
        ));
    }

    #[test]
    fn oversized_and_truncated() {
        let big = Release {
            torrents: (0..64)
                .map(|i| format!("http://h/{i}/{}", "x".repeat(1100)))
                .collect(),
            ..release(5)
        };
        let bytes = Signer::new(root(), None).sign(&big);
        assert!(bytes.len() > MAX_SIGNED);
        assert_eq!(code(&bytes, None, T0), "too_large");
        let bytes = signed(5);
        for cut in [0, 1, bytes.len() / 2, bytes.len() - 1] {
            assert_eq!(code(&bytes[..cut], None, T0), "malformed", "cut at {cut}");
        }
        let mut trailing = bytes.clone();
        trailing.push(b'x');
        assert_eq!(code(&trailing, None, T0), "malformed");
    }

    /// Builds an envelope around a hand-made release dictionary, correctly
    /// signed by the root, so each field check is reached.
    fn sign_raw(raw: &[u8]) -> Vec<u8> {
        use ed25519_dalek::Signer as _;
        let key = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
        let mut msg = RELEASE_DOMAIN.to_vec();
        msg.extend_from_slice(raw);
        let sig = key.sign(&msg).to_bytes();
        let mut out = b"d3:key32:".to_vec();
        out.extend_from_slice(&root().public().0);
        out.extend_from_slice(b"7:release");
        out.extend_from_slice(raw);
        out.extend_from_slice(b"3:sig64:");
        out.extend_from_slice(&sig);
        out.push(b'e');
        out
    }

    fn field_problem(raw: &str) -> String {
        match accept(&sign_raw(raw.as_bytes()), &policy(), None, T0) {
            Err(Rejection::Malformed { field, .. }) => field,
            other => panic!("{raw}: {other:?}"),
        }
    }

    #[test]
    fn malformed_fields_are_named() {
        let v2 = format!("2:v232:{}", "a".repeat(32));
        let base = |extra: &str| {
            format!(
                "d7:channel6:stable7:createdi{T0}e7:expiresi{}e5:filesi1e{extra}3:seqi1e4:sizei1e{v2}e",
                T0 + 10
            )
        };
        // The base is accepted, and unknown fields are ignored.
        assert!(accept(&sign_raw(base("").as_bytes()), &policy(), None, T0).is_ok());
        assert!(
            accept(
                &sign_raw(base("5:newerli1ee").as_bytes()),
                &policy(),
                None,
                T0
            )
            .is_ok()
        );
        assert_eq!(field_problem(&base("5:peersl1:xe")), "release.peers");
        assert_eq!(field_problem(&base("5:peers3:a:1")), "release.peers");
        let wrong = |from: &str, to: &str| base("").replace(from, to);
        let feeds = |list: &str| wrong("5:filesi1e", &format!("5:feeds{list}5:filesi1e"));
        assert_eq!(field_problem(&feeds("l6:ftp://e")), "release.feeds");
        let many = format!("l{}e", "8:http://h".repeat(65));
        assert_eq!(field_problem(&feeds(&many)), "release.feeds");
        assert!(
            accept(
                &sign_raw(feeds("l8:http://he").as_bytes()),
                &policy(),
                None,
                T0
            )
            .is_ok()
        );
        assert_eq!(field_problem(&wrong("3:seqi1e", "")), "release.seq");
        assert_eq!(
            field_problem(&wrong("3:seqi1e", "3:seqi-1e")),
            "release.seq"
        );
        assert_eq!(field_problem(&wrong("3:seqi1e", "3:seq1:1")), "release.seq");
        assert_eq!(
            field_problem(&wrong("6:stable", "3:a/b")),
            "release.channel"
        );
        assert_eq!(field_problem(&wrong("6:stable", "i1e")), "release.channel");
        assert_eq!(field_problem(&wrong(&v2, "2:v23:abc")), "release.v2");
        assert_eq!(field_problem(&wrong("4:sizei1e", "")), "release.size");
        let expired_before_created = wrong(&format!("i{}e", T0 + 10), &format!("i{T0}e"));
        assert_eq!(field_problem(&expired_before_created), "release.expires");
        // Unsorted keys: the same signed bytes could mean two things.
        let unsorted = wrong("5:filesi1e", "").replace("3:seqi1e", "3:seqi1e5:filesi1e");
        assert_eq!(field_problem(&unsorted), "signed release");
    }

    #[test]
    fn time_floor_takes_the_newest() {
        assert_eq!(time_floor(0, None), BUILD_TIME);
        assert_eq!(time_floor(BUILD_TIME + 5, Some(3)), BUILD_TIME + 5);
        assert_eq!(time_floor(0, Some(BUILD_TIME + 9)), BUILD_TIME + 9);
        assert!(time_floor(0, None) > 1_700_000_000, "{BUILD_TIME}");
    }

    /// Random mutations of valid signed bytes: never a panic, and never an
    /// accepted release that differs from the signed one. (Few rounds: an
    /// unoptimised signature check is slow; the `release` fuzz target goes
    /// further.)
    #[test]
    fn random_mutations_never_panic_or_pass() {
        let inputs = [
            signed(5),
            delegated("*", T0 + 100).sign(&release(6)),
            gossip_payload(),
        ];
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for round in 0..4_000 {
            let mut bytes = inputs[round % inputs.len()].clone();
            for _ in 0..=(next() % 4) {
                let len = bytes.len().max(1);
                let at = (next() as usize) % len;
                match next() % 5 {
                    0 if !bytes.is_empty() => bytes[at] ^= 1 << (next() % 8),
                    1 if !bytes.is_empty() => bytes[at] = next() as u8,
                    2 => bytes.truncate(at),
                    3 if !bytes.is_empty() => {
                        bytes.remove(at);
                    }
                    _ => bytes.insert(at.min(bytes.len()), next() as u8),
                }
            }
            if let Ok(r) = accept(&bytes, &policy(), None, T0) {
                assert!(r == release(5) || r == release(6), "round {round}: {r:?}");
            }
            let _ = crate::gossip::decode(&bytes);
            let _ = crate::parse_unverified(&bytes);
        }
    }

    /// Writes the fuzz target's seeds (valid inputs for its policy) into
    /// the directory named by SWARMSYNC_FUZZ_SEEDS; does nothing without it.
    #[test]
    fn write_fuzz_seeds() {
        let Some(dir) = std::env::var_os("SWARMSYNC_FUZZ_SEEDS") else {
            return;
        };
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir).expect("create seed dir");
        let write =
            |name: &str, bytes: &[u8]| std::fs::write(dir.join(name), bytes).expect("write");
        write("root-signed", &signed(5));
        write("delegated", &delegated("*", T0 + 100).sign(&release(6)));
        write(
            "delegated-one-channel",
            &delegated("stable", T0 + 100).sign(&release(7)),
        );
        write("gossip", &gossip_payload());
        let minimal = Release {
            v1: None,
            torrents: vec![],
            feeds: vec![],
            web_seeds: vec![],
            peers: vec![],
            ..release(4)
        };
        write("minimal", &Signer::new(root(), None).sign(&minimal));
    }

    fn gossip_payload() -> Vec<u8> {
        crate::gossip::encode(&signed(5))
    }

    fn find(hay: &[u8], needle: &[u8]) -> usize {
        hay.windows(needle.len())
            .position(|w| w == needle)
            .unwrap_or_else(|| panic!("{:?} not found", String::from_utf8_lossy(needle)))
    }
}
