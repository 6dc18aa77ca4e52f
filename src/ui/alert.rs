//! Laptop-side alerts for `wait --notify` and `status --watch --notify`: a desktop notification
//! (D-Bus through the `notify-rust` crate; `osascript` on macOS, where notify-rust fails silently
//! for unsigned binaries) and a terminal alert (BEL, OSC 9, OSC 777, wrapped for tmux). Whatever
//! came from the box is stripped of control bytes first, so a hostile log line can neither
//! rewrite the terminal nor end an escape sequence early.

use std::io::Write;
#[cfg(not(target_os = "macos"))]
use std::time::Duration;

/// `s` without control characters (C0, DEL, C1); newlines and tabs become spaces.
pub fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c == '\n' || c == '\t' { ' ' } else { c })
        .filter(|c| !c.is_control())
        .collect()
}

/// The terminal alert: BEL, then OSC 9 (iTerm2, Windows Terminal, WezTerm, kitty) and OSC 777
/// (rxvt, foot, Ghostty). Inside tmux (`in_tmux`), the OSCs go through DCS passthrough (each ESC
/// doubled), as tmux would otherwise swallow them; the BEL stays outside, where tmux shows it as
/// the window's bell.
pub fn terminal_sequence(title: &str, body: &str, in_tmux: bool) -> String {
    // ';' separates OSC 777's fields.
    let title = clean(title).replace(';', ",");
    let body = clean(body);
    let osc = format!("\x1b]9;{title}: {body}\x07\x1b]777;notify;{title};{body}\x07");
    let osc = if in_tmux {
        format!("\x1bPtmux;{}\x1b\\", osc.replace('\x1b', "\x1b\x1b"))
    } else {
        osc
    };
    format!("\x07{osc}")
}

/// What each channel did, for `rtrain notify test`.
#[derive(Debug)]
pub struct Raised {
    pub desktop: Result<(), String>,
    /// None: no terminal to alert.
    pub terminal: Option<Result<(), String>>,
}

/// Raise both alerts. The terminal one goes to stderr when `terminal` (stderr is a terminal).
pub fn raise(title: &str, body: &str, terminal: bool) -> Raised {
    let (title, body) = (clean(title), clean(body));
    let term = terminal.then(|| {
        let seq = terminal_sequence(&title, &body, std::env::var_os("TMUX").is_some());
        let mut err = std::io::stderr().lock();
        err.write_all(seq.as_bytes())
            .and_then(|_| err.flush())
            .map_err(|e| e.to_string())
    });
    Raised {
        desktop: desktop(&title, &body),
        terminal: term,
    }
}

#[cfg(not(target_os = "macos"))]
fn desktop(title: &str, body: &str) -> Result<(), String> {
    const DESKTOP_TIMEOUT: Duration = Duration::from_secs(5);
    let mut n = notify_rust::Notification::new();
    n.appname("rtrain").summary(title).body(body);
    // Its own small runtime: callers may be inside tokio's, and the D-Bus call must not hang a
    // command that is only telling the user something.
    let handle = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async {
            match tokio::time::timeout(DESKTOP_TIMEOUT, n.show_async()).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("the notification service did not answer within 5 s".to_string()),
            }
        })
    });
    handle
        .join()
        .unwrap_or_else(|_| Err("the notification thread panicked".into()))
}

#[cfg(target_os = "macos")]
fn desktop(title: &str, body: &str) -> Result<(), String> {
    // AppleScript string literals: backslash and double quote escaped.
    let q = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    let script = format!("display notification {} with title {}", q(body), q(title));
    let out = std::process::Command::new("osascript")
        .arg("-e")
        .arg(script)
        .output()
        .map_err(|e| format!("cannot run osascript: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_bytes_from_the_box_never_reach_the_sequence() {
        let hostile = "loss 1.0\x1b]0;pwned\x07\x1b[2J\r\u{9b}31m\x00end";
        let seq = terminal_sequence("rtrain: gpu failed", hostile, false);
        // Only rtrain's own escapes: BEL, then two OSCs each ended by BEL.
        assert_eq!(seq.matches('\x1b').count(), 2, "{seq:?}");
        assert_eq!(seq.matches('\x07').count(), 3, "{seq:?}");
        assert!(!seq.contains('\u{9b}') && !seq.contains('\0') && !seq.contains('\r'));
        assert!(seq.contains("loss 1.0]0;pwned[2J"), "{seq:?}");
    }

    #[test]
    fn tmux_gets_a_passthrough_with_every_escape_doubled() {
        let seq = terminal_sequence("t;x", "b", true);
        assert_eq!(
            seq,
            "\x07\x1bPtmux;\x1b\x1b]9;t,x: b\x07\x1b\x1b]777;notify;t,x;b\x07\x1b\\"
        );
    }
}
