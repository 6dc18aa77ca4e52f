//! One test project for the integration tests that drive the stand-in trainer: a box with the demo
//! project (docker/gpu-box/project) in a workdir, rtrain configured to run a command there, and the
//! polls every such test needs. The lifecycle, protect and notify tests each had their own copy of
//! this; their own helpers stay beside them as further `impl Project` blocks.

use super::{copy_dir, run_with_timeout, Client, Proxy, Ran, Sshd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long one rtrain command of a project test may take.
const T: Duration = Duration::from_secs(90);

pub struct Project {
    pub sshd: Sshd,
    pub c: Client,
    /// The workdir on the box (under its HOME).
    pub dir: PathBuf,
    /// Between rtrain and sshd when built `through_proxy`.
    pub proxy: Option<Proxy>,
}

/// What [`Project::builder`] sets up; [`ProjectBuilder::build`] makes it.
pub struct ProjectBuilder {
    sshd: Option<Sshd>,
    command: String,
    workdir: String,
    session: Option<String>,
    extra: String,
    via_proxy: bool,
    training_config_edits: Vec<(String, String)>,
}

impl ProjectBuilder {
    /// The box to use (default: a fresh full one, `Sshd::start()`).
    pub fn on(mut self, sshd: Sshd) -> Self {
        self.sshd = Some(sshd);
        self
    }

    /// The workdir under the box's HOME (default `proj`).
    pub fn workdir(mut self, rel: &str) -> Self {
        self.workdir = rel.to_string();
        self
    }

    pub fn session(mut self, name: &str) -> Self {
        self.session = Some(name.to_string());
        self
    }

    /// More YAML under `defaults:`, indented two spaces.
    pub fn extra(mut self, yaml: &str) -> Self {
        self.extra.push_str(yaml);
        self
    }

    /// Reached through the fault-injecting proxy, with keepalives that notice a dead link in about 1.5 s.
    pub fn through_proxy(mut self) -> Self {
        self.via_proxy = true;
        self
    }

    /// Replace `from` by `to` in the project's config/training_config.yaml.
    pub fn train_config(mut self, from: &str, to: &str) -> Self {
        self.training_config_edits.push((from.to_string(), to.to_string()));
        self
    }

    pub fn build(self) -> Project {
        let sshd = self.sshd.unwrap_or_else(Sshd::start);
        let proxy = self.via_proxy.then(|| Proxy::start(sshd.port));
        let c = match &proxy {
            Some(p) => p.client_for(&sshd),
            None => Client::for_box(&sshd),
        };
        let dir = sshd.remote_home.join(&self.workdir);
        copy_dir(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("docker/gpu-box/project"),
            &dir,
        );
        if !self.training_config_edits.is_empty() {
            let cfg = dir.join("config/training_config.yaml");
            let mut text = std::fs::read_to_string(&cfg).unwrap();
            for (from, to) in &self.training_config_edits {
                assert!(text.contains(from.as_str()), "the demo training config has no {from:?}");
                text = text.replace(from.as_str(), to);
            }
            std::fs::write(&cfg, text).unwrap();
        }
        let yaml_str = |s: &str| serde_json::to_string(s).unwrap(); // JSON strings are YAML strings
        let mut yaml = format!(
            "defaults:\n  workdir: {}\n  command: {}\n",
            yaml_str(&format!("~/{}", self.workdir)),
            yaml_str(&self.command)
        );
        if let Some(s) = &self.session {
            yaml += &format!("  session: {}\n", yaml_str(s));
        }
        if self.via_proxy {
            yaml += "  keepalive: 500ms\n";
        }
        yaml += &self.extra;
        c.write_rtrain_config(&yaml);
        Project { sshd, c, dir, proxy }
    }
}

impl Project {
    /// A project running `command` (rtrain's `command:`), to be adjusted and then built.
    pub fn builder(command: &str) -> ProjectBuilder {
        ProjectBuilder {
            sshd: None,
            command: command.to_string(),
            workdir: "proj".to_string(),
            session: None,
            extra: String::new(),
            via_proxy: false,
            training_config_edits: Vec::new(),
        }
    }

    pub fn rtrain(&self, args: &[&str]) -> Ran {
        run_with_timeout(self.c.rtrain().args(args), T)
    }

    pub fn status(&self) -> serde_json::Value {
        let ran = self.rtrain(&["status", "box", "--json"]);
        assert_eq!(ran.code, 0, "{ran}");
        serde_json::from_slice(&ran.stdout).unwrap()
    }

    /// The run's whole log, as `logs -n all` prints it.
    pub fn log_text(&self) -> String {
        self.rtrain(&["logs", "box", "-n", "all"]).stdout_str()
    }

    /// Poll `status --json` until `ok` holds; panics with the last answer and the log after `limit`.
    pub fn wait_status(
        &self,
        what: &str,
        limit: Duration,
        ok: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let start = Instant::now();
        loop {
            let v = self.status();
            if ok(&v) {
                return v;
            }
            if start.elapsed() > limit {
                panic!("never {what}: {v:#}\n--- log\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Poll until the run is in state `want`.
    pub fn wait_state(&self, want: &str, limit: Duration) -> serde_json::Value {
        self.wait_status(&format!("in state {want}"), limit, |v| v["run"]["state"] == want)
    }
}
