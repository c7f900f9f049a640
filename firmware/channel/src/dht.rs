//! BEP 46 for swarmsync channels: which DHT item carries a channel's newest
//! release, and what the item holds. Sans-IO; `swarm::dht` does the
//! network part (`put_mutable`, `get_mutable`).
//!
//! The item is a BEP 44 mutable item with
//! - key: the key that signs the channel's releases. With a delegation that
//!   is the online key, not the root nodes configure: the root stays
//!   offline and cannot sign DHT items. A node therefore looks under the
//!   root key and under the signing key of its installed release
//!   ([`lookup_keys`]), which it learnt, verified, from that release;
//! - salt: the channel name (at most 64 bytes, as BEP 44 allows);
//! - seq: the release's `seq`;
//! - value: the signed release itself, when it fits in [`MAX_VALUE`]
//!   bytes. BEP 46 proper puts only an infohash there; the whole release
//!   lets the node run the same [`crate::accept`] on it as on a feed
//!   answer. The DHT's own signature only says the item is current; the
//!   release's signature is what the node trusts.

use crate::release::parse_envelope;
use crate::{Policy, PublicKey, Release};

/// Largest value of a mutable item: BEP 44 allows 1000 bytes for the
/// bencoded value, a byte string of 996 bytes plus its `996:` prefix.
pub const MAX_VALUE: usize = 996;

/// The item's salt: the channel name.
pub fn salt(channel: &str) -> &[u8] {
    channel.as_bytes()
}

/// The item's `seq` (BEP 44 sequence numbers are i64).
pub fn seq(release: &Release) -> i64 {
    i64::try_from(release.seq).unwrap_or(i64::MAX)
}

/// The item's value: the signed release, if it fits. A release with long
/// URL lists may not; it then travels by feed and gossip only.
pub fn value(signed: &[u8]) -> Option<&[u8]> {
    (signed.len() <= MAX_VALUE).then_some(signed)
}

/// The key that signed a release (the root, or the delegated online key),
/// read without verification: for releases already accepted.
pub fn signing_key(signed: &[u8]) -> Option<PublicKey> {
    parse_envelope(signed).ok().map(|e| e.key)
}

/// Where a node looks for the channel's item: the root key, then the
/// signing key of the installed release (`installed`: its signed bytes,
/// as accepted earlier) when that is a delegated key.
pub fn lookup_keys(policy: &Policy, installed: Option<&[u8]>) -> Vec<PublicKey> {
    let mut keys = vec![policy.root];
    if let Some(key) = installed.and_then(signing_key)
        && key != policy.root
    {
        keys.push(key);
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Delegation, SecretKey, Signer, accept};

    fn release() -> Release {
        Release {
            channel: "stable".into(),
            seq: 12,
            created: 1_900_000_000,
            expires: 1_900_003_600,
            v2: [3; 32],
            v1: Some([4; 20]),
            size: 10,
            files: 1,
            torrents: vec!["https://origin.example.org/-/torrents/stable/12.torrent".into()],
            feeds: vec!["https://origin.example.org/-/releases/stable".into()],
            web_seeds: vec!["https://origin.example.org/stable/".into()],
            peers: vec!["origin.example.org:6881".into()],
            trackers: vec![],
        }
    }

    #[test]
    fn a_delegated_release_fits_and_is_found_under_both_keys() {
        let root = SecretKey::from_seed([1; 32]);
        let online = SecretKey::from_seed([2; 32]);
        let d = Delegation::issue(&root, &online.public(), 1_900_100_000);
        let signer = Signer::new(online, Some(d));
        let signed = signer.sign(&release());
        let v = value(&signed).expect("a typical release fits");
        let policy = Policy {
            root: root.public(),
            channel: "stable".into(),
        };
        assert_eq!(accept(v, &policy, None, 1_900_000_000), Ok(release()));
        assert_eq!(seq(&release()), 12);
        assert_eq!(salt("stable"), b"stable");
        assert_eq!(
            lookup_keys(&policy, Some(&signed)),
            vec![root.public(), SecretKey::from_seed([2; 32]).public()]
        );
        let direct = Signer::new(SecretKey::from_seed([1; 32]), None).sign(&release());
        assert_eq!(lookup_keys(&policy, Some(&direct)), vec![root.public()]);
        assert_eq!(lookup_keys(&policy, None), vec![root.public()]);
        assert_eq!(lookup_keys(&policy, Some(b"junk")), vec![root.public()]);
    }

    #[test]
    fn a_long_release_does_not_fit() {
        let long = Release {
            web_seeds: (0..20)
                .map(|i| format!("https://mirror{i}.example.org/debian/"))
                .collect(),
            ..release()
        };
        let signed = Signer::new(SecretKey::from_seed([1; 32]), None).sign(&long);
        assert!(signed.len() > MAX_VALUE);
        assert_eq!(value(&signed), None);
        let huge = Release {
            seq: u64::MAX,
            ..release()
        };
        assert_eq!(seq(&huge), i64::MAX);
    }
}
