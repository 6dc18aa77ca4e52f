//! The one composed POSIX-sh script per question (`status`, `ckpts`, `check`) and the parser of
//! its sectioned output: one exec round trip gathers everything, and every byte the box prints is
//! parsed locally by pure code that is tested by running the very same script with a local `sh`.
//!
//! Output format (version 1). Everything the remote side prints is framed like this:
//! ```text
//! @@rtrain:probe 1
//! @@rtrain:section NAME
//! <base64 of the section's bytes, wrapped at 76 columns by `base64`>
//! @@rtrain:section NAME2
//! ...
//! @@rtrain:done
//! ```
//! Base64 (coreutils) means a log holding anything at all (NULs, `\r`, our own marker text) can
//! never end a section early, no temporary file is needed on a possibly full disk, and no length
//! is measured before a growing log is read. Lines before the header (a chatty shell rc file) are
//! ignored; a missing `@@rtrain:done` means the output was cut. A section that is absent means
//! "not there" (no run record, no log, no nvidia-smi), which is different from an empty one.
//!
//! The checkpoint listing (`ckpts` section) is a sequence of NUL-terminated fields, so names with
//! spaces, newlines or non-UTF-8 bytes parse exactly: `S` state (`ok`/`missing`/`notdir`),
//! `P` the directory as the shell resolved it, `A` its `pwd -P`, then per entry
//! `E rel_path kind(d/f/o) kib mtime marks(L=symlink T=trainer_state.json R=random_states_0.pkl)
//! latest_content`.
//!
//! User-supplied values (workdir, session, paths) appear only in the assignment block at the top
//! of each script, each passed through [`quote`]/[`quote_path`]; the rest is constant text.

use crate::remote::logind::{self, Logind};
use crate::remote::quote::{quote, quote_path};
pub use crate::remote::run::RunState;
use crate::remote::run::RUN_STATE_SH;
use crate::train::checkpoints::{self, Checkpoint, Entry, EntryKind};
use crate::train::disk::{parse_df, DiskUsage};
use crate::train::gpu::{self, GpuReport};
use crate::train::progress::{summarize_log, LogSummary};
use crate::train::train_config::{parse_train_config, TrainConfig};
use crate::train::trainer_state::{parse_trainer_state, parse_trainer_state_partial, TrainerState};
use serde::Serialize;
use std::collections::BTreeMap;

const HEADER: &[u8] = b"@@rtrain:probe 1";
const SECTION: &[u8] = b"@@rtrain:section ";
const DONE: &[u8] = b"@@rtrain:done";
const ERROR: &[u8] = b"@@rtrain:error ";

/// How much of the run's log `status` reads: enough for hundreds of bar redraws and dict lines.
pub const LOG_TAIL_BYTES: usize = 65536;
/// trainer_state.json up to this size is sent whole; beyond, a head and a tail.
pub const TRAINER_STATE_WHOLE_MAX: usize = 262_144;
pub const TRAINER_STATE_HEAD: usize = 32768;
pub const TRAINER_STATE_TAIL: usize = 65536;
pub const TRAIN_CONFIG_MAX: usize = 65536;
/// How much of the end of a `metrics.csv` status reads (after its header line, at most 4 KiB): hundreds of rows.
pub const METRICS_TAIL_BYTES: usize = 8192;
/// The most a status probe can print: each section is capped by the script (the log tail, trainer_state.json,
/// the training config, the run record's files at 64 KiB each, a bounded checkpoint listing), about 1 MiB in
/// base64 at worst. More is refused: the box printed it on its own.
pub const STATUS_OUTPUT_MAX: usize = 2 << 20;
/// The most a `ckpts` probe can print: its listing grows with the checkpoints (about 100 bytes each in
/// base64), so this allows some eighty thousand of them.
pub const CKPTS_OUTPUT_MAX: usize = 8 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("the remote probe printed no rtrain header: is `sh` on the remote box a POSIX shell?")]
    NoHeader,
    #[error("the remote probe's output ended early (connection dropped?)")]
    Truncated,
    #[error("the remote probe's section `{0}` is corrupt")]
    Corrupt(String),
    #[error("the remote probe failed: {0}")]
    Remote(String),
}

// ---------------------------------------------------------------------------------------------
// Script building

/// A path variable assignment. Relative paths are relative to the workdir, so they are dropped
/// (left empty) when the workdir is missing rather than resolved against `$HOME` by accident.
fn assign_path(var: &str, path: &str) -> String {
    if path.is_empty() {
        return format!("{var}=\n{var}_REL=0\n");
    }
    let absolute = path.starts_with('/') || path == "~" || path.starts_with("~/");
    // A leading `-` would be read as an option by cd, du, df, stat.
    let path = if path.starts_with('-') {
        format!("./{path}")
    } else {
        path.to_string()
    };
    format!("{var}={}\n{var}_REL={}\n", quote_path(&path), u8::from(!absolute))
}

const PRELUDE: &str = r#"LC_ALL=C
export LC_ALL
_s() { printf '@@rtrain:section %s\n' "$1"; }
printf '@@rtrain:probe 1\n'
if ! command -v base64 >/dev/null 2>&1; then printf '@@rtrain:error base64 (coreutils) not found\n'; exit 0; fi
_s now; date +%s | base64
if cd "$W" 2>/dev/null; then wd=ok; else wd=missing; fi
_s workdir; { printf '%s\n' "$wd"; [ "$wd" = ok ] && pwd -P; } | base64
if [ "$wd" != ok ]; then
  [ "$D_REL" = 1 ] && D=
  [ "$L_REL" = 1 ] && L=
  [ "$C_REL" = 1 ] && C=
  [ "$M_REL" = 1 ] && M=
fi
"#;

// What every listing shares. Kind and marks come from shell builtins (`test`), so an entry costs no process;
// sizes come from one `du` and times from one `stat` per scanned directory (through `xargs`, so no argument
// list is ever too long), printed into their own sections: `P prefix` and then `kib<TAB>name` / `mtime<TAB>name`
// fields, as du -0 and stat --printf print them.
const LISTING_COMMON: &str = r#"_ent() {
  if [ -d "$1" ]; then k=d; elif [ -f "$1" ]; then k=f; else k=o; fi
  m=
  [ -L "$1" ] && m=L
  if [ "$k" = d ]; then
    [ -f "$1/trainer_state.json" ] && m="${m}T"
    [ -f "$1/random_states_0.pkl" ] && m="${m}R"
  fi
  x=
  if [ "$k" = f ] && [ "${1##*/}" = latest ]; then x=$(head -c 256 "$1" | tr -d '\000'); fi
  printf 'E\0%s\0%s\0\0\0%s\0%s\0' "$2" "$k" "$m" "$x"
}
# GNU du and stat end each record with a NUL (du -0, stat --printf); BusyBox's have neither option (nor du -D,
# its -H is the same), so there each record ends with a newline, turned into a NUL: only a name holding a
# newline then loses its size and time.
if du -sklD0 -- /dev/null >/dev/null 2>&1; then _gdu=1; else _gdu=; fi
if stat -L --printf '' -- /dev/null >/dev/null 2>&1; then _gst=1; else _gst=; fi
_tab=$(printf '\t')
_sizes() {
  printf 'P\0%s\0' "$2"
  if [ -n "$_gdu" ]; then
    (cd "$1" 2>/dev/null && "$3" . | xargs -0r du -sklD0 -- 2>/dev/null)
  else
    (cd "$1" 2>/dev/null && "$3" . | xargs -0r du -sklH -- 2>/dev/null | tr '\n' '\000')
  fi
}
_times() {
  printf 'P\0%s\0' "$2"
  if [ -n "$_gst" ]; then
    (cd "$1" 2>/dev/null && "$3" . | xargs -0r stat -L --printf '%Y\t%n\0' -- 2>/dev/null)
  else
    (cd "$1" 2>/dev/null && "$3" . | xargs -0r stat -L -c "%Y$_tab%n" -- 2>/dev/null | tr '\n' '\000')
  fi
}
_dirs() {
  "$1" "$D" ""
  [ -d "$D/checkpoints" ] && "$1" "$D/checkpoints" "checkpoints/"
  for v in "$D"/lightning_logs/*/checkpoints; do
    [ -d "$v" ] || continue
    vn=${v%/checkpoints}
    vn=${vn##*/}
    "$1" "$v" "lightning_logs/$vn/checkpoints/"
  done
  # checkpoint_dir: lightning_logs (Lightning's own root).
  for v in "$D"/version_*/checkpoints; do
    [ -d "$v" ] || continue
    vn=${v%/checkpoints}
    vn=${vn##*/}
    "$1" "$v" "$vn/checkpoints/"
  done
}
_listing() {
  _s ckpts
  {
    if [ -n "$D" ] && [ -d "$D" ]; then
      printf 'S\0ok\0P\0%s\0A\0%s\0' "$D" "$(cd "$D" && pwd -P)"
      _each_dir _scan
    elif [ -n "$D" ] && [ -e "$D" ]; then
      printf 'S\0notdir\0P\0%s\0' "$D"
    else
      printf 'S\0missing\0P\0%s\0' "$D"
    fi
  } | base64
  if [ -n "$D" ] && [ -d "$D" ]; then
    _s ckpts_du; _each_dir _du | base64
    _s ckpts_mtime; _each_dir _mt | base64
  fi
}
"#;

/// The full listing (`ckpts`, `check`): every candidate of every scanned directory, in one pass.
const LISTING_ALL: &str = r#"_names() {
  for p in "$1"/*; do
    [ -e "$p" ] || [ -L "$p" ] || continue
    n=${p##*/}
    case $n in
      checkpoint-*|tmp-checkpoint-*|global_step*|checkpoint_*|*.ckpt|latest) printf '%s\0' "$n" ;;
    esac
  done
}
_scan() {
  for p in "$1"/*; do
    [ -e "$p" ] || [ -L "$p" ] || continue
    n=${p##*/}
    case $n in
      checkpoint-*|tmp-checkpoint-*|global_step*|checkpoint_*|*.ckpt|latest) _ent "$p" "$2$n" ;;
    esac
  done
}
_du() { _sizes "$1" "$2" _names; }
_mt() { _times "$1" "$2" _names; }
_each_dir() { _dirs "$1"; }
"#;

/// With [`LISTING_ALL`] in `check`: the newest complete checkpoint-N, whose trainer_state.json is sent.
const NEWEST_HF_ALL: &str = r#"hb=
hbn=-1
if [ -n "$D" ] && [ -d "$D" ]; then
  for p in "$D"/checkpoint-*; do
    [ -f "$p/trainer_state.json" ] || continue
    n=${p##*/checkpoint-}
    case $n in ''|*[!0-9]*) continue ;; esac
    if [ "$n" -gt "$hbn" ] 2>/dev/null; then hbn=$n; hb=$p; fi
  done
fi
"#;

