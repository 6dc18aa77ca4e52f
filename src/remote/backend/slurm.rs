//! The Slurm backend: the SSH host is a cluster's login node, and the run is a batch job the scheduler
//! starts on a compute node when it can, with the workdir on a filesystem both see. `up` writes the batch
//! script, its settings and its `submit` line into the run record (remote::slurm builds them from quoted parts)
//! and submits it; the run is active while its job is pending or running (`rt_slurm_alive` asks
//! `squeue`: the run is not a process group on this box, see [`Backend::tracks_its_own_run`]), and `stop` goes
//! through `scancel`. There is no terminal of the run to attach to; `attach` opens a shell inside the running
//! job's allocation instead (`srun --jobid ID --overlap --pty`, so it sees the job's node and GPUs).
//! Never picked by `auto`: a login node usually has tmux too, and running the training there would be wrong.

use super::{Backend, PtyEnd};
use crate::remote::quote::{quote, quote_path};

pub struct Slurm;

/// `rt_slurm_start`: the batch script, its settings and `submit` come in `rt_slurm_batch`, `rt_slurm_env` and
/// `rt_slurm_submit` (set by `up` from the config, each quoted); `rt_nowait=1` tells `up` not to wait for a pid,
/// since the job may wait in the queue for hours. The job id is the record's `job` (the batch script rewrites it
/// when the run continues in a new job) and the first line of `jobs`.
///
/// `rt_slurm_stop`: the batch shell gets SIGINT first (`scancel --batch`; it stops the trainer and records the
/// exit), after `rt_timeout` seconds the whole job gets `scancel` (SIGTERM, then SIGKILL after the cluster's
/// KillWait). A job cancelled before it started never runs its script, so `stop` records its end itself.
const SH: &str = r##"# A Slurm run lives on the compute node, out of this box's sight: it is alive while its job is the scheduler's
# (pending, running, or on its way back to the queue), and also when squeue cannot tell (never twice); a job
# squeue no longer knows has ended. The job's state stays in rt_sj for `status`; a job waiting in the queue is
# named in rt_waiting (`job 4711 to start (PENDING: Resources)`, for `logs -f`).
rt_slurm_alive() {
  rt_sj=
  rt_read1 "$1/job"
  case $rt_v in ''|*[!0-9]*) return 1 ;; esac
  if ! rt_sj=$(squeue -h -j "$rt_v" -o '%T|%r' 2>&1); then
    case $rt_sj in *"Invalid job id"*) rt_sj=; return 1 ;; esac
    rt_sj=UNKNOWN
    return 0
  fi
  rt_sjr=${rt_sj#*|}
  rt_sj=${rt_sj%%|*}
  case $rt_sjr in None|'') rt_sjr= ;; *) rt_sjr=": $rt_sjr" ;; esac
  case $rt_sj in PENDING*|REQUEUE*|CONFIGURING*) rt_waiting="job $rt_v to start ($rt_sj$rt_sjr)" ;; esac
  case $rt_sj in PENDING*|CONFIGURING*|RUNNING*|COMPLETING*|SUSPENDED*|REQUEUE*|RESIZING*|SIGNALING*|STOPPED*) return 0 ;; esac
  return 1
}
rt_slurm_available() { command -v sbatch >/dev/null 2>&1 && command -v squeue >/dev/null 2>&1 && command -v scancel >/dev/null 2>&1; }
rt_slurm_session() { return 1; }
# Whether `attach` can open a shell in the run's allocation: only in a running job, and only with an srun that
# has --overlap (Slurm 20.11 and later; without it a second step waits for the job's resources forever).
rt_slurm_shell() {
  rt_read1 "$1/job"
  rt_j=$rt_v
  case $rt_j in ''|*[!0-9]*) rt_say shell no; rt_say why "the run has no Slurm job id"; return 0 ;; esac
  rt_jst=$(squeue -h -j "$rt_j" -o '%T|%r|%N' 2>/dev/null)
  rt_jt=${rt_jst%%|*}
  case $rt_jt in
    RUNNING) ;;
    '') rt_say shell no; rt_say why "Slurm job $rt_j has ended"; return 0 ;;
    PENDING) rt_jr=${rt_jst#*|}; rt_say shell no; rt_say why "Slurm job $rt_j is PENDING (${rt_jr%%|*}): there is no allocation to join yet"; return 0 ;;
    *) rt_say shell no; rt_say why "Slurm job $rt_j is $rt_jt, not running"; return 0 ;;
  esac
  if ! command -v srun >/dev/null 2>&1; then rt_say shell no; rt_say why "srun is not on the login node's PATH"; return 0; fi
  if ! srun --help 2>&1 | grep -q -- --overlap; then
    rt_say shell no; rt_say why "this cluster's srun has no --overlap (Slurm before 20.11), so a shell cannot join the running job"; return 0
  fi
  rt_say shell ok
  rt_say place "$rt_j"
  rt_say where "Slurm job $rt_j on node ${rt_jst##*|}"
}
rt_slurm_start() {
  { printf '%s' "$rt_slurm_batch" > "$rt_rd/batch.sh" &&
    printf '%s' "$rt_slurm_env" > "$rt_rd/slurm.env" &&
    printf '%s' "$rt_slurm_submit" > "$rt_rd/submit"; } 2>/dev/null || { rt_err="cannot write the batch script in $rt_rd"; return 1; }
  rt_out_s=$(sh "$rt_rd/submit" "$rt_rd" 2>&1)
  rt_job=$(printf '%s\n' "$rt_out_s" | grep -x '[0-9][0-9]*\(;.*\)\{0,1\}' | tail -n 1)
  rt_job=${rt_job%%;*}
  if [ -z "$rt_job" ]; then rt_err="sbatch failed: $(printf '%s' "$rt_out_s" | tr '\n' ' ')"; return 1; fi
  printf '%s\n' "$rt_job" > "$rt_rd/job"
  printf '%s\n' "$rt_job" > "$rt_rd/jobs"
  rt_nowait=1
}
rt_slurm_stop() {
  rt_read1 "$rt_rd/job"
  rt_j=$rt_v
  case $rt_j in ''|*[!0-9]*) rt_say error "run $rt_id has no Slurm job id"; rt_say result error; exit 1 ;; esac
  rt_say job "$rt_j"
  date -u +%Y-%m-%dT%H:%M:%SZ > "$rt_rd/stopped"
  rt_jst=$(squeue -h -j "$rt_j" -o %T 2>/dev/null)
  rt_sig=
  if [ "$rt_jst" = PENDING ] || [ "$rt_signals" = KILL ]; then
    scancel "$rt_j" 2>/dev/null
    rt_sig=KILL
  else
    scancel --batch --signal=INT "$rt_j" 2>/dev/null
    rt_i=0
    while [ ! -f "$rt_rd/exit" ] && [ "$rt_i" -lt $((rt_timeout * 10)) ]; do sleep 0.1; rt_i=$((rt_i + 1)); done
    if [ -f "$rt_rd/exit" ]; then rt_sig=INT; else scancel "$rt_j" 2>/dev/null; rt_sig=TERM; fi
  fi
  # The batch script records the end; a job that never ran (or whose script was killed) cannot.
  rt_i=0
  while [ ! -f "$rt_rd/exit" ] && [ "$rt_i" -lt 300 ]; do
    case $(squeue -h -j "$rt_j" -o %T 2>/dev/null) in ''|CANCELLED*|COMPLETED*|FAILED*|TIMEOUT*) break ;; esac
    sleep 0.1
    rt_i=$((rt_i + 1))
  done
  rt_i=0
  while [ ! -f "$rt_rd/exit" ] && [ "$rt_i" -lt 50 ]; do sleep 0.1; rt_i=$((rt_i + 1)); done
  if [ ! -f "$rt_rd/exit" ]; then
    echo 143 > "$rt_rd/exit.tmp" && mv -f "$rt_rd/exit.tmp" "$rt_rd/exit"
    echo cancelled > "$rt_rd/reason"
  fi
  rt_say signal "$rt_sig"
  rt_say exit "$(cat "$rt_rd/exit" 2>/dev/null)"
  rt_say result stopped
  exit 0
}
"##;

