//! `hosts`: how a host resolved (`hosts HOST`, as `ssh -G` shows it, and its `--json`) and the list
//! of the hosts rtrain knows (`hosts`), as JSON and as text.

use crate::config::Target;
use crate::ssh::endpoint::{Endpoint, Route};
use crate::ssh::session::KnownHostsFiles;
use crate::ssh::ssh_config::StrictHostKeyChecking;
use serde::Serialize;
use std::fmt::Write as _;

/// One line of `hosts`.
#[derive(Serialize)]
pub struct HostRow {
    pub name: String,
    pub source: &'static str,
    pub host_name: String,
    pub user: String,
    pub port: u16,
    /// The jump hosts in connection order (empty when reached directly).
    pub via: Vec<String>,
    /// Why the route cannot be followed (a ProxyJump loop), shown instead of failing the list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route_error: Option<String>,
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

/// How the first connection of the route is made: a ProxyCommand's command line, or `None` for plain TCP.
fn first_connection_command(t: &Target) -> Option<String> {
    let hops = t.hops();
    match &hops.first().copied().unwrap_or(&t.endpoint).route {
        Route::Command(c) => Some(c.clone()),
        _ => None,
    }
}

/// `hosts HOST --json`.
pub fn resolved_json(t: &Target) -> serde_json::Value {
    let hops = t.hops();
    let known = KnownHostsFiles::for_endpoint(t);
    let runs = first_connection_command(t);
    serde_json::json!({
        "name": t.name, "hostname": t.ssh.host_name, "user": t.user, "port": t.port,
        "identity_files": t.ssh.identity_files, "proxy_jump": t.ssh.proxy_jump, "proxy_command": t.ssh.proxy_command,
        "user_known_hosts_files": t.ssh.user_known_hosts_files,
        "strict_host_key_checking": strict_name(t),
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
    })
}

/// `hosts HOST`: `ssh -G`'s keywords and spelling, then the route and rtrain's own settings; with
/// `verbose`, each jump host's files and policy too.
pub fn render_resolved(t: &Target, verbose: bool) -> String {
    let hops = t.hops();
    let known = KnownHostsFiles::for_endpoint(t);
    let runs = first_connection_command(t);
    let mut out = String::new();
    let _ = writeln!(out, "host {}", t.name);
    let _ = writeln!(out, "hostname {}", t.ssh.host_name);
    let _ = writeln!(out, "user {}", t.user);
    let _ = writeln!(out, "port {}", t.port);
    for f in &t.ssh.identity_files {
        let _ = writeln!(out, "identityfile {}", f.display());
    }
    if let Some(j) = &t.ssh.proxy_jump {
        let _ = writeln!(out, "proxyjump {j}");
    }
    if let Some(c) = &t.ssh.proxy_command {
        let _ = writeln!(out, "proxycommand {c}");
    }
    // The route, resolved hop by hop as the `ssh` that OpenSSH runs for each would.
    for (i, hop) in hops.iter().enumerate() {
        let _ = writeln!(out, "jump {} {} {}", i + 1, hop.name, hop.destination());
    }
    if let Some(c) = &runs {
        let _ = writeln!(out, "runs {c}");
    }
    if !hops.is_empty() {
        let mut route: Vec<String> = hops.iter().map(|h| h.name.clone()).collect();
        route.push(t.name.clone());
        let _ = writeln!(out, "route {}", route.join(" -> "));
    }
    let _ = writeln!(out, "userknownhostsfile {}", paths_line(&known.user));
    let _ = writeln!(out, "globalknownhostsfile {}", paths_line(&known.global));
    let _ = writeln!(out, "stricthostkeychecking {}", strict_name(t));
    let _ = writeln!(out, "connecttimeout {}", t.connect_timeout().as_secs());
    for f in &t.ssh.certificate_files {
        let _ = writeln!(out, "certificatefile {}", f.display());
    }
    // The methods in the order they will be tried (when the server accepts them), and why.
    for m in crate::ssh::auth::plan(&t.ssh) {
        let state = if m.enabled { "try" } else { "skip" };
        let _ = writeln!(out, "auth {state} {} ({})", m.method, m.why);
    }
    let _ = writeln!(out, "keepalive {:?} x{}", t.keepalive().0, t.keepalive().1);
    let _ = writeln!(out, "session {}", t.settings.session);
    let _ = writeln!(out, "workdir {}", t.settings.workdir);
    let _ = writeln!(out, "command {}", t.settings.command);
    if verbose {
        render_details(&mut out, t);
    }
    out
}

/// `hosts`: one line per host.
pub fn render_list(rows: &[HostRow]) -> String {
    let mut out = String::new();
    let w = rows.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
    let _ = writeln!(out, "{:<w$}  {:<10}  DESTINATION", "HOST", "FROM");
    for r in rows {
        let via = match (&r.route_error, r.via.is_empty()) {
            (Some(e), _) => format!("  (cannot reach: {e})"),
            (None, false) => format!("  via {}", r.via.join(" -> ")),
            (None, true) => String::new(),
        };
        let _ = writeln!(
            out,
            "{:<w$}  {:<10}  {}@{}:{}{via}",
            r.name, r.source, r.user, r.host_name, r.port
        );
    }
    out
}

/// `hosts HOST -v`: each jump host's files and policy, and the ssh_config keywords rtrain ignores.
fn render_details(out: &mut String, t: &Target) {
    for (i, hop) in t.hops().iter().enumerate() {
        let n = i + 1;
        for f in &hop.ssh.identity_files {
            let _ = writeln!(out, "jump {n} identityfile {}", f.display());
        }
        let hk = KnownHostsFiles::for_endpoint(hop);
        let _ = writeln!(out, "jump {n} userknownhostsfile {}", paths_line(&hk.user));
        let _ = writeln!(out, "jump {n} globalknownhostsfile {}", paths_line(&hk.global));
        let _ = writeln!(out, "jump {n} stricthostkeychecking {}", strict_name(hop));
        let _ = writeln!(out, "jump {n} connecttimeout {}", hop.connect_timeout().as_secs());
        for kw in &hop.ssh.unsupported {
            let _ = writeln!(out, "jump {n} ignored {kw}");
        }
    }
    for kw in &t.ssh.unsupported {
        let _ = writeln!(out, "ignored {kw}");
    }
}
