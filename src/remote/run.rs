//! The remote run record's writer: the POSIX-sh scripts behind `up`, `stop`, `logs` and `resume` (one exec
//! each, nothing installed remotely) and pure parsers of what they print. Layout and state rules:
//! docs/run-record.md, shared with the status probe.
//!
//! Every script prints its results as `@rtrain key=value` lines (value to the end of the line), so stray output
//! from a login profile can never be mistaken for a result. The log scripts print the log's bytes untouched on
//! stdout and their `@rtrain` lines on stderr, so a trailer can never be confused with log bytes.

use crate::remote::backend::{self, Choice};
use crate::remote::logind::{self, Logind, LOGIND_SH};
use crate::remote::quote::{quote, quote_path};
use std::fmt;
use std::str::FromStr;

// ------------------------------------------------------------------------------------------------------------
// Types

/// What `up` launches, as configured (no quoting: the script builders quote every part).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchSpec {
    /// Working directory on the remote box; a leading `~` is the remote `$HOME`.
    pub workdir: String,
    /// The session name (tmux's or screen's; the config refuses `:` and `.`, which tmux would rewrite).
    pub session: String,
    /// Which backend keeps the run alive (remote::backend).
    pub backend: Choice,
    /// Keep the current run's recorded backend (`resume` relaunches a run where it ran), falling back to
    /// `backend` when there is no run yet.
    pub inherit_backend: bool,
    /// A shell command line, run as `sh -c COMMAND` in the workdir.
    pub command: String,
    /// Which environment the command gets: the user's login shell's (default) or plain sh's.
    pub shell: ShellMode,
    /// How long the login shell may take to print its environment before `up` falls back to plain sh.
    pub shell_timeout_secs: u64,
    /// Directory of the log files, relative to the workdir unless absolute or `~`-based.
    pub log_dir: String,
    /// Environment variables for the command (names already validated by the config), in order; the wrapper
    /// exports them from the run dir's `env` file, written here from quoted parts.
    pub env: Vec<(String, String)>,
    /// A file to replace atomically just before launching, and only if a run is launched (`resume` uses it for
    /// the training config, so a config is never changed under an active run).
    pub edit: Option<FileEdit>,
    /// Box-side notifications: the content of the run record's `notify` file ([`notify_file`]), sent on stdin.
    pub notify: Option<String>,
    /// Sh variables the backend's start needs besides the run record (Slurm: its batch script, settings and
    /// `submit` line), assigned quoted at the top of the up script. Empty for tmux, screen and nohup.
    pub backend_vars: Vec<(&'static str, String)>,
}

/// The environment a run's command gets (`shell:` in the config). The command always runs under plain sh in
/// the wrapper's process group; what differs is the environment it starts with (docs/run-record.md, "The
/// user's shell").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ShellMode {
    /// The environment the user's login shell (`$SHELL`, else the passwd entry) builds as an interactive login
    /// shell: `.profile` and `.bashrc` for bash (below their interactive guard too), `.zprofile` and `.zshrc`
    /// for zsh, `config.fish` for fish: what a command typed into a tmux pane gets.
    #[default]
    Login,
    /// The exec channel's environment, no profile read: a clean environment.
    Sh,
}

impl ShellMode {
    pub fn parse(s: &str) -> Result<ShellMode, String> {
        match s.trim() {
            "login" => Ok(ShellMode::Login),
            "sh" => Ok(ShellMode::Sh),
            other => Err(format!("{other:?} is not one of login, sh")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ShellMode::Login => "login",
            ShellMode::Sh => "sh",
        }
    }
}

/// The environment a launched run got, as the up script reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShellGot {
    /// What the config asked for.
    pub asked: String,
    /// What the run got: `login` or `sh` (`sh` also when the login shell could not give its environment).
    pub got: String,
    /// The login shell's program (`/bin/bash`), when one was run.
    pub program: Option<String>,
    /// Why the run got plain sh although `login` was asked for.
    pub warning: Option<String>,
}

impl ShellGot {
    /// Not what a run gets by default: asked for `sh`, or fell back to it.
    pub fn is_default(&self) -> bool {
        self.got == "login"
    }
}

/// A whole-file replacement done by the up script under its lock. The content travels on the exec channel's
/// stdin (see [`up_stdin`]), never on the command line: Linux refuses a single argument over 128 KiB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEdit {
    /// Relative to the workdir unless absolute or `~`-based.
    pub path: String,
    pub content: String,
    /// Keep the previous content as `PATH.bak`.
    pub backup: bool,
    /// SHA-256 (hex) of the content the edit was computed from: under the lock, the file must still hold exactly
    /// that, or nothing is written or started (a concurrent edit is never overwritten). Not checked on a box
    /// without `sha256sum`.
    pub expect_sha256: Option<String>,
}

/// SHA-256 in hex, as `sha256sum` prints it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// What to send on the up script's stdin: the edit's new content, if any.
pub fn up_stdin(spec: &LaunchSpec) -> Option<Vec<u8>> {
    if spec.edit.is_none() && spec.notify.is_none() {
        return None;
    }
    let mut bytes = spec.notify.clone().unwrap_or_default().into_bytes();
    if let Some(e) = &spec.edit {
        bytes.extend_from_slice(e.content.as_bytes());
    }
    Some(bytes)
}

/// What the run wrapper needs to post box-side notifications.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifySpec {
    /// The host's name as the user knows it (rtrain's config or the command line).
    pub host: String,
    /// (preset, URL): `json`, `ntfy` or `slack`; URLs checked by the config (no blanks, quotes, backslashes).
    pub hooks: Vec<(String, String)>,
    pub events: Vec<String>,
    pub checkpoint_dir: String,
}

/// The run record's `notify` file: shell assignments of quoted values, sourced by the wrapper at the end.
pub fn notify_file(n: &NotifySpec) -> String {
    let host: String = n.host.chars().filter(|c| !c.is_control()).collect();
    let hooks: String = n.hooks.iter().map(|(k, u)| format!("{k} {u}\n")).collect();
    let mut out = String::new();
    assign(&mut out, "rt_nt_host", &quote(&host));
    assign(
        &mut out,
        "rt_nt_host_json",
        &quote(&serde_json::to_string(&host).unwrap_or_else(|_| "null".into())),
    );
    assign(&mut out, "rt_nt_hooks", &quote(&hooks));
    assign(&mut out, "rt_nt_events", &quote(&n.events.join(" ")));
    assign(&mut out, "rt_nt_ckdir", &quote_path(&n.checkpoint_dir));
    out
}

/// `rtrain notify test`: post a `test` event through the box's webhooks as the wrapper would, from a scratch
/// directory; the notify file ([`notify_file`]) is this script's stdin. Prints `@rtrain hook=PRESET VIA RESULT`
/// lines (`none - no-curl-or-wget` when the box has neither), then `result=ok`.
pub fn notify_test_script() -> String {
    let body = format!(
        "rt_nt_dir=$(mktemp -d) || {{ rt_say error 'mktemp -d failed'; rt_say result error; exit 1; }}\n\
         rd=$rt_nt_dir/test\n\
         mkdir \"$rd\" && (umask 077 && cat > \"$rd/notify\") || {{ rt_say result error; exit 1; }}\n\
         {NOTIFY_SH}\
         rt_nt_force=test\n\
         rt_notify 0 ''\n\
         [ -f \"$rd/notify.log\" ] && while read -r k e v r; do rt_say hook \"$k $v $r\"; done < \"$rd/notify.log\"\n\
         rm -rf -- \"$rt_nt_dir\"\n\
         rt_say result ok\n"
    );
    script(&[], &body)
}

/// The `hook=` lines of [`notify_test_script`]: (preset, via, result).
pub fn parse_notify_test(output: &str) -> Result<Vec<(String, String, String)>, RunError> {
    let f = fields(output);
    if first(&f, "result") != Some("ok") {
        return Err(unexpected("notify test", output));
    }
    Ok(f.iter()
        .filter(|(k, _)| *k == "hook")
        .map(|(_, v)| {
            let mut w = v.splitn(3, ' ').map(str::to_string);
            (
                w.next().unwrap_or_default(),
                w.next().unwrap_or_default(),
                w.next().unwrap_or_default(),
            )
        })
        .collect())
}

/// `up` printed that the box has neither curl nor wget, so its notifications are off.
/// What `up` found out about logind (see [`crate::remote::logind`]), from its `logind` lines.
pub fn up_logind(output: &str) -> Logind {
    let lines: Vec<&str> = fields(output)
        .iter()
        .filter(|(k, _)| *k == "logind")
        .map(|(_, v)| *v)
        .collect();
    logind::parse(&lines.join("\n"))
}

pub fn up_says_no_webhook_client(output: &str) -> bool {
    fields(output)
        .iter()
        .any(|(k, v)| *k == "notify" && *v == "no-curl-or-wget")
}

/// A run as the record describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunInfo {
    pub id: String,
    /// The wrapper's pid, which is also the run's process group id.
    pub pid: u32,
    /// RFC 3339 UTC, as written by the remote clock.
    pub started_at: String,
    /// Absolute path of the run's log file.
    pub log: String,
    /// The backend it was launched with (`tmux` for a record from before backends were recorded).
    pub backend: String,
    /// The scheduler's job id of a Slurm run (its `job` file).
    pub job: Option<String>,
}

/// Which backend `up` launched with, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Picked {
    /// `auto` chose it (the first the box offers), rather than the config or `--backend`.
    pub auto: bool,
    /// The backends the box offers, in preference order.
    pub available: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpOutcome {
    /// A new run was started by its backend, in a new window of `session` where the backend has sessions.
    Launched {
        run: RunInfo,
        session: String,
        picked: Picked,
        shell: ShellGot,
    },
    /// A run is already active; nothing was started (and no [`FileEdit`] was written).
    AlreadyActive { run: RunInfo },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// Queued by a scheduler (a Slurm job waiting for its node): active, not yet running.
    Pending,
    Running,
    Finished,
    Failed,
    Stopped,
    Lost,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Pending => "pending",
            RunState::Running => "running",
            RunState::Finished => "finished",
            RunState::Failed => "failed",
            RunState::Stopped => "stopped",
            RunState::Lost => "lost",
        }
    }
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunState {
    type Err = RunError;
    fn from_str(s: &str) -> Result<Self, RunError> {
        Ok(match s {
            "pending" => RunState::Pending,
            "running" => RunState::Running,
            "finished" => RunState::Finished,
            "failed" => RunState::Failed,
            "stopped" => RunState::Stopped,
            "lost" => RunState::Lost,
            other => return Err(RunError::Other(format!("unknown run state {other:?}"))),
        })
    }
}

/// The signal after which a stopped run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    Int,
    Term,
    Kill,
    Hup,
    Quit,
    Usr1,
    Usr2,
}

impl StopSignal {
    pub fn name(self) -> &'static str {
        match self {
            StopSignal::Int => "SIGINT",
            StopSignal::Term => "SIGTERM",
            StopSignal::Kill => "SIGKILL",
            StopSignal::Hup => "SIGHUP",
            StopSignal::Quit => "SIGQUIT",
            StopSignal::Usr1 => "SIGUSR1",
            StopSignal::Usr2 => "SIGUSR2",
        }
    }

    /// From `kill -s` spelling (`INT`, `USR1`, ...).
    pub fn from_kill_name(s: &str) -> Option<StopSignal> {
        Some(match s {
            "INT" => StopSignal::Int,
            "TERM" => StopSignal::Term,
            "KILL" => StopSignal::Kill,
            "HUP" => StopSignal::Hup,
            "QUIT" => StopSignal::Quit,
            "USR1" => StopSignal::Usr1,
            "USR2" => StopSignal::Usr2,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopOutcome {
    /// The run ended after `signal`. `exit_code` is `None` only when nobody could record it (the wrapper had
    /// been killed before).
    Stopped {
        id: String,
        signal: StopSignal,
        exit_code: Option<i32>,
        /// The backend the run was launched with.
        backend: String,
    },
    /// The current run was not running; nothing was signalled.
    NotRunning {
        id: String,
        state: RunState,
        exit_code: Option<i32>,
    },
    /// No run has ever been launched in this workdir.
    NoRun,
}

/// Where the log bytes on stdout start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStart {
    /// From this byte offset (0: the whole log). Following again from the number of bytes received so far
    /// continues exactly where the previous stream stopped.
    Offset(u64),
    /// The last N lines, as `tail -n N` counts them.
    LastLines(usize),
}

/// The first `@rtrain` lines of the log scripts (stderr): which run, and where the stdout bytes start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogHeader {
    pub id: String,
    pub log: String,
    /// Byte offset in the log file of the first byte on stdout.
    pub start: u64,
}

/// The last `@rtrain` lines of the log scripts (stderr): how the run stands and where the bytes end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogTrailer {
    pub state: RunState,
    pub exit_code: Option<i32>,
    /// Byte offset just past the last byte on stdout.
    pub end: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    /// The backend asked for (or recorded by the run being resumed) is not on the box; `none`: `auto` found
    /// no backend at all.
    #[error("{backend} not found on the remote host")]
    BackendMissing { backend: String, available: Vec<String> },
    #[error("working directory {path} does not exist on the remote host")]
    WorkdirMissing { path: String },
    #[error("no run has been launched in this working directory yet")]
    NoRun,
    #[error("no run {id} in this working directory")]
    UnknownRun { id: String },
    #[error("log file {path} of the run is missing")]
    LogMissing { path: String },
    #[error("{path} changed on the remote host since rtrain read it; nothing was written or started: run it again")]
    EditChanged { path: String },
    #[error("{0}")]
    Other(String),
}

// ------------------------------------------------------------------------------------------------------------
// Shell fragments shared by the scripts

/// The run-state rules of docs/run-record.md in sh: the one text that decides a run's state, included word for word
/// by the up/stop/logs scripts here and by the `status` probe (remote/probe.rs), so `status` and `up` cannot drift
/// apart. The functions take a run dir (`.rtrain/runs/<id>`, relative to the workdir); variables are `rt_`-prefixed.
/// `rt_alive` accepts the process group as a sign of life when the wrapper itself is gone (killed alone, a trainer
/// that survives the pane's SIGHUP goes on in its group), so `up` never starts a second trainer next to a live one.
pub(crate) const RUN_STATE_SH: &str = r##"rt_valid_id() { case $1 in ''|*[!0-9A-Za-z_-]*) return 1;; esac; }
# The value of a one-value record file in rt_v: its first 256 bytes, blanks (space, tab, CR, LF) trimmed.
rt_read1() {
  rt_v=$(head -c 256 "$1" 2>/dev/null | tr '\t\r\n' '   ')
  rt_v=${rt_v#"${rt_v%%[! ]*}"}
  rt_v=${rt_v%"${rt_v##*[! ]}"}
}
# The run's pid (its wrapper, and the id of its process group) in rt_p; fails unless it is a plain decimal above 1
# without a leading zero: `kill -0 0` (or 00) would probe the caller's own group, -1 every process, 1 is init.
rt_pid() {
  rt_read1 "$1/pid"
  rt_p=$rt_v
  case $rt_p in ''|*[!0-9]*|0*|1) rt_p=; return 1;; esac
}
# A group of zombies only is dead: an init that does not reap (common in containers) leaves them behind.
rt_group_alive() {
  rt_g=$1
  kill -s 0 -- "-$rt_g" 2>/dev/null || return 1
  [ -r /proc/self/stat ] || return 0
  for rt_f in /proc/[0-9]*/stat; do
    read -r rt_l 2>/dev/null < "$rt_f" || continue
    set -- ${rt_l##*) }
    [ "${3:-}" = "$rt_g" ] && [ "$1" != Z ] && return 0
  done
  return 1
}
# Rule 2: the pid is this run's wrapper (its cmdline names run.sh; where /proc is absent, `kill -0` alone), or the
# wrapper is gone and its group lives on. A pid that is another process now (reused) is not this run; a zombie (empty
# cmdline) is a wrapper that has ended. What it saw stays for `status` to show, each 0 (yes), 1 (no) or empty (not
# asked): rt_pa the pid is a live process, rt_pw it is the wrapper, rt_ga the group has a live member. A backend
# that keeps its own runs may say in rt_waiting that its run is alive but has not started (a queued job).
rt_alive() {
  rt_pa= rt_pw= rt_ga= rt_waiting=
  rt_read1 "$1/backend"
  if rt_tracks_own "$rt_v"; then "rt_${rt_v}_alive" "$1"; return; fi
  rt_pid "$1" || return 1
  if kill -0 "$rt_p" 2>/dev/null; then
    if [ ! -r /proc/self/stat ]; then rt_pa=0; return 0; fi
    rt_c=$(tr '\000' ' ' 2>/dev/null < "/proc/$rt_p/cmdline")
    if [ -n "$rt_c" ]; then
      rt_pa=0
      case $rt_c in *"/.rtrain/runs/${1##*/}/run.sh"*) rt_pw=0; return 0;; esac
      rt_pw=1
      return 1
    fi
  fi
  rt_pa=1
  if rt_group_alive "$rt_p"; then rt_ga=0; return 0; fi
  rt_ga=1
  return 1
}
# The state in rt_s. `exit` is read again after the liveness test: the wrapper writes it just before it execs the
# login shell, so a run ending between the two reads would otherwise look lost.
rt_decide() {
  rt_pa= rt_pw= rt_ga=
  if [ ! -f "$1/exit" ] && rt_alive "$1"; then rt_s=running
  elif [ ! -f "$1/exit" ]; then rt_s=lost
  elif [ -e "$1/stopped" ]; then rt_s=stopped
  elif rt_read1 "$1/exit"; [ "$rt_v" = 0 ]; then rt_s=finished
  else rt_s=failed; fi
}
rt_state() { rt_decide "$1"; echo "$rt_s"; }
"##;

