//! The GNU screen backend, for boxes with screen but no tmux: one screen session per rtrain session name,
//! one window per run, so `screen -r training` shows the run as the seed's users expect.
//!
//! Traps it avoids: `screen -ls` exits 1 on older versions even when it lists sessions, so its output is
//! parsed and its status ignored; `-S NAME` matches a prefix of session names, so the session is named by
//! its exact `PID.NAME` once found; the socket directory (`/run/screen`) must be mode 777 for a screen that
//! is not setuid, and where it is not, `$HOME/.screen` (mode 700) is used, by every command alike; and
//! screen's own logging (`-L -Logfile`, absent on old versions) is never used: the shared wrapper writes
//! the log.

use super::{Backend, PtyEnd};
use crate::remote::quote::{quote, quote_path};

pub struct Screen;

const SH: &str = r##"rt_screen_available() { command -v screen >/dev/null 2>&1; }
# Sockets in $HOME/.screen when the system's directory refuses us (and $SCREENDIR is not set).
rt_screen_prep() {
  [ -z "${SCREENDIR:-}" ] || return 0
  case $(screen -ls 2>&1) in
    *"must have mode"*|*"ermission denied"*|*"annot make directory"*|*"not a directory"*)
      SCREENDIR=$HOME/.screen
      mkdir -p -m 700 -- "$SCREENDIR" 2>/dev/null
      export SCREENDIR ;;
  esac
}
# The live session named exactly $rt_session: `PID.NAME` in rt_sp, its `-ls` line in rt_sl.
rt_screen_find() {
  rt_sp= rt_sl=
  rt_ls=$(screen -ls 2>/dev/null)
  rt_tab=$(printf '\t')
  while IFS= read -r rt_l; do
    case $rt_l in "$rt_tab"[0-9]*) ;; *) continue ;; esac
    case $rt_l in *"(Dead"*) continue ;; esac
    rt_x=${rt_l#"$rt_tab"}
    rt_x=${rt_x%%"$rt_tab"*}
    case ${rt_x%%.*} in *[!0-9]*) continue ;; esac
    if [ "${rt_x#*.}" = "$rt_session" ]; then rt_sp=$rt_x rt_sl=$rt_l; return 0; fi
  done <<EOF
$rt_ls
EOF
  return 1
}
rt_screen_session() { rt_screen_prep; rt_screen_find; }
rt_screen_start() {
  case $rt_session in */*) rt_err="a screen session name cannot contain /: $rt_session"; return 1 ;; esac
  rt_screen_prep
  if rt_screen_find; then
    rt_err=$(cd -- "$rt_wd" && screen -S "$rt_sp" -X screen -t rtrain /bin/sh "$rt_rd/run.sh" 2>&1) ||
      { rt_err="screen -X screen failed: $rt_err"; return 1; }
  else
    rt_err=$(cd -- "$rt_wd" && screen -dmS "$rt_session" -t rtrain /bin/sh "$rt_rd/run.sh" 2>&1) ||
      { rt_err="screen -dmS failed: $rt_err"; return 1; }
  fi
}
"##;

impl Backend for Screen {
    fn name(&self) -> &'static str {
        "screen"
    }

    fn label(&self) -> &'static str {
        "GNU screen"
    }

    fn has_terminal(&self) -> bool {
        true
    }

    fn sh(&self) -> &'static str {
        SH
    }

    fn install_hint(&self) -> &'static str {
        "sudo apt install screen"
    }

    /// `screen -d -r` takes the session over when another terminal has it (saying so first); without a
    /// session, a new one in the workdir.
    fn attach_command(&self, workdir: &str, session: &str) -> Option<String> {
        let script = format!(
            "command -v screen >/dev/null 2>&1 || {{ echo 'rtrain: screen not found' >&2; exit 127; }}\n\
             cd {wd} 2>/dev/null || cd\n\
             rt_session={name}\n\
             {SH}\
             rt_screen_prep\n\
             if rt_screen_find; then\n\
             \x20 case $rt_sl in *Attached*) echo \"rtrain: took over the screen session $rt_session from the terminal that had it\" ;; esac\n\
             \x20 exec screen -d -r \"$rt_sp\"\n\
             fi\n\
             exec screen -S \"$rt_session\"\n",
            wd = quote_path(workdir),
            name = quote(session),
        );
        Some(crate::remote::run::sh_command(&script))
    }

    fn attach_end(&self, status: u32, tail: &str) -> PtyEnd {
        match status {
            127 if tail.contains("screen not found") => PtyEnd::Missing,
            _ if tail.contains("[detached") || tail.contains("[remote detached") => PtyEnd::Detached,
            _ if tail.contains("[screen is terminating]") => PtyEnd::SessionEnded,
            code => PtyEnd::Exited(code),
        }
    }

    fn after_stop(&self) -> Option<&'static str> {
        Some("the screen session stays")
    }
}
