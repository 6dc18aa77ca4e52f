//! What rtrain needs to know about Slurm, without a connection: the parsers of what `sbatch --parsable`,
//! `squeue`, `sacct` and `scontrol show job -o` print (unit-tested on output captured from a real cluster in
//! tests/fixtures/slurm/), Slurm's duration formats, and the run record's Slurm files (`submit`, the batch
//! script) built from quoted parts. The Slurm backend (remote/backend/slurm.rs) sends them; this file only knows
//! text.

use crate::remote::quote::{quote, quote_path};

// ------------------------------------------------------------------------------------------------------------
// Job states

/// A job's state as Slurm names it. Matched by prefix, because Slurm decorates some (`CANCELLED by 1234` from
/// sacct, `COMPLETING` flags, `REQUEUE_HOLD`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    Pending,
    Configuring,
    Running,
    Completing,
    Suspended,
    /// Requeued and not yet pending again (`REQUEUED`, `REQUEUE_HOLD`, `REQUEUE_FED`).
    Requeued,
    /// Held with resizing, a signal on its way, or stopped: still the scheduler's, still active.
    Stopped,
    Completed,
    Failed,
    Timeout,
    Preempted,
    NodeFail,
    OutOfMemory,
    Cancelled,
    BootFail,
    Deadline,
    /// A state this version does not know, kept verbatim.
    Other(String),
}

/// Longest names first, so `REQUEUE_HOLD` is not read as something shorter.
const STATES: &[(&str, JobState)] = &[
    ("OUT_OF_MEMORY", JobState::OutOfMemory),
    ("REQUEUE_HOLD", JobState::Requeued),
    ("REQUEUE_FED", JobState::Requeued),
    ("CONFIGURING", JobState::Configuring),
    ("COMPLETING", JobState::Completing),
    ("COMPLETED", JobState::Completed),
    ("CANCELLED", JobState::Cancelled),
    ("SUSPENDED", JobState::Suspended),
    ("PREEMPTED", JobState::Preempted),
    ("BOOT_FAIL", JobState::BootFail),
    ("NODE_FAIL", JobState::NodeFail),
    ("REQUEUED", JobState::Requeued),
    ("DEADLINE", JobState::Deadline),
    ("STOPPED", JobState::Stopped),
    ("RUNNING", JobState::Running),
    ("PENDING", JobState::Pending),
    ("TIMEOUT", JobState::Timeout),
    ("FAILED", JobState::Failed),
    ("RESIZING", JobState::Running),
    ("SIGNALING", JobState::Running),
];

impl JobState {
    pub fn parse(text: &str) -> JobState {
        let t = text.trim();
        let upper = t.to_ascii_uppercase();
        STATES
            .iter()
            .find(|(name, _)| upper.starts_with(name))
            .map(|(_, state)| state.clone())
            .unwrap_or_else(|| JobState::Other(t.to_string()))
    }

    /// Still the scheduler's: queued, starting, running, or on its way back to the queue. A run whose job is
    /// active is active ("never twice").
    pub fn is_active(&self) -> bool {
        matches!(
            self,
            JobState::Pending
                | JobState::Configuring
                | JobState::Running
                | JobState::Completing
                | JobState::Suspended
                | JobState::Requeued
                | JobState::Stopped
        )
    }

    /// The terminal reason rtrain reports in `run.reason`, for the endings that have one.
    pub fn reason(&self) -> Option<&'static str> {
        match self {
            JobState::Timeout | JobState::Deadline => Some("timeout"),
            JobState::Preempted => Some("preempted"),
            JobState::NodeFail | JobState::BootFail => Some("node_fail"),
            JobState::OutOfMemory => Some("out_of_memory"),
            JobState::Cancelled => Some("cancelled"),
            _ => None,
        }
    }

    pub fn name(&self) -> &str {
        match self {
            JobState::Pending => "PENDING",
            JobState::Configuring => "CONFIGURING",
            JobState::Running => "RUNNING",
            JobState::Completing => "COMPLETING",
            JobState::Suspended => "SUSPENDED",
            JobState::Requeued => "REQUEUED",
            JobState::Stopped => "STOPPED",
            JobState::Completed => "COMPLETED",
            JobState::Failed => "FAILED",
            JobState::Timeout => "TIMEOUT",
            JobState::Preempted => "PREEMPTED",
            JobState::NodeFail => "NODE_FAIL",
            JobState::OutOfMemory => "OUT_OF_MEMORY",
            JobState::Cancelled => "CANCELLED",
            JobState::BootFail => "BOOT_FAIL",
            JobState::Deadline => "DEADLINE",
            JobState::Other(s) => s,
        }
    }
}

// ------------------------------------------------------------------------------------------------------------
// Durations

/// A Slurm duration as `squeue` (`%M`, `%l`), `sacct` (`Elapsed`) and `scontrol` (`RunTime`, `TimeLimit`)
/// print it: `M:SS`, `H:MM:SS`, `D-HH:MM:SS`, `MM:SS.mmm` (sacct's sub-minute form). `None` for `UNLIMITED`,
/// `INVALID`, `NOT_SET`, `N/A`, `Partition_Limit` and anything else.
pub fn parse_duration(text: &str) -> Option<u64> {
    let t = text.trim();
    let (days, rest) = match t.split_once('-') {
        Some((d, r)) => (d.parse::<u64>().ok()?, r),
        None => (0, t),
    };
    let rest = rest.split('.').next()?;
    let parts: Vec<u64> = rest
        .split(':')
        .map(|p| {
            (!p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                .then(|| p.parse().ok())
                .flatten()
        })
        .collect::<Option<_>>()?;
    let secs = match parts.as_slice() {
        [m, s] => m * 60 + s,
        [h, m, s] => h * 3600 + m * 60 + s,
        _ => return None,
    };
    Some(days * 86400 + secs)
}

/// The time limit a user writes for `sbatch --time` (config `slurm.time`), in seconds: `minutes`,
/// `minutes:seconds`, `hours:minutes:seconds`, `days-hours`, `days-hours:minutes`, `days-hours:minutes:seconds`.
/// `None` when it is none of these (sbatch would refuse it too).
pub fn parse_time_limit(text: &str) -> Option<u64> {
    let t = text.trim();
    let num = |p: &str| (!p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())).then(|| p.parse::<u64>().ok())?;
    if let Some((d, rest)) = t.split_once('-') {
        let days = num(d)?;
        let p: Vec<u64> = rest.split(':').map(num).collect::<Option<_>>()?;
        let s = match p.as_slice() {
            [h] => h * 3600,
            [h, m] => h * 3600 + m * 60,
            [h, m, s] => h * 3600 + m * 60 + s,
            _ => return None,
        };
        return Some(days * 86400 + s);
    }
    let p: Vec<u64> = t.split(':').map(num).collect::<Option<_>>()?;
    match p.as_slice() {
        [m] => Some(m * 60),
        [m, s] => Some(m * 60 + s),
        [h, m, s] => Some(h * 3600 + m * 60 + s),
        _ => None,
    }
}