/// Helpers of the run-record scripts (after [`RUN_STATE_SH`]).
const FUNCS: &str = r##"rt_say() { printf '@rtrain %s=%s\n' "$1" "$2"; }
rt_atomic_write() {
  rt_wp=$1
  if [ -L "$rt_wp" ]; then
    rt_wp=$(readlink -f -- "$rt_wp") || { rt_say error "cannot resolve the link $1"; return 1; }
  fi
  rt_wdir=$(dirname -- "$rt_wp")
  [ -d "$rt_wdir" ] || { rt_say error "directory $rt_wdir does not exist"; return 1; }
  rt_wtmp=$rt_wdir/.$(basename -- "$rt_wp").rtrain-tmp.$$
  if ! cat > "$rt_wtmp"; then rm -f -- "$rt_wtmp"; rt_say error "cannot write $rt_wtmp"; return 1; fi
  if [ -f "$rt_wp" ]; then
    chmod --reference="$rt_wp" -- "$rt_wtmp" 2>/dev/null
    if [ "$2" = 1 ]; then
      ln -f -- "$rt_wp" "$rt_wp.bak" 2>/dev/null || cp -p -- "$rt_wp" "$rt_wp.bak" || {
        rm -f -- "$rt_wtmp"; rt_say error "cannot keep a backup in $rt_wp.bak"; return 1; }
    fi
  fi
  mv -f -- "$rt_wtmp" "$rt_wp" || { rm -f -- "$rt_wtmp"; rt_say error "cannot replace $rt_wp"; return 1; }
}
"##;

/// `cd` into the workdir or report it missing, on the stream `$rt_out` (1 or 2).
const CD_WORKDIR: &str = r##"if ! cd -- "$rt_workdir" 2>/dev/null; then
  { rt_say workdir "$rt_workdir"; rt_say result workdir-missing; } >&$rt_out
  exit 11
fi
rt_wd=$(pwd)
"##;

/// The wrapper written to `runs/<id>/run.sh`. It reads everything from its run dir, so no user input is ever
/// part of its text. Why it is shaped this way:
/// - Signals: `stop` signals the whole process group, with SIGINT or the configured `stop_signal` (QUIT, USR1,
///   USR2 too, whose default action would kill this shell before it records `exit`). The command keeps default dispositions (a trap handler
///   here, unlike an ignore, is reset in children), so Ctrl-C reaches the trainer as a KeyboardInterrupt; this
///   shell defers its handler until the command ends (POSIX), so it always records `exit`; tee ignores the
///   signals so it cannot die first and take the command down with SIGPIPE.
/// - SIGHUP (the window or the tmux/screen server killed) is not caught: a deferred handler could not pass it on, so
///   the wrapper dies, the kernel hangs up the group, and the run ends `lost`, like a closed terminal's job.
/// - dash has no pipefail: the command writes into a FIFO that tee drains, so `$?` is the command's own status.
/// - `exit` is written after tee has drained (bounded, in case a daemonised child holds the FIFO open), so a log
///   follower that stops at `exit` has every byte.
/// - A window (tmux, screen) then becomes a login shell in the workdir, as if the user had typed the command
///   there; without a terminal (nohup) the wrapper just ends.
const WRAPPER: &str = r##"# rtrain run wrapper (written by `rtrain up`): runs this run's command under its backend (a tmux or
# screen window, or setsid nohup) and records pid and exit in this directory. See docs/run-record.md.
rd=$(dirname -- "$0")
case $rd in /*) ;; *) rd=$(cd -- "$rd" && pwd) ;; esac
wd=${rd%/.rtrain/runs/*}
RT_NOTIFY_FN
trap 'rt_signalled=1' INT TERM QUIT USR1 USR2
echo "$$" > "$rd/pid.tmp" && mv -f -- "$rd/pid.tmp" "$rd/pid"
status=127
if cd -- "$wd"; then
  log=$(cat "$rd/log")
  command=$(cat "$rd/command")
  [ ! -f "$rd/env" ] || . "$rd/env"
  mkdir -p -- "$(dirname -- "$log")"
  fifo=$rd/output.fifo fifo_dir=
  rm -f -- "$fifo"
  if ! mkfifo -- "$fifo" 2>/dev/null; then fifo_dir=$(mktemp -d) && fifo=$fifo_dir/output.fifo && mkfifo -- "$fifo"; fi
  rm -f -- "$rd/tee.done"
  ( trap '' INT TERM HUP QUIT USR1 USR2; tee -a -- "$log"; : > "$rd/tee.done" ) < "$fifo" &
  tee_pid=$!
  # The command alone gets the login shell's environment (shell: login), then the config's env over it; the
  # wrapper keeps the session's own (its tools, the window's login shell afterwards). Positional parameters,
  # because nothing sourced can replace them.
  ( set -- "$rd" "$command"
    [ ! -f "$1/login.env" ] || . "$1/login.env"
    [ ! -f "$1/env" ] || . "$1/env"
    exec sh -c "$2" ) > "$fifo" 2>&1
  status=$?
  i=0
  while [ ! -e "$rd/tee.done" ] && [ "$i" -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
  [ -e "$rd/tee.done" ] && wait "$tee_pid"
  rm -f -- "$fifo" "$rd/tee.done"
  [ -z "$fifo_dir" ] || rmdir -- "$fifo_dir"
fi
echo "$status" > "$rd/exit.tmp" && mv -f -- "$rd/exit.tmp" "$rd/exit"
printf '\n[rtrain] run %s ended with exit status %s\n' "${rd##*/}" "$status"
[ ! -f "$rd/notify" ] || rt_notify "$status" "${log:-}" 2>/dev/null
trap - INT TERM QUIT USR1 USR2
[ -t 0 ] || exit "$status"
[ -x "${SHELL:-}" ] || SHELL=/bin/sh
exec "$SHELL" -l
"##;

/// The wrapper's box-side notification (issue 14), run once when the run ends if the run record has a `notify`
/// file (mode 600, written by `up` from its stdin): the webhook URLs may hold a secret, so none is ever on a
/// command line; curl reads it from its config on stdin (`-K -`), wget from its URL list on stdin (`-i -`). What
/// is sent comes from the end of the log with control bytes stripped. `notified` makes it once per run.
const NOTIFY_SH: &str = r##"rt_notify() (
  . "$rd/notify" || exit 0
  if [ -e "$rd/stopped" ]; then ev=stopped; elif [ "$1" = 0 ]; then ev=finished; else ev=failed; fi
  [ -z "${rt_nt_force:-}" ] || { ev=$rt_nt_force; rt_nt_events=$ev; }
  case " $rt_nt_events " in *" $ev "*) ;; *) exit 0 ;; esac
  mkdir "$rd/notified" 2>/dev/null || exit 0
  if command -v curl >/dev/null 2>&1; then via=curl; elif command -v wget >/dev/null 2>&1; then via=wget; else
    echo "none $ev no-curl-or-wget" >> "$rd/notify.log"; exit 0; fi
  id=${rd##*/}
  t=$rd/notify.tail
  if [ -n "$2" ] && [ -f "$2" ]; then tail -c 65536 -- "$2" | tr '\r\t' '\n ' | tr -d '\000-\010\013-\037\177' > "$t"
  else : > "$t"; fi
  st=$(grep -o '| *[0-9][0-9]*/[0-9][0-9]* \[' "$t" | tail -n 1 | tr -dc '0-9/')
  step=null total=null
  case $st in [0-9]*/[0-9]*) step=${st%/*} total=${st#*/} ;; esac
  loss=$(grep -o "'loss': *'\{0,1\}-\{0,1\}[0-9][0-9.eE+-]*" "$t" | tail -n 1 | sed "s/.*: *//; s/'//g" |
    grep -x -- '-\{0,1\}[0-9][0-9]*\(\.[0-9][0-9]*\)\{0,1\}\([eE][-+]\{0,1\}[0-9][0-9]*\)\{0,1\}')
  ck= best=-1
  for f in "$rt_nt_ckdir"/checkpoint-*/trainer_state.json; do
    [ -f "$f" ] || continue
    d=${f%/trainer_state.json}; n=${d##*/checkpoint-}
    case $n in ''|*[!0-9]*) continue ;; esac
    [ "$n" -gt "$best" ] && best=$n ck=${d##*/}
  done
  lines=$(grep -v '^[[:space:]]*$' "$t" | tail -n 10)
  esc() { sed 's/\\/\\\\/g; s/"/\\"/g'; }
  arr=$(printf '%s\n' "$lines" | grep -v '^$' | esc | sed 's/^/"/; s/$/"/' | paste -sd, -)
  case $1 in ''|*[!0-9]*) code=null ;; *) code=$1 ;; esac
  if [ -n "$ck" ]; then ckj="\"$ck\""; else ckj=null; fi
  msg="run $id on $rt_nt_host $ev (exit $1)"
  [ "$step" = null ] || msg="$msg at step $step/$total"
  [ -z "$loss" ] || msg="$msg, loss $loss"
  [ -z "$ck" ] || msg="$msg, latest checkpoint $ck"
  printf '{"host":%s,"run_id":"%s","event":"%s","exit_code":%s,"step":%s,"total":%s,"loss":%s,"latest_checkpoint":%s,"last_lines":[%s]}\n' \
    "$rt_nt_host_json" "$id" "$ev" "$code" "$step" "$total" "${loss:-null}" "$ckj" "$arr" > "$rd/notify.json"
  printf '%s\n\n%s\n' "$msg" "$lines" > "$rd/notify.txt"
  sl=$(printf '%s\n' "$lines" | esc | sed 's/$/\\n/' | tr -d '\n')
  printf '{"text":"%s\\n```%s```"}\n' "$(printf '%s' "$msg" | esc)" "$sl" > "$rd/notify.slack"
  post() {
    if [ "$via" = curl ]; then
      printf 'url = "%s"\n' "$1" | curl -fsS -m 20 -K - -X POST -H "Content-Type: $2" -H "$4" --data-binary @"$3" -o /dev/null
    else
      printf '%s\n' "$1" | wget -q -T 20 -t 1 -O /dev/null --header="Content-Type: $2" --header="$4" --post-file="$3" -i -
    fi
  }
  printf '%s\n' "$rt_nt_hooks" | while read -r k u; do
    case $k in
      json) f=$rd/notify.json c=application/json h="X-Rtrain-Event: $ev" ;;
      ntfy) f=$rd/notify.txt c='text/plain; charset=utf-8' h="Title: rtrain: $rt_nt_host: run $ev" ;;
      slack) f=$rd/notify.slack c=application/json h="X-Rtrain-Event: $ev" ;;
      *) continue ;;
    esac
    if post "$u" "$c" "$f" "$h" >/dev/null 2>&1; then r=ok; else r=failed; fi
    echo "$k $ev $via $r" >> "$rd/notify.log"
  done
)
"##;

/// `up`, first part: the lock, then whether a run is active (which then is all `up` says).
const UP_LOCK: &str = r##"# The notify file (webhook URLs, maybe secret) is the first rt_notify_len bytes of stdin, before any edit's content.
rt_notify=
if [ "$rt_notify_len" -gt 0 ]; then rt_notify=$(head -c "$rt_notify_len"; echo x); rt_notify=${rt_notify%x}; fi
rt_out=1
CD_WORKDIR
rt_fail() { rt_say error "$1"; rt_say result error; exit 1; }
[ -n "$rt_session" ] || rt_fail "the session name is empty"
mkdir -p .rtrain/runs 2>/dev/null || rt_fail "cannot create $rt_wd/.rtrain/runs"

# The lock: mkdir is atomic. A lock is stale when its owner (on this host) is gone or it is older than 60 s;
# breakers serialise on a second mkdir and re-check under it, so two of them never both take over.
rt_lockdir=.rtrain/lock
rt_host=$(uname -n)
rt_lock_stale() {
  [ -d "$rt_lockdir" ] || return 1
  rt_now=$(date +%s)
  rt_owner=$(cat "$rt_lockdir/owner" 2>/dev/null)
  if [ -n "$rt_owner" ]; then
    set -- $rt_owner
    case ${1:-x}${2:-x} in *[!0-9]*) return 0;; esac
    if [ "${3:-}" = "$rt_host" ] && ! kill -0 "$1" 2>/dev/null; then return 0; fi
    [ $((rt_now - $2)) -gt 60 ]
    return
  fi
  rt_m=$(stat -c %Y "$rt_lockdir" 2>/dev/null) || return 1
  [ $((rt_now - rt_m)) -gt 60 ]
}
rt_me="$$ $(date +%s) $rt_host"
rt_locked=0
rt_unlock() {
  if [ "$rt_locked" = 1 ] && [ "$(cat "$rt_lockdir/owner" 2>/dev/null)" = "$rt_me" ]; then rm -rf "$rt_lockdir"; fi
  rt_locked=0
}
trap rt_unlock EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 141' PIPE
trap 'exit 143' TERM
rt_i=0
while ! mkdir "$rt_lockdir" 2>/dev/null; do
  rt_i=$((rt_i + 1))
  if [ "$rt_i" -gt 300 ]; then
    rt_fail "another rtrain up is in progress in $rt_wd (lock held by: $(cat "$rt_lockdir/owner" 2>/dev/null))"
  fi
  if rt_lock_stale; then
    if mkdir "$rt_lockdir.break" 2>/dev/null; then
      rt_lock_stale && rm -rf "$rt_lockdir"
      rmdir "$rt_lockdir.break"
      continue
    fi
    rt_m=$(stat -c %Y "$rt_lockdir.break" 2>/dev/null) && [ $(($(date +%s) - rt_m)) -gt 60 ] &&
      rmdir "$rt_lockdir.break" 2>/dev/null
  fi
  sleep 0.05
done
rt_locked=1
printf '%s\n' "$rt_me" > "$rt_lockdir/owner"

# Active? The current run first, then any run without an exit record whose wrapper or group still lives.
rt_active=
rt_read1 .rtrain/current
rt_cur=$rt_v
if rt_valid_id "$rt_cur" && [ -d ".rtrain/runs/$rt_cur" ] && [ "$(rt_state ".rtrain/runs/$rt_cur")" = running ]; then
  rt_active=$rt_cur
else
  for rt_d in .rtrain/runs/*; do
    { [ -d "$rt_d" ] && [ ! -f "$rt_d/exit" ]; } || continue
    rt_alive "$rt_d" && rt_active=${rt_d##*/}
  done
fi
if [ -n "$rt_active" ]; then
  rt_d=.rtrain/runs/$rt_active
  rt_say id "$rt_active"
  rt_pid "$rt_d"
  rt_say pid "$rt_p"
  rt_say started_at "$(cat "$rt_d/started_at" 2>/dev/null)"
  rt_say log "$(cat "$rt_d/log" 2>/dev/null)"
  rt_backend_of "$rt_d"
  rt_say backend "$rt_b"
  [ ! -f "$rt_d/job" ] || rt_say job "$(cat "$rt_d/job")"
  rt_say result active
  exit 0
fi
"##;

/// `up`: which backend starts the run ([`backend::functions_sh`] resolves it).
const UP_PICK: &str = r##"# The backend: the one asked for, or (auto) the first the box offers; `resume` keeps the current run's.
rt_want=$rt_backend
if [ "$rt_inherit" = 1 ] && rt_valid_id "$rt_cur" && [ -d ".rtrain/runs/$rt_cur" ]; then
  rt_backend_of ".rtrain/runs/$rt_cur"
  rt_want=$rt_b
fi
rt_available
rt_say available "$rt_av"
if ! rt_resolve "$rt_want"; then rt_say backend "$rt_b"; rt_say result backend-missing; exit 10; fi
rt_backend=$rt_b
[ "$rt_want" = auto ] && rt_say picked auto
"##;

/// `up`: the edit under the lock, then the run record, shared by every backend.
const UP_RECORD: &str = r##"if [ -n "$rt_edit_path" ]; then
  # Compare and swap under the lock: the file must still be what the edit was computed from.
  if [ -n "$rt_edit_expect" ] && command -v sha256sum >/dev/null 2>&1; then
    rt_h=$(sha256sum < "$rt_edit_path" 2>/dev/null)
    if [ "${rt_h%% *}" != "$rt_edit_expect" ]; then rt_say path "$rt_edit_path"; rt_say result edit-changed; exit 0; fi
  fi
  # The new content is this script's stdin.
  rt_atomic_write "$rt_edit_path" "$rt_edit_backup" || rt_fail "cannot write $rt_edit_path"
fi

rt_t=$(date +%s)
rt_n=0
while :; do
  rt_id=$(date -u -d "@$rt_t" +%Y%m%d-%H%M%S)-$(od -An -N2 -tx1 /dev/urandom | tr -dc 0-9a-f)
  mkdir ".rtrain/runs/$rt_id" 2>/dev/null && break
  rt_n=$((rt_n + 1))
  [ "$rt_n" -lt 20 ] || rt_fail "cannot create a run directory in $rt_wd/.rtrain/runs"
