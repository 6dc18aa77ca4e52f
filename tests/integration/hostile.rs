//! What a box may send (issue 17, section 4): a box is not trusted to be small or sane. Each test puts a
//! real sshd in front of a `ForceCommand` that floods, and holds the real rtrain binary to one clear line
//! and a bounded peak memory, measured on the rtrain process itself (its `VmHWM`).

use crate::support::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const T: Duration = Duration::from_secs(120);
/// The bound on rtrain's peak resident memory while a box floods it.
const PEAK_RSS_MAX_KIB: i64 = 64 * 1024;

/// A `ForceCommand` script: `body`, for every session the box starts.
fn force_command(dir: &Path, body: &str) -> PathBuf {
    let p = dir.join("force.sh");
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

/// Runs `cmd` to its end (or kills it after `limit`) and returns what it printed and its own peak
/// resident memory in KiB: the kernel's high-water mark of the process since its exec (`VmHWM` in
/// /proc/PID/status), read at every poll while it runs. Not `wait4`'s `ru_maxrss`: that also counts
/// the forked test process before the exec (299 MB in a full run, whatever rtrain did).
fn run_measured(cmd: &mut Command, limit: Duration) -> (Ran, i64) {
    let mut peak = None;
    let ran = run_watched(cmd, limit, |pid| {
        if let Some(kib) = vm_hwm_kib(pid) {
            peak = peak.max(Some(kib));
        }
    });
    let peak = peak.unwrap_or_else(|| panic!("no VmHWM of the child was read while it ran: {ran}"));
    (ran, peak)
}

fn vm_hwm_kib(pid: u32) -> Option<i64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn status_of_a_box_printing_two_gib_fails_with_one_line_in_bounded_memory() {
    let scripts = tempfile::tempdir().unwrap();
    // Every session prints 2 GiB of garbage instead of running what was asked.
    let force = force_command(scripts.path(), "head -c 2147483648 /dev/zero | tr '\\000' x");
    let sshd = Sshd::start_with(&format!("ForceCommand {}", force.display()));
    let c = Client::for_box(&sshd);
    for args in [&["status", "box"][..], &["ckpts", "box"]] {
        let (ran, peak_kib) = run_measured(c.rtrain().args(args), T);
        eprintln!(
            "{args:?}: exit {} after {:?}, peak RSS {peak_kib} KiB",
            ran.code, ran.elapsed
        );
        assert_eq!(ran.code, 1, "{args:?}: {ran}");
        assert_eq!(ran.stderr.lines().count(), 1, "{args:?}: one line: {ran}");
        assert!(
            ran.stderr.contains("refusing the probe's output from box: more than"),
            "{args:?}: {ran}"
        );
        assert!(
            peak_kib < PEAK_RSS_MAX_KIB,
            "{args:?}: rtrain's peak RSS was {peak_kib} KiB: {ran}"
        );
    }
}

#[test]
fn logs_follow_of_a_box_whose_stderr_floods_stays_bounded_and_exact() {
    let scripts = tempfile::tempdir().unwrap();
    // 96 MiB on stderr before every command the box runs: more than the bound if it were all kept.
    let force = force_command(
        scripts.path(),
        "head -c 100663296 /dev/zero | tr '\\000' e >&2\nexec /bin/sh -c \"$SSH_ORIGINAL_COMMAND\"",
    );
    let sshd = Sshd::start_with(&format!("ForceCommand {}", force.display()));
    let c = Client::for_box(&sshd);
    std::fs::create_dir_all(sshd.remote_home.join("project")).unwrap();
    c.write_rtrain_config("defaults:\n  workdir: ~/project\n");
    let up = run_with_timeout(
        c.rtrain().args([
            "up",
            "box",
            "--",
            "sh",
            "-c",
            "for i in 1 2 3 4 5; do echo line $i; sleep 0.3; done",
        ]),
        T,
    );
    assert_eq!(up.code, 0, "{up}");
    let (ran, peak_kib) = run_measured(c.rtrain().args(["logs", "box", "-f", "-n", "all", "--raw"]), T);
    eprintln!(
        "logs -f: exit {} after {:?}, peak RSS {peak_kib} KiB",
        ran.code, ran.elapsed
    );
    assert_eq!(ran.code, 0, "{ran}");
    assert_eq!(ran.stdout_str(), "line 1\nline 2\nline 3\nline 4\nline 5\n", "{ran}");
    assert!(
        peak_kib < PEAK_RSS_MAX_KIB,
        "rtrain's peak RSS was {peak_kib} KiB: {ran}"
    );
}
