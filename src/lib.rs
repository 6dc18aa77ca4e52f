//! rtrain: run and watch a training job on a remote GPU box over SSH, surviving dropped networks
//! and laptop sleep. `run` is the whole program behind a thin `main`, so tests can call it.

pub mod cli;
pub mod commands;
pub mod config;
#[cfg(test)]
mod fuzz;
pub mod remote;
pub mod report;
pub mod ssh;
pub mod train;
pub mod ui;

use std::path::PathBuf;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// What rtrain takes from its process environment, gathered once so tests can supply their own.
#[derive(Clone)]
pub struct Env {
    pub home: PathBuf,
    pub xdg_config_home: Option<PathBuf>,
    pub agent_socket: Option<PathBuf>,
    pub local_user: String,
    pub prompter: Arc<dyn ssh::Prompter>,
    /// stdout is a terminal and NO_COLOR is unset: tables may use colour and progress bars.
    pub fancy: bool,
    /// stdin and stderr are a terminal: there is someone to ask.
    pub interactive: bool,
}

impl Env {
    pub fn from_process() -> Env {
        use std::io::IsTerminal;
        let base = directories::BaseDirs::new();
        let home = base
            .as_ref()
            .map(|b| b.home_dir().to_path_buf())
            .or_else(|| std::env::var_os("HOME").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("/"));
        let xdg_config_home = base.as_ref().map(|b| b.config_dir().to_path_buf());
        let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
        let fancy = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        let prompter: Arc<dyn ssh::Prompter> = if interactive {
            Arc::new(ui::prompt::TerminalPrompter)
        } else {
            Arc::new(ssh::NoPrompt)
        };
        Env {
            home,
            xdg_config_home,
            agent_socket: std::env::var_os("SSH_AUTH_SOCK")
                .filter(|s| !s.is_empty())
                .map(PathBuf::from),
            local_user: local_user(),
            prompter,
            fancy,
            interactive,
        }
    }
}

fn local_user() -> String {
    for var in ["USER", "LOGNAME"] {
        if let Ok(u) = std::env::var(var) {
            if !u.is_empty() {
                return u;
            }
        }
    }
    // SAFETY: getpwuid returns a pointer to static storage or null; we copy the name out at once.
    unsafe {
        let pw = libc::getpwuid(libc::geteuid());
        if !pw.is_null() && !(*pw).pw_name.is_null() {
            return std::ffi::CStr::from_ptr((*pw).pw_name).to_string_lossy().into_owned();
        }
    }
    "root".to_string()
}

/// A token cancelled by the first Ctrl-C (SIGINT) or SIGTERM.
pub fn shutdown_on_ctrl_c(runtime: &tokio::runtime::Runtime) -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    runtime.spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let term_fut = async {
            match term.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term_fut => {},
        }
        t.cancel();
    });
    token
}

/// Run one command line; returns the process exit code (DESIGN.md "Exit codes").
pub async fn run(cli: cli::Cli, env: Env, shutdown: CancellationToken) -> u8 {
    let verbose = cli.verbose;
    match commands::dispatch(cli, env, shutdown).await {
        Ok(code) => code,
        Err(e) => {
            let code = commands::exit_code_for(&e);
            if code != 130 || verbose > 0 {
                ui::report_error(&e, verbose);
            }
            code
        }
    }
}
