//! The tmux backend (the default where the box has tmux): one tmux session per rtrain session name, one
//! window per run, so `tmux attach -t training` shows the run as the seed's users expect.

use super::{Backend, PtyEnd};
use crate::remote::quote::{quote, quote_path};

pub struct Tmux;

/// tmux expands `#` formats in `-s` and `-c` (a session or workdir with `#{...}` in its name would be
/// rewritten), hence the escape. `has-session -t =NAME` matches the name exactly, not as a prefix.
const SH: &str = r##"rt_tmux_available() { command -v tmux >/dev/null 2>&1; }
rt_tmux_session() { tmux has-session -t "=$rt_session" 2>/dev/null; }
rt_tmux_fmt_escape() {
  rt_in=$1 rt_esc=
  while :; do
    case $rt_in in *'#'*) rt_esc=$rt_esc${rt_in%%'#'*}'##'; rt_in=${rt_in#*'#'} ;; *) break ;; esac
  done
  printf '%s' "$rt_esc$rt_in"
}
rt_tmux_start() {
  rt_wd_fmt=$(rt_tmux_fmt_escape "$rt_wd")
  if ! rt_tmux_session; then
    rt_err=$(tmux new-session -d -s "$(rt_tmux_fmt_escape "$rt_session")" -c "$rt_wd_fmt" 2>&1) ||
      rt_tmux_session || { rt_err="tmux new-session failed: $rt_err"; return 1; }
  fi
  rt_err=$(tmux new-window -t "=$rt_session:" -n rtrain -c "$rt_wd_fmt" /bin/sh "$rt_rd/run.sh" 2>&1) ||
    { rt_err="tmux new-window failed: $rt_err"; return 1; }
}
"##;

impl Backend for Tmux {
    fn name(&self) -> &'static str {
        "tmux"
    }

    fn label(&self) -> &'static str {
        "tmux"
    }

    fn has_terminal(&self) -> bool {
        true
    }

    fn sh(&self) -> &'static str {
        SH
    }

    fn install_hint(&self) -> &'static str {
        "sudo apt install tmux"
    }

    fn attach_command(&self, workdir: &str, session: &str) -> Option<String> {
        Some(format!(
            "command -v tmux >/dev/null 2>&1 || {{ echo 'rtrain: tmux not found' >&2; exit 127; }}; \
             cd {wd} 2>/dev/null || cd; exec tmux new-session -A -s {name}",
            wd = quote_path(workdir),
            name = quote(session),
        ))
    }

    fn attach_end(&self, status: u32, tail: &str) -> PtyEnd {
        // The last bytes tmux printed tell a detach ("[detached") from the session ending ("[exited]").
        match status {
            127 if tail.contains("tmux not found") => PtyEnd::Missing,
            _ if tail.contains("[detached") => PtyEnd::Detached,
            _ if tail.contains("[exited]") => PtyEnd::SessionEnded,
            code => PtyEnd::Exited(code),
        }
    }

    fn after_stop(&self) -> Option<&'static str> {
        Some("the tmux session stays")
    }
}
