//! The command-line contract of DESIGN.md as clap derive types; parsing only, no I/O.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "rtrain", version, about = "Run and watch a training job on a remote GPU box over SSH", long_about = None)]
pub struct Cli {
    /// rtrain's config file (default: $XDG_CONFIG_HOME/rtrain/config.yaml)
    #[arg(long, global = true, env = "RTRAIN_CONFIG", value_name = "FILE")]
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
    /// Create or reuse the tmux session and launch the run unless one is active
    Up(UpArgs),
    /// Interactive view of the tmux session; reconnects and reattaches by itself
    Attach(HostArg),
    /// Run state, progress, ETA, loss, GPUs, disk, latest checkpoint
    Status(StatusArgs),
    /// Checkpoints sorted by step, with size, age and completeness
    Ckpts(JsonHostArgs),
    /// The run's log
    Logs(LogsArgs),
    /// Stop the run: SIGINT, then SIGTERM, then SIGKILL to its process group
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
    /// Run one command remotely and exit with its status
    Exec(ExecArgs),
    /// The hosts rtrain knows, from its config and ~/.ssh/config
    Hosts(HostsArgs),
    /// Print a shell completion script
    Completions(CompletionsArgs),
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
    pub host: String,
    /// Attach to the session after launching
    #[arg(long)]
    pub attach: bool,
    /// Resume from the newest complete checkpoint (as `rtrain resume`), then launch
    #[arg(long)]
    pub resume: bool,
    /// Push the current directory to the workdir first (as `rtrain push HOST`)
    #[arg(long)]
    pub sync: bool,
    /// The training command (default: `command` from the config)
    #[arg(last = true, value_name = "CMD")]
    pub cmd: Vec<String>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Hosts to query (concurrently)
    pub hosts: Vec<String>,
    /// Every host in rtrain's config
    #[arg(long, conflicts_with = "hosts")]
    pub all: bool,
    #[arg(long)]
    pub json: bool,
    /// Refresh every few seconds over one kept-open connection
    #[arg(long)]
    pub watch: bool,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
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
    pub host: String,
    /// Seconds to wait after SIGINT (and again after SIGTERM) before escalating
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    pub timeout: u64,
    /// Straight to SIGKILL
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
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
    pub host: String,
    /// LOCAL[:REMOTE] port, e.g. 6006 or 8080:6006
    #[arg(value_name = "PORT[:REMOTE]")]
    pub ports: String,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
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
    #[arg(long)]
    pub json: bool,
    /// Only this host, resolved (like `ssh -G`)
    pub host: Option<String>,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

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

    #[test]
    fn status_all_conflicts_with_hosts() {
        assert!(Cli::try_parse_from(["rtrain", "status", "a", "--all"]).is_err());
    }
}