/// `1:02:33` for the status line (hours not padded, as Slurm prints them).
pub fn fmt_hms(seconds: u64) -> String {
    format!("{}:{:02}:{:02}", seconds / 3600, seconds / 60 % 60, seconds % 60)
}

// ------------------------------------------------------------------------------------------------------------
// sbatch --parsable

/// The job id from `sbatch --parsable`: `4711`, or `4711;cluster` on a federation or multi-cluster setup. A
/// line of digits; anything else (a warning printed first included) is skipped.
pub fn parse_sbatch(stdout: &str) -> Option<String> {
    stdout.lines().rev().find_map(|l| {
        let id = l.trim().split(';').next()?.trim();
        (!id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())).then(|| id.to_string())
    })
}

// ------------------------------------------------------------------------------------------------------------
// squeue

/// squeue's format for one job, with an explicit separator (never whitespace columns: a reason such as
/// `(ReqNodeNotAvail, UnavailableNodes:gpu[1-3])` holds spaces): id, state, reason, nodes, elapsed, time limit.
pub const SQUEUE_FORMAT: &str = "%i|%T|%r|%N|%M|%l";

/// One job as squeue shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueEntry {
    pub job_id: String,
    pub state: JobState,
    /// Why it waits (`Resources`, `Priority`, `BeginTime`...); `None` for Slurm's `None`.
    pub reason: Option<String>,
    pub node: Option<String>,
    pub elapsed_seconds: Option<u64>,
    pub time_limit_seconds: Option<u64>,
}

fn none_if_empty(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty() && s != "None" && s != "(null)" && s != "N/A").then(|| s.to_string())
}

/// `squeue -h -j ID -o SQUEUE_FORMAT`: the line of job `job_id` (squeue prints an error and nothing else once
/// the job is forgotten, so `None` then).
pub fn parse_squeue(stdout: &str, job_id: &str) -> Option<QueueEntry> {
    stdout.lines().find_map(|l| {
        let f: Vec<&str> = l.trim_end_matches('\r').split('|').collect();
        if f.len() != 6 || f[0].trim() != job_id {
            return None;
        }
        Some(QueueEntry {
            job_id: job_id.to_string(),
            state: JobState::parse(f[1]),
            reason: none_if_empty(f[2]),
            node: none_if_empty(f[3]),
            elapsed_seconds: parse_duration(f[4]),
            time_limit_seconds: parse_duration(f[5]),
        })
    })
}

// ------------------------------------------------------------------------------------------------------------
// sacct

/// sacct's fields, in this order, with `-X -n -P` (allocations only, no header, `|`-separated).
pub const SACCT_FIELDS: &str = "JobIDRaw,State,ExitCode,Elapsed";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountingEntry {
    pub job_id: String,
    pub state: JobState,
    pub exit_code: Option<i32>,
    /// The signal that ended the job's batch script, if one did (`0:9` → 9).
    pub signal: Option<i32>,
    pub elapsed_seconds: Option<u64>,
}

/// What `sacct` answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accounting {
    /// The cluster keeps no accounting ("Slurm accounting storage is disabled").
    Disabled,
    /// No record of the job (yet).
    Unknown,
    Entry(AccountingEntry),
}

/// `N:S` (exit status, signal) as Slurm prints exit codes.
pub fn parse_exit_code(text: &str) -> (Option<i32>, Option<i32>) {
    match text.trim().split_once(':') {
        Some((c, s)) => (c.parse().ok(), s.parse().ok().filter(|s: &i32| *s != 0)),
        None => (text.trim().parse().ok(), None),
    }
}

/// `sacct -X -n -P -j ID -o SACCT_FIELDS` (stdout and stderr together). With requeues sacct may list the job
/// once per start; the last line is the newest.
pub fn parse_sacct(output: &str, job_id: &str) -> Accounting {
    if output.contains("accounting storage is disabled") {
        return Accounting::Disabled;
    }
    let entry = output.lines().rev().find_map(|l| {
        let f: Vec<&str> = l.trim_end_matches('\r').split('|').collect();
        if f.len() != 4 || f[0].trim() != job_id {
            return None;
        }
        let (exit_code, signal) = parse_exit_code(f[2]);
        Some(AccountingEntry {
            job_id: job_id.to_string(),
            state: JobState::parse(f[1]),
            exit_code,
            signal,
            elapsed_seconds: parse_duration(f[3]),
        })
    });
    entry.map_or(Accounting::Unknown, Accounting::Entry)
}

// ------------------------------------------------------------------------------------------------------------
// scontrol show job -o

/// What rtrain reads from `scontrol show job -o ID`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlEntry {
    pub job_id: String,
    pub state: JobState,
    pub reason: Option<String>,
    pub restarts: Option<u32>,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub elapsed_seconds: Option<u64>,
    pub time_limit_seconds: Option<u64>,
    pub node: Option<String>,
}