/// The bounded listing of `status` (and `top`, `wait`, `stop`): what they need is the newest complete
/// checkpoint, the two before it (the pace) and the newest by time (a run started from scratch next to an
/// earlier run's higher steps). No shell loop runs over the entries: per directory and layout, `ls -v` sorts
/// the names with integers as integers and `head` keeps the highest, from which the three highest that look
/// complete are picked (testing from the newest down); `ls -t` gives the two newest; `latest` is added. Only
/// those get an entry, a size and a time. It also remembers the newest `checkpoint-N` holding
/// trainer_state.json (in `hb`), which status sends. A name holding a newline is not picked here (`ckpts`
/// lists it).
const LISTING_NEWEST: &str = r#"hb=
hbn=-1
dn=0
_sel() { eval "_k=\$((sn_$dn+1))"; eval "sn_$dn=\$_k; sel_${dn}_$_k=\$1"; }
_nl='
'
# "_walk DIR FAMILY PATTERN": the names in $_all (DIR's candidates, highest first by version sort: integers
# as integers) matching the extended regex PATTERN, through grep and head, however many there are. From the
# highest down, each existing one is picked until three that look complete were (the Rust side decides
# completeness; this only picks), at most eight.
_walk() {
  _l=$(printf '%s\n' "$_all" | grep -E "$3" | head -n 8)
  _found=0
  _o=$IFS
  IFS=$_nl
  set -f
  for n in $_l; do
    [ "$_found" -lt 3 ] || break
    p=$1/$n
    c=1
    case $2 in
      h) [ -d "$p" ] || continue; [ -f "$p/trainer_state.json" ] || c=0 ;;
      a) [ -d "$p" ] || continue; [ -f "$p/random_states_0.pkl" ] || c=0 ;;
      d) [ -d "$p" ] || continue; s=${n#global_step}; [ ${#s} -le 18 ] && [ "$s" -le "$dt" ] || c=0 ;;
      l) [ -f "$p" ] || continue; [ -s "$p" ] || c=0 ;;
    esac
    _sel "$n"
    [ "$c" = 1 ] || continue
    _found=$((_found+1))
    if [ "$2" = h ] && [ -z "$_pre" ] && [ -z "$hb" ]; then hb=$p; fi
  done
  set +f
  IFS=$_o
}
_pick() {
  dn=$((dn+1))
  eval "dir_$dn=\$1; pre_$dn=\$2; sn_$dn=0"
  _pre=$2
  # DeepSpeed's tag: every global_stepN up to it is whole.
  dt=
  [ -f "$1/latest" ] && { read -r dt < "$1/latest" || :; }
  dt=${dt#global_step}
  case $dt in ''|*[!0-9]*) dt=-1 ;; esac
  [ ${#dt} -le 18 ] || dt=-1
  [ -f "$1/latest" ] && _sel latest
  _all=$(ls -1vrA -- "$1" 2>/dev/null | grep -E '^(checkpoint-[0-9]+|checkpoint_[0-9]+|global_step[0-9]+|.*\.ckpt)$')
  case $_all in *checkpoint-*) _walk "$1" h '^checkpoint-[0-9]+$' ;; esac
  case $_all in *checkpoint_*) _walk "$1" a '^checkpoint_[0-9]+$' ;; esac
  case $_all in *global_step*) _walk "$1" d '^global_step[0-9]+$' ;; esac
  case $_all in *.ckpt*) _walk "$1" l '\.ckpt$' ;; esac
  # The two newest by time: a run started from scratch next to an earlier run's higher steps.
  _l=$(ls -1tA -- "$1" 2>/dev/null | grep -E '^(checkpoint-[0-9]+|checkpoint_[0-9]+|global_step[0-9]+|.*\.ckpt)$' | head -n 2)
  _o=$IFS
  IFS=$_nl
  set -f
  for n in $_l; do [ -e "$1/$n" ] && _sel "$n"; done
  set +f
  IFS=$_o
}
# "_each_dir F": F DIR PREFIX for each directory picked from; "_each_sel D F ARGS": F ARGS NAME for each pick.
_each_dir() {
  j=1
  while [ "$j" -le "$dn" ]; do
    eval "_d=\$dir_$j; _p=\$pre_$j"
    "$1" "$_d" "$_p" "$j"
    j=$((j+1))
  done
}
_each_sel() {
  _j=$1
  shift
  i=1
  eval "_n=\$sn_$_j"
  while [ "$i" -le "$_n" ]; do
    eval "v=\$sel_${_j}_$i"
    "$@" "$v"
    i=$((i+1))
  done
}
_ent_in() { _ent "$1/$3" "$2$3"; }
_name0() { printf '%s\0' "$1"; }
_scan() { _each_sel "$3" _ent_in "$1" "$2"; }
_du() { _cur=$3; _sizes "$1" "$2" _picked; }
_mt() { _cur=$3; _times "$1" "$2" _picked; }
_picked() { _each_sel "$_cur" _name0; }
if [ -n "$D" ] && [ -d "$D" ]; then _dirs _pick; fi
"#;

const LISTING_TAIL: &str = r#"_listing
if [ -n "$D" ] && [ -d "$D" ]; then dfp=$D; dfw=checkpoint_dir; elif [ "$wd" = ok ]; then dfp=.; dfw=workdir; else dfp=$HOME; dfw=home; fi
_s df; df -Pk "$dfp" 2>/dev/null | base64
_s df_of; printf '%s' "$dfw" | base64
"#;

const STATUS: &str = r#"_s tmux
{ if command -v tmux >/dev/null 2>&1; then tmux has-session -t "$S" >/dev/null 2>&1; echo "$?"; else echo missing; fi; } | base64
r=
id=
if [ "$wd" = ok ]; then
  rt_read1 .rtrain/current
  id=$rt_v
  if rt_valid_id "$id" && [ -d ".rtrain/runs/$id" ]; then r=.rtrain/runs/$id; fi
fi
if [ -n "$r" ]; then
  _s run_id; printf '%s' "$id" | base64
  for f in command started_at pid log; do
    if [ -f "$r/$f" ]; then _s "run_$f"; head -c 65536 "$r/$f" | base64; fi
  done
  # Decided by RUN_STATE_SH, as up and stop decide it; exit and stopped are read after the liveness test.
  rt_decide "$r"
  _s run_state; printf '%s' "$rt_s" | base64
  if [ -n "$rt_pa" ]; then _s run_alive; printf '%s' "$rt_pa" | base64; fi
  if [ -n "$rt_pw" ]; then _s run_is_wrapper; printf '%s' "$rt_pw" | base64; fi
  if [ -n "$rt_ga" ]; then _s run_group_alive; printf '%s' "$rt_ga" | base64; fi
  if [ -f "$r/exit" ]; then _s run_exit; head -c 65536 "$r/exit" | base64; fi
  if [ -e "$r/stopped" ]; then _s run_stopped; fi
  rt_backend_of "$r"
  _s run_backend; printf '%s' "$rt_b" | base64
  if [ -f "$r/format" ]; then _s run_format; head -c 64 "$r/format" | base64; fi
  # A Slurm run: the scheduler's view of its job while it knows it, and what the batch script recorded.
  if [ -f "$r/job" ]; then
    for f in job reason node restarts; do
      if [ -f "$r/$f" ]; then _s "slurm_$f"; head -c 65536 "$r/$f" | base64; fi
    done
    if [ -f "$r/slurm.env" ]; then _s slurm_settings; head -c 4096 "$r/slurm.env" | base64; fi
    rt_read1 "$r/job"
    case $rt_v in
      ''|*[!0-9]*) ;;
      *)
        _s slurm_squeue; squeue -h -j "$rt_v" -o '%i|%T|%r|%N|%M|%l' 2>/dev/null | base64
        if [ "$rt_s" != running ]; then
          # Ended: accounting when the cluster keeps it (it says "disabled" otherwise), then the controller.
          if command -v sacct >/dev/null 2>&1; then
            _s slurm_sacct; sacct -X -n -P -j "$rt_v" -o JobIDRaw,State,ExitCode,Elapsed 2>&1 | head -c 65536 | base64
          fi
          _s slurm_scontrol; scontrol show job -o "$rt_v" 2>/dev/null | base64
        fi ;;
    esac
  fi
  sb=$rt_b
else
  rt_resolve "$BK"
  sb=$rt_b
fi
# The session of the run's backend (or of the configured one): what attach would join.
rt_available
_s backends; printf '%s' "$rt_av" | base64
_s session_backend; printf '%s' "$sb" | base64
if rt_backend_ok "$sb"; then "rt_${sb}_session" >/dev/null 2>&1; sx=$?; else sx=missing; fi
_s session; printf '%s' "$sx" | base64
l=
lsrc=
if [ -n "$r" ] && [ -f "$r/log" ]; then l=$(head -c 4096 "$r/log"); lsrc=record; fi
# The log_dir's newest log only when there is no run record: a run's progress, loss and last lines come from its own
# log, never from another run's.
if [ -z "$r" ] && [ -n "$L" ] && [ -d "$L" ]; then
  for f in "$L"/*.log; do
    [ -f "$f" ] || continue
    if [ -z "$l" ] || [ "$f" -nt "$l" ]; then l=$f; fi
  done
  [ -n "$l" ] && lsrc=log_dir
fi
if [ -n "$l" ] && [ -f "$l" ]; then
  _s log_path; printf '%s' "$l" | base64
  _s log_source; printf '%s' "$lsrc" | base64
  _s log_size; stat -L -c %s "$l" 2>/dev/null | base64
  _s log_mtime; stat -L -c %Y "$l" 2>/dev/null | base64
  _s log_tail; tail -c 65536 "$l" 2>/dev/null | base64
fi
b=$hb
if [ -n "$b" ]; then
  f=$b/trainer_state.json
  _s ts_name; printf '%s' "${b##*/}" | base64
  sz=$(stat -L -c %s "$f" 2>/dev/null)
  if [ -n "$sz" ] && [ "$sz" -le 262144 ] 2>/dev/null; then
    _s trainer_state; head -c 262144 "$f" | base64
  else
    _s trainer_state_head; head -c 32768 "$f" | base64
    _s trainer_state_tail; tail -c 65536 "$f" | base64
  fi
fi
if command -v nvidia-smi >/dev/null 2>&1; then
  if command -v timeout >/dev/null 2>&1; then
    g=$(timeout 10 nvidia-smi $Q 2>&1)
  else
    g=$(nvidia-smi $Q 2>&1)
  fi
  gr=$?
  _s gpu; printf '%s\n' "$g" | base64
else
  gr=127
fi
_s gpu_rc; echo "$gr" | base64
if [ -n "$C" ] && [ -f "$C" ]; then _s train_config; head -c 65536 "$C" | base64; fi
# Lightning's CSVLogger file: the newest metrics.csv of the configured metrics_dir (itself, its version_N/, its
# lightning_logs/version_N/), else of the workdir's and the checkpoint directory's lightning_logs/version_N/. Its
# header line and its last 8 KiB.
mf=
_mcsv() { for f in "$@"; do [ -f "$f" ] || continue; if [ -z "$mf" ] || [ "$f" -nt "$mf" ]; then mf=$f; fi; done; }
if [ -n "$M" ]; then
  _mcsv "$M/metrics.csv" "$M"/version_*/metrics.csv "$M"/lightning_logs/version_*/metrics.csv
elif [ "$wd" = ok ]; then
  _mcsv lightning_logs/version_*/metrics.csv
  [ -n "$D" ] && _mcsv "$D"/lightning_logs/version_*/metrics.csv "$D"/version_*/metrics.csv
fi
if [ -n "$mf" ]; then
  _s metrics_path; printf '%s' "$mf" | base64
  _s metrics_mtime; stat -L -c %Y "$mf" 2>/dev/null | base64
  _s metrics_size; stat -L -c %s "$mf" 2>/dev/null | base64
  _s metrics_head; head -c 4096 "$mf" | head -n 1 | base64
  _s metrics_tail; tail -c 8192 "$mf" | base64
fi
_s logind; rt_logind | head -c 65536 | base64
"#;

const DONE_LINE: &str = "printf '@@rtrain:done\\n'\n";

/// The `ckpts` script: the listing of `checkpoint_dir` (relative to `workdir` unless absolute or
/// `~/...`), `df -Pk` of it, and the remote clock.
pub fn ckpts_script(workdir: &str, checkpoint_dir: &str) -> String {
    let mut s = String::from("# rtrain ckpts probe\n");
    s += &assign_path("W", if workdir.is_empty() { "~" } else { workdir });
    s += &assign_path("D", checkpoint_dir);
    s += &assign_path("L", "");
    s += &assign_path("C", "");
    s += &assign_path("M", "");
    s += PRELUDE;
    s += LISTING_COMMON;
    s += LISTING_ALL;
    s += LISTING_TAIL;
    s += DONE_LINE;
    s
}

/// What `status_script` needs to know about the host; paths as in rtrain's config (relative to
/// the workdir unless absolute or `~/...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusInputs {
    pub workdir: String,
    pub session: String,
    pub checkpoint_dir: String,
    pub log_dir: String,
    pub train_config: String,
    /// `metrics_dir` (empty: look under the workdir's and the checkpoint directory's `lightning_logs/`).
    pub metrics_dir: String,
    /// The configured backend (`auto` or a name): whose session `session.exists` asks about when there is
    /// no run (a run's own backend is in its record).
    pub backend: String,
}

/// The `status` script: the backends the box offers and the session of the run's (or the configured)
/// backend, the current run record, the log's tail, the newest complete trainer_state.json, nvidia-smi,
/// the training config, and of the checkpoints only what status needs (see `LISTING_NEWEST`): its cost
/// does not grow with the number of checkpoints.
pub fn status_script(inputs: &StatusInputs) -> String {
    status_like_script(inputs, LISTING_NEWEST)
}

/// The `check` script: [`status_script`] with every checkpoint listed (check counts them).
pub fn check_script(inputs: &StatusInputs) -> String {
    status_like_script(inputs, &format!("{LISTING_ALL}{NEWEST_HF_ALL}"))
}

fn status_like_script(inputs: &StatusInputs, listing: &str) -> String {
    let mut s = String::from("# rtrain status probe\n");
    s += &assign_path(
        "W",
        if inputs.workdir.is_empty() {
            "~"
        } else {
            &inputs.workdir
        },
    );
    s += &assign_path("D", &inputs.checkpoint_dir);
    s += &assign_path("L", &inputs.log_dir);
    s += &assign_path("C", &inputs.train_config);
    s += &assign_path("M", &inputs.metrics_dir);
    s += &format!("S={}\n", quote(&format!("={}", inputs.session)));
    s += &format!("rt_session={}\nBK={}\n", quote(&inputs.session), quote(&inputs.backend));
    // Left unquoted in the script on purpose, to split into two arguments; both are fixed text.
    s += &format!("Q={}\n", quote(gpu::QUERY_GPU_ARGS));
    s += PRELUDE;
    s += LISTING_COMMON;
    s += listing;
    s += LISTING_TAIL;
    s += RUN_STATE_SH;
    s += &crate::remote::backend::functions_sh();
    s += crate::remote::logind::LOGIND_SH;
    s += STATUS;
    s += DONE_LINE;
    s
}

