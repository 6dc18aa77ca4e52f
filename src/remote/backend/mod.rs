//! How a run is kept alive on the box once the exec channel that started it closes: one backend per
//! file (tmux, GNU screen, plain `setsid nohup`), behind one interface shaped like HashiCorp Nomad's task
//! drivers: fingerprint what the box offers, start, inspect/recover, signal/stop, and capabilities
//! (does the run have a terminal to attach to).
//!
//! The run record and its POSIX-sh wrapper are shared (remote::run): a backend only decides what hosts
//! `/bin/sh <run dir>/run.sh`. Each backend contributes sh functions to the scripts, all named
//! `rt_<name>_<verb>`, which the shared scripts call through the backend's name, so no command ever
//! knows which backend it talks to:
//! - `rt_<name>_available`: exit 0 when the box has what the backend needs (fingerprint);
//! - `rt_<name>_start`: start `/bin/sh "$rt_rd/run.sh"` so that it outlives the exec channel, the run
//!   being in `$rt_wd`, named `$rt_session`, logging to `$rt_log`; on failure set `rt_err` and return 1
//!   (the caller rolls the run record back);
//! - `rt_<name>_session`: exit 0 when the session `$rt_session` exists (what `attach` would join; a
//!   backend without one returns 1).
//!
//! Inspect, recover and stop are shared by the backends here: each run is its own process group led by
//! the wrapper (the run record's `pid`), which is what `RUN_STATE_SH` probes and what `stop` signals. A
//! backend whose runs are not processes on the box (a scheduler's jobs) says so
//! ([`Backend::tracks_its_own_run`]) and defines `rt_<name>_alive` and `rt_<name>_stop`, which the shared
//! liveness test and stop hand its runs to. The backend a run was launched with is recorded in its run dir
//! (`backend`); a record without one was written before backends existed and is tmux's.

pub mod nohup;
pub mod screen;
pub mod slurm;
pub mod tmux;

/// The backends, in the order `auto` prefers them. Adding one is a file in this folder and a line here.
pub static ALL: &[&dyn Backend] = &[&tmux::Tmux, &screen::Screen, &nohup::Nohup, &slurm::Slurm];

/// The run record's `format`: 2 since the record names its backend; records without a `format` file are
/// version 1 (tmux, no `backend` file).
pub const RECORD_FORMAT: u32 = 2;

/// What an attached terminal's end means, from the client's exit status and the last bytes it printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PtyEnd {
    /// The user detached: the run goes on.
    Detached,
    /// The session ended (its last window closed).
    SessionEnded,
    /// The box lacks the backend's program.
    Missing,
    /// The client exited some other way.
    Exited(u32),
}

/// One way of keeping a run alive. Implementations are unit structs registered in [`ALL`].
pub trait Backend: Sync {
    /// The name in the config, on the command line, in the run record and in JSON: `tmux`, `screen`, `nohup`.
    fn name(&self) -> &'static str;
    /// How people call it in a sentence: `tmux`, `GNU screen`, `nohup`.
    fn label(&self) -> &'static str;
    /// Capability: the run has a terminal that `attach` can show and type into.
    fn has_terminal(&self) -> bool;
    /// The `rt_<name>_*` sh functions (see the module doc).
    fn sh(&self) -> &'static str;
    /// What to install when the box lacks it.
    fn install_hint(&self) -> &'static str;
    /// The remote command `attach` runs on a PTY: join the session (creating it in the workdir when it is
    /// missing, as tmux's `new-session -A` does). `None` without a terminal.
    fn attach_command(&self, workdir: &str, session: &str) -> Option<String>;
    /// How an attach that ended with `status` and whose last output was `tail` ended.
    fn attach_end(&self, status: u32, tail: &str) -> PtyEnd;
    /// Said after `stop`: what is left on the box (`the tmux session stays`), if anything.
    fn after_stop(&self) -> Option<&'static str> {
        None
    }
    /// Whether `auto` may pick it (a scheduler's backend never is: it must be asked for).
    fn auto(&self) -> bool {
        true
    }
    /// The sh variables its `rt_<name>_start` reads, from the host's settings (each value quoted).
    fn launch_vars(&self, _target: &crate::config::Target) -> Vec<(&'static str, String)> {
        Vec::new()
    }
    /// The run is not a process group on this box (a scheduler's job on another node): its sh defines
    /// `rt_<name>_alive RUN_DIR` and `rt_<name>_stop` (which ends the stop script), and the shared
    /// liveness test and stop escalation hand its runs to them.
    fn tracks_its_own_run(&self) -> bool {
        false
    }
    /// Capability: without a terminal of its own, the run has a place an interactive shell can join (a
    /// scheduler's allocation on the run's node). Its sh defines `rt_<name>_shell RUN_DIR`, which says
    /// `shell=ok`, `place=` (what [`Backend::shell_command`] takes) and `where=` (in words), or `shell=no` and
    /// `why=` (in words: the job is pending, has ended, the scheduler is too old).
    fn has_shell(&self) -> bool {
        false
    }
    /// The remote command `attach` runs on a PTY for that shell at `place` (from `rt_<name>_shell`).
    fn shell_command(&self, _workdir: &str, _place: &str) -> Option<String> {
        None
    }
}

