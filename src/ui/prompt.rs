//! The terminal side of [`Prompter`]: passphrases and passwords without echo, keyboard-interactive
//! rounds as ssh shows them, and OpenSSH's new-host question.

use crate::ssh::{KbdRound, LoginQuestion, Prompter};
use std::io::{BufRead, Write};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

/// The terminal settings a hidden read changed, until it puts them back. A read abandoned on
/// timeout or cut short by Ctrl-C never returns, so [`Prompter::abandon`] and the binary's exit
/// path ([`restore_terminal`]) restore them from here: the shell must not be left without echo
/// after rtrain exits.
static SAVED_TTY: Mutex<Option<libc::termios>> = Mutex::new(None);

/// Read one line from the controlling terminal without echo (as ssh's readpassphrase does: the
/// prompt and the newline go to the terminal, the answer does not).
fn read_hidden(prompt: &str) -> Option<String> {
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .ok()?;
    let fd = tty.as_raw_fd();
    // SAFETY: termios is plain data; tcgetattr fills it or fails, and then it is not used.
    let mut saved: libc::termios = unsafe { std::mem::zeroed() };
    if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
        return None;
    }
    let mut quiet = saved;
    quiet.c_lflag &= !libc::ECHO;
    quiet.c_lflag |= libc::ECHONL;
    *SAVED_TTY.lock().unwrap_or_else(|e| e.into_inner()) = Some(saved);
    // SAFETY: fd is open for the lifetime of `tty`; quiet is a valid termios from tcgetattr.
    unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) };
    let mut out = &tty;
    let _ = out.write_all(prompt.as_bytes());
    let _ = out.flush();
    let mut line = String::new();
    let read = std::io::BufReader::new(&tty).read_line(&mut line);
    restore_terminal();
    match read {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line.trim_end_matches(['\r', '\n']).to_string()),
    }
}

/// Put back the settings of an unfinished hidden read, if any: called on every exit of the binary.
pub fn restore_terminal() {
    if let Some(saved) = SAVED_TTY.lock().unwrap_or_else(|e| e.into_inner()).take() {
        if let Ok(tty) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/tty") {
            // SAFETY: saved came from tcgetattr on this terminal.
            unsafe { libc::tcsetattr(tty.as_raw_fd(), libc::TCSANOW, &saved) };
        }
    }
}

/// Asks on the controlling terminal; only used when stdin and stderr are terminals.
pub struct TerminalPrompter;

impl Prompter for TerminalPrompter {
    fn passphrase(&self, key_path: &Path) -> Option<String> {
        read_hidden(&format!("Enter passphrase for key '{}': ", key_path.display()))
    }

    fn password(&self, q: &LoginQuestion) -> Option<String> {
        if q.attempt > 1 {
            eprintln!("Permission denied, please try again.");
        }
        read_hidden(&format!("{}@{}'s password: ", q.user, q.host))
    }

    fn keyboard_interactive(&self, round: &KbdRound) -> Option<Vec<String>> {
        if round.question.attempt > 1 && round.prompts.iter().any(|p| !p.echo) {
            eprintln!("Permission denied, please try again.");
        }
        let mut err = std::io::stderr().lock();
        for text in [&round.name, &round.instruction] {
            let text = text.trim_end();
            if !text.is_empty() {
                let _ = writeln!(err, "{text}");
            }
        }
        drop(err);
        let mut answers = Vec::with_capacity(round.prompts.len());
        for p in &round.prompts {
            if p.echo {
                let mut err = std::io::stderr().lock();
                let _ = write!(err, "{}", p.text);
                let _ = err.flush();
                let mut line = String::new();
                if std::io::stdin().lock().read_line(&mut line).ok()? == 0 {
                    return None;
                }
                answers.push(line.trim_end_matches(['\r', '\n']).to_string());
            } else {
                answers.push(read_hidden(&p.text)?);
            }
        }
        Some(answers)
    }

    fn notice(&self, text: &str) {
        eprintln!("{text}");
    }

    fn abandon(&self) {
        restore_terminal();
        eprintln!();
    }

    /// `RTRAIN_ANSWER_TIMEOUT` (seconds) for a slow second factor; sshd gives up after its
    /// LoginGraceTime anyway (120 s by default).
    fn answer_timeout(&self) -> Duration {
        std::env::var("RTRAIN_ANSWER_TIMEOUT")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|&s| s > 0)
            .map(Duration::from_secs)
            .unwrap_or(Duration::from_secs(120))
    }

    fn confirm_new_host_key(
        &self,
        host: &str,
        key_type: &str,
        fingerprint: &str,
        other_types: &[String],
    ) -> Option<bool> {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "The authenticity of host '{host}' can't be established.");
        let _ = writeln!(err, "{key_type} key fingerprint is {fingerprint}.");
        if !other_types.is_empty() {
            let _ = writeln!(
                err,
                "This host key is known by other types: {}.",
                other_types.join(", ")
            );
        }
        let stdin = std::io::stdin();
        let mut line = String::new();
        loop {
            let _ = write!(err, "Are you sure you want to continue connecting (yes/no)? ");
            let _ = err.flush();
            line.clear();
            if stdin.lock().read_line(&mut line).ok()? == 0 {
                return Some(false);
            }
            match line.trim().to_ascii_lowercase().as_str() {
                "yes" => return Some(true),
                "no" => return Some(false),
                _ => {
                    let _ = writeln!(err, "Please type 'yes' or 'no'.");
                }
            }
        }
    }
}
