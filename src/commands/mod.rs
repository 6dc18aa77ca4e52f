//! One file per command, each glue between ssh, remote and ui; this file holds what they share.

pub mod attach;
mod exec;
mod forward;
mod hosts;
mod notify;
pub mod probe;
mod pull;
mod push;
mod resilient;
pub mod run;
mod top;
mod wait;

use crate::cli::{Cli, Command};
use crate::config::{self, ConfigError, ConfigFile, Paths, Target};
use crate::ssh::ssh_config::StrictHostKeyChecking;
use crate::ssh::{self, ConnectOptions, Session, SshError};
use crate::Env;
use tokio_util::sync::CancellationToken;

/// Errors of the command layer that map to particular exit codes.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("interrupted")]
    Interrupted,
    #[error("{0}")]
    Usage(String),
}

/// DESIGN.md's exit codes, found anywhere in the error's chain.
pub fn exit_code_for(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if let Some(l) = cause.downcast_ref::<ssh::link::LinkError>() {
            return l.exit_code();
        }
        if let Some(s) = cause.downcast_ref::<SshError>() {
            return s.exit_code();
        }
        if cause.downcast_ref::<ConfigError>().is_some() {
            return 2;
        }
        if let Some(c) = cause.downcast_ref::<CommandError>() {
            return match c {
                CommandError::Interrupted => 130,
                CommandError::Usage(_) => 2,
            };
        }
    }
    1
}

/// Shared by every command: the environment, the loaded config and the global flags.
pub struct Ctx {
    pub env: Env,
    pub paths: Paths,
    pub config: ConfigFile,
    pub verbose: u8,
    pub quiet: bool,
    pub accept_new_host_key: bool,
    pub shutdown: CancellationToken,
}

impl Ctx {
    /// HOST resolved for connecting to it; a name that nothing knows is a usage error here.
    pub fn target(&self, host: &str) -> Result<Target, ConfigError> {
        let t = self.resolve(host)?;
        config::check_known(&t, &self.config, &self.paths, config::dns_lookup)?;
        Ok(t)
    }

    /// HOST resolved as `ssh -G` would, without asking DNS (for `rtrain hosts`).
    pub fn resolve(&self, host: &str) -> Result<Target, ConfigError> {
        config::resolve_target(host, &self.config, &self.paths, self.accept_new_host_key)
    }

    pub fn connect_options(&self, target: &Target) -> ConnectOptions {
        target.connect_options(self.env.agent_socket.clone())
    }

    /// Notes for `-v`: ssh_config keywords rtrain ignores for this host and its jump hosts. And,
    /// unless `-q`, the one-line warning for `StrictHostKeyChecking no`, which rtrain does not
    /// honour as OpenSSH would.
    pub fn note_unsupported(&self, target: &Target) {
        let hops = target.hops();
        let all = hops.iter().copied().chain(std::iter::once(&target.endpoint));
        for t in all {
            let whose = if std::ptr::eq(t, &target.endpoint) {
                String::new()
            } else {
                format!(" (jump host {})", t.name)
            };
            if self.verbose > 0 {
                for kw in &t.ssh.unsupported {
                    eprintln!("rtrain: note: ssh_config {kw} is not used by rtrain{whose}");
                }
            }
            if !self.quiet
                && !t.accept_new_host_key
                && t.ssh.strict_host_key_checking == Some(StrictHostKeyChecking::No)
            {
                eprintln!(
                    "rtrain: warning: StrictHostKeyChecking no is set for {}: rtrain treats it as accept-new \
                     (new host keys are recorded, a changed key is still refused)",
                    t.name
                );
            }
        }
    }

    /// One connection attempt (through any jump hosts), abandoned on Ctrl-C.
    pub async fn connect(&self, target: &Target) -> anyhow::Result<Session> {
        self.note_unsupported(target);
        let opts = self.connect_options(target);
        let prompter = self.env.prompter.clone();
        let session = tokio::select! {
            r = ssh::connect_once(target, &opts, prompter) => r?,
            _ = self.shutdown.cancelled() => return Err(CommandError::Interrupted.into()),
        };
        if self.verbose > 0 {
            let auth = session.auth();
            let offered = if auth.offered.is_empty() {
                "nothing (no login needed)".to_string()
            } else {
                auth.offered.join(",")
            };
            eprintln!(
                "rtrain: note: {} offered {offered}; logged in with {}",
                target.name,
                auth.used.join(" then ")
            );
        }
        Ok(session)
    }
}

pub async fn dispatch(cli: Cli, env: Env, shutdown: CancellationToken) -> anyhow::Result<u8> {
    let paths = Paths::resolve(
        env.home.clone(),
        env.xdg_config_home.clone(),
        cli.config.clone(),
        env.local_user.clone(),
    );
    if let Command::Completions(a) = &cli.command {
        return hosts::completions(a.shell);
    }
    let config = ConfigFile::load(&paths.rtrain_config, paths.rtrain_config_explicit)?;
    let ctx = Ctx {
        env,
        paths,
        config,
        verbose: cli.verbose,
        quiet: cli.quiet,
        accept_new_host_key: cli.accept_new_host_key,
        shutdown,
    };
    match cli.command {
        Command::Exec(a) => exec::run(&ctx, a).await,
        Command::Hosts(a) => hosts::run(&ctx, a),
        Command::Completions(_) => unreachable!("handled above"),
        Command::Up(a) => {
            if a.sync {
                push::sync(&ctx, &a.host).await?;
            }
            run::up(&ctx, a).await
        }
        Command::Attach(a) => attach::run(&ctx, &a.host).await,
        Command::Status(a) => probe::status(&ctx, a).await,
        Command::Top(a) => top::run(&ctx, a).await,
        Command::Ckpts(a) => probe::ckpts(&ctx, a).await,
        Command::Logs(a) => run::logs(&ctx, a).await,
        Command::Stop(a) => run::stop(&ctx, a).await,
        Command::Resume(a) => run::resume(&ctx, a).await,
        Command::Check(a) => probe::check(&ctx, a).await,
        Command::Forward(a) => forward::run(&ctx, a).await,
        Command::Pull(a) => pull::run(&ctx, a).await,
        Command::Push(a) => push::run(&ctx, a).await,
        Command::Wait(a) => wait::run(&ctx, a).await,
        Command::Notify(a) => notify::run(&ctx, a).await,
    }
}
