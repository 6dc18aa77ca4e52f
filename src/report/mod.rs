//! Views: the JSON documents (the stable contracts of DESIGN.md "JSON") and the human text of
//! `status`, `ckpts` and `check`, built from the facts the probes parsed. Which source wins for
//! each figure is decided once, in [`facts`], so the views cannot disagree.

pub mod check;
pub mod ckpts;
pub mod facts;
pub mod status;

/// Seconds since the epoch as RFC 3339 (UTC, whole seconds), as the JSON has times.
fn rfc3339(epoch: i64) -> Option<String> {
    let t = std::time::UNIX_EPOCH.checked_add(std::time::Duration::from_secs(u64::try_from(epoch).ok()?))?;
    Some(humantime::format_rfc3339_seconds(t).to_string())
}

/// serde_json writes NaN as null, which would hide a diverged loss behind "unknown"; but the
/// contract is a number or null, so a non-finite value stays null here and the human view shows it.
fn finite(v: Option<f64>) -> Option<f64> {
    v.filter(|x| x.is_finite())
}
