//! `rtrain hosts` (what rtrain knows about) and `rtrain completions SHELL`.

use super::Ctx;
use crate::cli::{HostsArgs, Shell};
use crate::config::ConfigError;
use crate::ssh::endpoint::{Endpoint, HostSpec, Route};
use crate::ssh::session::KnownHostsFiles;
use crate::ssh::ssh_config::{self, ResolveContext, StrictHostKeyChecking};
use clap::CommandFactory;
use serde::Serialize;

#[derive(Serialize)]
struct HostRow {
    name: String,
    source: &'static str,
    host_name: String,
    user: String,
    port: u16,
    /// The jump hosts in connection order (empty when reached directly).
    via: Vec<String>,
    /// Why the route cannot be followed (a ProxyJump loop), shown instead of failing the list.
    #[serde(skip_serializing_if = "Option::is_none")]
    route_error: Option<String>,
}

/// ssh -G's spelling of the policy.
fn strict_name(t: &Endpoint) -> &'static str {
    match t.strict_host_key_checking() {
        StrictHostKeyChecking::Yes => "yes",
        StrictHostKeyChecking::No => "no",
        StrictHostKeyChecking::AcceptNew => "accept-new",
        StrictHostKeyChecking::Ask => "ask",
    }
}

fn paths_line(paths: &[std::path::PathBuf]) -> String {
    if paths.is_empty() {
        return "none".into();
    }
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// One host of the route in `--json`: how it resolved, the way `ssh -G` would show it.
fn host_json(t: &Endpoint) -> serde_json::Value {
    let known = KnownHostsFiles::for_endpoint(t);
    serde_json::json!({
        "name": t.name, "hostname": t.ssh.host_name, "user": t.user, "port": t.port,
        "destination": t.destination(),
        "proxy_command": match &t.route { Route::Command(c) => Some(c.as_str()), _ => None },
        "identity_files": t.ssh.identity_files,
        "user_known_hosts_files": known.user, "global_known_hosts_files": known.global,
        "strict_host_key_checking": strict_name(t),
        "connect_timeout_secs": t.connect_timeout().as_secs(),
    })
}

pub fn run(ctx: &Ctx, args: HostsArgs) -> anyhow::Result<u8> {
    if let Some(name) = &args.host {
        let t = ctx.resolve(name)?;
        let hops = t.hops();
        let known = KnownHostsFiles::for_endpoint(&t);
        // How the first connection of the route is made: a ProxyCommand, or plain TCP.
        let first = hops.first().copied().unwrap_or(&t.endpoint);
        let runs = match &first.route {
            Route::Command(c) => Some(c.clone()),
            _ => None,
        };
        if args.json {
            let v = serde_json::json!({
                "name": t.name, "hostname": t.ssh.host_name, "user": t.user, "port": t.port,
                "identity_files": t.ssh.identity_files, "proxy_jump": t.ssh.proxy_jump, "proxy_command": t.ssh.proxy_command,
                "user_known_hosts_files": t.ssh.user_known_hosts_files,
                "strict_host_key_checking": strict_name(&t),
                "connect_timeout_secs": t.connect_timeout().as_secs(),
                "keepalive_secs": t.keepalive().0.as_secs_f64(), "keepalive_max": t.keepalive().1,
                "session": t.settings.session, "workdir": t.settings.workdir, "command": t.settings.command,
                "log_dir": t.settings.log_dir, "checkpoint_dir": t.settings.checkpoint_dir, "train_config": t.settings.train_config,
                "destination": t.destination(),
                "known_hosts_files": known.all(),
                "jump_hosts": hops.iter().map(|h| host_json(h)).collect::<Vec<_>>(),
                "first_connection_command": runs,
                "certificate_files": t.ssh.certificate_files,
                "auth_methods": crate::ssh::auth::plan(&t.ssh).iter().map(|m| serde_json::json!({
                    "method": m.method, "enabled": m.enabled, "why": m.why,
                })).collect::<Vec<_>>(),
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
            // The route, resolved hop by hop as the `ssh` that OpenSSH runs for each would.
            for (i, hop) in hops.iter().enumerate() {
                println!("jump {} {} {}", i + 1, hop.name, hop.destination());
            }
            if let Some(c) = &runs {
                println!("runs {c}");
            }
            if !hops.is_empty() {
                let mut route: Vec<String> = hops.iter().map(|h| h.name.clone()).collect();
                route.push(t.name.clone());
                println!("route {}", route.join(" -> "));
            }
            println!("userknownhostsfile {}", paths_line(&known.user));
            println!("globalknownhostsfile {}", paths_line(&known.global));
            println!("stricthostkeychecking {}", strict_name(&t));
            println!("connecttimeout {}", t.connect_timeout().as_secs());
            for f in &t.ssh.certificate_files {
                println!("certificatefile {}", f.display());
            }
            // The methods in the order they will be tried (when the server accepts them), and why.
            for m in crate::ssh::auth::plan(&t.ssh) {
                let state = if m.enabled { "try" } else { "skip" };
                println!("auth {state} {} ({})", m.method, m.why);
            }
            println!("keepalive {:?} x{}", t.keepalive().0, t.keepalive().1);
            println!("session {}", t.settings.session);
            println!("workdir {}", t.settings.workdir);
            println!("command {}", t.settings.command);
            if ctx.verbose > 0 {
                for (i, hop) in hops.iter().enumerate() {
                    let n = i + 1;
                    for f in &hop.ssh.identity_files {
                        println!("jump {n} identityfile {}", f.display());
                    }
                    let hk = KnownHostsFiles::for_endpoint(hop);
                    println!("jump {n} userknownhostsfile {}", paths_line(&hk.user));
                    println!("jump {n} globalknownhostsfile {}", paths_line(&hk.global));
                    println!("jump {n} stricthostkeychecking {}", strict_name(hop));
                    println!("jump {n} connecttimeout {}", hop.connect_timeout().as_secs());
                    for kw in &hop.ssh.unsupported {
                        println!("jump {n} ignored {kw}");
                    }
                }
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
            let via = match (&r.route_error, r.via.is_empty()) {
                (Some(e), _) => format!("  (cannot reach: {e})"),
                (None, false) => format!("  via {}", r.via.join(" -> ")),
                (None, true) => String::new(),
            };
            println!(
                "{:<w$}  {:<10}  {}@{}:{}{via}",
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