/// The `Key=value` pairs of one `scontrol -o` line. Values may hold spaces (`JobName=my run`, a `Command=`
/// path under `remote home/`), so a pair ends only where the next ` Key=` starts, a key being letters with
/// `/`, `:` or `_` (`Socks/Node`, `ReqB:S:C:T`, `AllocNode:Sid`).
pub fn scontrol_pairs(line: &str) -> Vec<(&str, &str)> {
    let is_key_char = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'/' | b':' | b'_');
    let b = line.as_bytes();
    // Start offsets of keys: at 0 or after a space, a run of key chars (starting with a letter) then '='.
    let mut starts = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if (i == 0 || b[i - 1] == b' ') && b[i].is_ascii_alphabetic() {
            let mut j = i;
            while j < b.len() && is_key_char(b[j]) {
                j += 1;
            }
            if j < b.len() && b[j] == b'=' {
                starts.push((i, j));
                i = j + 1;
                continue;
            }
        }
        i += 1;
    }
    starts
        .iter()
        .enumerate()
        .map(|(k, &(s, eq))| {
            let end = starts.get(k + 1).map_or(line.len(), |&(next, _)| next);
            (&line[s..eq], line[eq + 1..end].trim_end())
        })
        .collect()
}

/// `scontrol show job -o ID`: `None` when the job is unknown ("Invalid job id specified", after MinJobAge).
pub fn parse_scontrol(stdout: &str, job_id: &str) -> Option<ControlEntry> {
    stdout.lines().find_map(|l| {
        let pairs = scontrol_pairs(l.trim_end_matches('\r'));
        let get = |k: &str| pairs.iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
        if get("JobId")? != job_id {
            return None;
        }
        let (exit_code, signal) = get("ExitCode").map_or((None, None), parse_exit_code);
        Some(ControlEntry {
            job_id: job_id.to_string(),
            state: JobState::parse(get("JobState")?),
            reason: get("Reason").and_then(none_if_empty),
            restarts: get("Restarts").and_then(|r| r.parse().ok()),
            exit_code,
            signal,
            elapsed_seconds: get("RunTime").and_then(parse_duration),
            time_limit_seconds: get("TimeLimit").and_then(parse_duration),
            node: get("BatchHost").or(get("NodeList")).and_then(none_if_empty),
        })
    })
}

/// The shell word for `scontrol`/`squeue`/`sacct`'s job id argument: ids are digits, so anything else is a
/// corrupted record and must not reach a command line unquoted.
pub fn job_word(job_id: &str) -> String {
    quote(job_id)
}

// ------------------------------------------------------------------------------------------------------------
// A Slurm run, as `status` sees it

/// One continuation, a line of the run record's `restarts`: `N REASON TIME CHECKPOINT` (`-`: none yet).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Restart {
    pub n: u32,
    pub reason: String,
    pub at: String,
    pub checkpoint: Option<String>,
}

/// The status probe's Slurm sections: the record's files and what the scheduler still says about the job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlurmRun {
    pub job_id: String,
    /// `squeue` (pending or running jobs only).
    pub queue: Option<QueueEntry>,
    /// `sacct`, asked once the run is no longer active, on a cluster that keeps accounting.
    pub accounting: Option<AccountingEntry>,
    /// `scontrol show job`, asked once the run is no longer active (until MinJobAge).
    pub control: Option<ControlEntry>,
    /// How the run ended, as the batch script recorded it (`timeout`, `cancelled`, ...).
    pub recorded_reason: Option<String>,
    pub node: Option<String>,
    pub restarts: Vec<Restart>,
    pub max_restarts: Option<u32>,
}

pub fn parse_restarts(text: &str) -> Vec<Restart> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let [n, reason, at, ck] = f.as_slice() else { return None };
            Some(Restart {
                n: n.parse().ok()?,
                reason: reason.to_string(),
                at: at.to_string(),
                checkpoint: (*ck != "-").then(|| ck.to_string()),
            })
        })
        .collect()
}

impl SlurmRun {
    /// From the probe's `slurm_*` sections (`get` by name); `None` for a run that is not a Slurm job.
    pub fn from_record(job: Option<&str>, get: impl Fn(&str) -> Option<String>) -> Option<SlurmRun> {
        let job_id = job?.trim().to_string();
        if job_id.is_empty() {
            return None;
        }
        let max_restarts = get("slurm_settings").and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("rt_requeue_max="))
                .and_then(|v| v.trim().parse().ok())
        });
        Some(SlurmRun {
            queue: get("slurm_squeue").and_then(|t| parse_squeue(&t, &job_id)),
            accounting: get("slurm_sacct").and_then(|t| match parse_sacct(&t, &job_id) {
                Accounting::Entry(e) => Some(e),
                Accounting::Disabled | Accounting::Unknown => None,
            }),
            control: get("slurm_scontrol").and_then(|t| parse_scontrol(&t, &job_id)),
            recorded_reason: get("slurm_reason"),
            node: get("slurm_node"),
            restarts: get("slurm_restarts").map(|t| parse_restarts(&t)).unwrap_or_default(),
            max_restarts,
            job_id,
        })
    }

    /// The scheduler's sources in order: squeue (a job it still queues or runs), sacct, scontrol.
    pub fn state(&self) -> Option<&JobState> {
        self.queue
            .as_ref()
            .map(|q| &q.state)
            .or(self.accounting.as_ref().map(|a| &a.state))
            .or(self.control.as_ref().map(|c| &c.state))
    }

    /// Waiting in the queue (or on its way back to it), not yet on a node.
    pub fn is_pending(&self) -> bool {
        matches!(
            self.queue.as_ref().map(|q| &q.state),
            Some(JobState::Pending | JobState::Requeued | JobState::Configuring)
        )
    }

    /// `run.reason`: what the batch script recorded, else the scheduler's terminal state.
    pub fn reason(&self) -> Option<String> {
        self.recorded_reason.clone().or_else(|| {
            self.accounting
                .as_ref()
                .map(|a| &a.state)
                .or(self.control.as_ref().map(|c| &c.state))
                .and_then(JobState::reason)
                .map(str::to_string)
        })
    }

    pub fn node(&self) -> Option<String> {
        self.queue
            .as_ref()
            .and_then(|q| q.node.clone())
            .or_else(|| self.control.as_ref().and_then(|c| c.node.clone()))
            .or_else(|| self.node.clone())
    }

    pub fn elapsed_seconds(&self) -> Option<u64> {
        self.queue
            .as_ref()
            .and_then(|q| q.elapsed_seconds)
            .or_else(|| self.accounting.as_ref().and_then(|a| a.elapsed_seconds))
            .or_else(|| self.control.as_ref().and_then(|c| c.elapsed_seconds))
    }

    pub fn time_limit_seconds(&self) -> Option<u64> {
        self.queue
            .as_ref()
            .and_then(|q| q.time_limit_seconds)
            .or_else(|| self.control.as_ref().and_then(|c| c.time_limit_seconds))
    }

    /// Seconds until the scheduler ends the running job at its time limit (`None`: not running, or no limit).
    pub fn seconds_left(&self) -> Option<u64> {
        let q = self.queue.as_ref().filter(|q| q.state == JobState::Running)?;
        Some(q.time_limit_seconds?.saturating_sub(q.elapsed_seconds?))
    }

    /// The status line's scheduler part: `PENDING (Resources)`, `RUNNING on node gpu017 for 1:02:33 of
    /// 4:00:00`, then `restarts: 1 of 3 (timeout)`.
    pub fn phrase(&self) -> String {
        let mut out = match &self.queue {
            Some(q) if self.is_pending() => {
                format!("{} ({})", q.state.name(), q.reason.as_deref().unwrap_or("None"))
            }
            Some(q) => {
                let mut s = q.state.name().to_string();
                if let Some(n) = &q.node {
                    s += &format!(" on node {n}");
                }
                if let Some(e) = q.elapsed_seconds {
                    s += &format!(" for {}", fmt_hms(e));
                    if let Some(l) = q.time_limit_seconds {
                        s += &format!(" of {}", fmt_hms(l));
                    }
                }
                s
            }
            None => self.state().map_or_else(String::new, |st| st.name().to_string()),
        };
        if !out.is_empty() {
            out = format!("Slurm job {} {out}", self.job_id);
        } else {
            out = format!("Slurm job {}", self.job_id);
        }
        if let Some(max) = self.max_restarts.filter(|m| *m > 0) {
            let reasons: Vec<&str> = self.restarts.iter().map(|r| r.reason.as_str()).collect();
            out += &format!(", restarts: {} of {max}", self.restarts.len());
            if !reasons.is_empty() {
                out += &format!(" ({})", reasons.join(", "));
            }
        }
        out
    }
}