done
rt_rd=$rt_wd/.rtrain/runs/$rt_id
rt_prev=$(cat .rtrain/current 2>/dev/null)
rt_rollback() {
  rm -rf -- "$rt_rd"
  if [ -n "$rt_prev" ]; then printf '%s\n' "$rt_prev" > .rtrain/current; else rm -f .rtrain/current; fi
}
rt_started=$(date -u -d "@$rt_t" +%Y-%m-%dT%H:%M:%SZ)
mkdir -p -- "$rt_log_dir" 2>/dev/null && rt_logdir=$(cd -- "$rt_log_dir" && pwd) ||
  { rt_rollback; rt_fail "cannot create the log directory $rt_log_dir in $rt_wd"; }
rt_stamp=$(date -d "@$rt_t" +%Y%m%d_%H%M%S)
rt_log=$rt_logdir/training_$rt_stamp.log
rt_k=1
# noclobber makes the create exclusive; in a subshell, because a failed redirection of `:` ends the shell.
until (set -C && : > "$rt_log") 2>/dev/null; do
  rt_k=$((rt_k + 1))
  [ "$rt_k" -le 50 ] || { rt_rollback; rt_fail "cannot create a log file in $rt_logdir"; }
  rt_log=$rt_logdir/training_${rt_stamp}_$rt_k.log
done
{ printf '%s' "$rt_command" > "$rt_rd/command" &&
  printf '%s\n' "$rt_started" > "$rt_rd/started_at" &&
  printf '%s\n' "$rt_log" > "$rt_rd/log" &&
  printf '%s' "$rt_wrapper" > "$rt_rd/run.sh" &&
  printf '%s' "$rt_env" > "$rt_rd/env" &&
  printf '%s\n' "$rt_backend" > "$rt_rd/backend" &&
  printf '%s\n' "$rt_format" > "$rt_rd/format"; } 2>/dev/null ||
  { rt_rollback; rt_fail "cannot write the run record in $rt_rd"; }
if [ -n "$rt_notify" ]; then
  (umask 077 && printf '%s' "$rt_notify" > "$rt_rd/notify") 2>/dev/null ||
    { rt_rollback; rt_fail "cannot write the run record in $rt_rd"; }
  command -v curl >/dev/null 2>&1 || command -v wget >/dev/null 2>&1 || rt_say notify no-curl-or-wget
fi
RT_LOGIN_ENV
# Recorded as current before the backend starts it: a run that exists is never invisible to the next `up`.
{ printf '%s\n' "$rt_id" > ".rtrain/current.$$" && mv -f ".rtrain/current.$$" .rtrain/current; } 2>/dev/null ||
  { rt_rollback; rt_fail "cannot write $rt_wd/.rtrain/current"; }
"##;

/// `up`: the environment of the user's login shell (`shell: login`), captured into the run record's `login.env`
/// (mode 600: a `.bashrc` may export tokens), which the wrapper (and Slurm's batch script) sources first. Why it
/// is captured here, on `up`'s exec channel, and not by running the command in an interactive shell
/// (docs/run-record.md, "The user's shell", has the measurements):
/// - the exec channel has no terminal, so the interactive shell does no job control: it never takes a
///   terminal's foreground or moves into a process group of its own (which broke `stop`), and it cannot be
///   stopped by SIGTTIN waiting for a terminal; its "no job control" complaints go to /dev/null with the rest of
///   its stderr, never into the run's log;
/// - stdin is /dev/null and `timeout` bounds it (its whole process group), so a `.bashrc` that reads input or
///   sleeps cannot hang `up`: the run then gets plain sh and `up` says why;
/// - the shell `exec`s a plain `/bin/sh` that prints `export -p` after a marker line: its quoting is the very
///   sh's that sources it, `.bashrc`'s own output before the marker is skipped, and no user text is ever part of
///   a command line (the dump script arrives in the environment, `RTRAIN_DUMP`);
/// - what only the launching terminal or session means (TERM, TMUX, STY, PWD, SHLVL, SLURM_*) is left out, so
///   a tmux pane keeps its own TERM and a Slurm job its own SLURM_JOB_ID.
///
/// One capture per launch, in the same round trip; a Slurm continuation reuses it.
const UP_LOGIN_ENV: &str = r##"rt_shell_got=sh rt_shell_prog= rt_shell_warn=
rt_say shell_asked "$rt_shell"
if [ "$rt_shell" = login ]; then
  rt_shell_prog=${SHELL:-}
  case $rt_shell_prog in /*) ;; *) rt_shell_prog= ;; esac
  if [ -z "$rt_shell_prog" ] || [ ! -x "$rt_shell_prog" ]; then
    rt_shell_prog=$(getent passwd "$(id -un)" 2>/dev/null | cut -d: -f7)
  fi
  rt_raw=$rt_rd/login.env.raw
  if [ -z "$rt_shell_prog" ] || [ ! -x "$rt_shell_prog" ]; then
    rt_shell_warn="no login shell found (SHELL is ${SHELL:-unset})"
  elif ! command -v timeout >/dev/null 2>&1; then
    rt_shell_warn="this box has no timeout(1) to bound the login shell with"
  elif ! (umask 077 && : > "$rt_raw" && : > "$rt_rd/login.env") 2>/dev/null; then
    rt_shell_warn="cannot write $rt_rd/login.env"
  else
    # `exec` in the subshell: timeout is the child and signals its own process group when time is up.
    ( cd -- "$rt_wd" && RTRAIN_DUMP=$rt_dump exec timeout -k 2 "$rt_shell_timeout" "$rt_shell_prog" -l -i -c 'exec /bin/sh -c "$RTRAIN_DUMP"' ) \
      < /dev/null > "$rt_raw" 2> /dev/null
    rt_rc=$?
    rt_name=${rt_shell_prog##*/}
    if [ "$rt_rc" = 124 ] || [ "$rt_rc" = 137 ]; then
      rt_shell_warn="$rt_name -l -i (reading the login profile and rc files) did not finish within ${rt_shell_timeout}s: does one of them wait for input? (shell_timeout sets the limit)"
    elif ! grep -qx '@rtrain-login-env' "$rt_raw" 2>/dev/null; then
      rt_shell_warn="$rt_name -l -i ended (exit status $rt_rc) without giving its environment: does a profile or rc file exec another program or exit?"
    else
      sed -n '/^@rtrain-login-env$/,$p' "$rt_raw" | tail -n +2 > "$rt_rd/login.env"
      # Sourced by the wrapper, where an error would end it before it records the run's exit: try it first.
      if [ "$(/bin/sh -c '. "$1" >/dev/null 2>&1 && echo ok' rtrain-check "$rt_rd/login.env" 2>/dev/null)" = ok ]; then
        rt_shell_got=login
      else
        rt_shell_warn="the environment $rt_name -l -i printed cannot be read back by /bin/sh"
      fi
    fi
  fi
  rm -f -- "$rt_raw"
  [ "$rt_shell_got" = login ] || rm -f -- "$rt_rd/login.env"
fi
printf '%s %s\n' "$rt_shell_got" "$rt_shell_prog" > "$rt_rd/shell" 2>/dev/null
rt_say shell "$rt_shell_got"
rt_say shell_program "$rt_shell_prog"
[ -z "$rt_shell_warn" ] || rt_say shell_warning "$rt_shell_warn"
"##;

/// What the login shell's plain sh prints (see [`UP_LOGIN_ENV`]): the environment as `export` lines, less what
/// only the launching session means. `env` lists the SLURM_* names (sh has no way to list its variables alone).
const LOGIN_DUMP: &str = r##"unset RTRAIN_DUMP PWD OLDPWD SHLVL _ TERM COLUMNS LINES TMUX TMUX_PANE STY WINDOW SSH_TTY 2>/dev/null
for rt_x in $(env | sed -n 's/^\(SLURM_[A-Za-z0-9_]*\)=.*/\1/p'); do unset "$rt_x" 2>/dev/null; done
echo @rtrain-login-env
export -p
"##;

/// `up`, last part: the backend starts the wrapper, which writes its pid when it runs.
const UP_START: &str = r##"rt_nowait=
if ! "rt_${rt_backend}_start"; then rt_rollback; rt_fail "$rt_err"; fi
rt_i=0
# A scheduler's backend (rt_nowait=1) has a job id instead: its run may wait in the queue for hours.
while [ -z "$rt_nowait" ] && [ ! -s "$rt_rd/pid" ]; do
  rt_i=$((rt_i + 1))
  if [ "$rt_i" -gt 200 ]; then
    rt_say id "$rt_id"
    rt_fail "run $rt_id was launched with $rt_backend (session $rt_session) but its wrapper did not start within 10 s"
  fi
  sleep 0.05
done
rt_say id "$rt_id"
rt_say pid "$(cat "$rt_rd/pid" 2>/dev/null)"
[ ! -f "$rt_rd/job" ] || rt_say job "$(cat "$rt_rd/job")"
rt_say started_at "$rt_started"
rt_say log "$rt_log"
rt_say session "$rt_session"
rt_say backend "$rt_backend"
# Whether logind kills the run at logout: one `logind` line per fact (see remote/logind.rs).
rt_logind | while IFS= read -r rt_ll; do rt_say logind "$rt_ll"; done
rt_say result launched
"##;

const STOP_BODY: &str = r##"rt_out=1
CD_WORKDIR
rt_read1 .rtrain/current
rt_id=$rt_v
if ! rt_valid_id "$rt_id" || [ ! -d ".rtrain/runs/$rt_id" ]; then rt_say result no-run; exit 0; fi
rt_rd=.rtrain/runs/$rt_id
rt_say id "$rt_id"
rt_backend_of "$rt_rd"
rt_say backend "$rt_b"
rt_st=$(rt_state "$rt_rd")
if [ "$rt_st" = running ] && rt_tracks_own "$rt_b"; then "rt_${rt_b}_stop"; fi
if [ "$rt_st" != running ]; then
  rt_say state "$rt_st"
  rt_say exit "$(cat "$rt_rd/exit" 2>/dev/null)"
  rt_say result not-running
  exit 0
fi
rt_pid "$rt_rd"
rt_pg=$rt_p
# Written before signalling, so the run reads as stopped (not failed) however it ends.
date -u +%Y-%m-%dT%H:%M:%SZ > "$rt_rd/stopped"
rt_ended() { [ -f "$rt_rd/exit" ] || ! rt_group_alive "$rt_pg"; }
rt_wait() {
  rt_i=0
  while [ "$rt_i" -lt "$1" ]; do
    rt_ended && return 0
    sleep 0.1
    rt_i=$((rt_i + 1))
  done
  rt_ended
}
rt_sig=
for rt_s in $rt_signals; do
  kill -s "$rt_s" -- "-$rt_pg" 2>/dev/null
  if [ "$rt_s" = KILL ]; then rt_w=50; else rt_w=$((rt_timeout * 10)); fi
  if rt_wait "$rt_w"; then rt_sig=$rt_s; break; fi
done
if [ -z "$rt_sig" ]; then
  rt_say pid "$rt_pg"
  rt_say error "run $rt_id (process group $rt_pg) is still alive after SIGKILL"
  rt_say result error
  exit 1
fi
# SIGKILL takes the wrapper down with the group, so nobody else can record how the run ended.
if [ "$rt_sig" = KILL ] && [ ! -f "$rt_rd/exit" ]; then
  echo 137 > "$rt_rd/exit.tmp" && mv -f "$rt_rd/exit.tmp" "$rt_rd/exit"
fi
rt_say signal "$rt_sig"
rt_say exit "$(cat "$rt_rd/exit" 2>/dev/null)"
rt_say result stopped
"##;

/// Shared by `logs` and `follow`: resolve the run, then print log bytes `[start, size)` on stdout.
const LOG_BODY: &str = r##"rt_out=2
CD_WORKDIR
if [ -n "$rt_want_id" ]; then
  rt_id=$rt_want_id
  if ! rt_valid_id "$rt_id" || [ ! -d ".rtrain/runs/$rt_id" ]; then
    { rt_say id "$rt_id"; rt_say result unknown-run; } >&2
    exit 12
  fi
else
  rt_read1 .rtrain/current
  rt_id=$rt_v
  if ! rt_valid_id "$rt_id" || [ ! -d ".rtrain/runs/$rt_id" ]; then rt_say result no-run >&2; exit 12; fi
fi
rt_rd=.rtrain/runs/$rt_id
rt_log=$(cat "$rt_rd/log" 2>/dev/null)
if [ -z "$rt_log" ] || [ ! -f "$rt_log" ]; then { rt_say log "$rt_log"; rt_say result log-missing; } >&2; exit 13; fi
rt_size() { stat -c %s -- "$rt_log" 2>/dev/null || echo 0; }
# Bytes [$1, $2) of the log, streamed (tail seeks; head stops exactly at the end).
rt_range() { [ "$2" -gt "$1" ] || return 0; tail -c +$(($1 + 1)) -- "$rt_log" | head -c $(($2 - $1)); }
rt_end=$(rt_size)
if [ -n "$rt_lines" ]; then
  # Start of the last N lines of [0, end), found in a window that grows until it holds more than N lines, so a
  # huge log is never read whole.
  rt_start=$rt_end
  if [ "$rt_lines" -gt 0 ] && [ "$rt_end" -gt 0 ]; then
    rt_win=65536
    while :; do
      if [ "$rt_win" -ge "$rt_end" ]; then rt_ws=0; else rt_ws=$((rt_end - rt_win)); fi
      rt_nl=$(rt_range "$rt_ws" "$rt_end" | wc -l)
      rt_lastnl=$(rt_range $((rt_end - 1)) "$rt_end" | wc -l)
      rt_count=$((rt_nl + 1 - rt_lastnl))
      { [ "$rt_count" -gt "$rt_lines" ] || [ "$rt_ws" -eq 0 ]; } && break
      rt_win=$((rt_win * 4))
    done
    if [ "$rt_count" -le "$rt_lines" ]; then
      rt_start=0
    else
      rt_start=$((rt_ws + $(rt_range "$rt_ws" "$rt_end" | head -n $((rt_count - rt_lines)) | wc -c)))
    fi
  fi
else
  rt_start=$rt_offset
  if [ "$rt_start" -gt "$rt_end" ]; then rt_say truncated "$rt_end" >&2; rt_start=$rt_end; fi
fi
{ rt_say id "$rt_id"; rt_say log "$rt_log"; rt_say start "$rt_start"; } >&2
rt_range "$rt_start" "$rt_end" || exit 1
rt_at=$rt_end
"##;

const LOG_TRAILER: &str = r##"{
  rt_say state "$(rt_state "$rt_rd")"
  rt_say exit "$(cat "$rt_rd/exit" 2>/dev/null)"
  rt_say end "$rt_at"
  rt_say result RESULT
} >&2
"##;

/// Polls rather than `tail -f`: it must stop when `exit` appears, print exactly up to a known size, and die
/// soon after the client is gone (the periodic stderr line fails with SIGPIPE then).
const FOLLOW_LOOP: &str = r##"rt_n=0 rt_waited=
while :; do
  rt_done=0
  if [ -f "$rt_rd/exit" ]; then
    rt_done=1
  elif [ $((rt_n % 10)) -eq 0 ]; then
    if ! rt_alive "$rt_rd"; then
      rt_done=1
    elif [ "$rt_waiting" != "$rt_waited" ]; then
      # Queued: say so once per change (`waiting=` alone: it has started).
      rt_say waiting "$rt_waiting" >&2
      rt_waited=$rt_waiting
    fi
  fi
  rt_end=$(rt_size)
  if [ "$rt_end" -lt "$rt_at" ]; then rt_say truncated "$rt_end" >&2; rt_at=$rt_end; fi
  if [ "$rt_end" -gt "$rt_at" ]; then
    rt_range "$rt_at" "$rt_end" || exit 1
    rt_at=$rt_end
  fi
  [ "$rt_done" = 1 ] && break
  rt_n=$((rt_n + 1))
  [ $((rt_n % 25)) -eq 0 ] && rt_say at "$rt_at" >&2
  sleep 0.2
done
"##;

// ------------------------------------------------------------------------------------------------------------
// Script builders

fn assign(out: &mut String, name: &str, quoted_value: &str) {
    out.push_str(name);
    out.push('=');
    out.push_str(quoted_value);
    out.push('\n');
}

fn script(vars: &[(&str, String)], body: &str) -> String {
    let mut out = String::from("# rtrain remote script\n");
    for (name, value) in vars {
        assign(&mut out, name, value);
    }
    out.push_str(RUN_STATE_SH);
    out.push_str(FUNCS);
    out.push_str(&backend::functions_sh());
    out.push_str(&body.replace("CD_WORKDIR\n", CD_WORKDIR));
    out
}

/// A directory word for `cd`: `~`-based and absolute paths as given, relative ones unchanged (the scripts use
/// `cd --`, so a name starting with `-` is safe too).
fn dir_word(path: &str) -> String {
    quote_path(path)
}

/// The run dir's `env` file, sourced by the wrapper: one `export NAME=VALUE` per variable, each value quoted, so
/// it arrives byte for byte and nothing in it runs. A name that is not a shell name is skipped (the config refuses
/// them before this).
pub fn env_file(env: &[(String, String)]) -> String {
    let mut out = String::new();
    for (name, value) in env {
        if !crate::config::valid_env_name(name) {
            continue;
        }
        out.push_str(&format!("export {name}={}\n", quote(value)));
    }
    out
}

