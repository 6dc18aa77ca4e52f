//! `rtrain hosts` (what rtrain knows about) and `rtrain completions SHELL`.

use super::Ctx;
use crate::cli::{HostsArgs, Shell};
use crate::config::ConfigError;
use crate::report::hosts::{self, HostRow};
use crate::ssh::endpoint::HostSpec;
use crate::ssh::ssh_config::{self, ResolveContext};
use clap::CommandFactory;

pub fn run(ctx: &Ctx, args: HostsArgs) -> anyhow::Result<u8> {
    if let Some(name) = &args.host {
        let t = ctx.resolve(name)?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&hosts::resolved_json(&t))?);
        } else {
            print!("{}", hosts::render_resolved(&t, ctx.verbose > 0));
        }
        return Ok(0);
    }
    let rows = known_hosts(ctx)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else if rows.is_empty() {
        println!(
            "no hosts yet: add one to ~/.ssh/config (Host gpu-box / HostName ...) or to {}",
            ctx.paths.rtrain_config.display()
        );
    } else {
        print!("{}", hosts::render_list(&rows));
    }
    Ok(0)
}

/// Every host of rtrain's config, then every `Host` of ~/.ssh/config, each once.
fn known_hosts(ctx: &Ctx) -> anyhow::Result<Vec<HostRow>> {
    let mut rows: Vec<HostRow> = Vec::new();
    let mut push = |name: String, source: &'static str| -> anyhow::Result<()> {
        if rows.iter().any(|r| r.name == name) {
            return Ok(());
        }
        match ctx.resolve(&name) {
            Ok(t) => rows.push(HostRow {
                via: t.hops().iter().map(|h| h.name.clone()).collect(),
                name,
                source,
                host_name: t.endpoint.ssh.host_name,
                user: t.endpoint.user,
                port: t.endpoint.port,
                route_error: None,
            }),
            // One host with a ProxyJump loop must not hide the others: list it with the reason.
            Err(ConfigError::Route { msg, .. }) => {
                let spec = HostSpec::parse(&name).map_err(ConfigError::Invalid)?;
                let ssh = ctx.paths.resolve_ssh(&spec)?;
                rows.push(HostRow {
                    name,
                    source,
                    user: ssh.user.unwrap_or_else(|| ctx.paths.local_user.clone()),
                    port: ssh.port.unwrap_or(22),
                    host_name: ssh.host_name,
                    via: Vec::new(),
                    route_error: Some(msg),
                });
            }
            Err(e) => return Err(e.into()),
        }
        Ok(())
    };
    for name in ctx.config.hosts.keys() {
        push(name.clone(), "rtrain")?;
    }
    let rctx = ResolveContext {
        home: &ctx.paths.home,
        local_user: &ctx.paths.local_user,
    };
    for name in ssh_config::list_hosts(&ctx.paths.ssh_config, &rctx)? {
        push(name, "ssh_config")?;
    }
    Ok(rows)
}

pub fn completions(shell: Shell) -> anyhow::Result<u8> {
    use clap_complete::Shell as S;
    let s = match shell {
        Shell::Bash => S::Bash,
        Shell::Zsh => S::Zsh,
        Shell::Fish => S::Fish,
        Shell::Elvish => S::Elvish,
        Shell::Powershell => S::PowerShell,
    };
    clap_complete::generate(s, &mut crate::cli::Cli::command(), "rtrain", &mut std::io::stdout());
    Ok(0)
}
