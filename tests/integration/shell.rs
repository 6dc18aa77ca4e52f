//! Issue 19 ("the run sees the user's shell"): a run gets the environment its user's login shell builds, as a
//! command typed into a tmux pane does: `.profile` then `.bashrc` below Debian's interactive guard, a conda-like
//! env activated there, zsh's `.zprofile`/`.zshrc`; `shell: sh` gets none of it; a `.bashrc` that waits does not
//! hang `up`; the login shell's job-control complaints never reach the log; `stop` still stops the run. On
//! every backend (tmux, screen, nohup; Slurm's batch script in slurm.rs).

use crate::support::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(60);

/// Debian's stock ~/.profile (the part that matters): bash sources ~/.bashrc.
const PROFILE: &str = r#"# ~/.profile: executed by the command interpreter for login shells.
if [ -n "$BASH_VERSION" ]; then
    # include .bashrc if it exists
    if [ -f "$HOME/.bashrc" ]; then
	. "$HOME/.bashrc"
    fi
fi
if [ -d "$HOME/bin" ] ; then
    PATH="$HOME/bin:$PATH"
fi
export FROM_PROFILE=profile
"#;

/// Debian's stock guard, then what `conda init` and users add below it; it also talks on stdout and stderr.
const BASHRC: &str = r#"# ~/.bashrc: executed by bash(1) for non-login shells.
# If not running interactively, don't do anything
case $- in
    *i*) ;;
      *) return;;
esac
HISTCONTROL=ignoreboth
echo "bashrc says hello on stdout"
echo "bashrc says hello on stderr" >&2
export FROM_BASHRC='from .bashrc'
export HOSTILE='it'\''s "$(touch PWNED)" `touch PWNED`
second line'
export OVERRIDDEN=bashrc
. "$HOME/miniconda3/bin/activate" train
"#;

