//! The command-line contract of DESIGN.md as clap derive types; parsing only, no I/O.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::ffi::OsString;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "rtrain", version, about = "Run and watch a training job on a remote GPU box over SSH", long_about = None)]
pub struct Cli {
    /// rtrain's config file (default: $RTRAIN_CONFIG, else $XDG_CONFIG_HOME/rtrain/config.yaml)
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// More detail (-v: notes such as ignored ssh_config keywords; -vv: connection steps)
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Only errors
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Record the host key of a host seen for the first time without asking (like OpenSSH's
    /// StrictHostKeyChecking=accept-new). A changed key is still refused.
    #[arg(long, global = true)]
    pub accept_new_host_key: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Launch the run (in a tmux or screen session, or under nohup) unless one is active
    Up(UpArgs),
    /// Interactive view of the run's session (the live log without one); reconnects by itself
    Attach(HostArg),
    /// Run state, progress, ETA, loss, GPUs, disk, latest checkpoint
    Status(StatusArgs),
    /// Full-screen live dashboard: loss chart, progress, GPUs, work at risk
    Top(TopArgs),
    /// Checkpoints sorted by step, with size, age and completeness
    Ckpts(JsonHostArgs),
    /// The run's log
    Logs(LogsArgs),
    /// Stop the run (stop_signal, default SIGINT, then SIGTERM, then SIGKILL), optionally right after its next checkpoint
    Stop(StopArgs),
    /// Pick the newest complete checkpoint, set it in the training config, relaunch
    Resume(ResumeArgs),
    /// Checkpoint-safety report: interval, size, disk projection, risk
    Check(JsonHostArgs),
    /// Download a checkpoint: resumable, several files at once, verified by SHA-256
    Pull(PullArgs),
    /// Send the local project to the host's workdir: only what changed, .gitignore respected
    Push(PushArgs),
    /// Forward a local port to the remote box over the same SSH link (e.g. TensorBoard)
    Forward(ForwardArgs),
    /// Block until the runs end (across drops and sleep); exit 0 only when all finished with exit 0
    Wait(WaitArgs),
    /// Notifications: `notify test HOST` sends a test event through every configured channel
    Notify(NotifyArgs),
    /// Run one command remotely and exit with its status
    Exec(ExecArgs),
    /// The hosts rtrain knows, from its config and ~/.ssh/config
    Hosts(HostsArgs),
    /// Print a shell completion script
    Completions(CompletionsArgs),
}

#[derive(Debug, Args)]
pub struct TopArgs {
    /// Hosts to watch: from rtrain's config, ~/.ssh/config aliases, or [user@]host[:port]
    pub hosts: Vec<String>,
    /// Every host in rtrain's config
    #[arg(long, conflicts_with = "hosts")]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct HostArg {
    /// A host from rtrain's config, an alias from ~/.ssh/config, or [user@]host[:port]
    pub host: String,
}

#[derive(Debug, Args)]
pub struct JsonHostArgs {
    /// A host from rtrain's config, an alias from ~/.ssh/config, or [user@]host[:port]
    pub host: String,
    /// Machine-readable output with stable field names
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// A host from rtrain's config, an alias from ~/.ssh/config, or [user@]host[:port]
    pub host: String,
    /// Attach to the session after launching
    #[arg(long)]
    pub attach: bool,
    /// Resume from the newest complete checkpoint (as `rtrain resume`), then launch
    #[arg(long)]
    pub resume: bool,
    /// Train from scratch: set the training config's resume_from_checkpoint to null, then launch
    #[arg(long, conflicts_with = "resume")]
    pub fresh: bool,
    /// Push the current directory to the workdir first (as `rtrain push HOST`)
    #[arg(long)]
    pub sync: bool,
    /// What keeps the run alive: auto (tmux, else screen, else nohup), tmux, screen or nohup
    /// (default: `backend` from the config)
    #[arg(long, value_name = "B", value_parser = parse_backend)]
    pub backend: Option<crate::remote::backend::Choice>,
    /// Print what was launched (or the active run) as JSON: run id, pid, backend, log, and the shell
    /// environment the run got
    #[arg(long, conflicts_with_all = ["attach", "resume"])]
    pub json: bool,
    /// The training command (default: `command` from the config)
    #[arg(last = true, value_name = "CMD")]
    pub cmd: Vec<String>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Hosts to ask (concurrently): from rtrain's config, ~/.ssh/config aliases, or [user@]host[:port]
    pub hosts: Vec<String>,
    /// Every host in rtrain's config
    #[arg(long, conflicts_with = "hosts")]
    pub all: bool,
    /// Machine-readable output with stable field names (an array for several hosts)
    #[arg(long)]
    pub json: bool,
    /// Refresh every 5 s over one kept-open connection per host, until Ctrl-C
    #[arg(long)]
    pub watch: bool,
    /// With --json: add the loss curve as `progress.history`
    #[arg(long)]
    pub history: bool,
    /// With --watch: a desktop and terminal alert when a run ends or stalls
    #[arg(long, requires = "watch")]
    pub notify: bool,
}

#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Hosts whose current runs to wait for (concurrently)
    #[arg(required = true)]
    pub hosts: Vec<String>,
    /// Give up after this long (e.g. 12h), exit 1, and leave the runs alone
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<std::time::Duration>,
    /// One JSON line per host as its run ends (the `status --json` document)
    #[arg(long)]
    pub json: bool,
    /// A desktop and terminal alert for each run that ends (and each stall)
    #[arg(long)]
    pub notify: bool,
}

