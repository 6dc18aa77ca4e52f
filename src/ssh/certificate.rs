//! Certificate checks both sides need: a user certificate offered at login (`auth`) and a host
//! certificate the server presents (`handler`).

use russh::keys::Certificate;
use std::time::Duration;

/// Whether a certificate is valid at `now`; if not, why, naming its validity window.
pub fn validity(cert: &Certificate, now: std::time::SystemTime) -> Result<(), String> {
    let secs = now
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let at = |t: u64| -> String {
        if t == u64::MAX {
            "forever".to_string()
        } else {
            humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(t)).to_string()
        }
    };
    let window = format!("valid from {} to {}", at(cert.valid_after()), at(cert.valid_before()));
    if secs < cert.valid_after() {
        Err(format!("not yet valid: {window}"))
    } else if secs >= cert.valid_before() {
        Err(format!("expired: {window}"))
    } else {
        Ok(())
    }
}