/// The script for `rtrain up`. Output: `@rtrain` lines ending with `result=launched|active|edit-changed|
/// backend-missing|workdir-missing|error`; see [`parse_up`]. With an edit, send [`up_stdin`] on its stdin.
pub fn up_script(spec: &LaunchSpec) -> String {
    let (edit_path, edit_expect, edit_backup) = match &spec.edit {
        Some(e) => (
            quote_path(&e.path),
            quote(e.expect_sha256.as_deref().unwrap_or("")),
            if e.backup { "1" } else { "0" },
        ),
        None => ("''".to_string(), "''".to_string(), "0"),
    };
    let mut vars = vec![
        ("rt_workdir", dir_word(&spec.workdir)),
        ("rt_session", quote(&spec.session)),
        ("rt_backend", quote(spec.backend.as_str())),
        ("rt_inherit", if spec.inherit_backend { "1" } else { "0" }.to_string()),
        ("rt_format", backend::RECORD_FORMAT.to_string()),
        ("rt_command", quote(&spec.command)),
        ("rt_log_dir", dir_word(&spec.log_dir)),
        ("rt_edit_path", edit_path),
        ("rt_edit_expect", edit_expect),
        ("rt_edit_backup", edit_backup.to_string()),
        ("rt_wrapper", quote(&WRAPPER.replace("RT_NOTIFY_FN\n", NOTIFY_SH))),
        ("rt_notify_len", spec.notify.as_ref().map_or(0, |n| n.len()).to_string()),
        ("rt_env", quote(&env_file(&spec.env))),
        ("rt_shell", quote(spec.shell.as_str())),
        ("rt_shell_timeout", spec.shell_timeout_secs.max(1).to_string()),
        ("rt_dump", quote(LOGIN_DUMP)),
    ];
    vars.extend(spec.backend_vars.iter().map(|(name, value)| (*name, quote(value))));
    // The login shell's environment is captured before the run is `current`: a run dir without a pid would
    // read as lost meanwhile.
    let record = UP_RECORD.replace("RT_LOGIN_ENV\n", UP_LOGIN_ENV);
    script(&vars, &[LOGIND_SH, UP_LOCK, UP_PICK, &record, UP_START].concat())
}

/// The backend `attach` joins: the current run's (as recorded), else `choice` as the box resolves it.
/// Output `@rtrain backend=NAME` and `result=ok`, or `result=backend-missing`; see [`parse_backend`]. For a
/// current run whose backend offers a shell in the run's place ([`crate::remote::backend::Backend::has_shell`]),
/// also whether one can be opened now; see [`parse_shell`].
pub fn backend_script(workdir: &str, choice: Choice) -> String {
    // A missing workdir is no error here: attach then opens its session in $HOME, as tmux always did.
    let body = r#"rt_available
rt_say available "$rt_av"
rt_cur=
if cd -- "$rt_workdir" 2>/dev/null; then
  rt_read1 .rtrain/current
  if rt_valid_id "$rt_v" && [ -d ".rtrain/runs/$rt_v" ]; then rt_cur=.rtrain/runs/$rt_v; rt_backend_of "$rt_cur"; rt_want=$rt_b; fi
fi
if ! rt_resolve "$rt_want"; then rt_say backend "$rt_b"; rt_say result backend-missing; exit 0; fi
rt_say backend "$rt_b"
if [ -n "$rt_cur" ] && rt_has_shell "$rt_b"; then "rt_${rt_b}_shell" "$rt_cur"; fi
rt_say result ok
"#;
    script(
        &[("rt_workdir", dir_word(workdir)), ("rt_want", quote(choice.as_str()))],
        body,
    )
}

/// The script for `rtrain stop`: SIGINT to the current run's process group, SIGTERM after `timeout_secs`,
/// SIGKILL after another `timeout_secs` (`force`: SIGKILL at once). See [`parse_stop`].
pub fn stop_script(workdir: &str, timeout_secs: u64, force: bool) -> String {
    stop_script_with(workdir, timeout_secs, force, "INT")
}

/// [`stop_script`] with another first signal (`stop_signal` in the config: `USR1` for a trainer that saves on
/// it), still followed by SIGTERM and SIGKILL. `first` is one of [`crate::config::STOP_SIGNALS`].
pub fn stop_script_with(workdir: &str, timeout_secs: u64, force: bool, first: &str) -> String {
    let first = if crate::config::STOP_SIGNALS.contains(&first) {
        first
    } else {
        "INT"
    };
    let signals = if force {
        "KILL".to_string()
    } else if first == "TERM" {
        "'TERM KILL'".to_string()
    } else {
        format!("'{first} TERM KILL'")
    };
    script(
        &[
            ("rt_workdir", dir_word(workdir)),
            ("rt_timeout", timeout_secs.to_string()),
            ("rt_signals", signals),
        ],
        STOP_BODY,
    )
}

fn log_vars(workdir: &str, run_id: Option<&str>, start: LogStart) -> Vec<(&'static str, String)> {
    let (offset, lines) = match start {
        LogStart::Offset(o) => (o.to_string(), "''".to_string()),
        LogStart::LastLines(n) => ("0".to_string(), n.to_string()),
    };
    vec![
        ("rt_workdir", dir_word(workdir)),
        ("rt_want_id", quote(run_id.unwrap_or(""))),
        ("rt_offset", offset),
        ("rt_lines", lines),
    ]
}

/// The script for `rtrain logs`: the last `lines` lines of the current (or given) run's log, or the whole log
/// for `None`, streamed. Log bytes on stdout; `@rtrain` header and trailer on stderr (see [`parse_log_header`],
/// [`parse_log_trailer`]); the trailer's `end` is where `follow_script` should continue.
pub fn logs_script(workdir: &str, run_id: Option<&str>, lines: Option<usize>) -> String {
    let start = lines.map_or(LogStart::Offset(0), LogStart::LastLines);
    let body = format!("{LOG_BODY}{}", LOG_TRAILER.replace("RESULT", "ok"));
    script(&log_vars(workdir, run_id, start), &body)
}

/// The script for `rtrain logs -f`: the log from `start`, then whatever is appended, until the run's `exit`
/// appears (or the run is lost). Then the trailer (`result=end`) on stderr. On a reconnect, call it again with
/// the run id from the header and `LogStart::Offset(header.start + bytes received)`.
pub fn follow_script(workdir: &str, run_id: Option<&str>, start: LogStart) -> String {
    let body = format!("{LOG_BODY}{FOLLOW_LOOP}{}", LOG_TRAILER.replace("RESULT", "end"));
    script(&log_vars(workdir, run_id, start), &body)
}

/// The script that tells whether the checkpoint `path` (relative to the workdir unless absolute or `~`-based) is
/// there: `@rtrain checkpoint=complete|incomplete|missing`. A directory is complete when it holds
/// `trainer_state.json` (what the Trainer writes last), a file (a Lightning `.ckpt`) when it is not empty.
pub fn checkpoint_state_script(workdir: &str, path: &str) -> String {
    let body = r#"rt_out=1
CD_WORKDIR
if [ -d "$rt_ckpt" ]; then
  if [ -f "$rt_ckpt/trainer_state.json" ]; then rt_say checkpoint complete; else rt_say checkpoint incomplete; fi
elif [ -s "$rt_ckpt" ]; then rt_say checkpoint complete
elif [ -e "$rt_ckpt" ]; then rt_say checkpoint incomplete
else rt_say checkpoint missing; fi
"#;
    script(
        &[("rt_workdir", dir_word(workdir)), ("rt_ckpt", quote_path(path))],
        body,
    )
}

/// What [`checkpoint_state_script`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointState {
    Complete,
    Incomplete,
    Missing,
}

pub fn parse_checkpoint_state(output: &str) -> Result<CheckpointState, RunError> {
    let f = fields(output);
    match first(&f, "checkpoint") {
        Some("complete") => Ok(CheckpointState::Complete),
        Some("incomplete") => Ok(CheckpointState::Incomplete),
        Some("missing") => Ok(CheckpointState::Missing),
        _ => Err(first(&f, "result")
            .and_then(|r| common_error(&f, r))
            .unwrap_or_else(|| unexpected("checkpoint", output))),
    }
}

/// A path under the workdir as the scripts take it: `rel` itself when absolute or `~`-based.
pub fn remote_path(workdir: &str, rel: &str) -> String {
    if rel.starts_with('/') || rel == "~" || rel.starts_with("~/") {
        rel.to_string()
    } else {
        format!("{}/{}", workdir.trim_end_matches('/'), rel)
    }
}

/// Prints the state of run `id` in `workdir` as `up`, `stop` and `logs` decide it ([`RUN_STATE_SH`]'s
/// `rt_state`), for tests that hold the status probe to the same answer.
#[cfg(test)]
pub(crate) fn state_script(workdir: &str, id: &str) -> String {
    let body = "rt_out=1\nCD_WORKDIR\nrt_state \".rtrain/runs/$rt_id\"\n";
    script(&[("rt_workdir", dir_word(workdir)), ("rt_id", quote(id))], body)
}

/// The exec command line that runs `script` with the remote POSIX sh, whatever the login shell is.
pub fn sh_command(script: &str) -> String {
    format!("sh -c {}", quote(script))
}

/// Fill a `resume_command` template such as `make train RESUME={checkpoint}`: every `{checkpoint}` becomes the
/// shell-quoted path (so write the placeholder unquoted in the template).
pub fn resume_command(template: &str, checkpoint: &str) -> String {
    template.replace("{checkpoint}", &quote(checkpoint))
}

// ------------------------------------------------------------------------------------------------------------
// Parsers

const MARK: &str = "@rtrain ";

fn fields(output: &str) -> Vec<(&str, &str)> {
    output
        .lines()
        .filter_map(|l| l.strip_prefix(MARK))
        .filter_map(|kv| kv.split_once('='))
        .collect()
}

fn first<'a>(fields: &[(&str, &'a str)], key: &str) -> Option<&'a str> {
    fields.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

fn unexpected(what: &str, output: &str) -> RunError {
    let shown: String = output.chars().take(300).collect();
    RunError::Other(format!("unexpected output from the remote {what} script: {shown:?}"))
}

fn exit_code(fields: &[(&str, &str)]) -> Option<i32> {
    first(fields, "exit").and_then(|v| v.trim().parse().ok())
}

fn run_info(f: &[(&str, &str)], output: &str) -> Result<RunInfo, RunError> {
    let get = |k| first(f, k).ok_or_else(|| unexpected("up", output));
    Ok(RunInfo {
        id: get("id")?.to_string(),
        // A scheduler's run has no pid on this box until it starts on a node (Slurm: `job` instead).
        pid: match first(f, "job") {
            Some(_) => first(f, "pid").and_then(|p| p.trim().parse().ok()).unwrap_or(0),
            None => get("pid")?.trim().parse().map_err(|_| unexpected("up", output))?,
        },
        started_at: get("started_at")?.to_string(),
        log: get("log")?.to_string(),
        backend: first(f, "backend").unwrap_or("tmux").to_string(),
        job: first(f, "job").map(str::to_string),
    })
}

fn available(f: &[(&str, &str)]) -> Vec<String> {
    first(f, "available")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// Errors every script reports the same way.
fn common_error(f: &[(&str, &str)], result: &str) -> Option<RunError> {
    Some(match result {
        "backend-missing" => RunError::BackendMissing {
            backend: first(f, "backend").unwrap_or("none").to_string(),
            available: available(f),
        },
        "workdir-missing" => RunError::WorkdirMissing {
            path: first(f, "workdir").unwrap_or_default().to_string(),
        },
        "no-run" => RunError::NoRun,
        "unknown-run" => RunError::UnknownRun {
            id: first(f, "id").unwrap_or_default().to_string(),
        },
        "log-missing" => RunError::LogMissing {
            path: first(f, "log").unwrap_or_default().to_string(),
        },
        "error" => RunError::Other(first(f, "error").unwrap_or("remote script failed").to_string()),
        _ => return None,
    })
}

/// Parse the stdout of [`up_script`].
pub fn parse_up(output: &str) -> Result<UpOutcome, RunError> {
    let f = fields(output);
    let result = first(&f, "result").ok_or_else(|| unexpected("up", output))?;
    match result {
        "launched" => Ok(UpOutcome::Launched {
            run: run_info(&f, output)?,
            session: first(&f, "session").unwrap_or_default().to_string(),
            picked: Picked {
                auto: first(&f, "picked") == Some("auto"),
                available: available(&f),
            },
            shell: ShellGot {
                asked: first(&f, "shell_asked").unwrap_or("sh").to_string(),
                got: first(&f, "shell").unwrap_or("sh").to_string(),
                program: first(&f, "shell_program").filter(|p| !p.is_empty()).map(str::to_string),
                warning: first(&f, "shell_warning").map(str::to_string),
            },
        }),
        "active" => Ok(UpOutcome::AlreadyActive {
            run: run_info(&f, output)?,
        }),
        "edit-changed" => Err(RunError::EditChanged {
            path: first(&f, "path").unwrap_or_default().to_string(),
        }),
        other => Err(common_error(&f, other).unwrap_or_else(|| unexpected("up", output))),
    }
}

/// Parse the stdout of [`backend_script`]: the backend's name.
pub fn parse_backend(output: &str) -> Result<String, RunError> {
    let f = fields(output);
    match first(&f, "result") {
        Some("ok") => first(&f, "backend")
            .map(str::to_string)
            .ok_or_else(|| unexpected("backend", output)),
        Some(other) => Err(common_error(&f, other).unwrap_or_else(|| unexpected("backend", output))),
        None => Err(unexpected("backend", output)),
    }
}

/// Where [`backend_script`] says `attach` can open a shell for the current run, or why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShellPlace {
    /// `place` for the backend's `shell_command`, `where` in words (`Slurm job 11 on node gpu017`).
    Open { place: String, at: String },
    /// Why not, in words (`Slurm job 11 is PENDING (Resources): ...`).
    Closed(String),
}

/// The shell part of [`backend_script`]'s output: `None` when the backend offers none (or there is no run).
pub fn parse_shell(output: &str) -> Option<ShellPlace> {
    let f = fields(output);
    match first(&f, "shell")? {
        "ok" => Some(ShellPlace::Open {
            place: first(&f, "place")?.to_string(),
            at: first(&f, "where").unwrap_or_default().to_string(),
        }),
        _ => Some(ShellPlace::Closed(
            first(&f, "why").unwrap_or("no shell can be opened").to_string(),
        )),
    }
}

/// Parse the stdout of [`stop_script`].
pub fn parse_stop(output: &str) -> Result<StopOutcome, RunError> {
    let f = fields(output);
    let result = first(&f, "result").ok_or_else(|| unexpected("stop", output))?;
    let id = || first(&f, "id").unwrap_or_default().to_string();
    match result {
        "stopped" => {
            let signal = first(&f, "signal")
                .and_then(StopSignal::from_kill_name)
                .ok_or_else(|| unexpected("stop", output))?;
            Ok(StopOutcome::Stopped {
                id: id(),
                signal,
                exit_code: exit_code(&f),
                backend: first(&f, "backend").unwrap_or("tmux").to_string(),
            })
        }
        "not-running" => {
            let state = first(&f, "state").ok_or_else(|| unexpected("stop", output))?.parse()?;
            Ok(StopOutcome::NotRunning {
                id: id(),
                state,
                exit_code: exit_code(&f),
            })
        }
        "no-run" => Ok(StopOutcome::NoRun),
        other => Err(common_error(&f, other).unwrap_or_else(|| unexpected("stop", output))),
    }
}

fn log_error(f: &[(&str, &str)]) -> Option<RunError> {
    first(f, "result").and_then(|r| common_error(f, r))
}

/// Parse the header from the (possibly partial) stderr of [`logs_script`] / [`follow_script`]: `Ok(None)` until
/// it has arrived.
pub fn parse_log_header(stderr: &str) -> Result<Option<LogHeader>, RunError> {
    let f = fields(stderr);
    if let Some(e) = log_error(&f) {
        return Err(e);
    }
    let (Some(id), Some(log), Some(start)) = (first(&f, "id"), first(&f, "log"), first(&f, "start")) else {
        return Ok(None);
    };
    let start = start.trim().parse().map_err(|_| unexpected("logs", stderr))?;
    Ok(Some(LogHeader {
        id: id.to_string(),
        log: log.to_string(),
        start,
    }))
}

/// Parse the trailer from the stderr of [`logs_script`] / [`follow_script`]: `Ok(None)` when the stream ended
/// without one (the connection dropped: follow again from the bytes received).
pub fn parse_log_trailer(stderr: &str) -> Result<Option<LogTrailer>, RunError> {
    let f = fields(stderr);
    if let Some(e) = log_error(&f) {
        return Err(e);
    }
    if !matches!(first(&f, "result"), Some("ok" | "end")) {
        return Ok(None);
    }
    let state = first(&f, "state").ok_or_else(|| unexpected("logs", stderr))?.parse()?;
    let end = first(&f, "end")
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| unexpected("logs", stderr))?;
    Ok(Some(LogTrailer {
        state,
        exit_code: exit_code(&f),
        end,
    }))
}

#[cfg(test)]
mod tests {
    //! The scripts run here for real: local `sh` (dash), real tmux with a private server per test
    //! (`TMUX_TMPDIR`), and docker/gpu-box/project/train.py as the trainer.
    use crate::train::train_config::{edit_resume_from_checkpoint, yaml_scalar, ResumeEdit, ResumeEditError};

