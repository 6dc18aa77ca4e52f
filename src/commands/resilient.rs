//! What `attach`, `logs -f` and `forward` share: a [`Link`] built from the target, and the
//! one-line status the user sees while the connection is being rebuilt.

use super::{CommandError, Ctx};
use crate::config::Target;
use crate::ssh::link::{Link, LinkEvent, ReconnectPolicy};
use std::io::Write;

impl Ctx {
    pub fn link(&self, target: &Target) -> Link {
        let policy = ReconnectPolicy {
            give_up_after: target.settings.give_up_after,
            ..ReconnectPolicy::default()
        };
        Link::new(
            target.clone(),
            self.connect_options(target),
            self.env.prompter.clone(),
            policy,
        )
    }

    /// A link with its first session up: one attempt, whose failure is reported as is (no
    /// retrying before anything worked), abandoned on Ctrl-C like [`Ctx::connect`].
    pub async fn connected_link(&self, target: &Target) -> anyhow::Result<Link> {
        let mut link = self.link(target);
        tokio::select! {
            r = link.session() => { r?; }
            _ = self.shutdown.cancelled() => return Err(CommandError::Interrupted.into()),
        }
        Ok(link)
    }
}

/// Prints link events as one line on stderr, rewritten in place on a terminal. `raw` terminals
/// (attach) need an explicit carriage return before each line feed.
pub struct StatusLine {
    host: String,
    raw: bool,
    tty: bool,
    quiet: bool,
}

impl StatusLine {
    pub fn new(host: &str, raw: bool, tty: bool, quiet: bool) -> StatusLine {
        StatusLine {
            host: host.to_string(),
            raw,
            tty,
            quiet,
        }
    }

    fn emit(&self, text: &str, done: bool) {
        if self.quiet {
            return;
        }
        let mut err = std::io::stderr().lock();
        if self.tty {
            // Rewrite the same line; end it only when the outage is over.
            let _ = write!(err, "\r\x1b[K{text}");
            if done {
                let _ = write!(err, "{}", if self.raw { "\r\n" } else { "\n" });
            }
        } else {
            let _ = writeln!(err, "{text}");
        }
        let _ = err.flush();
    }

    pub fn event(&self, ev: &LinkEvent) {
        match ev {
            LinkEvent::Lost { reason } => self.emit(
                &format!("rtrain: connection to {} lost ({reason}) — reconnecting…", self.host),
                false,
            ),
            LinkEvent::Retrying { attempt, since, .. } => self.emit(
                &format!(
                    "rtrain: connection to {} lost — reconnecting (attempt {}, {} s)…",
                    self.host,
                    attempt + 1,
                    since.as_secs()
                ),
                false,
            ),
            LinkEvent::Restored { after } => self.emit(
                &format!(
                    "rtrain: reconnected to {} after {:.1} s",
                    self.host,
                    after.as_secs_f64()
                ),
                true,
            ),
        }
    }
}