impl Backend for Slurm {
    fn name(&self) -> &'static str {
        "slurm"
    }

    fn label(&self) -> &'static str {
        "Slurm"
    }

    fn has_terminal(&self) -> bool {
        false
    }

    fn sh(&self) -> &'static str {
        SH
    }

    fn install_hint(&self) -> &'static str {
        "run rtrain against the cluster's login node (sbatch, squeue and scancel must be on its PATH)"
    }

    fn attach_command(&self, _workdir: &str, _session: &str) -> Option<String> {
        None
    }

    fn attach_end(&self, status: u32, _tail: &str) -> PtyEnd {
        PtyEnd::Exited(status)
    }

    fn has_shell(&self) -> bool {
        true
    }

    /// The user's login shell (`$SHELL` on the login node, which the compute node shares), in the workdir,
    /// as a step of the job that overlaps the trainer's instead of waiting for its resources.
    fn shell_command(&self, workdir: &str, job: &str) -> Option<String> {
        Some(format!(
            "cd {wd} 2>/dev/null || cd; exec srun --jobid={job} --overlap --pty \"${{SHELL:-/bin/sh}}\"",
            wd = quote_path(workdir),
            job = quote(job),
        ))
    }

    fn auto(&self) -> bool {
        false
    }

    fn tracks_its_own_run(&self) -> bool {
        true
    }

    fn launch_vars(&self, target: &crate::config::Target) -> Vec<(&'static str, String)> {
        launch_vars(target)
    }
}

/// The sh variables `rt_slurm_start` reads (see [`SH`]), from the host's settings: the batch script, its
/// settings (checkpoints, training config, resume_command, restarts) and the `submit` line with the `slurm:`
/// options, the job named after the session.
pub fn launch_vars(target: &crate::config::Target) -> Vec<(&'static str, String)> {
    let s = &target.settings;
    let spec = crate::remote::slurm::BatchSpec {
        job_name: s.session.clone(),
        options: s.slurm.clone(),
        checkpoint_dir: s.checkpoint_dir.clone(),
        train_config: Some(s.train_config.clone()),
        resume_command: s.resume_command.clone(),
    };
    vec![
        ("rt_slurm_batch", crate::remote::slurm::BATCH_SH.to_string()),
        ("rt_slurm_env", crate::remote::slurm::settings_file(&spec)),
        ("rt_slurm_submit", crate::remote::slurm::submit_file(&spec)),
    ]
}
