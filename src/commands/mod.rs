//! One file per command, each glue between ssh, remote and ui; this file holds what they share.

mod exec;
mod hosts;

use crate::cli::{Cli, Command};
use crate::config::{self, ConfigError, ConfigFile, Paths, Target};
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
    #[error("`rtrain {0}` is not implemented yet")]
    NotImplemented(&'static str),
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
                CommandError::NotImplemented(_) => 1,
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
    pub fn target(&self, host: &str) -> Result<Target, ConfigError> {
        config::resolve_target(host, &self.config, &self.paths, self.accept_new_host_key)
    }

    pub fn connect_options(&self, target: &Target) -> ConnectOptions {
        ConnectOptions::for_target(target, self.env.agent_socket.clone())
    }

    /// Notes for `-v`: ssh_config keywords rtrain ignores for this host.
    pub fn note_unsupported(&self, target: &Target) {
        if self.verbose > 0 {
            for kw in &target.ssh.unsupported {
                eprintln!("rtrain: note: ssh_config {kw} is not used by rtrain");
            }
        }
    }

    /// One connection attempt, abandoned on Ctrl-C.
    pub async fn connect(&self, target: &Target) -> anyhow::Result<Session> {
        self.note_unsupported(target);
        let opts = self.connect_options(target);
        let prompter = self.env.prompter.clone();
        tokio::select! {
            r = ssh::connect_once(target, &opts, prompter) => Ok(r?),
            _ = self.shutdown.cancelled() => Err(CommandError::Interrupted.into()),
        }
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
        Command::Up(_) => Err(CommandError::NotImplemented("up").into()),
        Command::Attach(_) => Err(CommandError::NotImplemented("attach").into()),
        Command::Status(_) => Err(CommandError::NotImplemented("status").into()),
        Command::Ckpts(_) => Err(CommandError::NotImplemented("ckpts").into()),
        Command::Logs(_) => Err(CommandError::NotImplemented("logs").into()),
        Command::Stop(_) => Err(CommandError::NotImplemented("stop").into()),
        Command::Resume(_) => Err(CommandError::NotImplemented("resume").into()),
        Command::Check(_) => Err(CommandError::NotImplemented("check").into()),
        Command::Forward(_) => Err(CommandError::NotImplemented("forward").into()),
    }
}
