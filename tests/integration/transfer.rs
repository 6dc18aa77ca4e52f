//! `pull` against a real box through the fault proxy: checkpoints of the stand-in trainer come home
//! identical by SHA-256, and black holes, a killed client or a file rewritten on the box mid-pull
//! cost at most the bytes in flight.

use crate::support::*;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(120);
const WORKDIR: &str = "work dir";

struct Rig {
    sshd: Sshd,
    proxy: Proxy,
    c: Client,
    /// The local side: DESTs go here.
    here: tempfile::TempDir,
}

impl Rig {
    fn new() -> Rig {
        let sshd = Sshd::start();
        let proxy = Proxy::start(sshd.port);
        let c = proxy.client_for(&sshd);
        c.write_rtrain_config(&format!(
            "defaults:\n  workdir: ~/{WORKDIR}\n  checkpoint_dir: outputs\n  keepalive: 500ms\n"
        ));
        std::fs::create_dir_all(sshd.remote_home.join(WORKDIR).join("outputs")).unwrap();
        Rig {
            sshd,
            proxy,
            c,
            here: tempfile::tempdir().unwrap(),
        }
    }

    fn outputs(&self) -> PathBuf {
        self.sshd.remote_home.join(WORKDIR).join("outputs")
    }

    fn cmd(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = self.c.rtrain();
        cmd.args(args).current_dir(self.here.path());
        cmd
    }

    fn rtrain(&self, args: &[&str]) -> Ran {
        run_with_timeout(&mut self.cmd(args), T)
    }

    fn pull_json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["pull", "box"];
        all.extend_from_slice(args);
        all.push("--json");
        let ran = self.rtrain(&all);
        assert_eq!(ran.code, 0, "{ran}\n--- sshd log\n{}", self.sshd.log());
        serde_json::from_slice(&ran.stdout).unwrap_or_else(|e| panic!("{e}: {ran}"))
    }
}

/// Deterministic bytes that do not compress (so the link's compression cannot hide a resend).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Every file under `dir` by relative path, with its SHA-256.
fn tree(dir: &Path) -> BTreeMap<PathBuf, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let sum = Sha256::digest(std::fs::read(&p).unwrap())
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>();
                out.insert(p.strip_prefix(root).unwrap().to_path_buf(), sum);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// A Hugging Face style checkpoint with one large file; complete when `trainer_state.json` is there.
fn mkckpt(outputs: &Path, name: &str, big: usize, complete: bool) -> PathBuf {
    let d = outputs.join(name);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("model.safetensors"), noise(big, 1)).unwrap();
    std::fs::write(d.join("optimizer.pt"), noise(4096, 2)).unwrap();
    std::fs::write(d.join("config.json"), b"{\"model_type\": \"gpt2\"}\n").unwrap();
    if complete {
        std::fs::write(d.join("trainer_state.json"), b"{\"global_step\": 1}\n").unwrap();
    }
    d
}