/// A conda-like install: `activate` puts the env's bin first, whose `python` says who it is.
fn conda_like(home: &Path) {
    let bin = home.join("miniconda3/envs/train/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(home.join("miniconda3/bin")).unwrap();
    std::fs::write(
        bin.join("python"),
        "#!/bin/sh\necho \"python of the conda env train ($CONDA_DEFAULT_ENV)\"\n",
    )
    .unwrap();
    std::fs::write(
        home.join("miniconda3/bin/activate"),
        "CONDA_DEFAULT_ENV=$1\nexport CONDA_DEFAULT_ENV\nPATH=\"$HOME/miniconda3/envs/$1/bin:$PATH\"\nexport PATH\n",
    )
    .unwrap();
    set_mode(&bin.join("python"), 0o755);
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// What the run prints about its environment.
const SHOW: &str = "echo \"bashrc=[$FROM_BASHRC] profile=[$FROM_PROFILE] overridden=[$OVERRIDDEN]\"; \
                    printf 'hostile=[%s]\\n' \"$HOSTILE\"; python || echo no python; echo \"term=[${TERM:-}]\"";

struct Box_ {
    sshd: Sshd,
    c: Client,
    wd: PathBuf,
}

impl Box_ {
    fn new(sshd: Sshd, extra_config: &str) -> Box_ {
        let c = Client::for_box(&sshd);
        let wd = sshd.remote_home.join("project");
        std::fs::create_dir_all(&wd).unwrap();
        conda_like(&sshd.remote_home);
        let b = Box_ { sshd, c, wd };
        b.config(extra_config);
        b
    }

    fn config(&self, extra: &str) {
        self.c.write_rtrain_config(&format!(
            "defaults:\n  workdir: ~/project\n  env:\n    OVERRIDDEN: config\n{extra}"
        ));
    }

    fn home(&self, name: &str, text: &str) {
        std::fs::write(self.sshd.remote_home.join(name), text).unwrap();
    }

    fn rtrain(&self, args: &[&str]) -> Ran {
        run_with_timeout(self.c.rtrain().args(args), T)
    }

    fn status(&self) -> serde_json::Value {
        let ran = self.rtrain(&["status", "box", "--json"]);
        assert_eq!(ran.code, 0, "{ran}");
        serde_json::from_slice(&ran.stdout).unwrap()
    }

    fn wait_state(&self, want: &str) -> serde_json::Value {
        let start = Instant::now();
        loop {
            let v = self.status();
            if v["run"]["state"] == want {
                return v;
            }
            assert!(
                start.elapsed() < T,
                "the run never became {want}: {v:#}\n{}",
                self.sshd.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `up --json -- CMD` until the run ends: the JSON document and the run's log.
    fn run(&self, command: &str) -> (serde_json::Value, String) {
        let ran = self.rtrain(&["up", "box", "--json", "--", command]);
        assert_eq!(ran.code, 0, "{ran}");
        let doc: serde_json::Value = serde_json::from_slice(&ran.stdout).unwrap_or_else(|e| panic!("{e}: {ran}"));
        let v = self.wait_state("finished");
        let log = std::fs::read_to_string(v["run"]["log"].as_str().unwrap()).unwrap();
        (doc, log)
    }

    fn no_injection(&self) {
        for dir in [&self.sshd.remote_home, &self.wd] {
            assert!(
                !dir.join("PWNED").exists(),
                "a value from .bashrc ran in {}",
                dir.display()
            );
        }
    }
}

/// Nothing of the login shell's own chatter or job-control complaints reaches the log.
fn assert_quiet(log: &str) {
    for noise in [
        "bashrc says hello",
        "job control",
        "terminal process group",
        "Inappropriate ioctl",
    ] {
        assert!(!log.contains(noise), "{noise:?} in the log:\n{log}");
    }
}

crate::per_backend! {
/// The run sees what .profile and .bashrc (below its interactive guard) export, and the conda-like env's python;
/// the config's `env:` still wins; `shell: sh` gets none of it and `up` says so.
fn the_run_gets_the_login_shells_environment_and_shell_sh_does_not(kind) {
    let b = Box_::new(kind.sshd(), "");
    b.home(".profile", PROFILE);
    b.home(".bashrc", BASHRC);
    let (doc, log) = b.run(SHOW);
    assert!(log.contains("bashrc=[from .bashrc] profile=[profile] overridden=[config]"), "{log}");
    assert!(log.contains("hostile=[it's \"$(touch PWNED)\" `touch PWNED`\nsecond line]"), "{log}");
    assert!(log.contains("python of the conda env train (train)"), "{log}");
    assert_quiet(&log);
    assert_eq!(doc["result"], "launched", "{doc:#}");
    assert_eq!(doc["run"]["backend"], kind.name(), "{doc:#}");
    assert_eq!(doc["shell"]["asked"], "login", "{doc:#}");
    assert_eq!(doc["shell"]["got"], "login", "{doc:#}");
    assert!(doc["shell"]["program"].as_str().is_some_and(|p| p.ends_with("/bash")), "{doc:#}");
    assert!(doc["shell"]["warning"].is_null(), "{doc:#}");
    // The login shell's own environment file is the user's only.
    let rd = b.wd.join(".rtrain/runs").join(doc["run"]["id"].as_str().unwrap());
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(rd.join("login.env")).unwrap().permissions());
    assert_eq!(mode & 0o077, 0, "login.env is mode {mode:o}");
    // A tmux or screen window keeps its own TERM: the exec channel's (none) is not carried over.
    if kind.has_session() {
        assert!(!log.contains("term=[]"), "{log}");
    }
    // The default is not announced.
    let ran = b.rtrain(&["up", "box", "--", "true"]);
    assert_eq!(ran.code, 0, "{ran}");
    assert!(!ran.stdout_str().contains("shell:"), "{ran}");
    b.wait_state("finished");

    b.config("  shell: sh\n");
    let (doc, log) = b.run(SHOW);
    assert!(log.contains("bashrc=[] profile=[] overridden=[config]"), "{log}");
    assert!(!log.contains("conda env"), "{log}");
    assert_eq!((&doc["shell"]["asked"], &doc["shell"]["got"]), (&"sh".into(), &"sh".into()), "{doc:#}");
    let ran = b.rtrain(&["up", "box", "--", "true"]);
    assert!(ran.stdout_str().contains("shell:   plain sh (shell: sh)"), "{ran}");
    b.no_injection();
}
}

crate::per_backend! {
/// A .bashrc that reads its stdin gets end of file, and one that sleeps is cut off after `shell_timeout`: `up`
/// returns, says why the run got plain sh, and the run still runs.
fn a_bashrc_that_reads_stdin_or_sleeps_does_not_hang_up(kind) {
    let b = Box_::new(kind.sshd(), "  shell_timeout: 2s\n");
    b.home(".profile", PROFILE);
    b.home(".bashrc", "case $- in *i*) ;; *) return;; esac\nread -r answer\nexport FROM_BASHRC=\"read [$answer]\"\n");
    let (doc, log) = b.run(SHOW);
    assert!(log.contains("bashrc=[read []]"), "{log}");
    assert_eq!(doc["shell"]["got"], "login", "{doc:#}");

    // A sleep no other test (these run at once, one per backend) runs.
    let sleep = match kind {
        Kind::Tmux => "sleep 29.125",
        Kind::Screen => "sleep 29.25",
        Kind::Nohup => "sleep 29.375",
    };
    b.home(".bashrc", &format!("case $- in *i*) ;; *) return;; esac\nexport FROM_BASHRC=late\n{sleep}\n"));
    let start = Instant::now();
    let ran = b.rtrain(&["up", "box", "--", SHOW]);
    let took = start.elapsed();
    assert_eq!(ran.code, 0, "{ran}");
    assert!(took < Duration::from_secs(15), "up took {took:?}: {ran}");
    assert!(
        ran.stderr.contains("got plain sh's environment") && ran.stderr.contains("did not finish within 2s"),
        "{ran}"
    );
    assert!(ran.stdout_str().contains("shell:   plain sh"), "{ran}");
    let v = b.wait_state("finished");
    let log = std::fs::read_to_string(v["run"]["log"].as_str().unwrap()).unwrap();
    assert!(log.contains("bashrc=[] profile=[]"), "{log}");
    assert_quiet(&log);
    // The cut-off shell left nothing behind (timeout kills its whole process group, the sleep too). A tmux or
    // screen window's own login shell, once the run has ended, reads that .bashrc too: its sleep has a terminal.
    let left = std::process::Command::new("pgrep").args(["-f", &format!("^{sleep}$")]).output().unwrap();
    let without_tty: Vec<&str> = std::str::from_utf8(&left.stdout)
        .unwrap()
        .split_whitespace()
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // Field 7, tty_nr, after the parenthesised command name.
            stat.rsplit_once(") ").and_then(|(_, rest)| rest.split(' ').nth(4)) == Some("0")
        })
        .collect();
    assert!(without_tty.is_empty(), "left running without a terminal: {without_tty:?}");
}
}

crate::per_backend! {
/// zsh users get their .zprofile and .zshrc (a box whose login shell is zsh: `SHELL` from sshd).
fn a_zsh_user_gets_zprofile_and_zshrc(kind) {
    let zsh = ["/usr/bin/zsh", "/bin/zsh"].into_iter().find(|p| Path::new(p).exists());
    let zsh = zsh.expect("zsh is not installed: ./scripts/test.sh installs it (apt-get install zsh)");
    let b = Box_::new(kind.sshd_with_env(&[("SHELL", zsh)]), "");
    b.home(".zprofile", "export FROM_PROFILE=zprofile\n");
    b.home(
        ".zshrc",
        "[[ -o interactive ]] || return\necho 'zshrc says hello'\nexport FROM_BASHRC=zshrc\nsource \"$HOME/miniconda3/bin/activate\" train\n",
    );
    let (doc, log) = b.run(SHOW);
    assert!(log.contains("bashrc=[zshrc] profile=[zprofile]"), "{log}");
    assert!(log.contains("python of the conda env train (train)"), "{log}");
    assert!(!log.contains("zshrc says hello"), "{log}");
    assert_eq!(doc["shell"]["program"], zsh, "{doc:#}");
}
}

crate::per_backend! {
/// The command still runs in the wrapper's process group: `stop`'s SIGINT reaches it, and a command that
/// ignores SIGINT is stopped by SIGTERM.
fn stop_still_stops_a_run_with_the_login_environment(kind) {
    let b = Box_::new(kind.sshd(), "");
    b.home(".profile", PROFILE);
    b.home(".bashrc", BASHRC);
    let wait = "echo \"ready [$FROM_BASHRC]\"; while :; do sleep 0.1; done";
    let on_int = format!("trap 'echo got INT; exit 130' INT; {wait}");
    let ignores_int = format!("trap '' INT; {wait}");
    for (command, signal, code) in [(on_int.as_str(), "SIGINT", 130), (ignores_int.as_str(), "SIGTERM", 143)] {
        let ran = b.rtrain(&["up", "box", "--", command]);
        assert_eq!(ran.code, 0, "{ran}");
        let v = b.wait_state("running");
        let log = PathBuf::from(v["run"]["log"].as_str().unwrap());
        let start = Instant::now();
        while !std::fs::read_to_string(&log).unwrap().contains("ready [from .bashrc]") {
            assert!(start.elapsed() < T, "{}", std::fs::read_to_string(&log).unwrap());
            std::thread::sleep(Duration::from_millis(50));
        }
        let ran = b.rtrain(&["stop", "box", "--timeout", "2"]);
        assert_eq!(ran.code, 0, "{ran}");
        assert!(ran.stdout_str().contains(&format!("after {signal}")), "{ran}");
        let v = b.wait_state("stopped");
        assert_eq!(v["run"]["exit_code"], code, "{v:#}");
        assert_quiet(&std::fs::read_to_string(&log).unwrap());
    }
}
}
