//! The terminal side of [`Prompter`]: passphrases without echo, and OpenSSH's new-host question.

use crate::ssh::Prompter;
use std::io::{BufRead, Write};
use std::path::Path;

/// Asks on the controlling terminal; only used when stdin and stderr are terminals.
pub struct TerminalPrompter;

impl Prompter for TerminalPrompter {
    fn passphrase(&self, key_path: &Path) -> Option<String> {
        rpassword::prompt_password(format!("Enter passphrase for key '{}': ", key_path.display())).ok()
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
