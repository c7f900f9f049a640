//! `swarmsync keygen`: a new channel key, or an online key delegated from a
//! root key.
//!
//! stdout carries exactly one line, the public key nodes configure, so
//! scripts can capture it (`KEY=$(swarmsync keygen --out root.key)`);
//! everything else goes to stderr. With `--delegate-from` that line is the
//! ROOT's public key: the online key is an implementation detail of the
//! origin, and replacing it must not touch any node's config.
//!
//! The root key is read before anything is written, so a typo in its path
//! leaves no half-made online key behind.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use channel::{Delegation, SecretKey, delegation_path, valid_channel_name};

#[derive(clap::Args)]
pub struct KeygenArgs {
    /// Where to write the new secret key (mode 0600; an existing file is
    /// never overwritten).
    #[arg(long, value_name = "KEYFILE")]
    out: PathBuf,
    /// Make KEYFILE an online signing key delegated from this offline root
    /// key; also writes KEYFILE.delegation and prints the ROOT public key.
    #[arg(long, value_name = "ROOT_KEYFILE")]
    delegate_from: Option<PathBuf>,
    /// How long the delegation is valid: a number with s, m, h, d or w.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "90d",
        requires = "delegate_from"
    )]
    expires: String,
    /// Limit the delegation to one channel (default: every channel).
    #[arg(long, value_name = "NAME", requires = "delegate_from")]
    channel: Option<String>,
}

pub fn run(args: &KeygenArgs) -> Result<ExitCode> {
    let Some(root_file) = &args.delegate_from else {
        let key = SecretKey::try_generate()?;
        key.write_new(&args.out)?;
        eprintln!("wrote secret key {}", args.out.display());
        println!("{}", key.public());
        return Ok(ExitCode::SUCCESS);
    };
    let lifetime =
        parse_duration(&args.expires).with_context(|| format!("--expires {:?}", args.expires))?;
    let channel = args.channel.as_deref().unwrap_or("*");
    if channel != "*" && !valid_channel_name(channel) {
        bail!("--channel {channel:?} is not a channel name\nuse letters, digits, '-', '_' and '.'");
    }
    let root = SecretKey::read_file(root_file)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let expires = now.saturating_add(lifetime.as_secs());
    let online = SecretKey::try_generate()?;
    let delegation = Delegation::issue_for(&root, &online.public(), expires, channel);
    online.write_new(&args.out)?;
    let dpath = delegation_path(&args.out);
    delegation.write_file(&dpath)?;
    eprintln!(
        "wrote online key {} (public key {}) and {}: valid for channel {channel} until {} (in {})",
        args.out.display(),
        online.public(),
        dpath.display(),
        utc(expires),
        args.expires,
    );
    eprintln!("nodes configure the root public key:");
    println!("{}", root.public());
    Ok(ExitCode::SUCCESS)
}

/// Unix seconds as "YYYY-MM-DD HH:MM:SS UTC" (proleptic Gregorian).
fn utc(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Days since 1970-01-01 to a civil date, counting in 400-year eras
    // that start on 0000-03-01 (so the leap day is the era's last day).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// "90d", "12h", "30m", "45s", "2w".
fn parse_duration(text: &str) -> Result<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| anyhow::anyhow!("expected a number and a unit, e.g. 90d"))?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => bail!("unknown unit {unit:?}: use s, m, h, d or w (e.g. 90d)"),
    };
    match n.checked_mul(scale) {
        Some(0) => bail!("a delegation must last longer than 0 seconds"),
        Some(secs) => Ok(Duration::from_secs(secs)),
        None => bail!("too long"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_796_843_545), "2026-12-09 19:12:25 UTC");
        assert_eq!(utc(4_102_444_799), "2099-12-31 23:59:59 UTC");
    }

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("90d").ok(),
            Some(Duration::from_secs(90 * 86_400))
        );
        assert_eq!(
            parse_duration(" 2w").ok(),
            Some(Duration::from_secs(14 * 86_400))
        );
        assert_eq!(parse_duration("45s").ok(), Some(Duration::from_secs(45)));
        for bad in ["", "d", "90", "90x", "-1d", "0h", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
