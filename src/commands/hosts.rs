//! `rtrain hosts` (what rtrain knows about) and `rtrain completions SHELL`.

use super::Ctx;
use crate::cli::{HostsArgs, Shell};
use crate::ssh::ssh_config::{self, ResolveContext};
use clap::CommandFactory;
use serde::Serialize;

#[derive(Serialize)]
struct HostRow {
    name: String,
    source: &'static str,
    host_name: String,
    user: String,
    port: u16,
}

pub fn run(ctx: &Ctx, args: HostsArgs) -> anyhow::Result<u8> {
    if let Some(name) = &args.host {
        let t = ctx.target(name)?;
        if args.json {
            let v = serde_json::json!({
                "name": t.name, "hostname": t.ssh.host_name, "user": t.user, "port": t.port,
                "identity_files": t.ssh.identity_files, "proxy_jump": t.ssh.proxy_jump, "proxy_command": t.ssh.proxy_command,
                "user_known_hosts_files": t.ssh.user_known_hosts_files,
                "strict_host_key_checking": format!("{:?}", t.strict_host_key_checking()),
                "connect_timeout_secs": t.connect_timeout().as_secs(),
                "keepalive_secs": t.keepalive().0.as_secs_f64(), "keepalive_max": t.keepalive().1,
                "session": t.settings.session, "workdir": t.settings.workdir, "command": t.settings.command,
                "log_dir": t.settings.log_dir, "checkpoint_dir": t.settings.checkpoint_dir, "train_config": t.settings.train_config,
            });
            println!("{}", serde_json::to_string_pretty(&v)?);
        } else {
            println!("host {}", t.name);
            println!("hostname {}", t.ssh.host_name);
            println!("user {}", t.user);
            println!("port {}", t.port);
            for f in &t.ssh.identity_files {
                println!("identityfile {}", f.display());
            }
            if let Some(j) = &t.ssh.proxy_jump {
                println!("proxyjump {j}");
            }
            if let Some(c) = &t.ssh.proxy_command {
                println!("proxycommand {c}");
            }
            for f in &t.ssh.user_known_hosts_files {
                println!("userknownhostsfile {}", f.display());
            }
            println!("stricthostkeychecking {:?}", t.strict_host_key_checking());
            println!("connecttimeout {}", t.connect_timeout().as_secs());
            println!("keepalive {:?} x{}", t.keepalive().0, t.keepalive().1);
            println!("session {}", t.settings.session);
            println!("workdir {}", t.settings.workdir);
            println!("command {}", t.settings.command);
            if ctx.verbose > 0 {
                for kw in &t.ssh.unsupported {
                    println!("ignored {kw}");
                }
            }
        }
        return Ok(0);
    }
    let mut rows: Vec<HostRow> = Vec::new();
    let mut push = |name: String, source: &'static str| -> anyhow::Result<()> {
        if rows.iter().any(|r| r.name == name) {
            return Ok(());
        }
        let t = ctx.target(&name)?;
        rows.push(HostRow {
            name,
            source,
            host_name: t.ssh.host_name,
            user: t.user,
            port: t.port,
        });
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
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else if rows.is_empty() {
        println!(
            "no hosts yet: add one to ~/.ssh/config (Host gpu-box / HostName ...) or to {}",
            ctx.paths.rtrain_config.display()
        );
    } else {
        let w = rows.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
        println!("{:<w$}  {:<10}  DESTINATION", "HOST", "FROM");
        for r in &rows {
            println!(
                "{:<w$}  {:<10}  {}@{}:{}",
                r.name, r.source, r.user, r.host_name, r.port
            );
        }
    }
    Ok(0)
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