// ------------------------------------------------------------------------------------------------------------
// The run record's Slurm files

/// The config's `slurm:` block, validated (see [`SlurmOptions::check`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlurmOptions {
    pub partition: Option<String>,
    /// `--time`, as sbatch reads it (`04:00:00`, `90`, `1-12`).
    pub time: Option<String>,
    pub gpus: Option<String>,
    pub cpus_per_task: Option<u32>,
    pub mem: Option<String>,
    pub account: Option<String>,
    pub qos: Option<String>,
    /// More sbatch arguments, each passed as one word.
    pub extra_args: Vec<String>,
    /// The time-limit warning, `SIG@SECONDS` (sbatch's `--signal`, given to the batch shell).
    pub signal: String,
    /// How many times the run may continue in a new or requeued job after a time limit or a preemption.
    pub requeue: u32,
}

impl Default for SlurmOptions {
    fn default() -> Self {
        SlurmOptions {
            partition: None,
            time: None,
            gpus: None,
            cpus_per_task: None,
            mem: None,
            account: None,
            qos: None,
            extra_args: Vec::new(),
            signal: "USR1@120".to_string(),
            requeue: 0,
        }
    }
}

/// `USR1@120` → (`USR1`, 120). Only USR1 and USR2: the batch script must tell the warning apart from the TERM
/// that `scancel` and the scheduler send, and from the INT of `rtrain stop`.
pub fn parse_signal(spec: &str) -> Result<(&str, u32), String> {
    let spec = spec.trim();
    let spec = spec.strip_prefix("B:").unwrap_or(spec);
    let (sig, secs) = spec
        .split_once('@')
        .ok_or_else(|| format!("slurm.signal {spec:?} must be SIGNAL@SECONDS, e.g. USR1@120"))?;
    let sig = sig.strip_prefix("SIG").unwrap_or(sig);
    if !matches!(sig, "USR1" | "USR2") {
        return Err(format!(
            "slurm.signal {spec:?}: the time-limit warning must be USR1 or USR2 (TERM and INT already mean cancel and stop)"
        ));
    }
    let secs = secs
        .parse::<u32>()
        .ok()
        .filter(|s| (1..=65535).contains(s))
        .ok_or_else(|| format!("slurm.signal {spec:?}: the seconds after @ must be a number from 1 to 65535"))?;
    Ok((sig, secs))
}

impl SlurmOptions {
    /// The config's mistakes, as one line each (checked before anything is sent).
    pub fn check(&self) -> Result<(), String> {
        parse_signal(&self.signal)?;
        if let Some(t) = &self.time {
            parse_time_limit(t).ok_or_else(|| {
                format!("slurm.time {t:?} is not a Slurm time limit (minutes, HH:MM:SS or D-HH:MM:SS)")
            })?;
        }
        Ok(())
    }

    /// The time limit in seconds, when `time` is set.
    pub fn time_limit_seconds(&self) -> Option<u64> {
        self.time.as_deref().and_then(parse_time_limit)
    }

    /// The sbatch options from the config, each one quoted word.
    fn words(&self) -> Vec<String> {
        let (sig, secs) = parse_signal(&self.signal).unwrap_or(("USR1", 120));
        let mut w = vec![
            format!("--signal=B:{sig}@{secs}"),
            if self.requeue > 0 { "--requeue" } else { "--no-requeue" }.to_string(),
        ];
        let opt = |name: &str, v: &Option<String>| v.as_ref().map(|v| format!("--{name}={v}"));
        w.extend(opt("partition", &self.partition));
        w.extend(opt("time", &self.time));
        w.extend(opt("gpus", &self.gpus));
        w.extend(self.cpus_per_task.map(|c| format!("--cpus-per-task={c}")));
        w.extend(opt("mem", &self.mem));
        w.extend(opt("account", &self.account));
        w.extend(opt("qos", &self.qos));
        w.extend(self.extra_args.iter().cloned());
        w.iter().map(|x| quote(x)).collect()
    }
}

