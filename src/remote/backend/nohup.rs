//! The plain backend, for boxes with neither tmux nor screen: `setsid nohup`, with stdin from /dev/null
//! and no terminal. `setsid` makes the wrapper the leader of its own session and process group (the run
//! record's `pid`, which `stop` signals, as with tmux), out of reach of the exec channel's hang-up; `nohup`
//! ignores SIGHUP besides. Nothing of the exec channel stays open in it (stdin, stdout and stderr are
//! redirected), so the channel closes when `up` is done. The command's output reaches the log through the
//! shared wrapper, as on every backend; the wrapper's own stdout (what a pane would show) goes nowhere and
//! its stderr (a failing `cd`, say) into the log.
//!
//! Not started as a background job (`&`) where `setsid -f` (util-linux 2.31+) can fork instead: a
//! non-interactive sh starts a background job with SIGINT and SIGQUIT ignored, which the wrapper cannot
//! undo (a signal ignored on entry cannot be trapped) and the trainer inherits, so `stop`'s SIGINT never
//! reached it and every stop waited for SIGTERM (measured: SigIgn 0x6 in the trainer's /proc status).

use super::{Backend, PtyEnd};

pub struct Nohup;

const SH: &str = r##"rt_nohup_available() { command -v nohup >/dev/null 2>&1 && command -v setsid >/dev/null 2>&1; }
rt_nohup_session() { return 1; }
rt_nohup_start() {
  if setsid -f true > /dev/null 2>&1; then
    ( cd -- "$rt_wd" && exec setsid -f nohup /bin/sh "$rt_rd/run.sh" < /dev/null > /dev/null 2>> "$rt_log" )
  else
    ( cd -- "$rt_wd" && exec setsid nohup /bin/sh "$rt_rd/run.sh" < /dev/null > /dev/null 2>> "$rt_log" ) &
  fi
}
"##;

impl Backend for Nohup {
    fn name(&self) -> &'static str {
        "nohup"
    }

    fn label(&self) -> &'static str {
        "nohup"
    }

    fn has_terminal(&self) -> bool {
        false
    }

    fn sh(&self) -> &'static str {
        SH
    }

    fn install_hint(&self) -> &'static str {
        "sudo apt install coreutils util-linux"
    }

    fn attach_command(&self, _workdir: &str, _session: &str) -> Option<String> {
        None
    }

    fn attach_end(&self, status: u32, _tail: &str) -> PtyEnd {
        PtyEnd::Exited(status)
    }
}