// ---------------------------------------------------------------------------------------------
// Section parsing

/// coreutils' `base64` output: the standard alphabet, padded, wrapped at 76 columns.
fn decode_base64(text: &[u8]) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let engine = &base64::engine::general_purpose::STANDARD;
    if !text.iter().any(u8::is_ascii_whitespace) {
        return engine.decode(text).ok();
    }
    let joined: Vec<u8> = text.iter().copied().filter(|c| !c.is_ascii_whitespace()).collect();
    engine.decode(joined).ok()
}

/// The decoded sections of one probe's output, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sections {
    map: BTreeMap<String, Vec<u8>>,
}

impl Sections {
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.map.get(name).map(Vec::as_slice)
    }

    /// A section as trimmed text.
    fn text(&self, name: &str) -> Option<String> {
        self.get(name).map(|b| String::from_utf8_lossy(b).trim().to_string())
    }

    fn int<T: std::str::FromStr>(&self, name: &str) -> Option<T> {
        self.text(name)?.parse().ok()
    }
}

/// Splits a probe's output into its sections (see the module documentation).
pub fn parse_sections(output: &[u8]) -> Result<Sections, ProbeError> {
    let mut lines = output
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    if !lines.by_ref().any(|l| l == HEADER) {
        return Err(ProbeError::NoHeader);
    }
    // Each section is decoded as soon as the next begins, so only one section's base64 is held at a time
    // next to the decoded ones.
    // A cut output is reported as cut even when the cut made a section corrupt: the first corrupt one waits.
    let mut map = BTreeMap::new();
    let mut corrupt = None;
    let mut current: Option<(String, Vec<u8>)> = None;
    let mut finish = |current: &mut Option<(String, Vec<u8>)>| {
        if let Some((name, b64)) = current.take() {
            match decode_base64(&b64) {
                Some(bytes) => {
                    map.insert(name, bytes);
                }
                None => {
                    corrupt.get_or_insert(ProbeError::Corrupt(name));
                }
            }
        }
    };
    let mut done = false;
    for line in lines {
        if line == DONE {
            done = true;
            break;
        } else if let Some(name) = line.strip_prefix(SECTION) {
            finish(&mut current);
            current = Some((String::from_utf8_lossy(name).into_owned(), Vec::new()));
        } else if let Some(msg) = line.strip_prefix(ERROR) {
            return Err(ProbeError::Remote(String::from_utf8_lossy(msg).into_owned()));
        } else if let Some((_, buf)) = current.as_mut() {
            buf.extend_from_slice(line);
        } else if !line.is_empty() {
            return Err(ProbeError::Corrupt("(before the first section)".into()));
        }
    }
    if !done {
        return Err(ProbeError::Truncated);
    }
    finish(&mut current);
    if let Some(e) = corrupt {
        return Err(e);
    }
    Ok(Sections { map })
}

// ---------------------------------------------------------------------------------------------
// Parsed probes

/// The checkpoint directory as found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DirState {
    Present,
    /// Not there (yet): no checkpoint was saved, or the workdir is missing. Not an error.
    Missing,
    NotADirectory,
}

/// Which directory `df` measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DiskOf {
    CheckpointDir,
    Workdir,
    Home,
}

/// The `ckpts` answer (also part of `status`).
#[derive(Debug, Clone, PartialEq)]
pub struct CkptsProbe {
    /// Remote `date +%s`: ages are computed against the remote clock.
    pub now: Option<i64>,
    pub workdir_exists: bool,
    /// `pwd -P` of the workdir, raw bytes.
    pub workdir_abs: Option<Vec<u8>>,
    pub dir_state: DirState,
    /// The checkpoint directory as the remote shell resolved it (`~` expanded), raw bytes.
    pub dir_arg: Vec<u8>,
    /// `pwd -P` of the checkpoint directory, raw bytes.
    pub dir_abs: Option<Vec<u8>>,
    pub entries: Vec<Entry>,
    /// Recognised checkpoints, ascending by integer step.
    pub checkpoints: Vec<Checkpoint>,
    pub disk: Option<DiskUsage>,
    pub disk_of: Option<DiskOf>,
}

impl CkptsProbe {
    /// The checkpoint directory for display: absolute when known.
    pub fn dir_display(&self) -> String {
        if let Some(abs) = &self.dir_abs {
            return String::from_utf8_lossy(abs).into_owned();
        }
        let arg = String::from_utf8_lossy(&self.dir_arg).into_owned();
        match &self.workdir_abs {
            Some(w) if !arg.starts_with('/') && !arg.is_empty() => {
                format!(
                    "{}/{}",
                    String::from_utf8_lossy(w).trim_end_matches('/'),
                    arg.trim_start_matches("./")
                )
            }
            _ => arg,
        }
    }

    /// The exact remote path of a checkpoint (for `resume`), raw bytes.
    pub fn checkpoint_path(&self, c: &Checkpoint) -> Vec<u8> {
        let mut p = self.dir_abs.clone().unwrap_or_else(|| self.dir_arg.clone());
        if !p.ends_with(b"/") {
            p.push(b'/');
        }
        p.extend_from_slice(&c.rel_path);
        p
    }

    pub fn newest_complete(&self) -> Option<&Checkpoint> {
        checkpoints::newest_complete(&self.checkpoints)
    }

    /// The directory `df` measured, for display.
    pub fn disk_path_display(&self) -> String {
        match self.disk_of {
            Some(DiskOf::Workdir) => self
                .workdir_abs
                .as_ref()
                .map(|w| String::from_utf8_lossy(w).into_owned())
                .unwrap_or_default(),
            Some(DiskOf::Home) => "~".to_string(),
            _ => self.dir_display(),
        }
    }
}

/// The `ckpts` section decoded: state, the directory as resolved, its `pwd -P`, the entries.
type Listing = (DirState, Vec<u8>, Option<Vec<u8>>, Vec<Entry>);

fn parse_listing(bytes: &[u8]) -> Result<Listing, ProbeError> {
    let corrupt = || ProbeError::Corrupt("ckpts".into());
    let mut fields = bytes.split(|b| *b == 0);
    let mut state = None;
    let (mut arg, mut abs, mut entries) = (Vec::new(), None, Vec::new());
    while let Some(tag) = fields.next() {
        let mut next = || fields.next().ok_or_else(corrupt);
        match tag {
            b"S" => {
                state = Some(match next()? {
                    b"ok" => DirState::Present,
                    b"notdir" => DirState::NotADirectory,
                    _ => DirState::Missing,
                })
            }
            b"P" => arg = next()?.to_vec(),
            b"A" => abs = Some(next()?.to_vec()).filter(|a| !a.is_empty()),
            b"E" => {
                let rel = next()?.to_vec();
                let kind = match next()? {
                    b"d" => EntryKind::Dir,
                    b"f" => EntryKind::File,
                    _ => EntryKind::Other,
                };
                let kib: Option<u64> = std::str::from_utf8(next()?).ok().and_then(|s| s.parse().ok());
                let mtime: Option<i64> = std::str::from_utf8(next()?).ok().and_then(|s| s.trim().parse().ok());
                let marks = next()?.to_vec();
                let content = next()?.to_vec();
                let mut e = Entry::new(rel, kind);
                e.bytes = kib.map(|k| k.saturating_mul(1024));
                e.mtime = mtime;
                e.symlink = marks.contains(&b'L');
                e.has_trainer_state = marks.contains(&b'T');
                e.has_random_states = marks.contains(&b'R');
                e.content = (e.name() == b"latest" && kind == EntryKind::File).then_some(content);
                entries.push(e);
            }
            b"" => {}
            _ => return Err(corrupt()),
        }
    }
    Ok((state.ok_or_else(corrupt)?, arg, abs, entries))
}

/// The `ckpts_du` / `ckpts_mtime` sections: `P prefix`, then `number<TAB>name` fields (du -0 and
/// stat --printf output of the directory the prefix names), by the entry's path relative to the checkpoint dir.
fn parse_per_name(bytes: &[u8], section: &str) -> Result<std::collections::HashMap<Vec<u8>, u64>, ProbeError> {
    let mut out = std::collections::HashMap::new();
    let mut prefix: &[u8] = b"";
    let mut fields = bytes.split(|b| *b == 0);
    while let Some(f) = fields.next() {
        if f == b"P" {
            prefix = fields.next().ok_or_else(|| ProbeError::Corrupt(section.into()))?;
        } else if let Some(tab) = f.iter().position(|b| *b == b'\t') {
            let n = std::str::from_utf8(&f[..tab]).ok().and_then(|n| n.parse().ok());
            let name = f[tab + 1..].strip_prefix(b"./").unwrap_or(&f[tab + 1..]);
            if let Some(n) = n {
                out.insert([prefix, name].concat(), n);
            }
        } else if !f.is_empty() {
            return Err(ProbeError::Corrupt(section.into()));
        }
    }
    Ok(out)
}

fn ckpts_from_sections(s: &Sections) -> Result<CkptsProbe, ProbeError> {
    let workdir = s.get("workdir").unwrap_or_default();
    let mut wl = workdir.split(|b| *b == b'\n');
    let workdir_exists = wl.next() == Some(b"ok");
    let workdir_abs = wl
        .next()
        .filter(|w| workdir_exists && !w.is_empty())
        .map(<[u8]>::to_vec);
    let (dir_state, dir_arg, dir_abs, mut entries) = match s.get("ckpts") {
        Some(b) => parse_listing(b)?,
        None => return Err(ProbeError::Corrupt("ckpts (absent)".into())),
    };
    let sizes = parse_per_name(s.get("ckpts_du").unwrap_or_default(), "ckpts_du")?;
    let times = parse_per_name(s.get("ckpts_mtime").unwrap_or_default(), "ckpts_mtime")?;
    // The bounded listing may pick one entry for two reasons.
    let mut seen = std::collections::HashSet::new();
    entries.retain(|e| seen.insert(e.rel_path.clone()));
    for e in &mut entries {
        e.bytes = sizes.get(&e.rel_path).map(|k| k.saturating_mul(1024));
        e.mtime = times.get(&e.rel_path).and_then(|t| i64::try_from(*t).ok());
    }
    let checkpoints = checkpoints::recognise(&entries);
    Ok(CkptsProbe {
        now: s.int("now"),
        workdir_exists,
        workdir_abs,
        dir_state,
        dir_arg,
        dir_abs,
        entries,
        checkpoints,
        disk: s.get("df").and_then(parse_df),
        disk_of: s.text("df_of").and_then(|t| match t.as_str() {
            "checkpoint_dir" => Some(DiskOf::CheckpointDir),
            "workdir" => Some(DiskOf::Workdir),
            "home" => Some(DiskOf::Home),
            _ => None,
        }),
    })
}

/// Parses the output of [`ckpts_script`].
pub fn parse_ckpts(output: &[u8]) -> Result<CkptsProbe, ProbeError> {
    ckpts_from_sections(&parse_sections(output)?)
}

/// The current run record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRecord {
    pub id: String,
    pub command: Option<String>,
    pub started_at: Option<String>,
    pub pid: Option<u32>,
    pub log: Option<String>,
    /// The `exit` file exists (the wrapper writes it atomically when the command ended).
    pub exit_present: bool,
    pub exit_code: Option<i32>,
    pub stopped: bool,
    /// What the liveness test saw (`None`: not asked, because `exit` decided, or the pid file holds no pid
    /// above 1). The pid answers `kill -0` and is not a zombie.
    pub alive: Option<bool>,
    /// `/proc/<pid>/cmdline` names this run's wrapper (`None`: no /proc, or the pid is not alive).
    pub is_wrapper: Option<bool>,
    /// The wrapper is gone but its process group has a member that is not a zombie (the trainer, killed
    /// wrapper alone).
    pub group_alive: Option<bool>,
    /// Decided on the remote box by the very shell functions `up` and `stop` use (`rt_decide` in
    /// [`RUN_STATE_SH`]), so `status` can never disagree with them; `exit` and `stopped` are read after it.
    /// A Slurm run whose job waits in the queue is `Pending` (active, as `running` is for `up`).
    pub state: RunState,
    /// The backend the run was launched with (`tmux` for a record from before backends were recorded).
    pub backend: String,
    /// The record's `format` (`None`: version 1, no `format` file).
    pub format: Option<u32>,
    /// The Slurm side of a `backend: slurm` run.
    pub slurm: Option<crate::remote::slurm::SlurmRun>,
}