/// What the batch script needs besides the run record's common files: where checkpoints are and how a
/// continuation resumes (the same rule as `rtrain resume`: the newest complete checkpoint, then either
/// `resume_command` or the one-line `resume_from_checkpoint` edit of the training config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchSpec {
    /// The sbatch job name (the session name).
    pub job_name: String,
    pub options: SlurmOptions,
    /// Relative to the workdir unless absolute or `~`-based.
    pub checkpoint_dir: String,
    pub train_config: Option<String>,
    pub resume_command: Option<String>,
}

/// `runs/<id>/submit`: the sbatch command line of this run, built from quoted parts, run with the run dir as
/// `$1` by `up` and again by the batch script when it continues in a new job after a time limit. The paths come
/// from the run record at submit time; `%` is doubled because sbatch expands `%j` and the like in file names.
pub fn submit_file(spec: &BatchSpec) -> String {
    format!(
        "# rtrain: how this run's jobs are submitted (see docs/run-record.md). $1: the run dir.\n\
         rd=$1\nwd=${{rd%/.rtrain/runs/*}}\nlog=$(cat \"$rd/log\")\n\
         case $log in *%*) log=$(printf '%s' \"$log\" | sed 's/%/%%/g') ;; esac\n\
         exec sbatch --parsable --job-name={name} --chdir=\"$wd\" --output=\"$log\" --error=\"$log\" --open-mode=append {opts} \"$rd/batch.sh\" \"$rd\"\n",
        name = quote(&spec.job_name),
        opts = spec.options.words().join(" "),
    )
}

/// `runs/<id>/slurm.env`: the batch script's settings as sh assignments, every value quoted.
pub fn settings_file(spec: &BatchSpec) -> String {
    let (sig, _) = parse_signal(&spec.options.signal).unwrap_or(("USR1", 120));
    let opt = |v: &Option<String>| v.as_deref().map(quote_path).unwrap_or_else(|| "''".into());
    format!(
        "rt_requeue_max={}\nrt_warn_signal={}\nrt_ckpt_dir={}\nrt_train_config={}\nrt_resume_template={}\n",
        spec.options.requeue,
        sig,
        quote_path(&spec.checkpoint_dir),
        opt(&spec.train_config),
        spec.resume_command.as_deref().map(quote).unwrap_or_else(|| "''".into()),
    )
}