/// The backend named `name`.
pub fn by_name(name: &str) -> Option<&'static dyn Backend> {
    ALL.iter().copied().find(|b| b.name() == name)
}

/// A run record's `backend`, read as the record's writer meant it: absent or empty (format 1) is tmux.
pub fn of_record(recorded: Option<&str>) -> Option<&'static dyn Backend> {
    match recorded.map(str::trim) {
        None | Some("") => Some(&tmux::Tmux),
        Some(name) => by_name(name),
    }
}

/// What the config or `up --backend` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// The first of [`ALL`] the box offers.
    Auto,
    /// This one, or an error when the box lacks it.
    Only(&'static str),
}

impl Choice {
    /// `auto` or a backend's name.
    pub fn parse(s: &str) -> Result<Choice, String> {
        let s = s.trim();
        if s == "auto" {
            return Ok(Choice::Auto);
        }
        by_name(s)
            .map(|b| Choice::Only(b.name()))
            .ok_or_else(|| format!("{s:?} is not one of auto, {}", names().join(", ")))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Choice::Auto => "auto",
            Choice::Only(name) => name,
        }
    }
}

/// The backends' names, in preference order.
pub fn names() -> Vec<&'static str> {
    ALL.iter().map(|b| b.name()).collect()
}

/// Every backend's sh functions plus the shared ones that pick among them, for the scripts that start,
/// inspect or attach: `rt_backend_ok NAME` (known and available), `rt_available` (the available names,
/// space-separated, in `rt_av`), `rt_resolve CHOICE` (`auto` or a name; the backend in `rt_b`, or fails
/// with `rt_b` holding the one that is missing, `none` for auto on a box without any) and `rt_backend_of
/// RUN_DIR` (the recorded backend in `rt_b`, tmux for a record without one) and `rt_tracks_own NAME`
/// (the backend keeps its runs' liveness and stop itself, see [`Backend::tracks_its_own_run`]) and
/// `rt_has_shell NAME` (it defines `rt_<name>_shell`, see [`Backend::has_shell`]).
pub fn functions_sh() -> String {
    let mut out = String::new();
    for b in ALL {
        out.push_str(b.sh());
    }
    let auto_names = ALL
        .iter()
        .filter(|b| b.auto())
        .map(|b| b.name())
        .collect::<Vec<_>>()
        .join(" ");
    let own = ALL
        .iter()
        .filter(|b| b.tracks_its_own_run())
        .map(|b| b.name())
        .collect::<Vec<_>>()
        .join(" ");
    let shells = ALL
        .iter()
        .filter(|b| b.has_shell())
        .map(|b| b.name())
        .collect::<Vec<_>>()
        .join(" ");
    let names = names().join(" ");
    out.push_str(&format!(
        r#"rt_backend_ok() {{ case " {names} " in *" $1 "*) "rt_$1_available" ;; *) return 1 ;; esac; }}
rt_available() {{
  rt_av=
  for rt_x in {names}; do "rt_${{rt_x}}_available" && rt_av="$rt_av${{rt_av:+ }}$rt_x"; done
  return 0
}}
rt_resolve() {{
  if [ "$1" != auto ]; then rt_b=$1; rt_backend_ok "$1"; return; fi
  for rt_b in {auto_names}; do "rt_${{rt_b}}_available" && return 0; done
  rt_b=none
  return 1
}}
rt_tracks_own() {{ case " {own} " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }}
rt_has_shell() {{ case " {shells} " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }}
rt_backend_of() {{
  rt_read1 "$1/backend"
  rt_b=${{rt_v:-tmux}}
}}
"#
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_parse_and_name_every_backend_when_refused() {
        assert_eq!(Choice::parse("auto"), Ok(Choice::Auto));
        assert_eq!(Choice::parse(" screen "), Ok(Choice::Only("screen")));
        assert_eq!(Choice::parse("nohup").map(Choice::as_str), Ok("nohup"));
        let err = Choice::parse("systemd").unwrap_err();
        assert!(err.contains("auto, tmux, screen, nohup"), "{err}");
    }

    #[test]
    fn a_record_without_a_backend_is_tmux_and_an_unknown_one_is_none() {
        assert_eq!(of_record(None).map(|b| b.name()), Some("tmux"));
        assert_eq!(of_record(Some("\n")).map(|b| b.name()), Some("tmux"));
        assert_eq!(of_record(Some("screen\n")).map(|b| b.name()), Some("screen"));
        assert!(of_record(Some("slurm?")).is_none());
    }

    #[test]
    fn every_backend_defines_its_functions_under_its_own_name() {
        for b in ALL {
            for verb in ["available", "start", "session"] {
                let f = format!("rt_{}_{verb}()", b.name());
                assert!(b.sh().contains(&f), "{} lacks {f}", b.name());
            }
            assert_eq!(b.attach_command("~", "s").is_some(), b.has_terminal(), "{}", b.name());
            assert_eq!(b.shell_command("~", "1").is_some(), b.has_shell(), "{}", b.name());
            assert_eq!(
                b.sh().contains(&format!("rt_{}_shell()", b.name())),
                b.has_shell(),
                "{}",
                b.name()
            );
        }
    }
}