fn run_from_sections(s: &Sections) -> Result<Option<RunRecord>, ProbeError> {
    let Some(id) = s.text("run_id").filter(|i| !i.is_empty()) else {
        return Ok(None);
    };
    let state = s
        .text("run_state")
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| ProbeError::Corrupt("run_state".into()))?;
    let yes = |name: &str| s.text(name).map(|a| a == "0");
    let slurm = crate::remote::slurm::SlurmRun::from_record(s.text("slurm_job").as_deref(), |name| {
        s.text(name).filter(|t| !t.is_empty())
    });
    Ok(Some(RunRecord {
        command: s
            .get("run_command")
            .map(|c| String::from_utf8_lossy(c).trim_end_matches('\n').to_string()),
        started_at: s.text("run_started_at").filter(|t| !t.is_empty()),
        pid: s.int("run_pid"),
        log: s.text("run_log").filter(|t| !t.is_empty()),
        exit_present: s.get("run_exit").is_some(),
        exit_code: s.int("run_exit"),
        stopped: s.get("run_stopped").is_some(),
        alive: yes("run_alive"),
        is_wrapper: yes("run_is_wrapper"),
        group_alive: yes("run_group_alive"),
        state: match &slurm {
            Some(j) if state == RunState::Running && j.is_pending() => RunState::Pending,
            _ => state,
        },
        slurm,
        backend: s
            .text("run_backend")
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| "tmux".into()),
        format: s.int("run_format"),
        id,
    }))
}

/// Where the log came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogSource {
    /// The run record's `log` file.
    Record,
    /// No record: the newest `*.log` in the configured log_dir.
    LogDir,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogInfo {
    pub path: Vec<u8>,
    pub source: LogSource,
    pub size: Option<u64>,
    pub mtime: Option<i64>,
    /// The last [`LOG_TAIL_BYTES`] bytes.
    pub tail: Vec<u8>,
}

/// The `status` answer.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusProbe {
    pub ckpts: CkptsProbe,
    /// `command -v tmux` found it.
    pub tmux_installed: bool,
    /// The session of [`StatusProbe::session_backend`] exists (`None` from a probe that did not ask: an
    /// older script's output; `Some(false)` for a backend without sessions, or one the box lacks).
    pub session_exists: Option<bool>,
    /// The backend whose session was asked about: the current run's, else the configured one as the box
    /// resolves `auto` (`none`: it offers none).
    pub session_backend: Option<String>,
    /// The backends the box offers, in `auto`'s order of preference.
    pub available_backends: Vec<String>,
    pub run: Option<RunRecord>,
    pub log: Option<LogInfo>,
    /// From the log's tail (default when there is no log).
    pub log_summary: LogSummary,
    /// Name of the checkpoint whose trainer_state.json was read, and what it said.
    pub trainer_state: Option<(String, TrainerState)>,
    pub gpus: GpuReport,
    pub train_config: Option<TrainConfig>,
    /// What logind does at logout (`None` from an older script that did not ask).
    pub logind: Option<Logind>,
    /// The newest metrics.csv found (see the script), and the loss it holds.
    pub metrics: Option<MetricsFile>,
}

/// A trainer's metrics file, as the status probe found it.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsFile {
    pub path: Vec<u8>,
    pub mtime: Option<i64>,
    /// The last training loss in it, with its step (`None`: no loss column, or no row with a value yet).
    pub loss: Option<crate::train::lightning::CsvLoss>,
}

/// Parses the output of [`status_script`].
pub fn parse_status(output: &[u8]) -> Result<StatusProbe, ProbeError> {
    let s = parse_sections(output)?;
    let ckpts = ckpts_from_sections(&s)?;
    let tmux = s.text("tmux");
    let tmux_installed = tmux.as_deref().is_some_and(|t| t != "missing");
    let session_exists = match s.text("session") {
        Some(code) => Some(code == "0"),
        None if tmux_installed => tmux.as_deref().map(|t| t == "0"),
        None => None,
    };
    let session_backend = s.text("session_backend").filter(|b| !b.is_empty());
    let available_backends = s
        .text("backends")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let log = s.get("log_path").map(|path| LogInfo {
        path: path.to_vec(),
        source: if s.text("log_source").as_deref() == Some("record") {
            LogSource::Record
        } else {
            LogSource::LogDir
        },
        size: s.int("log_size"),
        mtime: s.int("log_mtime"),
        tail: s.get("log_tail").unwrap_or_default().to_vec(),
    });
    let log_summary = log
        .as_ref()
        .map(|l| summarize_log(&l.tail, l.tail.len() >= LOG_TAIL_BYTES))
        .unwrap_or_default();
    let ts_name = s.text("ts_name").unwrap_or_default();
    let trainer_state = match (s.get("trainer_state"), s.get("trainer_state_head")) {
        (Some(whole), _) => Some((
            ts_name,
            parse_trainer_state(whole).unwrap_or_else(|_| parse_trainer_state_partial(whole, b"")),
        )),
        (None, Some(head)) => Some((
            ts_name,
            parse_trainer_state_partial(head, s.get("trainer_state_tail").unwrap_or_default()),
        )),
        (None, None) => None,
    };
    let gpus = gpu::parse_nvidia_smi(s.get("gpu").unwrap_or_default(), s.int("gpu_rc"));
    Ok(StatusProbe {
        ckpts,
        tmux_installed,
        session_exists,
        session_backend,
        available_backends,
        run: run_from_sections(&s)?,
        log,
        log_summary,
        trainer_state,
        gpus,
        train_config: s.get("train_config").map(parse_train_config),
        metrics: s.get("metrics_path").map(|path| {
            let size: Option<usize> = s.int("metrics_size");
            MetricsFile {
                path: path.to_vec(),
                mtime: s.int("metrics_mtime"),
                loss: crate::train::lightning::parse_metrics_csv(
                    s.get("metrics_head").unwrap_or_default(),
                    s.get("metrics_tail").unwrap_or_default(),
                    size.is_none_or(|n| n > METRICS_TAIL_BYTES),
                ),
            }
        }),
        logind: s.get("logind").map(|t| logind::parse(&String::from_utf8_lossy(t))),
    })
}

