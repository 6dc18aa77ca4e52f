//! The terminal side of [`Prompter`]: passphrases and passwords without echo, keyboard-interactive
//! rounds as ssh shows them, and OpenSSH's new-host question.

use crate::ssh::{KbdRound, LoginQuestion, Prompter};
use std::io::{BufRead, Write};
use std::path::Path;

/// Asks on the controlling terminal; only used when stdin and stderr are terminals.
pub struct TerminalPrompter;

impl Prompter for TerminalPrompter {
    fn passphrase(&self, key_path: &Path) -> Option<String> {
        rpassword::prompt_password(format!("Enter passphrase for key '{}': ", key_path.display())).ok()
    }

    fn password(&self, q: &LoginQuestion) -> Option<String> {
        if q.attempt > 1 {
            eprintln!("Permission denied, please try again.");
        }
        rpassword::prompt_password(format!("{}@{}'s password: ", q.user, q.host)).ok()
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
                answers.push(rpassword::prompt_password(&p.text).ok()?);
            }
        }
        Some(answers)
    }

    fn notice(&self, text: &str) {
        eprintln!("{text}");
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