    /// The resume edit's new text.
    fn set_resume_from_checkpoint(yaml: &str, path: &str) -> Result<String, ResumeEditError> {
        edit_resume_from_checkpoint(yaml, path).map(|e| e.text)
    }

    use super::*;
    use proptest::prelude::*;

    // rt_atomic_write (up's edit under the lock) on its own, as a script of its own.
    const WRITE_BODY: &str = r##"if rt_atomic_write "$rt_path" "$rt_backup"; then
      rt_say result ok
    else
      rt_say result error
      exit 1
    fi
    "##;

    /// Replace `path` atomically with what arrives on stdin (so send this script as the exec command, not on stdin):
    /// a temp file in the same directory, the old content kept as `PATH.bak` when `backup`, then `mv`. A symlink is
    /// followed, so the link survives. Output `@rtrain result=ok|error` (+ `error=...`); see [`parse_write`].
    fn write_file_atomically_script(path: &str, backup: bool) -> String {
        script(
            &[
                ("rt_path", quote_path(path)),
                ("rt_backup", if backup { "1" } else { "0" }.to_string()),
            ],
            WRITE_BODY,
        )
    }

    /// Parse the stdout of [`write_file_atomically_script`].
    fn parse_write(output: &str) -> Result<(), RunError> {
        let f = fields(output);
        match first(&f, "result") {
            Some("ok") => Ok(()),
            Some(other) => Err(common_error(&f, other).unwrap_or_else(|| unexpected("write", output))),
            None => Err(unexpected("write", output)),
        }
    }

    use std::fs;
    use std::path::{Path, PathBuf};
    use std::process::{Command, Output};
    use std::time::{Duration, Instant};

    const FAST: &str = "python3 train.py --max-steps 6 --seconds-per-step 0.05 --save-steps 3 --logging-steps 2";
    const SLOW: &str = "python3 train.py --max-steps 400 --seconds-per-step 0.05 --save-steps 1000";

    fn project_dir() -> PathBuf {
        // file!() is relative to the package root in rtrain, absolute when this file is mounted elsewhere.
        let file = Path::new(file!());
        let src = if file.is_absolute() {
            file.to_path_buf()
        } else {
            Path::new(env!("CARGO_MANIFEST_DIR")).join(file)
        };
        src.ancestors().nth(3).unwrap().join("docker/gpu-box/project")
    }

    /// A private HOME, tmux server and working directories; the tmux server dies with it, also when a test fails.
    struct Sandbox {
        root: tempfile::TempDir,
    }

    impl Drop for Sandbox {
        fn drop(&mut self) {
            // Runs first (a trainer that ignores SIGHUP would outlive its tmux server), by their recorded ids.
            let mut pids: Vec<u32> = vec![];
            for base in [self.root.path().to_path_buf(), self.path("home")] {
                for project in fs::read_dir(base).into_iter().flatten().flatten() {
                    for run in fs::read_dir(project.path().join(".rtrain/runs"))
                        .into_iter()
                        .flatten()
                        .flatten()
                    {
                        pids.extend(
                            fs::read_to_string(run.path().join("pid"))
                                .ok()
                                .and_then(|p| p.trim().parse::<u32>().ok()),
                        );
                    }
                }
            }
            for pgid in pids.into_iter().filter(|&p| p > 1) {
                let _ = self.cmd(&format!("kill -s KILL -- -{pgid} 2>/dev/null")).output();
            }
            let _ = self.cmd("tmux kill-server 2>/dev/null").output();
            // A screen session's PID.NAME starts with its server's pid.
            let _ = self
                .cmd(r"screen -ls 2>/dev/null | sed -n 's/^\t\([0-9][0-9]*\)\..*/\1/p' | xargs -r kill 2>/dev/null")
                .output();
        }
    }

    impl Sandbox {
        fn new() -> Self {
            let root = tempfile::Builder::new().prefix("rt").tempdir().unwrap();
            fs::create_dir(root.path().join("home")).unwrap();
            fs::create_dir(root.path().join("tmux")).unwrap();
            fs::create_dir(root.path().join("screen")).unwrap();
            fs::set_permissions(
                root.path().join("screen"),
                std::os::unix::fs::PermissionsExt::from_mode(0o700),
            )
            .unwrap();
            Sandbox { root }
        }

        fn path(&self, rel: &str) -> PathBuf {
            self.root.path().join(rel)
        }

        /// A copy of the demo project (trainer, Makefile, config) named `name` under the sandbox.
        fn project(&self, name: &str) -> PathBuf {
            let dir = self.path(name);
            fs::create_dir_all(dir.join("config")).unwrap();
            let src = project_dir();
            for f in ["train.py", "Makefile", "config/training_config.yaml"] {
                fs::copy(src.join(f), dir.join(f)).unwrap();
            }
            dir
        }

        fn cmd(&self, script: &str) -> Command {
            let mut c = Command::new("/bin/sh");
            c.arg("-c")
                .arg(script)
                .current_dir(self.root.path())
                .env_remove("TMUX")
                .env("TMUX_TMPDIR", self.path("tmux"))
                .env("SCREENDIR", self.path("screen"))
                .env("HOME", self.path("home"))
                .env("SHELL", "/bin/sh");
            c
        }

        /// A directory of symlinks to everything in /usr/bin and /bin but `without`: a box that lacks them.
        fn bin_without(&self, without: &[&str]) -> PathBuf {
            let bin = self.path(&format!("bin-without-{}", without.join("-")));
            fs::create_dir_all(&bin).unwrap();
            for dir in ["/usr/bin", "/bin"] {
                for e in fs::read_dir(dir).unwrap().flatten() {
                    let name = e.file_name();
                    if !without.iter().any(|w| name == *w) && !bin.join(&name).exists() {
                        let _ = std::os::unix::fs::symlink(e.path(), bin.join(&name));
                    }
                }
            }
            bin
        }

        /// The up script run with `PATH=bin`.
        fn up_on(&self, bin: &Path, spec: &LaunchSpec) -> (Option<i32>, Result<UpOutcome, RunError>) {
            let out = self.cmd(&up_script(spec)).env("PATH", bin).output().unwrap();
            (out.status.code(), parse_up(&String::from_utf8(out.stdout).unwrap()))
        }

        fn sh(&self, script: &str) -> Output {
            self.cmd(script).output().unwrap()
        }

        fn stdout(&self, script: &str) -> String {
            String::from_utf8(self.sh(script).stdout).unwrap()
        }

        /// The up script with its stdin (the edit's content), as rtrain sends it.
        fn up_stdout(&self, spec: &LaunchSpec) -> String {
            use std::io::Write as _;
            let mut child = self
                .cmd(&up_script(spec))
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let data = up_stdin(spec).unwrap_or_default();
            let mut stdin = child.stdin.take().unwrap();
            let feeder = std::thread::spawn(move || {
                let _ = stdin.write_all(&data);
            });
            let out = child.wait_with_output().unwrap();
            feeder.join().unwrap();
            String::from_utf8(out.stdout).unwrap()
        }

        fn spec(&self, wd: &Path, command: &str) -> LaunchSpec {
            LaunchSpec {
                backend_vars: Vec::new(),
                workdir: wd.to_str().unwrap().to_string(),
                session: "training".into(),
                command: command.into(),
                log_dir: "logs".into(),
                env: Vec::new(),
                shell: ShellMode::Login,
                shell_timeout_secs: 10,
                edit: None,
                notify: None,
                backend: Choice::Only("tmux"),
                inherit_backend: false,
            }
        }

        fn up(&self, wd: &Path, command: &str) -> Result<UpOutcome, RunError> {
            parse_up(&self.stdout(&up_script(&self.spec(wd, command))))
        }

        fn launch(&self, wd: &Path, command: &str) -> RunInfo {
            match self.up(wd, command) {
                Ok(UpOutcome::Launched { run, .. }) => run,
                other => panic!("expected a launch, got {other:?}"),
            }
        }

        /// The state by the same sh functions `up` uses.
        fn state(&self, wd: &Path, id: &str) -> String {
            self.stdout(&state_script(wd.to_str().unwrap(), id)).trim().to_string()
        }

        /// Wait for the run to end (every state but `running` is final), then check it ended as `want`.
        fn wait_state(&self, wd: &Path, id: &str, want: &str) {
            let mut state = String::new();
            wait_until(Duration::from_secs(20), || {
                state = self.state(wd, id);
                state != "running"
            });
            assert_eq!(
                state,
                want,
                "run {id} ended {state}, not {want}; log:\n{}",
                log_of(wd, id)
            );
        }
    }

    fn wait_until(limit: Duration, mut ok: impl FnMut() -> bool) -> bool {
        let t = Instant::now();
        while t.elapsed() < limit {
            if ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        ok()
    }

    fn record(wd: &Path, id: &str, file: &str) -> String {
        fs::read_to_string(wd.join(".rtrain/runs").join(id).join(file)).unwrap_or_default()
    }

    fn log_of(wd: &Path, id: &str) -> String {
        String::from_utf8_lossy(&fs::read(record(wd, id, "log").trim()).unwrap_or_default()).into_owned()
    }

    fn run_dirs(wd: &Path) -> usize {
        fs::read_dir(wd.join(".rtrain/runs")).map(|d| d.count()).unwrap_or(0)
    }

    /// Pids in the process group `pgid`, from /proc.
    fn group_members(pgid: u32) -> Vec<u32> {
        let mut out = vec![];
        for e in fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = fs::read_to_string(e.path().join("stat")) else {
                continue;
            };
            let after = &stat[stat.rfind(')').unwrap() + 2..];
            let f: Vec<&str> = after.split(' ').collect();
            if f[0] != "Z" && f[2] == pgid.to_string() {
                out.push(pid);
            }
        }
        out
    }

    // ---- up ------------------------------------------------------------------------------------------------

    #[test]
    fn the_notify_file_travels_on_stdin_never_in_the_script() {
        let n = notify_file(&NotifySpec {
            host: "gpu\x1b]0;x".into(),
            hooks: vec![("ntfy".into(), "https://ntfy.sh/SECRET-topic".into())],
            events: vec!["failed".into()],
            checkpoint_dir: "~/out".into(),
        });
        assert!(!n.contains('\x1b'), "{n}");
        let spec = LaunchSpec {
            backend_vars: Vec::new(),
            workdir: "~/p".into(),
            session: "s".into(),
            command: "true".into(),
            log_dir: "logs".into(),
            env: Vec::new(),
            shell: ShellMode::Login,
            shell_timeout_secs: 10,
            edit: Some(FileEdit {
                path: "c.yaml".into(),
                content: "EDIT".into(),
                backup: false,
                expect_sha256: None,
            }),
            notify: Some(n.clone()),
            backend: Choice::Auto,
            inherit_backend: false,
        };
        let script = up_script(&spec);
        assert!(!script.contains("SECRET"));
        assert!(script.contains(&format!("rt_notify_len={}\n", n.len())));
        assert_eq!(up_stdin(&spec).unwrap(), format!("{n}EDIT").into_bytes());
    }

    #[test]
    fn up_launches_and_the_record_goes_running_then_finished() {
        let sb = Sandbox::new();
        let wd = sb.project("proj");
        let run = sb.launch(&wd, FAST);
        assert!(run.id.len() == 20 && rt_valid_id_like(&run.id), "id {:?}", run.id);
        assert_eq!(fs::read_to_string(wd.join(".rtrain/current")).unwrap().trim(), run.id);
        assert_eq!(record(&wd, &run.id, "pid").trim(), run.pid.to_string());
        assert_eq!(record(&wd, &run.id, "command"), FAST);
        assert!(humantime::parse_rfc3339(record(&wd, &run.id, "started_at").trim()).is_ok());
        assert!(run.log.starts_with(wd.join("logs/training_").to_str().unwrap()) && run.log.ends_with(".log"));
        assert_eq!(sb.state(&wd, &run.id), "running");
        sb.wait_state(&wd, &run.id, "finished");
        assert_eq!(record(&wd, &run.id, "exit").trim(), "0");
        // The log has the trainer's stderr (bar redraws) and stdout (dict lines).
        let log = log_of(&wd, &run.id);
        assert!(log.contains("\r100%|██████████| 6/6 ["), "no final bar in {log:?}");
        assert!(
            log.contains("{'loss': '") && log.contains("{'train_runtime': '"),
            "no dict lines in {log:?}"
        );
        assert!(wd.join("outputs/checkpoint-6/trainer_state.json").exists());
    }

    fn rt_valid_id_like(id: &str) -> bool {
        id.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
    }

    #[test]
    fn the_window_drops_to_a_login_shell_in_the_workdir_afterwards() {
        let sb = Sandbox::new();
        let wd = sb.project("proj");
        let run = sb.launch(&wd, "echo done-here");
        sb.wait_state(&wd, &run.id, "finished");
        // The pane is still the wrapper's pid, now a shell: type into it like a user would.
        let panes = sb.stdout("tmux list-panes -a -F '#{pane_pid} #{pane_id}'");
        let pane = panes
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{} ", run.pid)))
            .expect("pane gone");
        sb.sh(&format!("tmux send-keys -t {pane} 'pwd > shell-proof' Enter"));
        assert!(wait_until(Duration::from_secs(10), || wd.join("shell-proof").exists()));
        assert!(wait_until(Duration::from_secs(5), || {
            fs::read_to_string(wd.join("shell-proof")).unwrap_or_default().trim() == wd.to_str().unwrap()
        }));
        assert!(log_of(&wd, &run.id).contains("done-here"));
    }

    #[test]
    fn a_second_up_starts_nothing_while_a_run_is_active() {
        let sb = Sandbox::new();
        let wd = sb.project("proj");
        let run = sb.launch(&wd, SLOW);
        match sb.up(&wd, FAST) {
            Ok(UpOutcome::AlreadyActive { run: active }) => assert_eq!(active, run),
            other => panic!("expected AlreadyActive, got {other:?}"),
        }
        assert_eq!(run_dirs(&wd), 1);
        assert_eq!(fs::read_to_string(wd.join(".rtrain/current")).unwrap().trim(), run.id);
    }

    #[test]
    fn ten_concurrent_ups_start_exactly_one_run() {
        let sb = Sandbox::new();
        let wd = sb.project("proj");
        let script = up_script(&sb.spec(&wd, SLOW));
        // All ten are running before any is waited for.
        let children: Vec<_> = (0..10)
            .map(|_| sb.cmd(&script).stdout(std::process::Stdio::piped()).spawn().unwrap())
            .collect();
        let outcomes: Vec<UpOutcome> = children
            .into_iter()
            .map(|c| parse_up(&String::from_utf8(c.wait_with_output().unwrap().stdout).unwrap()).unwrap())
            .collect();
        let launched: Vec<&RunInfo> = outcomes
            .iter()
            .filter_map(|o| match o {
                UpOutcome::Launched { run, .. } => Some(run),
                _ => None,
            })
            .collect();
        assert_eq!(launched.len(), 1, "{outcomes:?}");
        for o in &outcomes {
            if let UpOutcome::AlreadyActive { run } = o {
                assert_eq!(run, launched[0]);
            }
        }
        assert_eq!(run_dirs(&wd), 1);
        let windows = sb.stdout("tmux list-windows -t =training -F '#{window_name}'");
        assert_eq!(windows.lines().filter(|w| *w == "rtrain").count(), 1, "{windows}");
        assert!(!wd.join(".rtrain/lock").exists(), "lock left behind");
    }

    /// Puts a lock in place as another `up` on this host holds it: `PID EPOCH HOST`.
    fn hold_lock(sb: &Sandbox, wd: &Path, pid: u32, epoch: i64) {
        fs::create_dir_all(wd.join(".rtrain/lock")).unwrap();
        let host = sb.stdout("uname -n");
        fs::write(
            wd.join(".rtrain/lock/owner"),
            format!("{pid} {epoch} {}\n", host.trim()),
        )
        .unwrap();
    }

    fn box_now(sb: &Sandbox) -> i64 {
        sb.stdout("date +%s").trim().parse().unwrap()
    }

    /// A live process to own a lock; killed on drop.
    struct Owner(std::process::Child);

    impl Owner {
        fn start() -> Owner {
            Owner(Command::new("sleep").arg("60").spawn().unwrap())
        }

        fn pid(&self) -> u32 {
            self.0.id()
        }
    }

    impl Drop for Owner {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    #[test]
    fn a_recent_lock_of_a_dead_owner_is_broken() {
        let sb = Sandbox::new();
        let wd = sb.project("proj");
        // A pid that just ended, and a timestamp of now: only the liveness check can break this lock (the age
        // rule waits for 60 s, and up gives up waiting after about 15).
        let mut gone = Command::new("true").spawn().unwrap();
        gone.wait().unwrap();
        hold_lock(&sb, &wd, gone.id(), box_now(&sb));
        let t = Instant::now();
        sb.launch(&wd, "true");
        assert!(t.elapsed() < Duration::from_secs(5), "took {:?}", t.elapsed());
        assert!(!wd.join(".rtrain/lock").exists(), "lock left behind");
    }