/// `2026-11-29T01:53:00Z` (as the run record has it) in seconds since the epoch.
pub fn rfc3339_epoch(t: &str) -> Option<i64> {
    let t = humantime::parse_rfc3339_weak(t.trim()).ok()?;
    i64::try_from(t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::check::{render_report, CheckJson};
    use crate::report::ckpts::CkptsJson;
    use crate::report::status::StatusJson;
    use crate::train::checkpoints::Layout;
    use crate::train::fixtures;
    use proptest::prelude::*;
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command};

    fn write(path: impl AsRef<Path>, bytes: &[u8]) {
        let path = path.as_ref();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    fn touch_at(path: impl AsRef<Path>, epoch: i64) {
        let st = Command::new("touch")
            .arg("-h")
            .arg("-d")
            .arg(format!("@{epoch}"))
            .arg(path.as_ref())
            .status()
            .unwrap();
        assert!(st.success());
    }

    /// A fake remote box: a temporary `$HOME`, and a bin directory put first on `PATH` for fake
    /// `tmux`/`nvidia-smi`. With `bare`, PATH is only that directory plus the coreutils the
    /// probe needs, so tmux and nvidia-smi are "not installed".
    struct TestBox {
        _tmp: tempfile::TempDir,
        home: PathBuf,
        bin: PathBuf,
        bare: bool,
    }

    impl TestBox {
        fn new() -> TestBox {
            let tmp = tempfile::tempdir().unwrap();
            let home = tmp.path().join("home");
            let bin = tmp.path().join("bin");
            std::fs::create_dir_all(&home).unwrap();
            std::fs::create_dir_all(&bin).unwrap();
            TestBox {
                home,
                bin,
                _tmp: tmp,
                bare: false,
            }
        }

        /// Where this machine keeps `tool` (a stand-in on the box's PATH hands over to it).
        fn real_tool(tool: &str) -> PathBuf {
            ["/usr/bin", "/bin"]
                .iter()
                .map(|d| Path::new(d).join(tool))
                .find(|p| p.exists())
                .unwrap_or_else(|| panic!("{tool} is not in /usr/bin or /bin"))
        }

        fn bare(tools: &[&str]) -> TestBox {
            let mut b = TestBox::new();
            for t in tools {
                let real = TestBox::real_tool(t);
                std::os::unix::fs::symlink(real, b.bin.join(t)).unwrap();
            }
            b.bare = true;
            b
        }

        fn fake(&self, name: &str, body: &str) {
            let p = self.bin.join(name);
            std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }

        /// Runs the script the way ssh does: the login shell gets `sh -c '<script>'`.
        fn run_with(&self, login_shell: &str, script: &str) -> Vec<u8> {
            let path = if self.bare {
                self.bin.display().to_string()
            } else {
                format!("{}:{}", self.bin.display(), std::env::var("PATH").unwrap_or_default())
            };
            let out = Command::new(login_shell)
                .arg("-c")
                .arg(crate::remote::run::sh_command(script))
                .env("HOME", &self.home)
                .env("PATH", path)
                .current_dir(&self.home)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "probe failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            out.stdout
        }

        fn run(&self, script: &str) -> Vec<u8> {
            self.run_with("/bin/sh", script)
        }
    }

    const BASE_TOOLS: [&str; 11] = [
        "sh", "base64", "date", "du", "stat", "df", "head", "tail", "tr", "cat", "sleep",
    ];

    /// The checkpoint directory every listing test uses: integer-sorted steps, an incomplete and a
    /// tmp checkpoint, and names with a space, a newline and non-UTF-8 bytes.
    fn build_outputs(dir: &Path) {
        for step in [50, 100, 1500] {
            let c = dir.join(format!("checkpoint-{step}"));
            write(c.join("model.safetensors"), &vec![7u8; 5000]);
            write(c.join("trainer_state.json"), &fixtures::hf("trainer_state.json"));
        }
        write(dir.join("checkpoint-2000/model.safetensors"), &vec![7u8; 5000]);
        write(dir.join("tmp-checkpoint-2500/trainer_state.json"), b"{}");
        write(dir.join("checkpoint-7 copy/trainer_state.json"), b"{}");
        write(dir.join("runs/events.out"), b"x");
        write(dir.join("best model step=300.ckpt"), b"lightning");
        write(dir.join("line\nbreak step=400.ckpt"), b"lightning");
        write(dir.join(OsStr::from_bytes(b"\xff\xfe step=600.ckpt")), b"lightning");
        touch_at(dir.join("checkpoint-1500"), 1_700_000_000);
    }

    fn names(p: &CkptsProbe) -> Vec<String> {
        p.checkpoints.iter().map(|c| c.name.clone()).collect()
    }

    fn check_listing(p: &CkptsProbe, outputs: &Path) {
        assert_eq!(p.dir_state, DirState::Present);
        assert_eq!(
            names(p),
            [
                "checkpoint-50",
                "checkpoint-100",
                "best model step=300.ckpt",
                "line\nbreak step=400.ckpt",
                "\u{fffd}\u{fffd} step=600.ckpt",
                "checkpoint-1500",
                "checkpoint-2000",
                "tmp-checkpoint-2500"
            ]
        );
        let complete: Vec<bool> = p.checkpoints.iter().map(|c| c.complete).collect();
        assert_eq!(complete, [true, true, true, true, true, true, false, false]);
        let newest = p.newest_complete().unwrap();
        assert_eq!(
            (newest.name.as_str(), newest.step, newest.latest),
            ("checkpoint-1500", Some(1500), true)
        );
        assert_eq!(newest.mtime, Some(1_700_000_000));
        assert!(newest.bytes.unwrap() >= 5000);
        assert_eq!(
            p.checkpoints[4].rel_path, b"\xff\xfe step=600.ckpt",
            "raw bytes are kept for the path"
        );
        let canonical = std::fs::canonicalize(outputs).unwrap();
        assert_eq!(p.dir_abs.as_deref(), Some(canonical.as_os_str().as_bytes()));
        assert_eq!(
            p.checkpoint_path(&p.checkpoints[4]),
            [canonical.as_os_str().as_bytes(), b"/\xff\xfe step=600.ckpt"].concat()
        );
        assert_eq!(p.disk_of, Some(DiskOf::CheckpointDir));
        assert!(p.disk.as_ref().unwrap().total_bytes > 0);
        let now = p.now.unwrap();
        let local = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert!((now - local).abs() < 60);
    }

    #[test]
    fn ckpts_probe_lists_every_layout_name_exactly_under_sh_and_bash() {
        let b = TestBox::new();
        let outputs = b.home.join("work/outputs");
        build_outputs(&outputs);
        let script = ckpts_script("~/work", "outputs");
        for shell in ["/bin/sh", "/bin/bash"] {
            if !Path::new(shell).exists() {
                continue;
            }
            let p = parse_ckpts(&b.run_with(shell, &script)).unwrap();
            check_listing(&p, &outputs);
        }
    }

    #[test]
    fn ckpts_json_matches_the_contract() {
        let b = TestBox::new();
        let outputs = b.home.join("work/outputs");
        build_outputs(&outputs);
        let p = parse_ckpts(&b.run(&ckpts_script("~/work", "outputs"))).unwrap();
        let v = serde_json::to_value(CkptsJson::build("gpu-box", &p)).unwrap();
        let canonical = std::fs::canonicalize(&outputs).unwrap().display().to_string();
        assert_eq!(v["host"], "gpu-box");
        assert_eq!(v["dir"], canonical.as_str());
        let c = &v["checkpoints"][5];
        let keys: Vec<&str> = c.as_object().unwrap().keys().map(String::as_str).collect();
        for k in ["name", "path", "step", "bytes", "mtime", "complete", "latest"] {
            assert!(keys.contains(&k), "missing {k} in {c}");
        }
        assert_eq!(c["name"], "checkpoint-1500");
        assert_eq!(c["path"], format!("{canonical}/checkpoint-1500").as_str());
        assert_eq!(c["step"], 1500);
        assert_eq!(c["mtime"], "2023-11-14T22:13:20Z");
        assert_eq!(
            (c["complete"].as_bool(), c["latest"].as_bool()),
            (Some(true), Some(true))
        );
        assert!(v["checkpoints"][2]["step"] == 300 && v["checkpoints"][7]["complete"] == false);
        let total: u64 = p.checkpoints.iter().map(|c| c.bytes.unwrap()).sum();
        assert_eq!(v["total_bytes"], total);
        assert!(v["free_bytes"].as_u64().unwrap() > 0);
    }

    /// Lightning, DeepSpeed and Accelerate checkpoints as the fixtures list them, all in `out`.
    fn build_layouts(out: &Path) {
        for (fixture, latest) in [
            ("layouts/lightning.txt", None),
            ("layouts/deepspeed.txt", Some("global_step1000")),
            ("layouts/accelerate.txt", None),
        ] {
            let text = String::from_utf8(fixtures::own(fixture)).unwrap();
            for line in text.lines() {
                let (path, size) = line.rsplit_once(' ').unwrap();
                let size: usize = size.parse().unwrap();
                let content = if path.ends_with("/latest") {
                    latest.unwrap().as_bytes().to_vec()
                } else {
                    vec![1u8; size.min(4096)]
                };
                write(out.join(path.trim_start_matches("./")), &content);
            }
        }
    }

    fn status_inputs_for(checkpoint_dir: &str) -> StatusInputs {
        StatusInputs {
            workdir: "~/work".into(),
            session: "training".into(),
            checkpoint_dir: checkpoint_dir.into(),
            log_dir: "logs".into(),
            train_config: "config.yaml".into(),
            metrics_dir: String::new(),
            backend: "auto".into(),
        }
    }

    /// What status needs of the checkpoints, from its bounded listing and from the full one.
    fn newest_facts(p: &StatusProbe) -> (Option<Checkpoint>, Option<f64>, Vec<String>) {
        let per_dir_newest = |layout: Layout| {
            p.ckpts
                .checkpoints
                .iter()
                .rev()
                .find(|c| c.layout == layout && c.complete)
                .map(|c| c.name.clone())
        };
        (
            p.ckpts.newest_complete().cloned(),
            crate::train::risk::seconds_per_step_from_checkpoints(&p.ckpts.checkpoints),
            [
                Layout::HuggingFace,
                Layout::Lightning,
                Layout::DeepSpeed,
                Layout::Accelerate,
            ]
            .into_iter()
            .filter_map(per_dir_newest)
            .collect(),
        )
    }

    #[test]
    fn status_lists_only_the_newest_checkpoints_and_agrees_with_the_full_listing() {
        let b = TestBox::new();
        let out = b.home.join("work/out");
        build_outputs(&out);
        build_layouts(&out);
        // An earlier run's higher steps, older on disk than this run's checkpoint-1600.
        for step in 3000..3200 {
            let c = out.join(format!("checkpoint-{step}"));
            write(c.join("trainer_state.json"), b"{}");
            touch_at(&c, 1_600_000_000 + step);
        }
        write(out.join("checkpoint-1600/trainer_state.json"), b"{}");
        let status = parse_status(&b.run(&status_script(&status_inputs_for("out")))).unwrap();
        let full = parse_status(&b.run(&check_script(&status_inputs_for("out")))).unwrap();
        assert!(full.ckpts.checkpoints.len() > 220, "{}", full.ckpts.checkpoints.len());
        assert!(
            status.ckpts.checkpoints.len() <= 30,
            "bounded: {:?}",
            names(&status.ckpts)
        );
        assert_eq!(newest_facts(&status), newest_facts(&full));
        assert_eq!(
            status.ckpts.newest_complete().map(|c| c.name.as_str()),
            Some("checkpoint-3199"),
            "the highest step: last.ckpt's step is that of a step-named checkpoint beside it (issue 19)"
        );
        assert_eq!(newest_facts(&status).2[0], "checkpoint-3199");
        assert!(
            names(&status.ckpts).contains(&"checkpoint-1600".to_string()),
            "the newest on disk, whatever its step: {:?}",
            names(&status.ckpts)
        );
        assert_eq!(
            status.trainer_state.as_ref().map(|t| t.0.as_str()),
            Some("checkpoint-3199")
        );
        assert_eq!(
            full.trainer_state.as_ref().map(|t| t.0.as_str()),
            Some("checkpoint-3199")
        );
    }

    /// The work of the status probe does not grow with the checkpoints: stand-ins for `du` and `stat` on
    /// PATH count their invocations and arguments (every other per-entry test is a shell builtin).
    #[test]
    fn status_probe_work_does_not_grow_with_checkpoints_and_ckpts_sizes_in_one_du() {
        let b = TestBox::new();
        let calls = b.home.join("calls");
        for tool in ["du", "stat", "head", "tr"] {
            let real = TestBox::real_tool(tool);
            b.fake(
                tool,
                &format!(
                    "echo \"{tool} $#\" >> '{}'\nexec {} \"$@\"",
                    calls.display(),
                    real.display()
                ),
            );
        }
        let count = |n: usize, script: &str| -> Vec<String> {
            let out = b.home.join("work/outputs");
            let _ = std::fs::remove_dir_all(&out);
            for step in 0..n {
                write(out.join(format!("checkpoint-{}/trainer_state.json", step * 10)), b"{}");
            }
            let _ = std::fs::remove_file(&calls);
            let p = parse_status(&b.run(script)).unwrap();
            assert_eq!(p.ckpts.newest_complete().unwrap().step, Some((n as u64 - 1) * 10));
            std::fs::read_to_string(&calls)
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect()
        };
        let status = status_script(&status_inputs_for("outputs"));
        let one = count(1, &status);
        let many = count(400, &status);
        assert_eq!(one.len(), many.len(), "processes: {one:?} vs {many:?}");
        for call in &many {
            let (tool, args) = call.split_once(' ').unwrap();
            let args: usize = args.parse().unwrap();
            assert!(args <= 16, "status ran `{tool}` with {args} arguments");
        }
        let ckpts = ckpts_script("~/work", "outputs");
        let all = count(400, &ckpts);
        // Plus, once per script, `du` and `stat` on /dev/null: are they GNU's (NUL-terminated records)?
        let du: Vec<&String> = all.iter().filter(|c| c.starts_with("du ")).collect();
        assert_eq!(
            du.len(),
            2,
            "one du for the whole directory, one capability check: {all:?}"
        );
        assert!(all.len() <= 6, "{all:?}");
    }

    #[test]
    fn other_layouts_from_listings_through_the_real_probe() {
        let b = TestBox::new();
        let out = b.home.join("work/out");
        build_layouts(&out);
        let p = parse_ckpts(&b.run(&ckpts_script("~/work", "out"))).unwrap();
        let by_layout = |l: Layout| {
            p.checkpoints
                .iter()
                .filter(|c| c.layout == l)
                .map(|c| String::from_utf8_lossy(&c.rel_path).into_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            by_layout(Layout::Lightning),
            [
                "lightning_logs/version_0/checkpoints/epoch=0-step=500.ckpt",
                "lightning_logs/version_0/checkpoints/epoch=1-step=1000.ckpt",
                "lightning_logs/version_0/checkpoints/epoch=2-step=1500.ckpt",
                "lightning_logs/version_0/checkpoints/epoch=2-step=1500-v1.ckpt",
                "lightning_logs/version_0/checkpoints/last.ckpt"
            ]
        );
        assert_eq!(
            by_layout(Layout::DeepSpeed),
            ["global_step500", "global_step1000", "global_step1500"]
        );
        let ds: Vec<bool> = p
            .checkpoints
            .iter()
            .filter(|c| c.layout == Layout::DeepSpeed)
            .map(|c| c.complete)
            .collect();
        assert_eq!(ds, [true, true, false], "latest names global_step1000");
        assert_eq!(
            by_layout(Layout::Accelerate),
            [
                "checkpoints/checkpoint_0",
                "checkpoints/checkpoint_1",
                "checkpoints/checkpoint_2",
                "checkpoints/checkpoint_10"
            ]
        );
        let acc: Vec<bool> = p
            .checkpoints
            .iter()
            .filter(|c| c.layout == Layout::Accelerate)
            .map(|c| c.complete)
            .collect();
        assert_eq!(acc, [true, true, true, false]);
    }

    #[test]
    fn missing_checkpoint_dir_is_reported_not_an_error() {
        let b = TestBox::new();
        std::fs::create_dir_all(b.home.join("work")).unwrap();
        let p = parse_ckpts(&b.run(&ckpts_script("~/work", "outputs"))).unwrap();
        assert_eq!(p.dir_state, DirState::Missing);
        assert!(p.checkpoints.is_empty() && p.workdir_exists);
        assert_eq!(p.disk_of, Some(DiskOf::Workdir));
        assert!(p.disk.is_some());
        let v = serde_json::to_value(CkptsJson::build("h", &p)).unwrap();
        assert_eq!(v["checkpoints"], serde_json::json!([]));
        assert_eq!(v["total_bytes"], 0);
        assert_eq!(v["dir_state"], "missing");
        assert!(v["dir"].as_str().unwrap().ends_with("/work/outputs"), "{v}");
    }

    #[test]
    fn missing_workdir_never_resolves_relative_paths_against_home() {
        let b = TestBox::new();
        // `outputs` exists in $HOME, but the workdir does not: it must not be listed.
        build_outputs(&b.home.join("outputs"));
        let p = parse_ckpts(&b.run(&ckpts_script("~/nope", "outputs"))).unwrap();
        assert!(!p.workdir_exists);
        assert_eq!(p.dir_state, DirState::Missing);
        assert_eq!(p.disk_of, Some(DiskOf::Home));
        // An absolute checkpoint dir is still listed.
        let abs = b.home.join("outputs").display().to_string();
        let p = parse_ckpts(&b.run(&ckpts_script("~/nope", &abs))).unwrap();
        assert_eq!(p.dir_state, DirState::Present);
        assert_eq!(p.checkpoints.len(), 8);
    }

    #[test]
    fn a_file_where_the_dir_should_be() {
        let b = TestBox::new();
        write(b.home.join("work/outputs"), b"oops");
        let p = parse_ckpts(&b.run(&ckpts_script("~/work", "outputs"))).unwrap();
        assert_eq!(p.dir_state, DirState::NotADirectory);
    }

    fn pwn_target() -> PathBuf {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        PathBuf::from(format!("/tmp/pwned-{}-{nanos}", std::process::id()))
    }

    #[test]
    fn hostile_paths_and_session_names_are_never_executed() {
        let b = TestBox::new();
        let pwn = pwn_target();
        let evil = format!(
            "we ird 'q' \"dq\" $(touch {}) `touch {}` ;x",
            pwn.display(),
            pwn.display()
        );
        let workdir = format!("~/{evil}");
        build_outputs(&b.home.join(&evil).join("out puts"));
        let ck = parse_ckpts(&b.run(&ckpts_script(&workdir, "out puts"))).unwrap();
        check_listing(&ck, &b.home.join(&evil).join("out puts"));
        let inputs = StatusInputs {
            workdir: workdir.clone(),
            session: format!("s'$(touch {})", pwn.display()),
            checkpoint_dir: "out puts".into(),
            log_dir: format!("$(touch {})", pwn.display()),
            train_config: format!("-c $(touch {}).yaml", pwn.display()),
            metrics_dir: String::new(),
            backend: "auto".into(),
        };
        let st = parse_status(&b.run(&status_script(&inputs))).unwrap();
        assert!(st.ckpts.workdir_exists);
        assert_eq!(
            st.ckpts.newest_complete().map(|c| c.name.as_str()),
            Some("checkpoint-1500")
        );
        let st = parse_status(&b.run(&check_script(&inputs))).unwrap();
        assert_eq!(st.ckpts.checkpoints.len(), 8);
        assert!(!pwn.exists(), "a quoted $(...) was executed");
    }

    #[test]
    fn scripts_survive_fish_single_quotes() {
        // fish treats `\\` and `\'` inside single quotes as escapes; POSIX sh does not.
        let inputs = StatusInputs {
            workdir: "~/w".into(),
            session: "training".into(),
            checkpoint_dir: "outputs".into(),
            log_dir: "logs".into(),
            train_config: "c.yaml".into(),
            metrics_dir: String::new(),
            backend: "auto".into(),
        };
        for s in [ckpts_script("~/w", "outputs"), status_script(&inputs)] {
            assert!(!s.contains("\\\\") && !s.contains("\\'"), "{s}");
        }
    }

    #[test]
    fn script_caps_are_the_published_constants_when_run() {
        // The caps are written into the script text by hand; what counts is what a real shell sends back
        // for files one byte past each cap (and, for trainer_state.json, exactly at it).
        let patterned = |n: usize| -> Vec<u8> { (0..n).map(|i| b'a' + (i % 26) as u8).collect() };
        let same = |got: Option<&[u8]>, want: &[u8], what: &str| {
            let got = got.unwrap_or_else(|| panic!("{what}: no section"));
            assert_eq!(got.len(), want.len(), "{what}: bytes sent");
            assert!(got == want, "{what}: not the expected bytes");
        };
        let b = TestBox::new();
        let proj = b.home.join("proj");
        let log = patterned(LOG_TAIL_BYTES + 1);
        write(proj.join("logs/a.log"), &log);
        let config = patterned(TRAIN_CONFIG_MAX + 1);
        write(proj.join("config/training_config.yaml"), &config);
        let whole = patterned(TRAINER_STATE_WHOLE_MAX);
        write(proj.join("outputs/checkpoint-1/trainer_state.json"), &whole);
        let s = parse_sections(&b.run(&status_script(&inputs()))).unwrap();
        same(s.get("log_tail"), &log[1..], "log tail");
        same(s.get("train_config"), &config[..TRAIN_CONFIG_MAX], "training config");
        same(
            s.get("trainer_state"),
            &whole,
            "trainer_state.json at the cap, sent whole",
        );
        assert!(s.get("trainer_state_head").is_none());

        let big = patterned(TRAINER_STATE_WHOLE_MAX + 1);
        write(proj.join("outputs/checkpoint-2/trainer_state.json"), &big);
        let s = parse_sections(&b.run(&status_script(&inputs()))).unwrap();
        assert!(
            s.get("trainer_state").is_none(),
            "one byte past the cap: not sent whole"
        );
        same(
            s.get("trainer_state_head"),
            &big[..TRAINER_STATE_HEAD],
            "trainer_state.json head",
        );
        same(
            s.get("trainer_state_tail"),
            &big[big.len() - TRAINER_STATE_TAIL..],
            "trainer_state.json tail",
        );
    }

    // -- status --------------------------------------------------------------------------------

    struct Run {
        workdir: PathBuf,
        id: String,
    }

    impl Run {
        fn new(workdir: &Path, id: &str) -> Run {
            let dir = workdir.join(".rtrain/runs").join(id);
            std::fs::create_dir_all(&dir).unwrap();
            write(workdir.join(".rtrain/current"), format!("{id}\n").as_bytes());
            write(dir.join("command"), b"make train\n");
            write(dir.join("started_at"), b"2026-11-29T01:53:00Z\n");
            Run {
                workdir: workdir.to_path_buf(),
                id: id.to_string(),
            }
        }

        fn dir(&self) -> PathBuf {
            self.workdir.join(".rtrain/runs").join(&self.id)
        }

        fn file(&self, name: &str, content: &str) -> &Run {
            write(self.dir().join(name), content.as_bytes());
            self
        }

        /// Starts a real wrapper process, as `up` would: `sh <abs>/.rtrain/runs/<id>/run.sh`.
        fn start_wrapper(&self) -> Child {
            let script = self.dir().join("run.sh");
            write(&script, b"sleep 60\n");
            let child = Command::new("sh").arg(&script).spawn().unwrap();
            self.file("pid", &format!("{}\n", child.id()));
            child
        }
    }

    fn inputs() -> StatusInputs {
        StatusInputs {
            workdir: "~/proj".into(),
            session: "training".into(),
            checkpoint_dir: "outputs".into(),
            log_dir: "logs".into(),
            train_config: "config/training_config.yaml".into(),
            metrics_dir: String::new(),
            backend: "auto".into(),
        }
    }

    const TRAIN_CONFIG: &[u8] =
        b"training:\n  output_dir: outputs\n  max_steps: 4500\n  save_steps: 500\n  save_total_limit: 3\n";

    #[test]
    fn status_of_a_running_run_gathers_everything_in_one_script() {
        let b = TestBox::new();
        b.fake(
            "tmux",
            "[ \"$1\" = has-session ] && [ \"$2\" = -t ] && [ \"$3\" = =training ] && exit 0\nexit 1",
        );
        let gpus = format!("{}/tests/fixtures/nvidia-smi/two-gpus.csv", env!("CARGO_MANIFEST_DIR"));
        b.fake(
            "nvidia-smi",
            &format!(
                "[ \"$1\" = --query-gpu=index,name,utilization.gpu,memory.used,memory.total ] || exit 2\ncat '{gpus}'"
            ),
        );
        let proj = b.home.join("proj");
        build_outputs(&proj.join("outputs"));
        write(proj.join("config/training_config.yaml"), TRAIN_CONFIG);
        let log = proj.join("logs/training_20261129_015300.log");
        write(&log, &fixtures::own("hf-transformers-4.x/train.log"));
        let run = Run::new(&proj, "20261129-015300-ab12");
        run.file("log", &format!("{}\n", log.display()));
        let mut child = run.start_wrapper();

        let out = b.run(&status_script(&inputs()));
        let check_out = b.run(&check_script(&inputs()));
        child.kill().unwrap();
        child.wait().unwrap();
        let p = parse_status(&out).unwrap();

        assert!(p.tmux_installed);
        assert_eq!(p.session_exists, Some(true));
        let r = p.run.clone().unwrap();
        assert_eq!(r.id, "20261129-015300-ab12");
        // A record written before backends (no `backend`, no `format`) is tmux's.
        assert_eq!((r.backend.as_str(), r.format), ("tmux", None));
        assert_eq!(p.session_backend.as_deref(), Some("tmux"));
        assert_eq!(
            (r.alive, r.is_wrapper, r.state),
            (Some(true), Some(true), RunState::Running)
        );
        assert_eq!(r.command.as_deref(), Some("make train"));
        assert_eq!(r.started_at.as_deref(), Some("2026-11-29T01:53:00Z"));
        assert_eq!(r.log.as_deref(), Some(log.display().to_string().as_str()));
        let l = p.log.clone().unwrap();
        assert_eq!(l.source, LogSource::Record);
        assert_eq!(l.tail, fixtures::own("hf-transformers-4.x/train.log"));
        assert_eq!(l.size, Some(l.tail.len() as u64));
        let bar = p.log_summary.progress.clone().unwrap();
        assert_eq!((bar.step, bar.total), (1520, 4500));
        let (ts_name, ts) = p.trainer_state.clone().unwrap();
        assert_eq!((ts_name.as_str(), ts.save_steps), ("checkpoint-1500", Some(40)));
        assert_eq!(p.gpus.gpus.len(), 2);
        assert_eq!(p.train_config.as_ref().unwrap().save_total_limit, Some(3));

        let v = serde_json::to_value(StatusJson::build("gpu-box", "training", &p)).unwrap();
        assert_eq!(v["reachable"], true);
        assert_eq!(v["session"]["exists"], true);
        assert_eq!(v["run"]["state"], "running");
        assert_eq!(v["run"]["pid"], child.id());
        assert_eq!(v["run"]["exit_code"], serde_json::Value::Null);
        assert_eq!(v["progress"]["step"], 1520);
        assert_eq!(v["progress"]["total"], 4500);
        assert_eq!(v["progress"]["seconds_per_step"], 4.0);
        assert_eq!(v["progress"]["eta_seconds"], (3 * 3600 + 18 * 60 + 40) as f64);
        assert_eq!(v["progress"]["loss"], 1.9114);
        assert_eq!(v["latest_checkpoint"]["name"], "checkpoint-1500");
        assert_eq!(v["latest_checkpoint"]["step"], 1500);
        assert!(v["latest_checkpoint"]["age_seconds"].as_i64().unwrap() > 0);
        assert_eq!(v["gpus"][1]["util_percent"], serde_json::Value::Null);
        assert_eq!(v["gpus"][0]["mem_total_mib"], 81559);
        assert!(v["disk"]["free_bytes"].as_u64().unwrap() > 0);
        assert!(v["disk"]["path"].as_str().unwrap().ends_with("/proj/outputs"));

        // check: trainer_state's save_steps (the run's own) wins over the edited config's 500.
        let c = CheckJson::build("gpu-box", &parse_status(&check_out).unwrap());
        let i = &c.report.inputs;
        assert_eq!(
            (i.save_steps, i.save_total_limit, i.max_steps, i.current_step),
            (Some(40), Some(3), Some(4500), Some(1520))
        );
        assert_eq!(i.seconds_per_step, Some(4.0));
        assert_eq!(
            i.existing_checkpoints, 4,
            "checkpoint-50/100/1500/2000 count for rotation"
        );
        assert!(i.running);
        assert!(c
            .report
            .alternatives
            .iter()
            .any(|a| a.targets_15_minutes && a.save_steps == 230));
        let text = render_report("gpu-box", &c.report);
        assert!(text.contains("every 40 steps"), "{text}");
    }

    fn status_of(b: &TestBox) -> StatusProbe {
        parse_status(&b.run(&status_script(&inputs()))).unwrap()
    }

    #[test]
    fn run_record_states_follow_the_record_contract() {
        let b = TestBox::new();
        let proj = b.home.join("proj");
        std::fs::create_dir_all(&proj).unwrap();
        assert_eq!(status_of(&b).run, None, "no record: no run");

        let run = Run::new(&proj, "20261129-015300-0001");
        run.file("exit", "0\n");
        assert_eq!(status_of(&b).run.unwrap().state, RunState::Finished);
        run.file("exit", "1\n");
        let failed = status_of(&b).run.unwrap();
        assert_eq!((failed.state, failed.exit_code), (RunState::Failed, Some(1)));
        run.file("stopped", "");
        run.file("exit", "130\n");
        assert_eq!(status_of(&b).run.unwrap().state, RunState::Stopped);

        // No exit, and the pid is alive but is not this run's wrapper (pid reused): lost.
        let run = Run::new(&proj, "20261129-020000-0002");
        run.file("pid", &format!("{}\n", std::process::id()));
        let lost = status_of(&b).run.unwrap();
        assert_eq!(
            (lost.alive, lost.is_wrapper, lost.state),
            (Some(true), Some(false), RunState::Lost)
        );
        // No exit and no process (reboot, OOM kill): lost.
        let mut dead = Command::new("true").spawn().unwrap();
        dead.wait().unwrap();
        run.file("pid", &format!("{}\n", dead.id()));
        assert_eq!(status_of(&b).run.unwrap().state, RunState::Lost);
        // pid 1 or garbage is never probed with kill -0.
        run.file("pid", "1\n");
        let init = status_of(&b).run.unwrap();
        assert_eq!((init.alive, init.state), (None, RunState::Lost));
        // The wrapper alive: running; `current` naming a missing or unsafe id: no run.
        let mut child = run.start_wrapper();
        let running = status_of(&b).run.unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(running.state, RunState::Running);
        write(proj.join(".rtrain/current"), b"../../etc\n");
        assert_eq!(status_of(&b).run, None);
    }

    #[test]
    fn a_trainer_outliving_its_wrapper_keeps_the_run_running() {
        use std::os::unix::process::CommandExt;
        let b = TestBox::new();
        let proj = b.home.join("proj");
        let run = Run::new(&proj, "20261129-030000-0003");
        // A group leader that exits at once, leaving a child in its process group.
        let out = Command::new("sh")
            .arg("-c")
            .arg("sleep 60 >/dev/null 2>&1 & echo $!")
            .process_group(0)
            .output()
            .unwrap();
        let sleeper = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let leader_pid = {
            let stat = std::fs::read_to_string(format!("/proc/{sleeper}/stat")).unwrap();
            let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
            fields[2].to_string() // pgrp
        };
        run.file("pid", &format!("{leader_pid}\n"));
        let r = status_of(&b).run.unwrap();
        Command::new("kill").arg(&sleeper).status().unwrap();
        assert_eq!(
            (r.alive, r.group_alive, r.state),
            (Some(false), Some(true), RunState::Running)
        );
    }

    // -- status and up decide alike ------------------------------------------------------------

    /// Children of the test, killed and reaped when dropped. Until a child is waited for it stays a
    /// zombie, as under a container init that does not reap orphans.
    #[derive(Default)]
    struct Procs(Vec<Child>);

    impl Procs {
        /// `sleep 60` in process group `pgid` (0: a new group that it leads); its pid.
        fn spawn(&mut self, pgid: u32) -> u32 {
            use std::os::unix::process::CommandExt;
            let child = Command::new("sleep")
                .arg("60")
                .process_group(pgid as i32)
                .spawn()
                .unwrap();
            self.push(child)
        }

        fn push(&mut self, child: Child) -> u32 {
            let pid = child.id();
            self.0.push(child);
            pid
        }

        fn child(&mut self, pid: u32) -> &mut Child {
            self.0.iter_mut().find(|c| c.id() == pid).unwrap()
        }

        /// SIGKILL, and left unreaped until it is a zombie.
        fn zombie(&mut self, pid: u32) {
            self.child(pid).kill().unwrap();
            let t = std::time::Instant::now();
            while proc_state(pid) != Some('Z') {
                assert!(t.elapsed().as_secs() < 10, "{pid} did not become a zombie");
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }

        /// SIGKILL and reaped: gone from the process table.
        fn reap(&mut self, pid: u32) {
            let c = self.child(pid);
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    impl Drop for Procs {
        fn drop(&mut self) {
            for c in &mut self.0 {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }

    /// The state letter of `/proc/<pid>/stat` (`Z`: zombie).
    fn proc_state(pid: u32) -> Option<char> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit_once(") ")?.1.chars().next()
    }

    #[derive(Clone, Copy)]
    enum Is {
        Alive,
        Zombie,
        Reaped,
    }

    /// A run's process group as the box may leave it: the wrapper (the group's leader, whose pid the
    /// record holds) and optionally a trainer in its group, each alive, a zombie or reaped. The leader's pid.
    fn group(procs: &mut Procs, wrapper: Is, trainer: Option<Is>) -> u32 {
        let leader = procs.spawn(0);
        if let Some(t) = trainer {
            let pid = procs.spawn(leader);
            match t {
                Is::Alive => {}
                Is::Zombie => procs.zombie(pid),
                Is::Reaped => procs.reap(pid),
            }
        }
        match wrapper {
            Is::Alive => {}
            Is::Zombie => procs.zombie(leader),
            Is::Reaped => procs.reap(leader),
        }
        leader
    }

    /// The current run as `status` sees it, and its state as `up`/`stop` decide it (`rt_state`).
    fn status_and_up(b: &TestBox, id: &str) -> (RunRecord, String) {
        let r = status_of(b).run.expect("status found no run record");
        let up = b.run(&crate::remote::run::state_script("~/proj", id));
        (r, String::from_utf8(up).unwrap().trim().to_string())
    }

    fn assert_agree(b: &TestBox, run: &Run, want: RunState, what: &str) {
        let (r, up) = status_and_up(b, &run.id);
        assert_eq!(
            r.state.as_str(),
            up,
            "{what}: status says {}, up/stop say {up} ({r:?})",
            r.state
        );
        assert_eq!(r.state, want, "{what}: both say {up} ({r:?})");
    }

    /// Every situation a run record can be in goes through both the status probe and the state
    /// function of up/stop (they share its shell text; this holds them to one answer).
    #[test]
    fn status_and_up_decide_every_run_record_situation_alike() {
        use RunState::*;
        let b = TestBox::new();
        let proj = b.home.join("proj");
        let mut procs = Procs::default();
        let mut n = 0;
        let mut fresh = || {
            n += 1;
            Run::new(&proj, &format!("20261129-0400{n:02}-a{n:03}"))
        };
        let dead = {
            let mut c = Command::new("true").spawn().unwrap();
            c.wait().unwrap();
            c.id()
        };

        // Ended: `exit` decides, whatever the processes say.
        let run = fresh();
        run.file("pid", &format!("{dead}\n")).file("exit", "0\n");
        assert_agree(&b, &run, Finished, "exit 0");
        let run = fresh();
        run.file("pid", &format!("{dead}\n")).file("exit", "1\n");
        assert_agree(&b, &run, Failed, "exit 1");
        let run = fresh();
        run.file("exit", "killed\n");
        assert_agree(&b, &run, Failed, "an unreadable exit status is no success");
        let run = fresh();
        run.file("stopped", "2026-11-29T04:00:00Z\n").file("exit", "130\n");
        assert_agree(&b, &run, Stopped, "stopped, then exit 130");

        // The wrapper alive, and how its pid may be written.
        let run = fresh();
        let wrapper = procs.push(run.start_wrapper());
        assert_agree(&b, &run, Running, "the wrapper alive");
        run.file("pid", &format!(" {wrapper}\t\r\n"));
        assert_agree(&b, &run, Running, "the pid between blanks and a CR");
        for garbage in [
            format!("0{wrapper}\n"),
            format!("{wrapper}x\n"),
            format!("x{wrapper}\n"),
            format!("-{wrapper}\n"),
            format!("+{wrapper}\n"),
            format!("{wrapper} {wrapper}\n"),
            format!("{wrapper}.0\n"),
        ] {
            run.file("pid", &garbage);
            assert_agree(
                &b,
                &run,
                Lost,
                &format!("garbage around a live wrapper's pid: {garbage:?}"),
            );
        }
        run.file("pid", &format!("{wrapper}\n"));
        run.file("stopped", "2026-11-29T04:00:00Z\n");
        assert_agree(&b, &run, Running, "stop signalled, no exit yet");
        let run = fresh();
        procs.push(run.start_wrapper());
        run.file("exit", "0\n");
        assert_agree(&b, &run, Finished, "exit written, the wrapper not gone yet");

        // No exit, and no wrapper.
        let run = fresh();
        run.file("pid", &format!("{}\n", std::process::id()));
        assert_agree(&b, &run, Lost, "the pid reused by another process");
        run.file("pid", &format!("{dead}\n"));
        assert_agree(&b, &run, Lost, "the pid gone");
        for pid in [
            "0",
            "1",
            "00",
            "01",
            "-1",
            "-0",
            "",
            "\n",
            "garbage",
            "99999999999999999999",
        ] {
            run.file("pid", &format!("{pid}\n"));
            assert_agree(&b, &run, Lost, &format!("pid file {pid:?} (never probed)"));
        }
        std::fs::remove_file(run.dir().join("pid")).unwrap();
        assert_agree(&b, &run, Lost, "no pid file");

        // Process groups, as a container whose init does not reap leaves them.
        for (wrapper, trainer, want, what) in [
            (
                Is::Reaped,
                Some(Is::Alive),
                Running,
                "the wrapper killed, its trainer alive",
            ),
            (
                Is::Reaped,
                Some(Is::Zombie),
                Lost,
                "the wrapper killed, its group zombies only",
            ),
            (Is::Reaped, Some(Is::Reaped), Lost, "the wrapper and its trainer killed"),
            (
                Is::Zombie,
                Some(Is::Alive),
                Running,
                "the wrapper a zombie, its trainer alive",
            ),
            (
                Is::Zombie,
                Some(Is::Zombie),
                Lost,
                "the wrapper and its trainer zombies",
            ),
            (Is::Zombie, None, Lost, "the wrapper a zombie, alone"),
        ] {
            let run = fresh();
            let leader = group(&mut procs, wrapper, trainer);
            run.file("pid", &format!("{leader}\n"));
            assert_agree(&b, &run, want, what);
        }
    }

    #[test]
    fn regression_status_and_up_agree_on_zombie_group() {
        // The wrapper was killed and the container's init does not reap orphans, so the trainer ended as
        // a zombie in the run's process group. `kill -0 -- -PGID` still succeeds on such a group: status
        // used it alone and said running, while up and stop (rt_alive skips zombies) said lost.
        let b = TestBox::new();
        let run = Run::new(&b.home.join("proj"), "20261129-060000-0006");
        let mut procs = Procs::default();
        let leader = group(&mut procs, Is::Reaped, Some(Is::Zombie));
        run.file("pid", &format!("{leader}\n"));
        let plain = Command::new("sh")
            .arg("-c")
            .arg(format!("kill -s 0 -- -{leader}"))
            .status()
            .unwrap();
        assert!(plain.success(), "the plain group test must see the zombie group");
        let (r, up) = status_and_up(&b, &run.id);
        assert_eq!(
            (r.alive, r.group_alive, r.state),
            (Some(false), Some(false), RunState::Lost)
        );
        assert_eq!(up, "lost");
    }

    #[test]
    fn regression_status_never_reports_lost_for_a_run_that_just_ended() {
        // The probe read `exit` once, before its liveness test: a run that ended in between (the wrapper
        // writes `exit`, then execs the login shell, so the pid no longer is the wrapper) showed `lost`.
        // Here the run ends at each external command the scripts run, in turn: fake head, tr and cat
        // first on PATH end it, then run the real tool.
        let b = TestBox::new();
        let run = Run::new(&b.home.join("proj"), "20261129-070000-0007");
        // A log, so the status probe runs a command after its decision too.
        let log = b.home.join("proj/logs/training.log");
        write(&log, b"  5%|5| 5/100 [00:10<03:10,  2.00s/it]");
        run.file("log", &format!("{}\n", log.display()));
        let hooks = b.home.join("hooks");
        std::fs::create_dir_all(&hooks).unwrap();
        let q = |p: &Path| quote(p.to_str().unwrap());
        for tool in ["head", "tr", "cat"] {
            let real = TestBox::real_tool(tool);
            b.fake(
                tool,
                &format!(
                    r#"h={h}
i=1
while ! mkdir "$h/count/$i" 2>/dev/null; do i=$((i + 1)); done
read at < "$h/at"
if [ "$i" = "$at" ]; then
  read w < "$h/wrapper"
  kill -USR1 "$w"
  k=0
  while [ "$k" -lt 250 ]; do
    if [ -f {rd}/exit ]; then
      c=$(/usr/bin/env tr '\000' ' ' < "/proc/$w/cmdline" 2>/dev/null)
      case $c in *run.sh*) ;; *) break ;; esac
    fi
    sleep 0.02
    k=$((k + 1))
  done
  : > "$h/fired"
fi
exec {real} "$@""#,
                    h = q(&hooks),
                    rd = q(&run.dir()),
                    real = q(&real),
                ),
            );
        }
        // The wrapper's last steps: `exit` written atomically, then it becomes another program.
        write(
            run.dir().join("run.sh"),
            b"d=$(dirname \"$0\")\n\
              trap 'echo 0 > \"$d/exit.tmp\" && mv -f \"$d/exit.tmp\" \"$d/exit\"; exec sleep 60' USR1\n\
              : > \"$d/ready\"\n\
              while :; do sleep 0.02; done\n",
        );
        let scripts = [
            ("status", status_script(&inputs())),
            ("up", crate::remote::run::state_script("~/proj", &run.id)),
        ];
        for (who, script) in &scripts {
            let mut seen = Vec::new();
            for at in 1.. {
                assert!(at < 100, "{who}: the hooks never stopped firing");
                for f in ["exit", "ready", "pid"] {
                    let _ = std::fs::remove_file(run.dir().join(f));
                }
                let _ = std::fs::remove_dir_all(hooks.join("count"));
                let _ = std::fs::remove_file(hooks.join("fired"));
                std::fs::create_dir(hooks.join("count")).unwrap();
                write(hooks.join("at"), format!("{at}\n").as_bytes());
                let mut procs = Procs::default();
                let wrapper = procs.push(Command::new("sh").arg(run.dir().join("run.sh")).spawn().unwrap());
                write(hooks.join("wrapper"), format!("{wrapper}\n").as_bytes());
                while !run.dir().join("ready").exists() {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                run.file("pid", &format!("{wrapper}\n"));
                let out = b.run(script);
                let state = if *who == "status" {
                    parse_status(&out).unwrap().run.unwrap().state.to_string()
                } else {
                    String::from_utf8(out).unwrap().trim().to_string()
                };
                drop(procs);
                if !hooks.join("fired").exists() {
                    break;
                }
                assert!(
                    state == "running" || state == "finished",
                    "{who}: the run ended at external command {at} and read as {state}"
                );
                seen.push(state);
            }
            assert!(seen.contains(&"finished".to_string()), "{who}: {seen:?}");
            if *who == "status" {
                // The sweep went past the decision: later commands no longer change it.
                assert!(seen.contains(&"running".to_string()), "{who}: {seen:?}");
            }
        }
    }

    /// The session asked about is the run's recorded backend's, whatever the config says; screen's
    /// `-ls` is parsed with its exit status ignored (older screens exit 1 when they list sessions) and
    /// a name is matched whole, never as the prefix `-S` would take.
    #[test]
    fn status_asks_the_session_of_the_runs_recorded_backend() {
        let b = TestBox::new();
        b.fake("tmux", "exit 0");
        let ls =
            "There are screens on:\n\t77.training2\t(Detached)\n\t78.other\t(Attached)\n2 Sockets in /run/screen/S-u.";
        b.fake(
            "screen",
            &format!("[ \"$1\" = -ls ] || exit 2\nprintf '%s\\n' '{ls}'\nexit 1"),
        );
        let proj = b.home.join("proj");
        let run = Run::new(&proj, "20261129-015300-ab12");
        run.file("backend", "screen\n").file("format", "2\n");
        let status = |session: &str| {
            let inputs = StatusInputs {
                session: session.into(),
                backend: "tmux".into(),
                ..inputs()
            };
            parse_status(&b.run(&status_script(&inputs))).unwrap()
        };
        let p = status("training");
        let r = p.run.clone().unwrap();
        assert_eq!((r.backend.as_str(), r.format), ("screen", Some(2)));
        assert_eq!(p.session_backend.as_deref(), Some("screen"));
        assert_eq!(p.session_exists, Some(false), "training2 is not training");
        assert_eq!(p.available_backends[..2], ["tmux".to_string(), "screen".to_string()]);
        let p = status("other");
        assert_eq!(p.session_exists, Some(true));
        let v = serde_json::to_value(StatusJson::build("h", "other", &p)).unwrap();
        assert_eq!(v["run"]["backend"], "screen");
        assert_eq!(v["session"]["backend"], "screen");
        assert_eq!(v["session"]["exists"], true);
        assert_eq!(v["session"]["tmux_installed"], true);
        // No run: the configured backend's session.
        std::fs::remove_file(proj.join(".rtrain/current")).unwrap();
        let p = status("training");
        assert_eq!(p.session_backend.as_deref(), Some("tmux"));
        assert_eq!(p.session_exists, Some(true));
    }

    #[test]
    fn bare_box_without_tmux_nvidia_smi_or_run() {
        let b = TestBox::bare(&BASE_TOOLS);
        let p = status_of(&b);
        assert!(!p.tmux_installed);
        // Not even setsid and nohup: auto has nothing to pick, and there is no session.
        assert_eq!(p.session_exists, Some(false));
        assert_eq!(p.session_backend.as_deref(), Some("none"));
        assert!(p.available_backends.is_empty());
        assert!(p.gpus.gpus.is_empty());
        assert_eq!(p.gpus.unavailable.as_deref(), Some("nvidia-smi is not installed"));
        assert!(!p.ckpts.workdir_exists && p.run.is_none() && p.log.is_none() && p.trainer_state.is_none());
        let v = serde_json::to_value(StatusJson::build("h", "training", &p)).unwrap();
        assert_eq!(v["session"]["exists"], false);
        assert_eq!(v["session"]["tmux_installed"], false);
        assert_eq!(v["session"]["backend"], "none");
        assert_eq!(v["session"]["available_backends"], serde_json::json!([]));
        assert_eq!(v["gpus"], serde_json::json!([]));
        assert_eq!(v["run"], serde_json::Value::Null);
        assert_eq!(v["latest_checkpoint"], serde_json::Value::Null);
        for k in ["step", "total", "seconds_per_step", "eta_seconds", "loss"] {
            assert_eq!(
                v["progress"][k],
                serde_json::Value::Null,
                "{k} must be unknown, not invented"
            );
        }
    }

    #[test]
    fn driver_failure_is_no_gpus_and_missing_base64_is_an_error() {
        let b = TestBox::new();
        b.fake(
            "nvidia-smi",
            "printf \"NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\\n\"\nexit 9",
        );
        let p = status_of(&b);
        assert!(p.gpus.gpus.is_empty());
        assert!(p.gpus.unavailable.unwrap().contains("couldn't communicate"));
        let bare = TestBox::bare(&["sh", "date"]);
        let err = parse_status(&bare.run(&status_script(&inputs()))).unwrap_err();
        assert!(
            matches!(err, ProbeError::Remote(ref m) if m.contains("base64")),
            "{err}"
        );
    }

    #[test]
    fn log_dir_fallback_picks_the_newest_log() {
        let b = TestBox::new();
        let proj = b.home.join("proj");
        write(proj.join("logs/training_a.log"), b"old\n");
        write(proj.join("logs/training b.log"), &fixtures::hf("train.log"));
        write(proj.join("logs/notes.txt"), b"not a log\n");
        touch_at(proj.join("logs/training_a.log"), 1_600_000_000);
        touch_at(proj.join("logs/training b.log"), 1_700_000_000);
        let p = status_of(&b);
        let l = p.log.unwrap();
        assert_eq!(l.source, LogSource::LogDir);
        assert!(l.path.ends_with(b"logs/training b.log"));
        assert_eq!(l.mtime, Some(1_700_000_000));
        assert_eq!(p.log_summary.progress.unwrap().step, 120);
        assert_eq!(p.log_summary.loss, Some(5.376));
    }

    #[test]
    fn log_bytes_of_any_kind_arrive_exactly_and_long_logs_are_tailed() {
        let b = TestBox::new();
        let proj = b.home.join("proj");
        let nasty =
            b"@@rtrain:done\n@@rtrain:section run_id\nx\0\r\xff\n  5%|5| 5/100 [00:10<03:10,  2.00s/it]".to_vec();
        write(proj.join("logs/a.log"), &nasty);
        assert_eq!(status_of(&b).log.unwrap().tail, nasty);
        let mut long = vec![b'x'; 200_000];
        long.extend_from_slice(b"\n 50%|5| 50/100 [01:40<01:40,  2.00s/it]");
        write(proj.join("logs/a.log"), &long);
        let p = status_of(&b);
        let l = p.log.unwrap();
        assert_eq!(l.tail.len(), LOG_TAIL_BYTES);
        assert_eq!(l.size, Some(long.len() as u64));
        assert_eq!(p.log_summary.progress.unwrap().step, 50);
    }

    #[test]
    fn large_trainer_state_is_sent_as_head_and_tail() {
        let b = TestBox::new();
        let ckpt = b.home.join("proj/outputs/checkpoint-30000");
        let mut history = String::new();
        for step in 1..=3000u64 {
            let sep = if step == 3000 { "" } else { "," };
            history += &format!(
                "    {{\n      \"epoch\": {e},\n      \"grad_norm\": 0.5,\n      \"learning_rate\": 1e-05,\n      \"loss\": {l},\n      \"step\": {s}\n    }}{sep}\n",
                e = step as f64 / 1000.0,
                l = 2.0 + step as f64 / 10000.0,
                s = step * 10
            );
        }
        let json = format!(
            "{{\n  \"epoch\": 3.0,\n  \"global_step\": 30000,\n  \"log_history\": [\n{history}  ],\n  \"logging_steps\": 10,\n  \"max_steps\": 30000,\n  \"save_steps\": 1000.0,\n  \"train_batch_size\": 8\n}}"
        );
        assert!(json.len() > TRAINER_STATE_WHOLE_MAX);
        assert!(parse_trainer_state(json.as_bytes()).is_ok());
        write(ckpt.join("trainer_state.json"), json.as_bytes());
        let (name, st) = status_of(&b).trainer_state.unwrap();
        assert_eq!(name, "checkpoint-30000");
        assert_eq!(
            (st.global_step, st.max_steps, st.save_steps, st.logging_steps),
            (Some(30000), Some(30000), Some(1000), Some(10))
        );
        assert_eq!((st.last_loss, st.last_loss_step), (Some(2.3), Some(30000)));
    }

    #[test]
    fn unreachable_host_json_has_every_field_unknown() {
        let v = serde_json::to_value(StatusJson::unreachable("gpu-box", "training")).unwrap();
        assert_eq!(v["reachable"], false);
        assert_eq!(v["session"]["name"], "training");
        assert_eq!(v["session"]["exists"], serde_json::Value::Null);
        assert_eq!(v["gpus"], serde_json::Value::Null);
        assert_eq!(v["progress"]["step"], serde_json::Value::Null);
        for k in [
            "host",
            "reachable",
            "session",
            "run",
            "progress",
            "latest_checkpoint",
            "gpus",
            "disk",
        ] {
            assert!(v.get(k).is_some(), "{k}");
        }
    }

    // -- framing -------------------------------------------------------------------------------

    #[test]
    fn sections_tolerate_rc_noise_and_detect_cuts() {
        let ok = b"Welcome to gpu-box!\n@@rtrain:probe 1\n@@rtrain:section a\naGVsbG8=\n@@rtrain:section empty\n@@rtrain:done\n";
        let s = parse_sections(ok).unwrap();
        assert_eq!(s.get("a"), Some(&b"hello"[..]));
        assert_eq!(s.get("empty"), Some(&b""[..]));
        assert_eq!(s.get("absent"), None);
        assert!(matches!(
            parse_sections(&ok[..ok.len() - 15]),
            Err(ProbeError::Truncated)
        ));
        assert!(matches!(
            parse_sections(b"bash: sh: not found\n"),
            Err(ProbeError::NoHeader)
        ));
        assert!(matches!(
            parse_sections(b"@@rtrain:probe 1\n@@rtrain:section a\n!!\n@@rtrain:done\n"),
            Err(ProbeError::Corrupt(n)) if n == "a"
        ));
        assert!(matches!(
            parse_ckpts(b"@@rtrain:probe 1\n@@rtrain:done\n"),
            Err(ProbeError::Corrupt(_))
        ));
    }

    #[test]
    fn base64_decoder_known_vectors() {
        for (enc, dec) in [
            ("", ""),
            ("Zg==", "f"),
            ("Zm8=", "fo"),
            ("Zm9v", "foo"),
            ("Zm9vYg==", "foob"),
            ("Zm9v\nYmFy", "foobar"),
        ] {
            assert_eq!(decode_base64(enc.as_bytes()).unwrap(), dec.as_bytes());
        }
        assert_eq!(decode_base64(b"Zg==Zg=="), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]
        #[test]
        fn base64_round_trips_through_coreutils(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            use std::io::Write;
            let mut child = Command::new("base64").stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).spawn().unwrap();
            child.stdin.take().unwrap().write_all(&bytes).unwrap();
            let out = child.wait_with_output().unwrap();
            prop_assert_eq!(decode_base64(&out.stdout).unwrap(), bytes);
        }
    }

    /// Frames sections as the probe's shell does (base64 wrapped at 76 columns), with rc-file noise before.
    fn frame(noise: &[u8], sections: &[(String, Vec<u8>)]) -> Vec<u8> {
        use base64::Engine as _;
        let mut out = noise.to_vec();
        out.extend_from_slice(b"\n@@rtrain:probe 1\n");
        for (name, bytes) in sections {
            out.extend_from_slice(format!("@@rtrain:section {name}\n").as_bytes());
            let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
            for chunk in b64.as_bytes().chunks(76) {
                out.extend_from_slice(chunk);
                out.push(b'\n');
            }
        }
        out.extend_from_slice(b"@@rtrain:done\n");
        out
    }

    proptest! {
        /// Any bytes in any sections come back exactly, whatever the noise before the header; and any cut of
        /// the output before its last line is reported as cut, never as a shorter answer.
        #[test]
        fn sections_round_trip_any_bytes_and_every_cut_is_detected(
            sections in proptest::collection::btree_map("[a-z_]{1,12}", proptest::collection::vec(any::<u8>(), 0..400), 0..6),
            noise in proptest::collection::vec(any::<u8>().prop_filter("no newline", |b| *b != b'\n'), 0..40),
            cut in any::<proptest::sample::Index>(),
        ) {
            let sections: Vec<(String, Vec<u8>)> = sections.into_iter().collect();
            let out = frame(&noise, &sections);
            let parsed = parse_sections(&out).unwrap();
            for (name, bytes) in &sections {
                prop_assert_eq!(parsed.get(name), Some(bytes.as_slice()));
            }
            let at = cut.index(out.len() - b"@@rtrain:done\n".len());
            prop_assert!(parse_sections(&out[..at]).is_err());
        }
    }
}
