//! `ckpts`, `status` and `check` against real boxes: one exec channel per question, what the
//! disk really holds, and several hosts at once.

use crate::support::*;
use std::path::Path;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(60);

fn mkckpt(dir: &Path, name: &str, complete: bool, bytes: usize) {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("model.safetensors"), vec![7u8; bytes]).unwrap();
    if complete {
        std::fs::write(d.join("trainer_state.json"), "{\"global_step\": 1}").unwrap();
    }
}

/// Sessions (exec channels) the box's sshd started so far.
fn exec_count(sshd: &Sshd) -> usize {
    sshd.log().matches("Starting session: command").count()
}

#[test]
fn ckpts_lists_what_is_on_disk_in_integer_step_order_with_one_exec() {
    let sshd = Sshd::start();
    let c = Client::for_box(&sshd);
    c.write_rtrain_config("defaults:\n  workdir: ~/my project\n");
    let out = sshd.remote_home.join("my project/outputs");
    for (name, complete) in [
        ("checkpoint-1500", true),
        ("checkpoint-50", true),
        ("checkpoint-100", true),
        ("checkpoint-2000", false),
    ] {
        mkckpt(&out, name, complete, 4096);
    }
    mkckpt(&out, "tmp-checkpoint-2500", true, 10);
    mkckpt(&out, "run $(touch pwned)", true, 10);
    let before = exec_count(&sshd);
    let ran = run_with_timeout(c.rtrain().args(["ckpts", "box", "--json"]), T);
    assert_eq!(ran.code, 0, "{ran}");
    assert_eq!(
        exec_count(&sshd) - before,
        1,
        "ckpts must use exactly one exec channel\n{}",
        sshd.log()
    );
    let v: serde_json::Value = serde_json::from_slice(&ran.stdout).unwrap();
    let cks = v["checkpoints"].as_array().unwrap();
    let names: Vec<&str> = cks.iter().map(|c| c["name"].as_str().unwrap()).collect();
    let hf: Vec<&str> = names.iter().copied().filter(|n| n.starts_with("checkpoint-")).collect();
    assert_eq!(
        hf,
        ["checkpoint-50", "checkpoint-100", "checkpoint-1500", "checkpoint-2000"],
        "{names:?}"
    );
    let by_name = |n: &str| cks.iter().find(|c| c["name"] == n).unwrap().clone();
    assert_eq!(by_name("checkpoint-100")["complete"], true);
    assert_eq!(by_name("checkpoint-2000")["complete"], false);
    assert_eq!(by_name("checkpoint-100")["step"], 100);
    assert!(by_name("checkpoint-1500")["bytes"].as_u64().unwrap() >= 4096);
    assert!(by_name("checkpoint-1500")["mtime"].as_str().unwrap().contains('T'));
    // Listed (it takes disk space) but never complete, even with a trainer_state.json inside.
    let tmp = cks
        .iter()
        .find(|c| c["name"] == "tmp-checkpoint-2500")
        .unwrap_or_else(|| panic!("tmp-checkpoint-2500 missing from the listing: {names:?}"));
    assert_eq!(tmp["complete"], false, "tmp-checkpoint-N is never complete");
    assert_eq!(v["host"], "box");
    assert!(v["dir"].as_str().unwrap().ends_with("my project/outputs"), "{v}");
    assert!(v["free_bytes"].as_u64().unwrap() > 0);
    assert!(!sshd.remote_home.join("my project/pwned").exists() && !sshd.remote_home.join("pwned").exists());

    // The human table shows the same, sorted by step.
    let ran = run_with_timeout(c.rtrain().args(["ckpts", "box"]), T);
    assert_eq!(ran.code, 0, "{ran}");
    let text = ran.stdout_str();
    let pos = |n: &str| text.find(n).unwrap_or_else(|| panic!("{n} missing from\n{text}"));
    assert!(
        pos("checkpoint-50 ") < pos("checkpoint-100") && pos("checkpoint-100") < pos("checkpoint-1500"),
        "{text}"
    );
    assert!(text.contains("NO (incomplete)"), "{text}");
}

/// A box whose du and stat are BusyBox's (no `du -0`/`-D`, no `stat --printf`): sizes and times still come
/// through, and status still finds the newest complete checkpoint (`ls -v` is BusyBox's too).
#[test]
fn ckpts_and_status_on_a_busybox_box_have_sizes_times_and_the_newest_complete() {
    let sshd = Sshd::start_busybox();
    let c = Client::for_box(&sshd);
    c.write_rtrain_config("defaults:\n  workdir: ~/p\n");
    let out = sshd.remote_home.join("p/outputs");
    for (name, complete) in [
        ("checkpoint-9", true),
        ("checkpoint-10", true),
        ("checkpoint-11", false),
    ] {
        mkckpt(&out, name, complete, 8192);
    }
    let ran = run_with_timeout(c.rtrain().args(["ckpts", "box", "--json"]), T);
    assert_eq!(ran.code, 0, "{ran}");
    let v: serde_json::Value = serde_json::from_slice(&ran.stdout).unwrap();
    let cks = v["checkpoints"].as_array().unwrap();
    let names: Vec<&str> = cks.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["checkpoint-9", "checkpoint-10", "checkpoint-11"], "{v}");
    for ck in cks {
        assert!(
            ck["bytes"].as_u64().is_some_and(|b| b >= 8192),
            "no size from BusyBox du: {v}"
        );
        assert!(
            ck["mtime"].as_str().is_some_and(|t| t.contains('T')),
            "no time from BusyBox stat: {v}"
        );
    }
    let st = run_with_timeout(c.rtrain().args(["status", "box", "--json"]), T);
    assert_eq!(st.code, 0, "{st}");
    let s: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(s["latest_checkpoint"]["name"], "checkpoint-10", "{s}");
    assert!(s["latest_checkpoint"]["age_seconds"].as_i64().is_some(), "{s}");
}