    #[test]
    fn a_live_owners_recent_lock_blocks_until_the_owner_is_gone() {
        let sb = Sandbox::new();
        let wd = sb.project("proj");
        let owner = Owner::start();
        hold_lock(&sb, &wd, owner.pid(), box_now(&sb));
        let mut up = sb
            .cmd(&up_script(&sb.spec(&wd, "true")))
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // An up that is not blocked launches in well under a second; this one must still be waiting after 2 s,
        // having started nothing.
        let ended_early = wait_until(Duration::from_secs(2), || up.try_wait().unwrap().is_some());
        assert!(!ended_early, "up did not wait for a live owner's lock");
        assert_eq!(run_dirs(&wd), 0);
        drop(owner);
        assert!(
            wait_until(Duration::from_secs(20), || up.try_wait().unwrap().is_some()),
            "up still blocked after the owner died"
        );
        let out = up.wait_with_output().unwrap();
        match parse_up(&String::from_utf8(out.stdout).unwrap()) {
            Ok(UpOutcome::Launched { .. }) => {}
            other => panic!("expected a launch once the owner was gone, got {other:?}"),
        }
        assert_eq!(run_dirs(&wd), 1);
    }

    #[test]
    fn a_lock_older_than_a_minute_is_broken_even_when_its_pid_lives() {
        // up holds its lock for moments; a live pid behind a lock this old is a reused pid or a hung up, and the
        // script's rule (older than 60 s is stale) breaks it.
        let sb = Sandbox::new();
        let wd = sb.project("proj");
        let owner = Owner::start();
        hold_lock(&sb, &wd, owner.pid(), box_now(&sb) - 120);
        let t = Instant::now();
        sb.launch(&wd, "true");
        assert!(t.elapsed() < Duration::from_secs(5), "took {:?}", t.elapsed());
    }

    #[test]
    fn a_log_name_already_taken_is_never_reused() {
        // Regression: two runs in the same second collided on training_<stamp>.log, and the failed exclusive
        // create of `:` ended the up script silently.
        let sb = Sandbox::new();
        let wd = sb.project("proj");
        fs::create_dir(wd.join("logs")).unwrap();
        let now = sb.stdout("date +%s");
        let now: i64 = now.trim().parse().unwrap();
        for t in now..now + 5 {
            let stamp = sb.stdout(&format!("date -d @{t} +%Y%m%d_%H%M%S"));
            fs::write(wd.join(format!("logs/training_{}.log", stamp.trim())), "taken").unwrap();
        }
        let run = sb.launch(&wd, "echo mine");
        assert!(run.log.ends_with("_2.log"), "{}", run.log);
        sb.wait_state(&wd, &run.id, "finished");
        assert_eq!(log_of(&wd, &run.id), "mine\n");
        for e in fs::read_dir(wd.join("logs")).unwrap().flatten() {
            if !e.path().to_string_lossy().ends_with("_2.log") {
                assert_eq!(fs::read_to_string(e.path()).unwrap(), "taken");
            }
        }
    }

    #[test]
    fn a_run_that_just_ended_never_reads_as_lost() {
        // Regression: `exit` was read before the liveness test, so a run ending in between (the wrapper writes
        // `exit`, then execs the login shell) read as lost.
        let sb = Sandbox::new();
        let wd = sb.project("proj");
        for _ in 0..5 {
            let run = sb.launch(&wd, "sleep 0.2");
            let body = format!(
                "rt_out=1\nCD_WORKDIR\nwhile s=$(rt_state .rtrain/runs/{}); [ \"$s\" = running ]; do :; done\necho $s\n",
                run.id
            );
            let s = script(&[("rt_workdir", quote(wd.to_str().unwrap()))], &body);
            assert_eq!(sb.stdout(&s).trim(), "finished");
        }
    }

    #[test]
    fn a_crash_at_step_k_is_failed_with_exit_1_and_the_traceback_in_the_log() {
        let sb = Sandbox::new();
        let wd = sb.project("proj");
        let run = sb.launch(&wd, &format!("{FAST} --crash-at-step 4"));
        sb.wait_state(&wd, &run.id, "failed");
        assert_eq!(record(&wd, &run.id, "exit").trim(), "1");
        let log = log_of(&wd, &run.id);
        assert!(log.contains("Traceback (most recent call last):"), "{log}");
        assert!(log.contains("RuntimeError: simulated crash at step 4"), "{log}");
        assert!(wd.join("outputs/checkpoint-3/trainer_state.json").exists());
        // A failed run is not active: the next up launches.
        let again = sb.launch(&wd, "true");
        assert_ne!(again.id, run.id);
    }

    #[test]
    fn a_backend_the_box_lacks_is_reported_with_what_it_has_and_nothing_is_started() {
        let sb = Sandbox::new();
        let wd = sb.project("proj");
        let (code, out) = sb.up_on(&sb.bin_without(&["tmux", "sbatch"]), &sb.spec(&wd, FAST));
        assert_eq!(code, Some(10));
        assert_eq!(
            out,
            Err(RunError::BackendMissing {
                backend: "tmux".into(),
                available: vec!["screen".into(), "nohup".into()]
            })
        );
        assert_eq!(run_dirs(&wd), 0);
        assert!(!wd.join(".rtrain/current").exists() && !wd.join(".rtrain/lock").exists());
        let spec = LaunchSpec {
            backend_vars: Vec::new(),
            backend: Choice::Auto,
            ..sb.spec(&wd, FAST)
        };
        let (_, out) = sb.up_on(&sb.bin_without(&["tmux", "screen", "setsid", "sbatch"]), &spec);
        assert!(
            matches!(&out, Err(RunError::BackendMissing { backend, available }) if backend == "none" && available.is_empty()),
            "{out:?}"
        );
        assert_eq!(run_dirs(&wd), 0);
    }

    /// `resume` relaunches where the run ran: the current run's recorded backend over the configured one;
    /// a record from before backends (no `backend` file) is tmux's.
    #[test]
    fn a_resume_keeps_the_current_runs_backend_and_an_old_record_reads_as_tmux() {
        let sb = Sandbox::new();
        let wd = sb.project("inherit");
        let on = |backend: &'static str, inherit: bool| {
            let spec = LaunchSpec {
                backend: Choice::Only(backend),
                inherit_backend: inherit,
                ..sb.spec(&wd, "true")
            };
            match parse_up(&sb.stdout(&up_script(&spec))) {
                Ok(UpOutcome::Launched { run, .. }) => {
                    sb.wait_state(&wd, &run.id, "finished");
                    run
                }
                other => panic!("{other:?}"),
            }
        };
        let first = on("nohup", false);
        assert_eq!(on("tmux", true).backend, "nohup");
        assert_eq!(
            on("screen", false).backend,
            "screen",
            "a plain up takes what it is told"
        );
        let old = on("screen", true);
        assert_eq!(old.backend, "screen");
        // As rtrain before backends wrote it.
        let dir = wd.join(".rtrain/runs").join(&old.id);
        fs::remove_file(dir.join("backend")).unwrap();
        fs::remove_file(dir.join("format")).unwrap();
        assert_eq!(on("nohup", true).backend, "tmux");
        assert_ne!(first.id, old.id);
    }

    /// `auto` takes tmux, else screen, else nohup; each records itself in the run record (format 2), and the
    /// run is its own process group under each, led by the wrapper.
    #[test]
    fn auto_picks_tmux_then_screen_then_nohup_and_the_record_names_it() {
        let sb = Sandbox::new();
        for (without, want) in [
            (&[][..], "tmux"),
            (&["tmux"][..], "screen"),
            (&["tmux", "screen"][..], "nohup"),
        ] {
            let wd = sb.project(&format!("auto-{want}"));
            let spec = LaunchSpec {
                backend_vars: Vec::new(),
                backend: Choice::Auto,
                session: format!("s {want}"),
                ..sb.spec(&wd, "sleep 0.3; echo done-$((6*7))")
            };
            let (_, out) = sb.up_on(&sb.bin_without(without), &spec);
            let (run, picked) = match out {
                Ok(UpOutcome::Launched { run, picked, .. }) => (run, picked),
                other => panic!("{want}: {other:?}"),
            };
            assert_eq!(run.backend, want);
            assert!(
                picked.auto && picked.available.first().map(String::as_str) == Some(want),
                "{picked:?}"
            );
            assert_eq!(record(&wd, &run.id, "backend"), format!("{want}\n"));
            assert_eq!(record(&wd, &run.id, "format"), "2\n");
            let stat = fs::read_to_string(format!("/proc/{}/stat", run.pid)).unwrap_or_default();
            let f: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
            assert_eq!(
                f[2],
                run.pid.to_string(),
                "{want}: the wrapper leads its process group: {stat}"
            );
            sb.wait_state(&wd, &run.id, "finished");
            assert!(log_of(&wd, &run.id).contains("done-42"), "{want}");
        }
        let screens = sb.stdout("screen -ls");
        assert!(
            screens.contains(".s screen\t"),
            "one screen session per rtrain session: {screens}"
        );
        assert_eq!(sb.stdout("tmux ls -F '#{session_name}'").trim(), "s tmux");
    }

    #[test]
    fn a_missing_workdir_is_reported_and_nothing_is_started() {
        let sb = Sandbox::new();
        let wd = sb.path("not here");
        let out = sb.stdout(&up_script(&sb.spec(&wd, FAST)));
        assert_eq!(
            parse_up(&out),
            Err(RunError::WorkdirMissing {
                path: wd.to_str().unwrap().to_string()
            })
        );
        assert!(!wd.exists());
        assert_eq!(sb.sh("tmux ls").status.code(), Some(1), "a tmux server was started");
    }

    #[test]
    fn hostile_workdir_session_and_command_work_and_inject_nothing() {
        let sb = Sandbox::new();
        let wd = sb.project("w o'r\"k $(touch pwned-w) `touch pwned-b` #(touch pwned-t) ;x");
        let command = format!("printf '%s\\n' 'lit $(touch pwned-c)' \"it's \\\"q\\\"\"; {FAST}");
        let spec = LaunchSpec {
            backend_vars: Vec::new(),
            workdir: wd.to_str().unwrap().to_string(),
            session: "s 'q\" $(touch pwned-s) #(touch pwned-u) #{session_id} ;x".into(),
            command: command.clone(),
            log_dir: "my logs/$(touch pwned-l)".into(),
            env: Vec::new(),
            shell: ShellMode::Login,
            shell_timeout_secs: 10,
            edit: None,
            notify: None,
            backend: Choice::Only("tmux"),
            inherit_backend: false,
        };
        let run = match parse_up(&sb.stdout(&up_script(&spec))) {
            Ok(UpOutcome::Launched { run, session, .. }) => {
                assert_eq!(session, spec.session);
                run
            }
            other => panic!("{other:?}"),
        };
        sb.wait_state(&wd, &run.id, "finished");
        assert_eq!(record(&wd, &run.id, "command"), command);
        assert!(run
            .log
            .starts_with(wd.join("my logs/$(touch pwned-l)/training_").to_str().unwrap()));
        let log = log_of(&wd, &run.id);
        assert!(log.contains("lit $(touch pwned-c)\nit's \"q\"\n"), "{log}");
        let sessions = sb.stdout("tmux ls -F '#{session_name}'");
        assert_eq!(sessions.trim(), spec.session);
        // The same session is found again, not created anew.
        let again = LaunchSpec {
            backend_vars: Vec::new(),
            command: "true".into(),
            ..spec.clone()
        };
        assert!(matches!(
            parse_up(&sb.stdout(&up_script(&again))),
            Ok(UpOutcome::Launched { .. })
        ));
        assert_eq!(sb.stdout("tmux ls -F '#{session_name}'"), sessions);
        for dir in [sb.root.path(), &wd, &sb.path("home")] {
            for e in fs::read_dir(dir).unwrap().flatten() {
                assert!(
                    !e.file_name().to_string_lossy().starts_with("pwned"),
                    "injected: {:?}",
                    e.path()
                );
            }
        }
    }

    #[test]
    fn env_reaches_the_command_byte_for_byte_and_runs_nothing() {
        let sb = Sandbox::new();
        let wd = sb.project("envs");
        let hostile = "a b 'q\" $(touch pwned-e) `touch pwned-f` ;x\nline2";
        let spec = LaunchSpec {
            backend_vars: Vec::new(),
            env: vec![
                ("RT_HOSTILE".into(), hostile.into()),
                ("PYTHONUNBUFFERED".into(), "1".into()),
                ("bad name".into(), "skipped".into()),
            ],
            ..sb.spec(&wd, "printf '<%s>' \"$RT_HOSTILE\" \"$PYTHONUNBUFFERED\" > env.out")
        };
        let run = match parse_up(&sb.stdout(&up_script(&spec))) {
            Ok(UpOutcome::Launched { run, .. }) => run,
            other => panic!("{other:?}"),
        };
        sb.wait_state(&wd, &run.id, "finished");
        assert_eq!(
            fs::read_to_string(wd.join("env.out")).unwrap(),
            format!("<{hostile}><1>")
        );
        assert!(!wd.join("pwned-e").exists() && !wd.join("pwned-f").exists());
    }

    #[test]
    fn a_tilde_workdir_is_the_remote_home() {
        let sb = Sandbox::new();
        let wd = sb.project("home/my proj");
        let spec = LaunchSpec {
            backend_vars: Vec::new(),
            workdir: "~/my proj".into(),
            session: "my s".into(),
            command: "true".into(),
            log_dir: "~/all logs".into(),
            env: Vec::new(),
            shell: ShellMode::Login,
            shell_timeout_secs: 10,
            edit: None,
            notify: None,
            backend: Choice::Only("tmux"),
            inherit_backend: false,
        };
        let Ok(UpOutcome::Launched { run, session, .. }) = parse_up(&sb.stdout(&up_script(&spec))) else {
            panic!()
        };
        assert_eq!(session, "my s");
        assert_eq!(record(&wd, &run.id, "pid").trim(), run.pid.to_string());
        assert!(
            run.log
                .starts_with(sb.path("home/all logs/training_").to_str().unwrap()),
            "{}",
            run.log
        );
        assert_eq!(sb.stdout("tmux ls -F '#{session_name}'").trim(), "my s");
    }

    #[test]
    fn a_killed_wrapper_with_a_live_trainer_is_running_and_both_killed_is_lost() {
        let sb = Sandbox::new();
        let wd = sb.project("proj");
        // Killing the pane's leader makes tmux hang up the pane; a trainer run under nohup-like settings
        // survives that, so ignore SIGHUP here.
        let run = sb.launch(&wd, &format!("trap '' HUP; {SLOW}"));
        assert!(wait_until(Duration::from_secs(10), || log_of(&wd, &run.id).contains("/400 [")));
        sb.sh(&format!("kill -9 {}", run.pid));
        assert!(wait_until(Duration::from_secs(5), || !group_members(run.pid).contains(&run.pid)));
        // The trainer lives on in the run's process group: still running, so no second trainer may start.
        assert!(!group_members(run.pid).is_empty());
        assert_eq!(sb.state(&wd, &run.id), "running");
        assert!(matches!(sb.up(&wd, FAST), Ok(UpOutcome::AlreadyActive { .. })));
        for pid in group_members(run.pid) {
            sb.sh(&format!("kill -9 {pid}"));
        }
        assert!(wait_until(Duration::from_secs(5), || group_members(run.pid).is_empty()));
        assert_eq!(sb.state(&wd, &run.id), "lost");
        assert_eq!(record(&wd, &run.id, "exit"), "");
        // A lost run is not active.
        let next = sb.launch(&wd, "true");
        assert_ne!(next.id, run.id);
    }