/// `runs/<id>/batch.sh`, the job's script. Slurm runs a copy of it from its spool directory, so the run dir
/// comes as `$1`, and it reads everything else from there: no user input is part of its text. Why it is shaped
/// this way:
/// - The command runs in the background and the shell waits for it, so a signal reaches the shell's trap while
///   the trainer runs (a foreground command defers the trap until it ends). A background command of a
///   non-interactive shell ignores SIGINT, so the trainer is stopped with SIGTERM, sent to the job's process
///   group (the batch shell leads it).
/// - The time-limit warning (`--signal=B:USR1@120`): stop the trainer, and with restarts left submit the same
///   `submit` again (a new job starts at once; a requeued one would wait out Slurm's two-minute BeginTime), and
///   leave `exit` unwritten: the run goes on in that job (`job`, `jobs`).
/// - A scheduler requeue (preemption, node failure, `scontrol requeue`) starts this same job again: it finds
///   its own `started.<job>` marker, and how the last start ended in the log, where slurmstepd wrote `*** JOB N
///   ON node CANCELLED AT ... DUE TO PREEMPTION ***`.
/// - Either way a continuation starts from the newest complete checkpoint (`checkpoint-N/trainer_state.json`),
///   with `resume_command` or the one-line `resume_from_checkpoint:` edit of the training config, and appends a
///   line to `restarts`.
/// - How the run ended (`exit`, `reason`) is written by this script, because the scheduler forgets a job after
///   MinJobAge and many clusters keep no accounting.
pub const BATCH_SH: &str = r##"#!/bin/sh
# rtrain batch script (written by `rtrain up`, submitted by this run dir's `submit`). See docs/run-record.md.
rd=$1
case $rd in /*/.rtrain/runs/*) ;; *) echo "rtrain: the batch script needs its run dir as its argument" >&2; exit 2 ;; esac
wd=${rd%/.rtrain/runs/*}
job=${SLURM_JOB_ID:-}
put() { printf '%s\n' "$2" > "$rd/$1.tmp" && mv -f -- "$rd/$1.tmp" "$rd/$1"; }
say() { printf '\n[rtrain] %s\n' "$1"; }
# The log's last line before `exit`: whoever sees `exit` (a test, `logs -f` ending its stream) has all of it.
finish() {
  [ -z "$2" ] || put reason "$2"
  say "run ${rd##*/} ended with exit status $1${2:+ ($2)}"
  put exit "$1"
  exit "$1"
}
# How this job's last start was ended by Slurm, from slurmstepd's line in the log.
killed_why() {
  l=$(tail -c 1048576 -- "$log" 2>/dev/null | grep -a "\*\*\* JOB $job ON .* CANCELLED AT " | tail -n 1)
  case $l in
    *"DUE TO TIME LIMIT"*) echo timeout ;;
    *"DUE TO PREEMPTION"*|*"DUE TO JOB REQUEUE"*) echo preempted ;;
    *"DUE TO NODE FAIL"*) echo node_fail ;;
    *) echo cancelled ;;
  esac
}
newest_checkpoint() {
  best=-1 ck=
  for f in "$rt_ckpt_dir"/checkpoint-*/trainer_state.json; do
    [ -f "$f" ] || continue
    d=${f%/trainer_state.json}
    k=${d##*/checkpoint-}
    case $k in ''|*[!0-9]*) continue ;; esac
    if [ "$k" -gt "$best" ]; then best=$k ck=$d; fi
  done
  printf '%s' "$ck"
}
# The resume_command template with every {checkpoint} replaced by the quoted path.
fill() {
  t=$1 q=\'$(printf '%s' "$2" | sed "s/'/'\\\\''/g")\' o=
  while :; do
    case $t in *'{checkpoint}'*) o=$o${t%%'{checkpoint}'*}$q; t=${t#*'{checkpoint}'} ;; *) break ;; esac
  done
  printf '%s' "$o$t"
}
# `rtrain resume`'s one-line edit: the value of `resume_from_checkpoint:` in the top-level `training:` block
# becomes the path (single-quoted YAML), indentation and a trailing comment kept; replaced atomically.
set_resume() {
  [ -f "$1" ] || return 1
  t=$1.rtrain-tmp.$$
  RT_V=\'$(printf '%s' "$2" | sed "s/'/''/g")\' awk '
    BEGIN { v = ENVIRON["RT_V"] }
    /^training:[ \t]*(#.*)?\r?$/ { inb = 1; print; next }
    inb && /^[^ \t#\r]/ { inb = 0 }
    inb && !done && /^[ \t]+resume_from_checkpoint:([ \t\r]|$)/ {
      cr = ""; if (sub(/\r$/, "")) cr = "\r"
      match($0, /^[ \t]+/); ind = substr($0, 1, RLENGTH)
      c = ""; if (match($0, /[ \t]+#[^\047"]*$/)) c = substr($0, RSTART)
      print ind "resume_from_checkpoint: " v c cr; done = 1; next
    }
    { print }
    END { exit done ? 0 : 3 }' "$1" > "$t" && mv -f -- "$t" "$1" && return 0
  rm -f -- "$t"
  return 1
}
cd -- "$wd" || finish 127 ""
. "$rd/slurm.env"
log=$(cat "$rd/log")
command=$(cat "$rd/command")
[ ! -f "$rd/env" ] || . "$rd/env"
put node "${SLURMD_NODENAME:-$(uname -n)}"
put job "$job"
n=0
[ ! -f "$rd/restarts" ] || n=$(grep -c . "$rd/restarts")
why=
if [ -e "$rd/started.$job" ]; then why=$(killed_why)
elif [ -f "$rd/continue" ]; then why=$(cat "$rd/continue"); rm -f -- "$rd/continue"
fi
: > "$rd/started.$job"
[ ! -e "$rd/stopped" ] || finish 143 ""
if [ -n "$why" ]; then
  if [ "$n" -ge "$rt_requeue_max" ]; then
    st=$(cat "$rd/ended" 2>/dev/null)
    say "job $job was requeued ($why) but the run has had its $rt_requeue_max restarts"
    finish "${st:-143}" "$why"
  fi
  n=$((n + 1))
  ck=$(newest_checkpoint)
  if [ -z "$ck" ]; then
    say "restart $n of $rt_requeue_max ($why) in job $job: no complete checkpoint yet, starting over"
  elif [ -n "$rt_resume_template" ]; then
    command=$(fill "$rt_resume_template" "$ck")
    say "restart $n of $rt_requeue_max ($why) in job $job, from $ck"
  elif [ -n "$rt_train_config" ] && set_resume "$rt_train_config" "$ck"; then
    say "restart $n of $rt_requeue_max ($why) in job $job, from $ck ($rt_train_config: resume_from_checkpoint)"
  else
    say "cannot continue from $ck: no resume_from_checkpoint line under training: in ${rt_train_config:-the training config} (set resume_command in rtrain's config)"
    finish 1 "$why"
  fi
  printf '%s %s %s %s\n' "$n" "$why" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${ck:--}" >> "$rd/restarts"
fi
got= warned= term=
trap 'got=USR1' USR1
trap 'got=USR2' USR2
trap 'got=TERM' TERM
trap 'got=INT' INT
put pid.node "$$"
sh -c "$command" < /dev/null &
child=$!
while :; do
  wait "$child"
  st=$?
  [ -n "$got" ] || break
  if [ "$got" = "$rt_warn_signal" ]; then warned=1; else term=1; fi
  got=
  # Slurm signals the whole job itself on a cancel; the warning and rtrain stop's INT reach only this shell.
  trap '' TERM
  kill -s TERM 0 2>/dev/null
  trap 'got=TERM' TERM
done
put ended "$st"
[ ! -e "$rd/stopped" ] || finish "$st" ""
if [ -n "$warned" ] && [ -z "$term" ]; then
  if [ "$n" -lt "$rt_requeue_max" ]; then
    put continue timeout
    if out=$(sh "$rd/submit" "$rd" 2>&1) && new=$(printf '%s\n' "$out" | grep -x '[0-9][0-9]*\(;.*\)\{0,1\}' | tail -n 1) &&
      [ -n "$new" ]; then
      new=${new%%;*}
      put job "$new"
      printf '%s\n' "$new" >> "$rd/jobs"
      say "job $job reaches its time limit: the run continues in job $new"
      exit 0
    fi
    rm -f -- "$rd/continue"
    say "job $job reaches its time limit, and submitting the next job failed: $out"
  fi
  finish "$st" timeout
fi
if [ -n "$term" ]; then
  why=$(killed_why)
  case $why in
    preempted|node_fail)
      if [ "$n" -lt "$rt_requeue_max" ]; then say "job $job was stopped by the scheduler ($why); it will be requeued"; exit "$st"; fi ;;
  esac
  finish "$st" "$why"
fi
finish "$st" ""
"##;

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let path = format!("{}/tests/fixtures/slurm/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn states_match_by_prefix() {
        assert_eq!(JobState::parse("CANCELLED by 1234"), JobState::Cancelled);
        assert_eq!(JobState::parse("CANCELLED+"), JobState::Cancelled);
        assert_eq!(JobState::parse("REQUEUE_HOLD"), JobState::Requeued);
        assert_eq!(JobState::parse("OUT_OF_MEMORY"), JobState::OutOfMemory);
        assert_eq!(JobState::parse(" running\n"), JobState::Running);
        assert_eq!(JobState::parse("SPECIAL_EXIT"), JobState::Other("SPECIAL_EXIT".into()));
        assert!(JobState::parse("PENDING").is_active());
        assert!(JobState::parse("COMPLETING").is_active());
        assert!(!JobState::parse("COMPLETED").is_active());
        assert!(!JobState::parse("TIMEOUT").is_active());
    }

    #[test]
    fn terminal_reasons() {
        let r = |s: &str| JobState::parse(s).reason();
        assert_eq!(r("TIMEOUT"), Some("timeout"));
        assert_eq!(r("PREEMPTED"), Some("preempted"));
        assert_eq!(r("NODE_FAIL"), Some("node_fail"));
        assert_eq!(r("OUT_OF_MEMORY"), Some("out_of_memory"));
        assert_eq!(r("CANCELLED by 0"), Some("cancelled"));
        assert_eq!(r("COMPLETED"), None);
        assert_eq!(r("FAILED"), None);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("0:05"), Some(5));
        assert_eq!(parse_duration("10:00"), Some(600));
        assert_eq!(parse_duration("1:02:33"), Some(3753));
        assert_eq!(parse_duration("2-03:04:05"), Some(2 * 86400 + 3 * 3600 + 4 * 60 + 5));
        assert_eq!(parse_duration("00:00:07"), Some(7));
        assert_eq!(parse_duration("01:02.345"), Some(62));
        for none in [
            "UNLIMITED",
            "INVALID",
            "NOT_SET",
            "N/A",
            "",
            "1:x",
            "Partition_Limit",
            "5",
        ] {
            assert_eq!(parse_duration(none), None, "{none}");
        }
        assert_eq!(fmt_hms(3753), "1:02:33");
        assert_eq!(fmt_hms(4 * 3600), "4:00:00");
    }

    #[test]
    fn time_limits_as_sbatch_reads_them() {
        assert_eq!(parse_time_limit("04:00:00"), Some(4 * 3600));
        assert_eq!(parse_time_limit("2"), Some(120));
        assert_eq!(parse_time_limit("1:30"), Some(90));
        assert_eq!(parse_time_limit("1-12"), Some(86400 + 12 * 3600));
        assert_eq!(parse_time_limit("1-0:30"), Some(86400 + 1800));
        assert_eq!(parse_time_limit("1-0:0:9"), Some(86409));
        assert_eq!(parse_time_limit("four hours"), None);
        assert_eq!(parse_time_limit("1:2:3:4"), None);
    }

    #[test]
    fn sbatch_parsable_strips_the_cluster() {
        assert_eq!(parse_sbatch(&fixture("sbatch-parsable")).as_deref(), Some("10"));
        assert_eq!(parse_sbatch("4711;gpu-cluster\n").as_deref(), Some("4711"));
        assert_eq!(
            parse_sbatch("sbatch: warning: can't honor --mem\n4712\n").as_deref(),
            Some("4712")
        );
        assert_eq!(parse_sbatch("sbatch: error: Batch job submission failed\n"), None);
        assert_eq!(parse_sbatch(""), None);
    }

    #[test]
    fn squeue_lines_from_a_real_cluster() {
        let running = parse_squeue(&fixture("squeue-running"), "11").unwrap();
        assert_eq!(running.state, JobState::Running);
        assert_eq!(running.reason, None);
        assert_eq!(running.node.as_deref(), Some("vm"));
        assert_eq!(running.elapsed_seconds, Some(3));
        assert_eq!(running.time_limit_seconds, Some(60));
        let pending = parse_squeue(&fixture("squeue-pending-resources"), "12").unwrap();
        assert_eq!(pending.state, JobState::Pending);
        assert_eq!(pending.reason.as_deref(), Some("Resources"));
        assert_eq!(pending.node, None);
        assert_eq!(pending.time_limit_seconds, None, "UNLIMITED");
        // Forgotten after MinJobAge: squeue prints an error on stderr and nothing on stdout.
        assert_eq!(parse_squeue(&fixture("squeue-unknown"), "999999"), None);
        assert_eq!(
            parse_squeue(&fixture("squeue-failed"), "13"),
            None,
            "squeue forgets finished jobs"
        );
        assert_eq!(
            parse_squeue(&fixture("squeue-running"), "1"),
            None,
            "another job's line"
        );
    }

    #[test]
    fn a_reason_with_spaces_stays_one_field() {
        let e = parse_squeue(
            "7|PENDING|ReqNodeNotAvail, UnavailableNodes:gpu[1-3]||0:00|4:00:00\n",
            "7",
        )
        .unwrap();
        assert_eq!(e.reason.as_deref(), Some("ReqNodeNotAvail, UnavailableNodes:gpu[1-3]"));
        assert_eq!(e.time_limit_seconds, Some(4 * 3600));
    }

    #[test]
    fn sacct_without_accounting_and_with() {
        assert_eq!(parse_sacct(&fixture("sacct-disabled"), "1"), Accounting::Disabled);
        let out = "4711|TIMEOUT|0:0|00:02:01\n4711|CANCELLED by 1000|0:15|01:00:00\n";
        match parse_sacct(out, "4711") {
            Accounting::Entry(e) => {
                assert_eq!(e.state, JobState::Cancelled, "the newest line wins");
                assert_eq!(e.signal, Some(15));
                assert_eq!(e.elapsed_seconds, Some(3600));
            }
            other => panic!("{other:?}"),
        }
        match parse_sacct("4712|FAILED|3:0|00:00:01\n", "4712") {
            Accounting::Entry(e) => assert_eq!((e.exit_code, e.signal), (Some(3), None)),
            other => panic!("{other:?}"),
        }
        assert_eq!(parse_sacct("", "4711"), Accounting::Unknown);
    }

    #[test]
    fn scontrol_lines_from_a_real_cluster() {
        let r = parse_scontrol(&fixture("scontrol-running"), "11").unwrap();
        assert_eq!(r.state, JobState::Running);
        assert_eq!(r.node.as_deref(), Some("vm"));
        assert_eq!(r.time_limit_seconds, Some(60));
        assert_eq!(r.restarts, Some(0));
        let p = parse_scontrol(&fixture("scontrol-pending-resources"), "12").unwrap();
        assert_eq!((p.state, p.reason.as_deref()), (JobState::Pending, Some("Resources")));
        let c = parse_scontrol(&fixture("scontrol-cancelled"), "12").unwrap();
        assert_eq!(c.state, JobState::Cancelled);
        let f = parse_scontrol(&fixture("scontrol-failed"), "13").unwrap();
        assert_eq!((f.state, f.exit_code), (JobState::Failed, Some(3)));
        let t = parse_scontrol(&fixture("scontrol-timeout"), "11").unwrap();
        assert_eq!((t.state.reason(), t.elapsed_seconds), (Some("timeout"), Some(81)));
        assert_eq!(parse_scontrol(&fixture("scontrol-unknown"), "999999"), None);
    }

    #[test]
    fn scontrol_values_may_hold_spaces() {
        let line = "JobId=9 JobName=rt x UserId=root(0) JobState=RUNNING Reason=None Command=/tmp/remote home/b.sh \
                    WorkDir=/tmp/remote home ReqB:S:C:T=0:0:*:*";
        let p = scontrol_pairs(line);
        assert!(p.contains(&("JobName", "rt x")), "{p:?}");
        assert!(p.contains(&("Command", "/tmp/remote home/b.sh")), "{p:?}");
        assert!(p.contains(&("WorkDir", "/tmp/remote home")), "{p:?}");
        assert!(p.contains(&("ReqB:S:C:T", "0:0:*:*")), "{p:?}");
    }

    #[test]
    fn a_slurm_run_from_the_status_sections() {
        let sections = |name: &str| match name {
            "slurm_squeue" => Some(fixture("squeue-running")),
            "slurm_restarts" => Some("1 timeout 2026-12-01T20:44:00Z outputs/checkpoint-120\n".to_string()),
            "slurm_settings" => Some("rt_requeue_max=3\nrt_warn_signal=USR1\n".to_string()),
            _ => None,
        };
        let j = SlurmRun::from_record(Some("11\n"), sections).unwrap();
        assert!(!j.is_pending());
        assert_eq!(
            j.phrase(),
            "Slurm job 11 RUNNING on node vm for 0:00:03 of 0:01:00, restarts: 1 of 3 (timeout)"
        );
        assert_eq!(j.restarts[0].checkpoint.as_deref(), Some("outputs/checkpoint-120"));
        assert_eq!(j.seconds_left(), Some(57), "a 1:00 limit, 0:03 gone");
        let pending = SlurmRun::from_record(Some("12"), |n| {
            (n == "slurm_squeue").then(|| fixture("squeue-pending-resources"))
        })
        .unwrap();
        assert!(pending.is_pending());
        assert_eq!(pending.phrase(), "Slurm job 12 PENDING (Resources)");
        // Forgotten by squeue, ended by the time limit: scontrol's state gives the reason until MinJobAge.
        let ended = SlurmRun::from_record(Some("11"), |n| {
            (n == "slurm_scontrol").then(|| fixture("scontrol-timeout"))
        })
        .unwrap();
        assert_eq!(ended.reason().as_deref(), Some("timeout"));
        // With accounting, sacct comes before scontrol (and outlives MinJobAge); without, it says so and is skipped.
        let accounted = SlurmRun::from_record(Some("11"), |n| match n {
            "slurm_sacct" => Some("11|PREEMPTED|0:15|00:03:07\n".to_string()),
            "slurm_scontrol" => Some(fixture("scontrol-timeout")),
            _ => None,
        })
        .unwrap();
        assert_eq!(accounted.state(), Some(&JobState::Preempted));
        assert_eq!(accounted.reason().as_deref(), Some("preempted"));
        assert_eq!(accounted.elapsed_seconds(), Some(187));
        assert_eq!(accounted.phrase(), "Slurm job 11 PREEMPTED");
        let disabled = SlurmRun::from_record(Some("11"), |n| match n {
            "slurm_sacct" => Some(fixture("sacct-disabled")),
            "slurm_scontrol" => Some(fixture("scontrol-timeout")),
            _ => None,
        })
        .unwrap();
        assert_eq!(disabled.reason().as_deref(), Some("timeout"), "scontrol's state");
        // After MinJobAge only the record is left, and it says how the run ended.
        let later =
            SlurmRun::from_record(Some("11"), |n| (n == "slurm_reason").then(|| "timeout".to_string())).unwrap();
        assert_eq!((later.reason().as_deref(), later.state()), (Some("timeout"), None));
        assert_eq!(SlurmRun::from_record(None, |_| None), None, "not a Slurm run");
    }

    #[test]
    fn signals_and_options_become_quoted_sbatch_words() {
        assert_eq!(parse_signal("USR1@120"), Ok(("USR1", 120)));
        assert_eq!(parse_signal("B:SIGUSR2@60"), Ok(("USR2", 60)));
        assert!(parse_signal("TERM@60").is_err());
        assert!(parse_signal("USR1").is_err());
        let spec = BatchSpec {
            job_name: "my run".into(),
            options: SlurmOptions {
                partition: Some("gpu".into()),
                time: Some("04:00:00".into()),
                extra_args: vec!["--constraint=a100 & 80gb".into()],
                requeue: 2,
                ..SlurmOptions::default()
            },
            checkpoint_dir: "~/out puts".into(),
            train_config: Some("config/training_config.yaml".into()),
            resume_command: Some("make train RESUME={checkpoint}".into()),
        };
        let submit = submit_file(&spec);
        assert!(
            submit.contains(
                "--job-name='my run' --chdir=\"$wd\" --output=\"$log\" --error=\"$log\" --open-mode=append \
                 --signal=B:USR1@120 --requeue --partition=gpu --time=04:00:00 '--constraint=a100 & 80gb' \"$rd/batch.sh\" \"$rd\""
            ),
            "{submit}"
        );
        let env = settings_file(&spec);
        assert!(env.contains("rt_requeue_max=2\n"), "{env}");
        assert!(env.contains("rt_ckpt_dir=\"$HOME\"/'out puts'\n"), "{env}");
        assert!(
            env.contains("rt_resume_template='make train RESUME={checkpoint}'\n"),
            "{env}"
        );
        assert!(SlurmOptions {
            time: Some("soon".into()),
            ..SlurmOptions::default()
        }
        .check()
        .is_err());
    }

    #[test]
    fn exit_codes() {
        assert_eq!(parse_exit_code("0:0"), (Some(0), None));
        assert_eq!(parse_exit_code("3:0"), (Some(3), None));
        assert_eq!(parse_exit_code("0:9"), (Some(0), Some(9)));
        assert_eq!(parse_exit_code("x"), (None, None));
    }
}