#[derive(Debug, Args)]
pub struct NotifyArgs {
    #[command(subcommand)]
    pub command: NotifyCommand,
}

#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// Send a test event through every channel configured for HOST and say which worked
    Test(HostArg),
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// A host from rtrain's config, an alias from ~/.ssh/config, or [user@]host[:port]
    pub host: String,
    /// Follow the log across reconnects until Ctrl-C or the run ends
    #[arg(short, long)]
    pub follow: bool,
    /// Lines to show from the end (a number, or `all`)
    #[arg(short = 'n', long = "lines", default_value = "50", value_name = "N")]
    pub lines: String,
    /// A run id (default: the current run)
    #[arg(long, value_name = "ID")]
    pub run: Option<String>,
    /// The bytes as written, with every carriage-return progress redraw
    #[arg(long)]
    pub raw: bool,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    /// A host from rtrain's config, an alias from ~/.ssh/config, or [user@]host[:port]
    pub host: String,
    /// Seconds to wait after SIGINT (and again after SIGTERM) before escalating
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    pub timeout: u64,
    /// Straight to SIGKILL
    #[arg(long)]
    pub force: bool,
    /// Wait until a complete checkpoint newer than the current newest appears, then stop
    #[arg(long)]
    pub at_checkpoint: bool,
    /// With --at-checkpoint: give up waiting after this long (e.g. 20m), leaving the run alone
    #[arg(long, value_name = "DURATION", requires = "at_checkpoint", value_parser = parse_duration)]
    pub wait_timeout: Option<std::time::Duration>,
    /// Do not ask for confirmation when stopping now loses work
    #[arg(long, short = 'y')]
    pub yes: bool,
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| format!("{e} (try `20m` or `90s`)"))
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// A host from rtrain's config, an alias from ~/.ssh/config, or [user@]host[:port]
    pub host: String,
    /// A checkpoint name or path (default: the newest complete one)
    #[arg(long, value_name = "CKPT")]
    pub from: Option<String>,
    /// Show what would change, change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Accept an incomplete checkpoint given with --from
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// A host from rtrain's config, an alias from ~/.ssh/config, or [user@]host[:port]
    pub host: String,
    /// `latest` (the newest complete checkpoint), `best` (trainer_state's best_model_checkpoint),
    /// a checkpoint name, or a path relative to the workdir or absolute
    #[arg(default_value = "latest")]
    pub what: String,
    /// Where to put it (default: ./HOST/NAME/)
    pub dest: Option<PathBuf>,
    /// Skip optimizer, scheduler, scaler and RNG state (often two thirds of the bytes)
    #[arg(long)]
    pub weights_only: bool,
    /// Skip files matching GLOB (a path relative to the checkpoint, or a file name); repeatable
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Accept an incomplete checkpoint named explicitly
    #[arg(long)]
    pub force: bool,
    /// Files sent at the same time, each over its own channel of the one connection
    #[arg(long, default_value_t = 4, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,
    /// At most this many bytes per second in total (e.g. 500K, 20M)
    #[arg(long, value_name = "RATE")]
    pub limit_rate: Option<String>,
    /// A summary as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// A host from rtrain's config, an alias from ~/.ssh/config, or [user@]host[:port]
    pub host: String,
    /// The local project directory (default: the current directory)
    pub dir: Option<PathBuf>,
    /// Also delete files on the box that are not here (listed first; ignored files are kept)
    #[arg(long)]
    pub delete: bool,
    /// Push even while a run is active in the workdir
    #[arg(long)]
    pub force: bool,
    /// Send `.git/` too
    #[arg(long)]
    pub git: bool,
    /// Only list what would be sent and deleted
    #[arg(long)]
    pub dry_run: bool,
    /// A summary as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ForwardArgs {
    /// A host from rtrain's config, an alias from ~/.ssh/config, or [user@]host[:port]
    pub host: String,
    /// LOCAL[:REMOTE] port, e.g. 6006 or 8080:6006
    #[arg(value_name = "PORT[:REMOTE]")]
    pub ports: String,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// A host from rtrain's config, an alias from ~/.ssh/config, or [user@]host[:port]
    pub host: String,
    /// Pass one string to the remote shell as is (for pipes and redirections)
    #[arg(long, value_name = "STRING", conflicts_with = "args")]
    pub shell: Option<String>,
    /// Seconds before giving up on the remote command (default: no limit)
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
    /// The command and its arguments, each quoted for the remote shell
    #[arg(last = true, value_name = "ARGS")]
    pub args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct HostsArgs {
    /// Machine-readable output
    #[arg(long)]
    pub json: bool,
    /// Only this host, resolved (like `ssh -G`)
    pub host: Option<String>,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to write the script for
    pub shell: Shell,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
    Elvish,
    Powershell,
}