fn wait_part_past(part: &Path, len: u64, bg: &Bg) {
    let start = Instant::now();
    while std::fs::metadata(part).map(|m| m.len()).unwrap_or(0) <= len {
        assert!(
            start.elapsed() < T,
            "{} never grew past {len} bytes; stderr:\n{}",
            part.display(),
            bg.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn no_parts_left(dir: &Path) {
    let left: Vec<_> = tree(dir)
        .into_keys()
        .filter(|p| p.to_string_lossy().contains(".part"))
        .collect();
    assert!(left.is_empty(), "leftover part files: {left:?}");
}

#[test]
fn pull_of_the_stand_in_trainers_checkpoint_is_identical_by_sha256() {
    let r = Rig::new();
    let project = Path::new(env!("CARGO_MANIFEST_DIR")).join("docker/gpu-box/project/train.py");
    let out = std::process::Command::new("python3")
        .arg(&project)
        .args(["--output-dir", r.outputs().to_str().unwrap()])
        .args(["--max-steps", "20", "--save-steps", "10", "--seconds-per-step", "0"])
        .args(["--model-size-bytes", "3000000"])
        .current_dir(r.sshd.remote_home.join(WORKDIR))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let j = r.pull_json(&[]);
    assert_eq!(j["checkpoint"], "checkpoint-20");
    assert_eq!(j["verified_by"], "sha256");
    // The default DEST: ./HOST/NAME/.
    let dest = r.here.path().join("box/checkpoint-20");
    assert_eq!(
        PathBuf::from(j["dest"].as_str().unwrap()),
        PathBuf::from("box/checkpoint-20")
    );
    let want = tree(&r.outputs().join("checkpoint-20"));
    assert!(want.len() >= 7, "{want:?}");
    assert_eq!(tree(&dest), want);
    assert_eq!(j["files"], want.len());
    assert_eq!(j["transferred_bytes"], j["bytes"]);

    // Again: everything is already here, nothing travels.
    let again = r.pull_json(&[]);
    assert_eq!(again["transferred_bytes"], 0, "{again}");
    assert_eq!(again["skipped_files"], want.len());

    // --weights-only leaves optimizer, scheduler and RNG state behind.
    let j = r.pull_json(&["checkpoint-10", "weights", "--weights-only"]);
    let got = tree(&r.here.path().join("weights"));
    let names: Vec<String> = got.keys().map(|p| p.display().to_string()).collect();
    for gone in ["optimizer.pt", "scheduler.pt", "rng_state.pth"] {
        assert!(!names.iter().any(|n| n == gone), "{gone} was pulled: {names:?}");
    }
    for kept in ["model.safetensors", "trainer_state.json", "config.json"] {
        assert!(names.iter().any(|n| n == kept), "{kept} missing: {names:?}");
    }
    assert_eq!(j["excluded_files"], 3, "{j}");
    let full = tree(&r.outputs().join("checkpoint-10"));
    for (k, v) in &got {
        assert_eq!(full.get(k), Some(v), "{k:?}");
    }
}

#[test]
fn an_incomplete_checkpoint_is_refused_unless_named_with_force() {
    let r = Rig::new();
    mkckpt(&r.outputs(), "checkpoint-20", 1000, true);
    mkckpt(&r.outputs(), "checkpoint-30", 1000, false);
    // latest is the newest complete one, never the cut-off save.
    let j = r.pull_json(&[]);
    assert_eq!(j["checkpoint"], "checkpoint-20");
    let ran = r.rtrain(&["pull", "box", "checkpoint-30"]);
    assert_eq!(ran.code, 1, "{ran}");
    assert!(
        ran.stderr.contains("incomplete") && ran.stderr.contains("--force"),
        "{ran}"
    );
    assert!(!r.here.path().join("box/checkpoint-30").exists());
    // Named as a path, it is just as incomplete.
    let ran = r.rtrain(&["pull", "box", "outputs/checkpoint-30"]);
    assert_eq!(ran.code, 1, "{ran}");
    let j = r.pull_json(&["checkpoint-30", "--force"]);
    assert_eq!(j["files"], 3);
    assert_eq!(
        tree(&r.here.path().join("box/checkpoint-30")),
        tree(&r.outputs().join("checkpoint-30"))
    );
}

#[test]
fn best_is_the_checkpoint_trainer_state_names_and_its_absence_is_said() {
    let r = Rig::new();
    mkckpt(&r.outputs(), "checkpoint-10", 1000, true);
    let newest = mkckpt(&r.outputs(), "checkpoint-20", 1000, true);
    let ran = r.rtrain(&["pull", "box", "best"]);
    assert_eq!(ran.code, 1, "{ran}");
    assert!(ran.stderr.contains("no best_model_checkpoint"), "{ran}");
    std::fs::write(
        newest.join("trainer_state.json"),
        "{\"global_step\": 20, \"best_model_checkpoint\": \"outputs/checkpoint-10\", \"best_metric\": 1.5}\n",
    )
    .unwrap();
    let j = r.pull_json(&["best"]);
    assert_eq!(j["checkpoint"], "checkpoint-10", "{j}");
    assert_eq!(
        tree(&r.here.path().join("box/checkpoint-10")),
        tree(&r.outputs().join("checkpoint-10"))
    );
}

#[test]
fn names_with_spaces_quotes_and_newlines_arrive_intact_and_nothing_runs() {
    let r = Rig::new();
    let d = mkckpt(&r.outputs(), "checkpoint-5", 5000, true);
    let odd = "it's a \"$(touch PWNED)\" `touch PWNED2`\nname.bin";
    std::fs::create_dir_all(d.join("sub dir")).unwrap();
    std::fs::write(d.join(odd), noise(777, 3)).unwrap();
    std::fs::write(d.join("sub dir").join("a 'b' $HOME.json"), b"{}").unwrap();
    let j = r.pull_json(&["checkpoint-5", "my dest"]);
    assert_eq!(j["files"], 6, "{j}");
    assert_eq!(tree(&r.here.path().join("my dest")), tree(&d));
    for p in ["PWNED", "PWNED2"] {
        assert!(!r.sshd.remote_home.join(p).exists() && !r.sshd.remote_home.join(WORKDIR).join(p).exists());
        assert!(!d.join(p).exists());
    }
}

#[test]
fn a_black_hole_mid_file_resumes_from_the_part_and_resends_almost_nothing() {
    let r = Rig::new();
    let size = 12 << 20;
    let d = mkckpt(&r.outputs(), "checkpoint-100", size, true);
    let dest = r.here.path().join("got");
    let mut bg = Bg::spawn(r.cmd(&["pull", "box", "checkpoint-100", "got", "--json", "--limit-rate", "3M"]));
    wait_part_past(&dest.join("model.safetensors.part"), 2 << 20, &bg);
    r.proxy.set_mode(Mode::BlackHole);
    bg.wait_stderr("lost", T);
    r.proxy.set_mode(Mode::Pass);
    assert_eq!(bg.wait(T), 0, "{}", bg.stderr());
    let j: serde_json::Value = serde_json::from_slice(&bg.stdout()).unwrap();
    assert!(j["reconnects"].as_u64().unwrap() >= 1, "{j}");
    assert_eq!(tree(&dest), tree(&d));
    no_parts_left(&dest);
    // Only what reached the .part counts as arrived; a restart from zero would count it twice.
    let total = j["bytes"].as_u64().unwrap();
    let sent = j["transferred_bytes"].as_u64().unwrap();
    assert!(sent <= total + total / 100, "re-sent too much: {sent} of {total}\n{j}");
}

#[test]
fn a_killed_pull_rerun_reuses_the_part() {
    let r = Rig::new();
    let size = 8 << 20;
    let d = mkckpt(&r.outputs(), "checkpoint-7", size, true);
    let part = r.here.path().join("box/checkpoint-7/model.safetensors.part");
    let mut bg = Bg::spawn(r.cmd(&["pull", "box", "checkpoint-7", "--limit-rate", "2M"]));
    wait_part_past(&part, 1 << 20, &bg);
    // The small files are done by now, but trainer_state.json waits for the big one: a local
    // checkpoint that has it is whole.
    let local = r.here.path().join("box/checkpoint-7");
    let start = Instant::now();
    while !local.join("config.json").exists() {
        assert!(start.elapsed() < T, "config.json never arrived: {}", bg.stderr());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        std::fs::metadata(&part).unwrap().len() < size as u64,
        "the big file is still on its way"
    );
    assert!(!local.join("trainer_state.json").exists() && !local.join("trainer_state.json.part").exists());
    bg.signal("KILL");
    let _ = bg.wait(T);
    let kept = std::fs::metadata(&part).unwrap().len();
    assert!(kept > 1 << 20 && kept < size as u64, "{kept}");
    let j = r.pull_json(&["checkpoint-7"]);
    assert!(j["resumed_bytes"].as_u64().unwrap() >= kept, "{j}");
    let sent = j["transferred_bytes"].as_u64().unwrap();
    assert!(
        sent <= j["bytes"].as_u64().unwrap() - kept,
        "the .part was sent again: {j}"
    );
    assert_eq!(tree(&r.here.path().join("box/checkpoint-7")), tree(&d));
    no_parts_left(&r.here.path().join("box/checkpoint-7"));
}

#[test]
fn a_file_rewritten_on_the_box_mid_pull_starts_over_and_arrives_as_it_is_now() {
    let r = Rig::new();
    let d = mkckpt(&r.outputs(), "checkpoint-3", 6 << 20, true);
    let part = r.here.path().join("box/checkpoint-3/model.safetensors.part");
    let mut bg = Bg::spawn(r.cmd(&["pull", "box", "checkpoint-3", "--json", "--limit-rate", "2M"]));
    wait_part_past(&part, 1 << 20, &bg);
    // Rewritten while the link is down, so the box has surely not sent the new version yet (the
    // channel window lets the box run megabytes ahead of the .part). A different size, so even a
    // rewrite within the same second as the original is seen.
    r.proxy.set_mode(Mode::BlackHole);
    bg.wait_stderr("lost", T);
    let tmp = d.join("model.safetensors.tmp");
    std::fs::write(&tmp, noise((5 << 20) + 3, 9)).unwrap();
    std::fs::rename(&tmp, d.join("model.safetensors")).unwrap();
    r.proxy.set_mode(Mode::Pass);
    assert_eq!(bg.wait(T), 0, "{}", bg.stderr());
    let j: serde_json::Value = serde_json::from_slice(&bg.stdout()).unwrap();
    assert_eq!(tree(&r.here.path().join("box/checkpoint-3")), tree(&d), "{j}");
    no_parts_left(&r.here.path().join("box/checkpoint-3"));
}

// ------------------------------------------------------------------------------------------------
// push

/// A local project: `.gitignore`d logs and data, a nested `.gitignore`, a `.git/`, and a file only
/// `push.exclude` keeps here.
fn project(dir: &Path) {
    for (f, body) in [
        (".gitignore", "*.log\ndata/\noutputs/\n"),
        ("src/.gitignore", "gen_*\n"),
        ("src/main.py", "print('hi')\n"),
        ("src/gen_tmp.py", "generated\n"),
        ("src/it's \"odd\" name.py", "odd\n"),
        ("train.log", "log\n"),
        ("data/big.bin", "data\n"),
        (".git/HEAD", "ref: refs/heads/main\n"),
        ("secrets.env", "TOKEN=1\n"),
        ("Makefile", "train:\n\tpython3 src/main.py\n"),
    ] {
        std::fs::create_dir_all(dir.join(f).parent().unwrap()).unwrap();
        std::fs::write(dir.join(f), body).unwrap();
    }
}

fn remote_tree(r: &Rig) -> Vec<String> {
    let w = r.sshd.remote_home.join(WORKDIR);
    tree(&w).into_keys().map(|p| p.display().to_string()).collect()
}

impl Rig {
    fn with_push_exclude() -> Rig {
        let r = Rig::new();
        r.c.write_rtrain_config(&format!(
            "defaults:\n  workdir: ~/{WORKDIR}\n  checkpoint_dir: outputs\n  keepalive: 500ms\npush:\n  exclude: [secrets.env]\n"
        ));
        project(&r.here.path().join("proj"));
        r
    }

    fn push_json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["push", "box", "proj"];
        all.extend_from_slice(args);
        all.push("--json");
        let ran = self.rtrain(&all);
        assert_eq!(ran.code, 0, "{ran}");
        serde_json::from_slice(&ran.stdout).unwrap_or_else(|e| panic!("{e}: {ran}"))
    }
}

#[test]
fn push_sends_what_gitignore_and_push_exclude_keep_then_only_what_changed() {
    let r = Rig::with_push_exclude();
    let j = r.push_json(&[]);
    assert_eq!(
        remote_tree(&r),
        [
            ".gitignore",
            "Makefile",
            "src/.gitignore",
            "src/it's \"odd\" name.py",
            "src/main.py"
        ],
        "{j}"
    );
    assert_eq!(j["sent_files"], 5);
    let w = r.sshd.remote_home.join(WORKDIR);
    assert_eq!(std::fs::read(w.join("src/main.py")).unwrap(), b"print('hi')\n");
    // Nothing changed: nothing travels.
    let j = r.push_json(&[]);
    assert_eq!(j["sent_files"], 0, "{j}");
    assert_eq!(j["stream_bytes"], 0, "{j}");
    // One file changed: only it.
    std::fs::write(r.here.path().join("proj/src/main.py"), "print('changed')\n").unwrap();
    let j = r.push_json(&[]);
    assert_eq!(j["sent_files"], 1, "{j}");
    assert_eq!(j["sent_bytes"], 17, "{j}");
    assert_eq!(std::fs::read(w.join("src/main.py")).unwrap(), b"print('changed')\n");
    // .git/ only when asked.
    let j = r.push_json(&["--git"]);
    assert_eq!(j["sent_files"], 1, "{j}");
    assert!(w.join(".git/HEAD").exists());
}

#[test]
fn push_delete_lists_first_and_spares_ignored_files_and_run_records() {
    let r = Rig::with_push_exclude();
    r.push_json(&[]);
    let w = r.sshd.remote_home.join(WORKDIR);
    std::fs::write(w.join("old.py"), "gone soon\n").unwrap();
    std::fs::create_dir_all(w.join("outputs/checkpoint-1")).unwrap();
    std::fs::write(w.join("outputs/checkpoint-1/model.safetensors"), "weights\n").unwrap();
    std::fs::create_dir_all(w.join(".rtrain/runs/x")).unwrap();
    std::fs::write(w.join(".rtrain/runs/x/command"), "make train\n").unwrap();
    // Without --delete nothing goes.
    let j = r.push_json(&[]);
    assert_eq!(j["deleted"], serde_json::json!([]));
    assert!(w.join("old.py").exists());
    let dry = r.rtrain(&["push", "box", "proj", "--delete", "--dry-run"]);
    assert_eq!(dry.code, 0, "{dry}");
    assert!(
        dry.stderr.contains("would delete on box (1 file)") && dry.stderr.contains("\"old.py\""),
        "{dry}"
    );
    assert!(
        !dry.stderr.contains("model.safetensors") && !dry.stderr.contains(".rtrain"),
        "{dry}"
    );
    assert!(w.join("old.py").exists(), "a dry run deletes nothing");
    let ran = r.rtrain(&["push", "box", "proj", "--delete"]);
    assert_eq!(ran.code, 0, "{ran}");
    assert!(ran.stderr.contains("deleting on box (1 file)"), "{ran}");
    assert!(!w.join("old.py").exists());
    assert!(w.join("outputs/checkpoint-1/model.safetensors").exists());
    assert!(w.join(".rtrain/runs/x/command").exists());
}

#[test]
fn push_is_refused_into_an_active_runs_workdir_unless_forced() {
    let r = Rig::with_push_exclude();
    let up = r.rtrain(&["up", "box", "--", "sleep 120"]);
    assert_eq!(up.code, 0, "{up}");
    let ran = r.rtrain(&["push", "box", "proj"]);
    assert_eq!(ran.code, 1, "{ran}");
    assert!(
        ran.stderr.contains("a run is active") && ran.stderr.contains("--force"),
        "{ran}"
    );
    assert!(!r.sshd.remote_home.join(WORKDIR).join("Makefile").exists());
    let j = r.push_json(&["--force"]);
    assert_eq!(j["sent_files"], 5, "{j}");
    let stop = r.rtrain(&["stop", "box", "--force"]);
    assert_eq!(stop.code, 0, "{stop}");
}

#[test]
fn up_sync_pushes_the_project_then_launches_it() {
    let r = Rig::new();
    let local = r.here.path().join("project");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("docker/gpu-box/project");
    for f in ["train.py", "Makefile", "config/training_config.yaml"] {
        std::fs::create_dir_all(local.join(f).parent().unwrap()).unwrap();
        std::fs::copy(src.join(f), local.join(f)).unwrap();
    }
    let mut cmd = r.c.rtrain();
    cmd.current_dir(&local).args([
        "up",
        "box",
        "--sync",
        "--",
        "python3 train.py --max-steps 4 --save-steps 2 --seconds-per-step 0 --output-dir outputs",
    ]);
    let ran = run_with_timeout(&mut cmd, T);
    assert_eq!(ran.code, 0, "{ran}");
    assert!(
        ran.stdout_str().contains("pushed") && ran.stdout_str().contains("launched run"),
        "{ran}"
    );
    let w = r.sshd.remote_home.join(WORKDIR);
    let start = Instant::now();
    while !w.join("outputs/checkpoint-4/trainer_state.json").exists() {
        assert!(
            start.elapsed() < T,
            "the pushed trainer never saved checkpoint-4: {:?}",
            remote_tree(&r)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        std::fs::read(w.join("train.py")).unwrap(),
        std::fs::read(src.join("train.py")).unwrap()
    );
}

#[test]
fn pull_on_a_terminal_shows_one_bar_for_the_whole_checkpoint() {
    let r = Rig::new();
    let d = mkckpt(&r.outputs(), "checkpoint-9", 3 << 20, true);
    let script = format!(
        "cd '{}' && {} pull box checkpoint-9 --limit-rate 1M; echo EXIT=$?; sleep 30",
        r.here.path().display(),
        rtrain_bin().display()
    );
    // A terminal, and colour allowed: the conditions for a bar.
    let env: Vec<(String, String)> = r.c.env_pairs().into_iter().filter(|(k, _)| k != "NO_COLOR").collect();
    let term = LocalTerm::start(&["sh".into(), "-c".into(), script], &env);
    let screen = term.wait_for("pulling checkpoint-9 [", T);
    assert!(screen.contains("ETA") && screen.contains("MiB"), "{screen}");
    let screen = term.wait_for("EXIT=0", T);
    assert!(screen.contains("pulled checkpoint-9 from box"), "{screen}");
    assert_eq!(tree(&r.here.path().join("box/checkpoint-9")), tree(&d));
}

#[test]
fn a_checkpoint_larger_than_the_local_free_space_is_refused_before_anything_is_sent() {
    let r = Rig::new();
    let d = mkckpt(&r.outputs(), "checkpoint-2", 1000, true);
    // Sparse: 15 TiB on paper, nothing on the box's disk, more than any test machine has free.
    std::fs::File::create(d.join("huge.bin"))
        .unwrap()
        .set_len(15 << 40)
        .unwrap();
    let ran = r.rtrain(&["pull", "box", "checkpoint-2"]);
    assert_eq!(ran.code, 1, "{ran}");
    assert!(ran.stderr.contains("not enough space"), "{ran}");
    assert!(
        !r.here.path().join("box/checkpoint-2").exists(),
        "nothing may be written"
    );
}

#[test]
fn files_travel_in_parallel_over_channels_of_one_connection() {
    let r = Rig::new();
    let d = r.outputs().join("checkpoint-4");
    std::fs::create_dir_all(&d).unwrap();
    for i in 0..4 {
        std::fs::write(d.join(format!("shard-{i}.safetensors")), noise(2 << 20, i)).unwrap();
    }
    std::fs::write(d.join("trainer_state.json"), b"{}").unwrap();
    let j = r.pull_json(&["checkpoint-4", "--limit-rate", "4M"]);
    assert_eq!(j["files"], 5, "{j}");
    let log = r.sshd.log();
    assert_eq!(log.matches("Accepted publickey").count(), 1, "{log}");
    // The most exec sessions open at once on the box.
    let (mut open, mut most) = (0i32, 0i32);
    for line in log.lines() {
        if line.contains("Starting session: command") {
            open += 1;
            most = most.max(open);
        } else if line.contains("Close session") {
            open -= 1;
        }
    }
    assert!(most >= 4, "at most {most} transfers at once:\n{log}");
    assert_eq!(tree(&r.here.path().join("box/checkpoint-4")), tree(&d));
}