    #[test]
    fn rt_pid_and_rt_alive_refuse_pids_0_and_1_and_anything_but_a_plain_decimal() {
        // `kill -0 0` (also spelled 00, or 0 before a pid) succeeds on the caller's own process group, -1 is every
        // process, 1 is init: no such pid file may make a run look alive. The status probe reads pids the same way.
        let sb = Sandbox::new();
        let wd = sb.path("proj");
        let id = "20261129-080000-0008";
        let rd = wd.join(".rtrain/runs").join(id);
        fs::create_dir_all(&rd).unwrap();
        fs::write(rd.join("run.sh"), "sleep 60\n").unwrap();
        let mut wrapper = Command::new("sh").arg(rd.join("run.sh")).spawn().unwrap();
        let pid = wrapper.id();
        let body = format!(
            "rt_out=1\nCD_WORKDIR\nrd=.rtrain/runs/{id}\n\
             if rt_pid \"$rd\"; then printf 'pid=%s ' \"$rt_p\"; else printf 'no-pid '; fi\n\
             if rt_alive \"$rd\"; then echo alive; else echo dead; fi\n"
        );
        let check = script(&[("rt_workdir", quote(wd.to_str().unwrap()))], &body);
        let verdict = |content: Option<String>| {
            match content {
                Some(c) => fs::write(rd.join("pid"), c).unwrap(),
                None => fs::remove_file(rd.join("pid")).unwrap(),
            }
            sb.stdout(&check).trim().to_string()
        };
        assert_eq!(verdict(Some(format!("{pid}\n"))), format!("pid={pid} alive"));
        assert_eq!(
            verdict(Some(format!("\t{pid} \r\n"))),
            format!("pid={pid} alive"),
            "blanks around the pid are trimmed"
        );
        let mut bad: Vec<String> = [
            "0", "1", "00", "01", "000", "-1", "-0", "+2", "0x10", "1e3", "", " ", "abc",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        bad.extend([
            format!("0{pid}"),
            format!("{pid}x"),
            format!("{pid} {pid}"),
            format!("-{pid}"),
        ]);
        for b in bad {
            assert_eq!(verdict(Some(format!("{b}\n"))), "no-pid dead", "pid file {b:?}");
        }
        assert_eq!(verdict(None), "no-pid dead", "no pid file");
        wrapper.kill().unwrap();
        wrapper.wait().unwrap();
    }

    #[test]
    fn up_with_an_edit_writes_it_only_when_it_launches() {
        let sb = Sandbox::new();
        let wd = sb.project("proj");
        let cfg = wd.join("config/training_config.yaml");
        let original = fs::read_to_string(&cfg).unwrap();
        let first = sb.launch(&wd, SLOW);
        // SIGINT must find the trainer running, not still starting (slow on a loaded machine).
        assert!(wait_until(Duration::from_secs(30), || log_of(&wd, &first.id).contains("/400 [")));
        let mut spec = sb.spec(&wd, FAST);
        spec.edit = Some(FileEdit {
            path: "config/training_config.yaml".into(),
            content: "training:\n  max_steps: 1\n".into(),
            backup: true,
            expect_sha256: None,
        });
        assert!(matches!(
            parse_up(&sb.up_stdout(&spec)),
            Ok(UpOutcome::AlreadyActive { .. })
        ));
        assert_eq!(
            fs::read_to_string(&cfg).unwrap(),
            original,
            "config edited under an active run"
        );
        assert_eq!(
            // A long SIGINT grace costs nothing when the trainer exits promptly, as it should.
            parse_stop(&sb.stdout(&stop_script(wd.to_str().unwrap(), 30, false))).unwrap(),
            {
                StopOutcome::Stopped {
                    id: first.id.clone(),
                    signal: StopSignal::Int,
                    exit_code: Some(130),
                    backend: "tmux".into(),
                }
            }
        );
        let out = sb.up_stdout(&spec);
        assert!(matches!(parse_up(&out), Ok(UpOutcome::Launched { .. })), "{out}");
        assert_eq!(fs::read_to_string(&cfg).unwrap(), "training:\n  max_steps: 1\n");
        assert_eq!(
            fs::read_to_string(wd.join("config/training_config.yaml.bak")).unwrap(),
            original
        );
    }

    /// Issue 11 §5: the new content travels on stdin (a 200 KiB config is past Linux's 128 KiB limit for one
    /// argument), and it is written only if the file is still what the edit was computed from.
    #[test]
    fn an_edit_comes_on_stdin_and_is_refused_when_the_file_changed_meanwhile() {
        let sb = Sandbox::new();
        let wd = sb.project("proj");
        let cfg = wd.join("config/training_config.yaml");
        let original = fs::read_to_string(&cfg).unwrap();
        let big = format!("{original}# {}\n", "x".repeat(200 * 1024));
        let mut spec = sb.spec(&wd, "true");
        spec.edit = Some(FileEdit {
            path: "config/training_config.yaml".into(),
            content: big.clone(),
            backup: true,
            expect_sha256: Some(sha256_hex(b"something else")),
        });
        assert!(
            up_script(&spec).len() < 64 * 1024,
            "the content must not be in the script"
        );
        let out = sb.up_stdout(&spec);
        assert_eq!(
            parse_up(&out),
            Err(RunError::EditChanged {
                path: "config/training_config.yaml".into()
            })
        );
        assert_eq!(
            fs::read_to_string(&cfg).unwrap(),
            original,
            "a concurrent edit was overwritten"
        );
        assert_eq!(run_dirs(&wd), 0, "nothing may start");

        spec.edit.as_mut().unwrap().expect_sha256 = Some(sha256_hex(original.as_bytes()));
        let out = sb.up_stdout(&spec);
        assert!(matches!(parse_up(&out), Ok(UpOutcome::Launched { .. })), "{out}");
        assert_eq!(fs::read_to_string(&cfg).unwrap(), big);
        assert_eq!(
            fs::read_to_string(wd.join("config/training_config.yaml.bak")).unwrap(),
            original
        );
    }

    // ---- stop ----------------------------------------------------------------------------------------------

    fn stop(sb: &Sandbox, wd: &Path, timeout: u64, force: bool) -> StopOutcome {
        parse_stop(&sb.stdout(&stop_script(wd.to_str().unwrap(), timeout, force))).unwrap()
    }

    #[test]
    fn stop_sends_sigint_which_reaches_the_trainer_and_the_run_is_stopped() {
        let sb = Sandbox::new();
        let wd = sb.project("proj");
        // Through make and sh, as users run it: the whole process group gets the signal.
        let run = sb.launch(&wd, "make train ARGS='--max-steps 400 --seconds-per-step 0.05'");
        assert!(wait_until(Duration::from_secs(30), || log_of(&wd, &run.id).contains("/400 [")));
        let out = stop(&sb, &wd, 30, false);
        assert_eq!(
            out,
            StopOutcome::Stopped {
                id: run.id.clone(),
                signal: StopSignal::Int,
                exit_code: Some(130),
                backend: "tmux".into(),
            }
        );
        assert_eq!(sb.state(&wd, &run.id), "stopped");
        let log = log_of(&wd, &run.id);
        assert!(log.contains("KeyboardInterrupt"), "{log}");
        // Nothing left to stop.
        assert_eq!(
            stop(&sb, &wd, 1, false),
            StopOutcome::NotRunning {
                id: run.id,
                state: RunState::Stopped,
                exit_code: Some(130)
            }
        );
    }

    /// A trainer that saves on SIGUSR1 (Lightning's convention) gets it first, and the wrapper survives it to
    /// record the exit; one that ignores it still gets SIGTERM.
    #[test]
    fn stop_signal_usr1_reaches_the_trainer_first_and_still_escalates() {
        let sb = Sandbox::new();
        let wd = sb.project("proj");
        let saver = "trap 'echo saved-on-usr1; exit 0' USR1; echo ready; while :; do sleep 0.1; done";
        let run = sb.launch(&wd, saver);
        assert!(wait_until(Duration::from_secs(10), || log_of(&wd, &run.id).contains("ready")));
        let out = parse_stop(&sb.stdout(&stop_script_with(wd.to_str().unwrap(), 5, false, "USR1"))).unwrap();
        assert_eq!(
            out,
            StopOutcome::Stopped {
                id: run.id.clone(),
                signal: StopSignal::Usr1,
                exit_code: Some(0),
                backend: "tmux".into(),
            }
        );
        assert!(log_of(&wd, &run.id).contains("saved-on-usr1"));
        assert_eq!(sb.state(&wd, &run.id), "stopped");

        let deaf = "trap '' USR1; echo ready; while :; do sleep 0.1; done";
        let run = sb.launch(&wd, deaf);
        assert!(wait_until(Duration::from_secs(10), || log_of(&wd, &run.id).contains("ready")));
        let out = parse_stop(&sb.stdout(&stop_script_with(wd.to_str().unwrap(), 1, false, "USR1"))).unwrap();
        assert!(
            matches!(
                out,
                StopOutcome::Stopped {
                    signal: StopSignal::Term,
                    ..
                }
            ),
            "{out:?}"
        );
    }

    #[test]
    fn stop_escalates_to_sigterm_when_the_trainer_ignores_sigint() {
        let sb = Sandbox::new();
        let wd = sb.project("proj");
        let run = sb.launch(&wd, &format!("{SLOW} --ignore-sigint"));
        assert!(wait_until(Duration::from_secs(10), || log_of(&wd, &run.id).contains("/400 [")));
        let out = stop(&sb, &wd, 1, false);
        assert_eq!(
            out,
            StopOutcome::Stopped {
                id: run.id.clone(),
                signal: StopSignal::Term,
                exit_code: Some(143),
                backend: "tmux".into(),
            }
        );
        assert!(log_of(&wd, &run.id).contains("ignore_sigint is set"));
        assert_eq!(sb.state(&wd, &run.id), "stopped");
    }

    #[test]
    fn stop_force_kills_at_once_and_records_137() {
        let sb = Sandbox::new();
        let wd = sb.project("proj");
        let run = sb.launch(&wd, SLOW);
        let out = stop(&sb, &wd, 30, true);
        assert_eq!(
            out,
            StopOutcome::Stopped {
                id: run.id.clone(),
                signal: StopSignal::Kill,
                exit_code: Some(137),
                backend: "tmux".into(),
            }
        );
        assert_eq!(sb.state(&wd, &run.id), "stopped");
        assert!(group_members(run.pid).is_empty());
    }

    #[test]
    fn stop_without_any_run_says_so() {
        let sb = Sandbox::new();
        let wd = sb.project("proj");
        assert_eq!(stop(&sb, &wd, 1, false), StopOutcome::NoRun);
        let out = sb.stdout(&stop_script(sb.path("nope").to_str().unwrap(), 1, false));
        assert!(matches!(parse_stop(&out), Err(RunError::WorkdirMissing { .. })));
    }

    // ---- logs / follow -------------------------------------------------------------------------------------

    fn run_log_script(sb: &Sandbox, script: &str) -> (Vec<u8>, LogHeader, LogTrailer) {
        let out = sb.sh(script);
        let err = String::from_utf8(out.stderr).unwrap();
        let header = parse_log_header(&err)
            .unwrap()
            .unwrap_or_else(|| panic!("no header in {err}"));
        let trailer = parse_log_trailer(&err)
            .unwrap()
            .unwrap_or_else(|| panic!("no trailer in {err}"));
        (out.stdout, header, trailer)
    }

    #[test]
    fn follow_from_an_offset_prints_exactly_the_remaining_bytes() {
        let sb = Sandbox::new();
        let wd = sb.project("proj");
        let run = sb.launch(&wd, FAST);
        sb.wait_state(&wd, &run.id, "finished");
        let log = fs::read(run.log.trim()).unwrap();
        let wds = wd.to_str().unwrap();
        for offset in [0, 1, log.len() as u64 / 2, log.len() as u64 - 1, log.len() as u64] {
            let (bytes, header, trailer) =
                run_log_script(&sb, &follow_script(wds, Some(&run.id), LogStart::Offset(offset)));
            assert_eq!(bytes, &log[offset as usize..], "from offset {offset}");
            assert_eq!(
                header,
                LogHeader {
                    id: run.id.clone(),
                    log: run.log.clone(),
                    start: offset
                }
            );
            assert_eq!(
                trailer,
                LogTrailer {
                    state: RunState::Finished,
                    exit_code: Some(0),
                    end: log.len() as u64
                }
            );
        }
    }

    #[test]
    fn follow_streams_a_live_run_until_it_ends_and_misses_nothing() {
        let sb = Sandbox::new();
        let wd = sb.project("proj");
        let run = sb.launch(
            &wd,
            "python3 train.py --max-steps 30 --seconds-per-step 0.03 --save-steps 10",
        );
        let (bytes, header, trailer) =
            run_log_script(&sb, &follow_script(wd.to_str().unwrap(), None, LogStart::Offset(0)));
        let log = fs::read(run.log.trim()).unwrap();
        assert_eq!(header.id, run.id);
        assert_eq!(bytes, log);
        assert_eq!(
            trailer,
            LogTrailer {
                state: RunState::Finished,
                exit_code: Some(0),
                end: log.len() as u64
            }
        );
    }

    #[test]
    fn follow_of_a_lost_run_ends_with_state_lost() {
        let sb = Sandbox::new();
        let wd = sb.project("proj");
        let run = sb.launch(&wd, SLOW);
        sb.sh(&format!("kill -s KILL -- -{}", run.pid));
        assert!(wait_until(Duration::from_secs(5), || group_members(run.pid).is_empty()));
        let (bytes, _, trailer) = run_log_script(&sb, &follow_script(wd.to_str().unwrap(), None, LogStart::Offset(0)));
        assert_eq!(trailer.state, RunState::Lost);
        assert_eq!(trailer.exit_code, None);
        assert_eq!(bytes.len() as u64, trailer.end);
    }

    fn tail_n(bytes: &[u8], n: usize) -> Vec<u8> {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut f, bytes).unwrap();
        Command::new("tail")
            .arg("-n")
            .arg(n.to_string())
            .arg(f.path())
            .output()
            .unwrap()
            .stdout
    }

    #[test]
    fn logs_prints_the_last_lines_like_tail_or_everything_and_where_it_ends() {
        let sb = Sandbox::new();
        let wd = sb.project("proj");
        let run = sb.launch(&wd, FAST);
        sb.wait_state(&wd, &run.id, "finished");
        let log = fs::read(run.log.trim()).unwrap();
        let wds = wd.to_str().unwrap();
        for n in [0, 1, 2, 5, 1000] {
            let (bytes, header, trailer) = run_log_script(&sb, &logs_script(wds, None, Some(n)));
            assert_eq!(bytes, tail_n(&log, n), "-n {n}");
            assert_eq!(header.start as usize + bytes.len(), log.len());
            assert_eq!(trailer.end as usize, log.len());
        }
        let (bytes, header, _) = run_log_script(&sb, &logs_script(wds, Some(&run.id), None));
        assert_eq!((bytes, header.start), (log, 0));
    }

    #[test]
    fn logs_of_a_big_log_with_long_lines_match_tail() {
        // Lines longer than the first 64 KiB window, and no final newline.
        let sb = Sandbox::new();
        let wd = sb.project("proj");
        let script = "i=0; while [ $i -lt 40 ]; do head -c $((i * 9000)) /dev/zero | tr '\\0' x; echo; \
                      i=$((i+1)); done; printf tail";
        let run = sb.launch(&wd, script);
        sb.wait_state(&wd, &run.id, "finished");
        let log = fs::read(run.log.trim()).unwrap();
        for n in [1, 3, 7, 39, 41, 100] {
            let (bytes, header, _) = run_log_script(&sb, &logs_script(wd.to_str().unwrap(), None, Some(n)));
            assert_eq!(bytes, tail_n(&log, n), "-n {n}");
            assert_eq!(header.start as usize + bytes.len(), log.len());
            let (fbytes, _, _) =
                run_log_script(&sb, &follow_script(wd.to_str().unwrap(), None, LogStart::LastLines(n)));
            assert_eq!(fbytes, bytes);
        }
    }

    #[test]
    fn logs_report_missing_runs_and_refuse_path_like_ids() {
        let sb = Sandbox::new();
        let wd = sb.project("proj");
        let wds = wd.to_str().unwrap();
        let err = |s: String| parse_log_header(&String::from_utf8(sb.sh(&s).stderr).unwrap());
        assert_eq!(err(logs_script(wds, None, Some(3))), Err(RunError::NoRun));
        sb.launch(&wd, "true");
        for id in ["nope", "../../etc", "a b"] {
            assert_eq!(
                err(logs_script(wds, Some(id), None)),
                Err(RunError::UnknownRun { id: id.into() })
            );
        }
        assert!(matches!(
            err(follow_script("/no/such/dir", None, LogStart::Offset(0))),
            Err(RunError::WorkdirMissing { .. })
        ));
    }

    // ---- parsers -------------------------------------------------------------------------------------------

    #[test]
    fn parse_up_ignores_noise_and_needs_a_result() {
        let out = "Welcome to Ubuntu\n@rtrain id=20261129-015300-ab12\n@rtrain pid=4242\n\
                   @rtrain started_at=2026-11-29T01:53:00Z\n@rtrain log=/home/u/p/logs/a b.log\n\
                   @rtrain session=training\n@rtrain result=launched\n";
        let run = RunInfo {
            job: None,
            id: "20261129-015300-ab12".into(),
            pid: 4242,
            started_at: "2026-11-29T01:53:00Z".into(),
            log: "/home/u/p/logs/a b.log".into(),
            backend: "tmux".into(),
        };
        // An rtrain from before backends printed no backend: its runs are tmux's.
        assert_eq!(
            parse_up(out),
            Ok(UpOutcome::Launched {
                run: run.clone(),
                session: "training".into(),
                picked: Picked {
                    auto: false,
                    available: vec![]
                },
                shell: ShellGot {
                    asked: "sh".into(),
                    got: "sh".into(),
                    program: None,
                    warning: None,
                },
            })
        );
        let screen = out.replace(
            "@rtrain result=launched",
            "@rtrain available=screen nohup\n@rtrain picked=auto\n@rtrain backend=screen\n@rtrain shell_asked=login\n\
             @rtrain shell=sh\n@rtrain shell_program=/bin/zsh\n@rtrain shell_warning=zsh -l -i did not finish\n\
             @rtrain result=launched",
        );
        assert_eq!(
            parse_up(&screen),
            Ok(UpOutcome::Launched {
                run: RunInfo {
                    backend: "screen".into(),
                    ..run
                },
                session: "training".into(),
                picked: Picked {
                    auto: true,
                    available: vec!["screen".into(), "nohup".into()]
                },
                shell: ShellGot {
                    asked: "login".into(),
                    got: "sh".into(),
                    program: Some("/bin/zsh".into()),
                    warning: Some("zsh -l -i did not finish".into()),
                },
            })
        );
        assert!(matches!(
            parse_up(&out.replace("@rtrain result=launched\n", "")),
            Err(RunError::Other(_))
        ));
        assert_eq!(
            parse_up("@rtrain error=disk full\n@rtrain result=error\n"),
            Err(RunError::Other("disk full".into()))
        );
        assert_eq!(
            parse_up("@rtrain available=nohup\n@rtrain backend=tmux\n@rtrain result=backend-missing\n"),
            Err(RunError::BackendMissing {
                backend: "tmux".into(),
                available: vec!["nohup".into()]
            })
        );
    }