impl Cli {
    /// The process's command line, with `RTRAIN_CONFIG` standing in for an absent `--config`.
    /// Not clap's `env`: clap counts a value from the environment as given on the command line and
    /// then prints `--config <FILE>` in every usage line, as if it were required.
    pub fn parse_with_env() -> Cli {
        Cli::parse().with_config_env(std::env::var_os("RTRAIN_CONFIG"))
    }

    /// `--config` when given, else `rtrain_config` (the value of `RTRAIN_CONFIG`) unless empty.
    pub fn with_config_env(mut self, rtrain_config: Option<OsString>) -> Cli {
        if self.config.is_none() {
            self.config = rtrain_config.filter(|v| !v.is_empty()).map(PathBuf::from);
        }
        self
    }
}

fn parse_backend(s: &str) -> Result<crate::remote::backend::Choice, String> {
    crate::remote::backend::Choice::parse(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn rtrain_config_stands_in_for_config_and_the_flag_wins() {
        let parse = |args: &[&str], env: Option<&str>| {
            Cli::try_parse_from(args)
                .unwrap()
                .with_config_env(env.map(OsString::from))
                .config
        };
        let env = Some("/env.yaml");
        assert_eq!(parse(&["rtrain", "hosts"], env), Some(PathBuf::from("/env.yaml")));
        assert_eq!(
            parse(&["rtrain", "--config", "/flag.yaml", "hosts"], env),
            Some(PathBuf::from("/flag.yaml"))
        );
        assert_eq!(
            parse(&["rtrain", "hosts"], Some("")),
            None,
            "an empty RTRAIN_CONFIG is unset"
        );
        assert_eq!(parse(&["rtrain", "hosts"], None), None);
    }

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn exec_keeps_every_word_after_double_dash() {
        let cli = Cli::try_parse_from(["rtrain", "exec", "box", "--", "echo", "--flag", "a b"]).unwrap();
        match cli.command {
            Command::Exec(a) => assert_eq!(a.args, vec!["echo", "--flag", "a b"]),
            other => panic!("{other:?}"),
        }
    }

    /// Regression: `rtrain status --help` showed `--json` without a word. Every argument of every
    /// command says what it is for.
    #[test]
    fn every_argument_of_every_command_has_a_help_line() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                if arg.get_help().is_none_or(|h| h.to_string().trim().is_empty()) {
                    missing.push(format!("{path} {}", arg.get_id()));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub.get_about().is_none() {
                    missing.push(format!("{path} {} (no about)", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "rtrain", &mut missing);
        assert!(missing.is_empty(), "arguments without help: {missing:?}");
    }

    #[test]
    fn watch_help_names_the_real_interval() {
        let cmd = Cli::command();
        let status = cmd.find_subcommand("status").unwrap();
        let watch = status.get_arguments().find(|a| a.get_id() == "watch").unwrap();
        let secs = crate::commands::probe::WATCH_INTERVAL.as_secs();
        let help = watch.get_help().unwrap().to_string();
        assert!(help.contains(&format!("every {secs} s")), "{help}");
    }

    #[test]
    fn status_all_conflicts_with_hosts() {
        assert!(Cli::try_parse_from(["rtrain", "status", "a", "--all"]).is_err());
    }
}