#[test]
fn ckpts_of_a_missing_directory_is_an_empty_list_and_exit_0() {
    let sshd = Sshd::start();
    let c = Client::for_box(&sshd);
    let ran = run_with_timeout(c.rtrain().args(["ckpts", "box", "--json"]), T);
    assert_eq!(ran.code, 0, "{ran}");
    let v: serde_json::Value = serde_json::from_slice(&ran.stdout).unwrap();
    assert_eq!(v["checkpoints"].as_array().unwrap().len(), 0);
    let ran = run_with_timeout(c.rtrain().args(["ckpts", "box"]), T);
    assert!(ran.stdout_str().contains("no checkpoint directory"), "{ran}");
}

#[test]
fn status_uses_one_exec_and_reports_null_for_what_it_cannot_know() {
    let sshd = Sshd::start();
    let c = Client::for_box(&sshd);
    let before = exec_count(&sshd);
    let ran = run_with_timeout(c.rtrain().args(["status", "box", "--json"]), T);
    assert_eq!(ran.code, 0, "{ran}");
    assert_eq!(
        exec_count(&sshd) - before,
        1,
        "status must use exactly one exec channel\n{}",
        sshd.log()
    );
    let v: serde_json::Value = serde_json::from_slice(&ran.stdout).unwrap();
    assert_eq!(v["host"], "box");
    assert_eq!(v["reachable"], true);
    assert_eq!(v["session"]["name"], "training");
    assert_eq!(v["session"]["exists"], false);
    assert!(v["run"].is_null(), "{v}");
    assert!(v["progress"]["step"].is_null());
    assert_eq!(
        v["gpus"],
        serde_json::json!([]),
        "no nvidia-smi here: no GPUs, not an error"
    );
}

#[test]
fn status_of_several_hosts_runs_concurrently_and_reports_the_unreachable_one() {
    let boxes: Vec<Sshd> = (0..3).map(|_| Sshd::start()).collect();
    // b3: nothing listens there.
    let c = Client::for_boxes(
        &boxes,
        &format!("Host b3\n  HostName 127.0.0.1\n  Port {}\n", free_port()),
    );
    let mut rt = String::from("hosts:\n");
    for i in 0..boxes.len() {
        rt += &format!("  b{i}:\n    session: s{i}\n");
    }
    rt += "  b3: {}\n";
    c.write_rtrain_config(&rt);

    let start = Instant::now();
    let one = run_with_timeout(c.rtrain().args(["status", "b0", "--json"]), T);
    let t_one = start.elapsed();
    assert_eq!(one.code, 0, "{one}");

    let start = Instant::now();
    let all = run_with_timeout(c.rtrain().args(["status", "--all", "--json"]), T);
    let t_all = start.elapsed();
    assert_eq!(all.code, 3, "an unreachable host makes the exit code 3\n{all}");
    let v: serde_json::Value = serde_json::from_slice(&all.stdout).unwrap();
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 4);
    let reach: Vec<bool> = rows.iter().map(|r| r["reachable"].as_bool().unwrap()).collect();
    assert_eq!(reach, [true, true, true, false]);
    assert_eq!(rows[2]["session"]["name"], "s2");
    assert!(
        rows[3]["error"].as_str().unwrap().contains("cannot reach"),
        "{}",
        rows[3]
    );
    // Concurrent, not one after the other (generous: this is a sanity bound; bench/ measures it).
    assert!(
        t_all < t_one * 3 + Duration::from_secs(2),
        "one host {t_one:?}, four hosts {t_all:?}"
    );
}

#[test]
fn status_watch_refreshes_over_one_kept_open_connection() {
    let sshd = Sshd::start();
    let c = Client::for_box(&sshd);
    let mut cmd = c.rtrain();
    cmd.args(["status", "box", "--watch", "--json"]);
    let mut bg = Bg::spawn(cmd);
    // Two refreshes (every 5 s), then stop it as a user would.
    let docs = |bg: &Bg| -> Vec<serde_json::Value> {
        let out = String::from_utf8_lossy(&bg.stdout()).into_owned();
        // Only whole lines: the last one may still be being written.
        let whole = &out[..out.rfind('\n').map_or(0, |i| i + 1)];
        whole
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
            .collect()
    };
    let start = Instant::now();
    while docs(&bg).len() < 2 {
        assert!(
            start.elapsed() < T,
            "fewer than two refreshes within {T:?}: {:?}\n{}",
            docs(&bg),
            bg.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    bg.signal("INT");
    bg.wait(Duration::from_secs(15)); // Ctrl-C ends it at once; a hang fails here, not the suite
    let docs = docs(&bg);
    assert!(docs.len() >= 2, "{docs:?}");
    assert!(docs.iter().all(|d| d["host"] == "box" && d["reachable"] == true));
    let log = sshd.log();
    assert_eq!(
        log.matches("Accepted publickey").count(),
        1,
        "one connection for every refresh\n{log}"
    );
    assert!(exec_count(&sshd) >= 2, "{log}");
}