    #[test]
    fn parse_stop_outcomes() {
        assert_eq!(
            parse_stop("@rtrain id=x\n@rtrain signal=TERM\n@rtrain exit=143\n@rtrain result=stopped\n"),
            Ok(StopOutcome::Stopped {
                id: "x".into(),
                signal: StopSignal::Term,
                exit_code: Some(143),
                backend: "tmux".into(),
            })
        );
        assert_eq!(
            parse_stop("@rtrain id=x\n@rtrain state=lost\n@rtrain exit=\n@rtrain result=not-running\n"),
            Ok(StopOutcome::NotRunning {
                id: "x".into(),
                state: RunState::Lost,
                exit_code: None
            })
        );
        assert_eq!(parse_stop("@rtrain result=no-run\n"), Ok(StopOutcome::NoRun));
    }

    #[test]
    fn a_log_trailer_is_absent_until_the_stream_ends() {
        let partial = "@rtrain id=x\n@rtrain log=/l\n@rtrain start=10\n@rtrain at=99\n";
        assert_eq!(
            parse_log_header(partial),
            Ok(Some(LogHeader {
                id: "x".into(),
                log: "/l".into(),
                start: 10
            }))
        );
        assert_eq!(parse_log_trailer(partial), Ok(None));
        let done = format!("{partial}@rtrain state=failed\n@rtrain exit=1\n@rtrain end=120\n@rtrain result=end\n");
        assert_eq!(
            parse_log_trailer(&done),
            Ok(Some(LogTrailer {
                state: RunState::Failed,
                exit_code: Some(1),
                end: 120
            }))
        );
    }

    #[test]
    fn resume_command_quotes_the_checkpoint() {
        assert_eq!(
            resume_command("make train RESUME={checkpoint}", "outputs/checkpoint-80"),
            "make train RESUME=outputs/checkpoint-80"
        );
        assert_eq!(
            resume_command("make train RESUME={checkpoint}", "my out/ckpt 1"),
            "make train RESUME='my out/ckpt 1'"
        );
        assert_eq!(
            resume_command("python t.py --resume {checkpoint}", "$(rm -rf ~)"),
            "python t.py --resume '$(rm -rf ~)'"
        );
    }

    #[test]
    fn remote_path_joins_relative_paths_only() {
        assert_eq!(remote_path("~/p/", "config/t.yaml"), "~/p/config/t.yaml");
        assert_eq!(remote_path("~/p", "/etc/t.yaml"), "/etc/t.yaml");
        assert_eq!(remote_path("~/p", "~/t.yaml"), "~/t.yaml");
    }

    // ---- atomic write --------------------------------------------------------------------------------------

    #[test]
    fn the_atomic_write_replaces_the_file_keeps_a_backup_and_the_mode_and_follows_links() {
        let sb = Sandbox::new();
        let dir = sb.path("cfg dir");
        fs::create_dir(&dir).unwrap();
        let target = dir.join("real.yaml");
        fs::write(&target, "old: 1\n").unwrap();
        std::os::unix::fs::PermissionsExt::set_mode(&mut fs::metadata(&target).unwrap().permissions(), 0o640);
        fs::set_permissions(&target, std::os::unix::fs::PermissionsExt::from_mode(0o640)).unwrap();
        let link = dir.join("link.yaml");
        std::os::unix::fs::symlink("real.yaml", &link).unwrap();
        let write = |path: &Path, content: &str, backup: bool| {
            let mut child = sb
                .cmd(&write_file_atomically_script(path.to_str().unwrap(), backup))
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            // A script that refuses (no such directory) may exit before reading its stdin.
            match std::io::Write::write_all(child.stdin.as_mut().unwrap(), content.as_bytes()) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => panic!("write stdin: {e}"),
                _ => {}
            }
            drop(child.stdin.take());
            parse_write(&String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap())
        };
        write(&link, "new: 2\n", true).unwrap();
        assert_eq!(fs::read_to_string(&target).unwrap(), "new: 2\n");
        assert_eq!(fs::read_to_string(dir.join("real.yaml.bak")).unwrap(), "old: 1\n");
        assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        let mode = std::os::unix::fs::PermissionsExt::mode(&fs::metadata(&target).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o640);
        write(&target, "third\n", false).unwrap();
        assert_eq!(fs::read_to_string(dir.join("real.yaml.bak")).unwrap(), "old: 1\n");
        let leftovers: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains("rtrain-tmp"))
            .collect();
        assert!(leftovers.is_empty());
        assert!(matches!(
            write(&sb.path("no dir/x.yaml"), "x", true),
            Err(RunError::Other(_))
        ));
    }

    // ---- the resume edit -----------------------------------------------------------------------------------

    fn edit(yaml: &str, path: &str) -> ResumeEdit {
        edit_resume_from_checkpoint(yaml, path).unwrap()
    }

    #[test]
    fn resume_edit_replaces_an_existing_value_and_keeps_its_comment() {
        let yaml = "# top\nmodel:\n  name: x\ntraining:\n  max_steps: 10   # steps\n  \
                    resume_from_checkpoint: outputs/checkpoint-10  # set by rtrain\n  save_steps: 5\n";
        let e = edit(yaml, "outputs/checkpoint-20");
        assert_eq!(e.text, yaml.replace("checkpoint-10  #", "checkpoint-20  #"));
        assert_eq!(e.line, 6);
        assert_eq!(
            e.diff(),
            "-   resume_from_checkpoint: outputs/checkpoint-10  # set by rtrain\n\
             +   resume_from_checkpoint: outputs/checkpoint-20  # set by rtrain\n"
        );
    }

    #[test]
    fn resume_edit_replaces_null_tilde_empty_and_quoted_values() {
        for old in ["null", "~", "", "'a b'", "\"x # y\"", "null # none yet"] {
            let yaml = format!("training:\n    max_steps: 10\n    resume_from_checkpoint: {old}\n");
            let e = edit(&yaml, "outputs/checkpoint-20");
            let comment = if old.contains("# none") { " # none yet" } else { "" };
            assert_eq!(
                e.text,
                format!("training:\n    max_steps: 10\n    resume_from_checkpoint: outputs/checkpoint-20{comment}\n"),
                "old value {old:?}"
            );
        }
    }

    #[test]
    fn resume_edit_inserts_with_the_block_indentation_when_absent() {
        let yaml = "training:\n    max_steps: 10\n    optim:\n        lr: 1\n\n# data below\ndata:\n  path: d\n";
        let e = edit(yaml, "outputs/checkpoint-20");
        assert_eq!(
            e.text,
            "training:\n    max_steps: 10\n    optim:\n        lr: 1\n    \
             resume_from_checkpoint: outputs/checkpoint-20\n\n# data below\ndata:\n  path: d\n"
        );
        assert_eq!((e.line, e.old.as_deref()), (5, None));
        assert_eq!(e.diff(), "+     resume_from_checkpoint: outputs/checkpoint-20\n");
        // An empty block, the last line of the file without a final newline.
        assert_eq!(
            set_resume_from_checkpoint("a: 1\ntraining:", "c").unwrap(),
            "a: 1\ntraining:\n  resume_from_checkpoint: c"
        );
        assert_eq!(
            set_resume_from_checkpoint("training:\n  a: 1", "c").unwrap(),
            "training:\n  a: 1\n  resume_from_checkpoint: c"
        );
    }

    #[test]
    fn resume_edit_puts_the_line_after_a_commented_out_one() {
        let yaml = "training:\n  max_steps: 10\n  # resume_from_checkpoint: outputs/checkpoint-40\n  save_steps: 5\n";
        let e = edit(yaml, "outputs/checkpoint-40");
        assert_eq!(
            e.text,
            "training:\n  max_steps: 10\n  # resume_from_checkpoint: outputs/checkpoint-40\n  \
             resume_from_checkpoint: outputs/checkpoint-40\n  save_steps: 5\n"
        );
        assert_eq!(e.line, 4);
    }

    #[test]
    fn resume_edit_keeps_crlf() {
        let yaml = "training:\r\n  max_steps: 10\r\n  resume_from_checkpoint: null\r\nother: 1\r\n";
        assert_eq!(
            set_resume_from_checkpoint(yaml, "c-1").unwrap(),
            yaml.replace("null", "c-1")
        );
        let absent = "training:\r\n  max_steps: 10\r\nother: 1\r\n";
        assert_eq!(
            set_resume_from_checkpoint(absent, "c-1").unwrap(),
            "training:\r\n  max_steps: 10\r\n  resume_from_checkpoint: c-1\r\nother: 1\r\n"
        );
    }

    #[test]
    fn resume_edit_quotes_paths_that_need_it() {
        let cases = [
            ("outputs/checkpoint-80", "outputs/checkpoint-80"),
            ("/abs/run 1/checkpoint-80", "'/abs/run 1/checkpoint-80'"),
            ("a #b", "'a #b'"),
            ("a: b", "'a: b'"),
            ("it's", "'it''s'"),
            ("\"q\"", "'\"q\"'"),
            ("null", "'null'"),
            ("yes", "'yes'"),
            ("1e5", "'1e5'"),
            ("123", "'123'"),
            ("2024-01-01", "'2024-01-01'"),
            ("~", "'~'"),
            ("-x", "'-x'"),
            ("line\nbreak", "\"line\\nbreak\""),
            ("a\u{2028}b", "\"a\\u2028b\""),
        ];
        for (path, want) in cases {
            assert_eq!(yaml_scalar(path), want, "{path:?}");
        }
        let yaml = "training:\n  resume_from_checkpoint: null\n";
        assert_eq!(
            set_resume_from_checkpoint(yaml, "my run/checkpoint-8").unwrap(),
            "training:\n  resume_from_checkpoint: 'my run/checkpoint-8'\n"
        );
    }

    #[test]
    fn resume_edit_refuses_what_it_cannot_edit_safely() {
        use ResumeEditError::*;
        let err = |y: &str| edit_resume_from_checkpoint(y, "c").unwrap_err();
        assert_eq!(err("model:\n  training: 1\n"), NoTrainingBlock);
        assert_eq!(err("training: {max_steps: 1}\n"), NotABlock(1));
        assert_eq!(err("a: 1\ntraining:\n- x\n"), NotABlock(2));
        assert_eq!(
            err("training:\n  resume_from_checkpoint: a\n  resume_from_checkpoint: b\n"),
            Duplicate(2, 3)
        );
        assert_eq!(err("training:\n  resume_from_checkpoint: |\n    x\n"), MultiLine(2));
        assert_eq!(err("training:\n  resume_from_checkpoint: 'a\n    b'\n"), MultiLine(2));
        assert_eq!(err("training:\n  resume_from_checkpoint: a\n    b\n"), MultiLine(2));
    }

    #[test]
    fn resume_edit_ignores_keys_in_nested_blocks_and_block_scalars() {
        let yaml = "training:\n  notes: |\n    resume_from_checkpoint: not a key\n    \
                    # resume_from_checkpoint: nor this\n  sub:\n    resume_from_checkpoint: nested\n  max_steps: 1\n";
        let e = edit(yaml, "c");
        assert_eq!(e.text, format!("{yaml}  resume_from_checkpoint: c\n"));
    }

    #[test]
    fn the_trainer_resumes_from_an_edited_config_with_a_spaced_path() {
        let sb = Sandbox::new();
        let wd = sb.project("proj");
        let first = format!(
            "cd {} && python3 train.py --max-steps 4 --seconds-per-step 0.01 --save-steps 2 --output-dir 'my out'",
            quote(wd.to_str().unwrap())
        );
        let out = sb.sh(&first);
        assert!(
            out.status.success() && wd.join("my out/checkpoint-4/trainer_state.json").exists(),
            "{out:?}"
        );
        let cfg = wd.join("config/training_config.yaml");
        let yaml = fs::read_to_string(&cfg).unwrap();
        let e = edit(&yaml, "my out/checkpoint-4");
        assert_eq!(e.new, "  resume_from_checkpoint: 'my out/checkpoint-4'");
        assert_eq!(e.old.as_deref(), Some("  resume_from_checkpoint: null"));
        fs::write(&cfg, &e.text).unwrap();
        let run = sb.launch(
            &wd,
            "python3 train.py --max-steps 6 --seconds-per-step 0.01 --output-dir 'my out'",
        );
        sb.wait_state(&wd, &run.id, "finished");
        let log = log_of(&wd, &run.id);
        assert!(
            log.contains("Continuing training from checkpoint, will skip to saved global_step 4"),
            "{log}"
        );
        // And through the Makefile, as `resume_command: make train RESUME={checkpoint}` does it.
        let command = resume_command(
            "make train RESUME={checkpoint} ARGS='--max-steps 8 --seconds-per-step 0.01'",
            "my out/checkpoint-4",
        );
        let run = sb.launch(&wd, &command);
        sb.wait_state(&wd, &run.id, "finished");
        let log = log_of(&wd, &run.id);
        assert!(log.contains("will skip to saved global_step 4"), "{log}");
        assert!(log.contains("| 8/8 ["), "{log}");
    }

    /// A random YAML-ish document with a `training:` block, as lines without endings.
    fn doc_strategy() -> impl Strategy<Value = (Vec<String>, bool, bool)> {
        let line = prop_oneof![
            Just(String::new()),
            "[a-z_]{1,8}: [a-z0-9 ./#'-]{0,12}".prop_map(|s| s),
            "# [ -~]{0,20}".prop_map(|s| s),
            "  [a-z_]{1,8}: [a-z0-9 ./'-]{0,12}".prop_map(|s| s),
            "    [a-z_]{1,8}: [a-z0-9 .]{0,8}".prop_map(|s| s),
            "  # [ -~]{0,20}".prop_map(|s| s),
            Just("  # resume_from_checkpoint: outputs/checkpoint-1".to_string()),
            Just("  resume_from_checkpoint: null".to_string()),
            Just("  resume_from_checkpoint: 'a b'   # was here".to_string()),
            Just("  resume_from_checkpoint:".to_string()),
            Just("training:".to_string()),
        ];
        (
            proptest::collection::vec(line, 0..16),
            proptest::bool::ANY,
            proptest::bool::ANY,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]
        #[test]
        fn nothing_outside_the_edited_line_changes(
            (mut lines, crlf, final_newline) in doc_strategy(),
            at in 0usize..16,
            path in "[ -~]{1,24}",
        ) {
            // Exactly one top-level training: block.
            lines.retain(|l| l != "training:");
            let at = at.min(lines.len());
            lines.insert(at, "training:".to_string());
            let eol = if crlf { "\r\n" } else { "\n" };
            let mut yaml = lines.join(eol);
            if final_newline { yaml.push_str(eol); }
            match edit_resume_from_checkpoint(&yaml, &path) {
                Ok(e) => {
                    let before: Vec<&str> = yaml.split_inclusive('\n').collect();
                    let after: Vec<&str> = e.text.split_inclusive('\n').collect();
                    let idx = e.line - 1;
                    prop_assert_eq!(after[idx].trim_end_matches(['\r', '\n']), e.new.as_str());
                    match &e.old {
                        Some(old) => {
                            // Replaced: the same line ending, every other line identical.
                            prop_assert_eq!(before.len(), after.len());
                            let ending = &before[idx][old.len()..];
                            prop_assert_eq!(before[idx], format!("{old}{ending}"));
                            prop_assert_eq!(after[idx], format!("{}{ending}", e.new));
                            for j in (0..before.len()).filter(|&j| j != idx) {
                                prop_assert_eq!(before[j], after[j]);
                            }
                        }
                        None if idx == before.len() && !yaml.ends_with('\n') => {
                            // Appended to a file without a final newline: the old last line gains one.
                            prop_assert_eq!(after.len(), before.len() + 1);
                            prop_assert_eq!(&after[..idx - 1], &before[..idx - 1]);
                            prop_assert_eq!(after[idx - 1].trim_end_matches(['\r', '\n']), before[idx - 1]);
                            prop_assert_eq!(after[idx], e.new.as_str());
                        }
                        None => {
                            // Inserted: removing the new line gives back the original, byte for byte.
                            let mut rest = after.clone();
                            rest.remove(idx);
                            prop_assert_eq!(rest, before);
                        }
                    }
                    prop_assert!(e.new.trim_start().starts_with("resume_from_checkpoint: "));
                    prop_assert!(e.new.contains(&yaml_scalar(&path)));
                }
                // Random documents may hold what the edit refuses; never a missing block, there is one.
                Err(e) => prop_assert!(e != ResumeEditError::NoTrainingBlock, "unexpected {:?}", e),
            }
        }

        #[test]
        fn yaml_scalars_read_back_as_the_same_string(
            path in prop_oneof![
                "[ -~]{1,24}",
                "[ -~\\x00-\\x1f\\x7f\\x{85}\\x{a0}\\x{2028}\\x{2029}\\x{feff}]{1,24}",
                "(?s).{1,24}",
            ],
        ) {
            // Read back by a real YAML parser, as the value of a key in a block: what a trainer's config
            // loader would see.
            let doc = format!("training:\n  resume_from_checkpoint: {}\n", yaml_scalar(&path));
            let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&doc)
                .map_err(|e| TestCaseError::fail(format!("{doc:?} does not parse: {e}")))?;
            prop_assert_eq!(
                &v["training"]["resume_from_checkpoint"],
                &serde_yaml_ng::Value::String(path.clone()),
                "{:?}",
                doc
            );
        }
    }
}
