//! Reaching hosts behind a bastion, as real clusters need: ProxyJump (one hop, chains,
//! `user@host:port`, `none`) and ProxyCommand (`ssh -W`, `nc`), each against real sshds. The
//! destination listens only on 127.0.0.2, and the jump host's DEBUG1 log proves the traffic went
//! through it.

use crate::support::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(30);

/// A jump host whose log shows what it forwards.
fn bastion() -> Sshd {
    Sshd::start_opts(SshdOptions {
        log_level: "DEBUG1".into(),
        ..SshdOptions::default()
    })
}

/// The GPU box: only on 127.0.0.2, which the client is never told to connect to directly.
fn hidden_box() -> Sshd {
    Sshd::start_on("127.0.0.2")
}

/// A client whose key every box accepts and whose known_hosts knows every box.
fn client_for(boxes: &[&Sshd]) -> Client {
    let c = Client::bare();
    keygen(&c.key, "ed25519", "");
    for b in boxes {
        b.authorize(&c.key.with_extension("pub"));
        c.trust(b);
    }
    c
}

/// An ssh_config block for `sshd` under `alias`, plus `extra` lines.
fn block(alias: &str, sshd: &Sshd, c: &Client, extra: &str) -> String {
    format!(
        "Host {alias}\n  HostName {}\n  Port {}\n  User {}\n  IdentityFile {}\n{extra}",
        sshd.listen,
        sshd.port,
        sshd.user,
        c.key.display()
    )
}

/// The jump host forwarded a connection to `addr:port` (sshd's DEBUG1 line for direct-tcpip).
fn forwarded_to(jump: &Sshd, addr: &str, port: u16) -> bool {
    jump.log().contains(&format!("target {addr} port {port}"))
}

/// Where the box's log stands once the fixture's own readiness probe (a connection that closes
/// right after the banner) has been logged: anything after this offset is a real contact.
fn settled_log(sshd: &Sshd) -> usize {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let log = sshd.log();
        let contacts = log.matches("Connection from").count();
        let probes = log.matches("kex_exchange_identification").count();
        if contacts == probes || Instant::now() > deadline {
            return log.len();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether anything connected to the box after `offset` (see [`settled_log`]).
fn contacted_since(sshd: &Sshd, offset: usize) -> bool {
    std::thread::sleep(Duration::from_millis(100));
    sshd.log()[offset..].contains("Connection from")
}

fn ok(ran: &Ran, boxes: &[&Sshd]) {
    let logs: String = boxes
        .iter()
        .map(|b| format!("\n--- sshd log {}:{}\n{}", b.listen, b.port, b.log()))
        .collect();
    assert_eq!(ran.code, 0, "{ran}{logs}");
}

fn exec_ok(c: &Client, host: &str) -> Ran {
    run_with_timeout(c.rtrain().args(["exec", host, "--", "echo", "ok"]), LIMIT)
}

#[test]
fn proxy_jump_reaches_a_box_only_the_bastion_can_see() {
    let jump = bastion();
    let gpu = hidden_box();
    let c = client_for(&[&jump, &gpu]);
    c.write_ssh_config(&format!(
        "{}{}",
        block("gpu", &gpu, &c, "  ProxyJump bastion\n"),
        block("bastion", &jump, &c, "")
    ));
    let ran = exec_ok(&c, "gpu");
    ok(&ran, &[&jump, &gpu]);
    assert_eq!(ran.stdout_str(), "ok\n");
    assert!(
        forwarded_to(&jump, "127.0.0.2", gpu.port),
        "the bastion did not forward to the box:\n{}",
        jump.log()
    );
    assert!(jump.log().contains("direct-tcpip"), "{}", jump.log());
    // Authenticated at both hops, each with its own host key checked (both are in known_hosts).
    assert!(jump.log().contains("Accepted publickey"), "{}", jump.log());
    assert!(gpu.log().contains("Accepted publickey"), "{}", gpu.log());
}

#[test]
fn two_hop_chain_connects_left_to_right() {
    let a = bastion();
    let b = bastion();
    let gpu = hidden_box();
    let c = client_for(&[&a, &b, &gpu]);
    c.write_ssh_config(&format!(
        "{}{}{}",
        block("gpu", &gpu, &c, "  ProxyJump a,b\n"),
        block("a", &a, &c, ""),
        // b's own ProxyJump is replaced by the list (OpenSSH runs `ssh -J a -W ... b`).
        block("b", &b, &c, "  ProxyJump nowhere-at-all\n"),
    ));
    let ran = exec_ok(&c, "gpu");
    ok(&ran, &[&a, &b, &gpu]);
    assert_eq!(ran.stdout_str(), "ok\n");
    assert!(
        forwarded_to(&a, "127.0.0.1", b.port),
        "a must forward to b:\n{}",
        a.log()
    );
    assert!(
        forwarded_to(&b, "127.0.0.2", gpu.port),
        "b must forward to the box:\n{}",
        b.log()
    );
    assert!(
        !forwarded_to(&a, "127.0.0.2", gpu.port),
        "a must not reach the box itself"
    );
}

#[test]
fn user_at_host_port_hop_form_overrides_the_hops_config() {
    let jump = bastion();
    let gpu = hidden_box();
    let c = client_for(&[&jump, &gpu]);
    // Were `user@` and `:port` not honoured, the hop would go to port 1 as a user that does not exist.
    c.write_ssh_config(&format!(
        "{}Host 127.0.0.1\n  User no-such-user\n  Port 1\nHost *\n  IdentityFile {}\n",
        block(
            "gpu",
            &gpu,
            &c,
            &format!("  ProxyJump {}@127.0.0.1:{}\n", jump.user, jump.port)
        ),
        c.key.display()
    ));
    let ran = exec_ok(&c, "gpu");
    ok(&ran, &[&jump, &gpu]);
    assert!(forwarded_to(&jump, "127.0.0.2", gpu.port), "{}", jump.log());
}

#[test]
fn proxy_jump_none_in_a_specific_block_overrides_host_star() {
    let jump = bastion();
    let direct = Sshd::start();
    let c = client_for(&[&jump, &direct]);
    c.write_ssh_config(&format!(
        "{}{}{}Host *\n  ProxyJump bastion\n",
        block("direct", &direct, &c, "  ProxyJump none\n"),
        block("bastion", &jump, &c, "  ProxyJump none\n"),
        block("via", &direct, &c, ""),
    ));
    let jump_log = settled_log(&jump);
    let ran = exec_ok(&c, "direct");
    ok(&ran, &[&jump, &direct]);
    assert!(
        !contacted_since(&jump, jump_log),
        "ProxyJump none must not touch the bastion:\n{}",
        jump.log()
    );
    // The same box under an alias without the override does go through the bastion.
    let ran = exec_ok(&c, "via");
    ok(&ran, &[&jump, &direct]);
    assert!(forwarded_to(&jump, "127.0.0.1", direct.port), "{}", jump.log());
}

#[test]
fn changed_host_key_at_the_bastion_is_exit_5_naming_it_and_the_box_sees_nothing() {
    let mut jump = bastion();
    let gpu = hidden_box();
    let c = client_for(&[&jump, &gpu]);
    c.write_ssh_config(&format!(
        "{}{}",
        block("gpu", &gpu, &c, "  ProxyJump bastion\n"),
        block("bastion", &jump, &c, "")
    ));
    jump.change_host_key();
    let box_log = settled_log(&gpu);
    let jump_log = settled_log(&jump);
    let ran = exec_ok(&c, "gpu");
    assert_eq!(ran.code, 5, "{ran}");
    assert!(
        ran.stderr.contains("jump host bastion") && ran.stderr.contains("host key for bastion has CHANGED"),
        "{ran}"
    );
    assert_eq!(ran.stderr.lines().count(), 1, "one line: {ran}");
    assert!(
        !contacted_since(&gpu, box_log),
        "the box must not be contacted:\n{}",
        gpu.log()
    );
    let at_jump = &jump.log()[jump_log..];
    assert!(
        !at_jump.contains("userauth-request") && !at_jump.contains("Accepted publickey"),
        "no authentication at a host whose key changed:\n{at_jump}"
    );
}

#[test]
fn unreachable_bastion_is_exit_3_naming_it() {
    let gpu = hidden_box();
    let c = client_for(&[&gpu]);
    c.write_ssh_config(&format!(
        "{}Host bastion\n  HostName 127.0.0.1\n  Port {}\n",
        block("gpu", &gpu, &c, "  ProxyJump bastion\n"),
        free_port()
    ));
    let ran = exec_ok(&c, "gpu");
    assert_eq!(ran.code, 3, "{ran}");
    assert!(
        ran.stderr
            .contains("jump host bastion (on the way to gpu): cannot reach bastion"),
        "{ran}"
    );
    assert!(ran.elapsed < Duration::from_secs(5), "{ran}");
}

#[test]
fn silent_bastion_times_out_after_its_own_connect_timeout() {
    // Accepts TCP and never speaks. The bastion's ConnectTimeout (1 s) applies to it, not the
    // destination's default 15 s; its ignored keywords get a -v note naming it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let c = Client::bare();
    c.write_ssh_config(&format!(
        "Host gpu\n  HostName 127.0.0.2\n  ProxyJump bastion\n\
         Host bastion\n  HostName 127.0.0.1\n  Port {port}\n  ConnectTimeout 1\n  ControlMaster auto\n"
    ));
    let ran = run_with_timeout(c.rtrain().args(["-v", "exec", "gpu", "--", "true"]), LIMIT);
    drop(listener);
    assert_eq!(ran.code, 3, "{ran}");
    assert!(
        ran.stderr
            .contains("jump host bastion (on the way to gpu): connection to bastion timed out"),
        "{ran}"
    );
    assert!(ran.elapsed < Duration::from_secs(5), "{ran}");
    assert!(
        ran.stderr.contains("note: ssh_config ControlMaster") && ran.stderr.contains("(jump host bastion)"),
        "{ran}"
    );
}

#[test]
fn auth_failure_at_the_bastion_is_exit_4_naming_it() {
    let jump = bastion();
    let gpu = hidden_box();
    let c = client_for(&[&jump, &gpu]);
    let stranger = c.ssh_dir().join("id_stranger");
    keygen(&stranger, "ed25519", "");
    c.write_ssh_config(&format!(
        "{}Host bastion\n  HostName 127.0.0.1\n  Port {}\n  User {}\n  IdentityFile {}\n",
        block("gpu", &gpu, &c, "  ProxyJump bastion\n"),
        jump.port,
        jump.user,
        stranger.display()
    ));
    let box_log = settled_log(&gpu);
    let ran = exec_ok(&c, "gpu");
    assert_eq!(ran.code, 4, "{ran}");
    assert!(
        ran.stderr.contains("jump host bastion")
            && ran.stderr.contains(&format!("authentication to {}@bastion", jump.user)),
        "{ran}"
    );
    assert!(!contacted_since(&gpu, box_log), "{}", gpu.log());
}

#[test]
fn box_unreachable_from_the_bastion_is_exit_3_naming_both() {
    let jump = bastion();
    let c = client_for(&[&jump]);
    let closed = free_port_on("127.0.0.2");
    c.write_ssh_config(&format!(
        "Host gpu\n  HostName 127.0.0.2\n  Port {closed}\n  ProxyJump bastion\n{}",
        block("bastion", &jump, &c, "")
    ));
    let ran = exec_ok(&c, "gpu");
    assert_eq!(ran.code, 3, "{ran}");
    assert!(
        ran.stderr.contains(&format!(
            "cannot reach gpu: jump host bastion could not connect to 127.0.0.2:{closed}"
        )),
        "{ran}"
    );
}

#[test]
fn new_host_keys_are_checked_at_every_hop() {
    let jump = bastion();
    let gpu = hidden_box();
    let c = client_for(&[&jump, &gpu]);
    std::fs::remove_file(c.ssh_dir().join("known_hosts")).unwrap();
    c.write_ssh_config(&format!(
        "{}{}",
        block("gpu", &gpu, &c, "  ProxyJump bastion\n"),
        block("bastion", &jump, &c, "")
    ));
    // Without a terminal an unknown bastion is refused, naming it; nothing reaches the box.
    let box_log = settled_log(&gpu);
    let ran = exec_ok(&c, "gpu");
    assert_eq!(ran.code, 5, "{ran}");
    assert!(ran.stderr.contains("host key for bastion is not known"), "{ran}");
    assert!(!contacted_since(&gpu, box_log), "{}", gpu.log());
    // Accepting records both: the bastion under its address, the box under 127.0.0.2.
    let ran = run_with_timeout(
        c.rtrain().args(["--accept-new-host-key", "exec", "gpu", "--", "true"]),
        LIMIT,
    );
    ok(&ran, &[&jump, &gpu]);
    let kh = c.known_hosts();
    assert!(kh.contains(&format!("[127.0.0.1]:{} ssh-ed25519", jump.port)), "{kh}");
    assert!(kh.contains(&format!("[127.0.0.2]:{} ssh-ed25519", gpu.port)), "{kh}");
}

#[test]
fn proxy_jump_loop_is_a_config_error_not_a_hang() {
    let c = Client::bare();
    c.write_ssh_config("Host gpu\n  ProxyJump a\nHost a\n  ProxyJump b\nHost b\n  ProxyJump a\n");
    let ran = exec_ok(&c, "gpu");
    assert_eq!(ran.code, 2, "{ran}");
    assert!(ran.stderr.contains("ProxyJump loops (a -> b -> a -> gpu)"), "{ran}");
    assert!(ran.elapsed < Duration::from_secs(2), "{ran}");
}

/// `nc` from netcat-openbsd, which scripts/test.sh installs; never skipped.
fn require_nc() {
    let found = Command::new("sh")
        .args(["-c", "command -v nc"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "this test needs `nc`: run ./scripts/test.sh (it installs it) or `apt-get install netcat-openbsd`"
    );
}

#[test]
fn proxy_command_with_nc() {
    require_nc();
    let gpu = hidden_box();
    let c = client_for(&[&gpu]);
    c.write_ssh_config(&block("gpu", &gpu, &c, "  ProxyCommand nc %h %p\n"));
    let ran = exec_ok(&c, "gpu");
    ok(&ran, &[&gpu]);
    assert_eq!(ran.stdout_str(), "ok\n");
}

#[test]
fn proxy_command_with_openssh_ssh_dash_w_through_the_bastion() {
    let jump = bastion();
    let gpu = hidden_box();
    let c = client_for(&[&jump, &gpu]);
    let config = c.ssh_dir().join("config");
    // The real ssh takes ~ from the passwd entry, not $HOME: give it the test's own config,
    // known_hosts and key, and nothing from the machine.
    c.write_ssh_config(&format!(
        "{}{}",
        block(
            "gpu",
            &gpu,
            &c,
            &format!("  ProxyCommand ssh -F {} -o BatchMode=yes -W %h:%p bastion\n", config.display())
        ),
        block(
            "bastion",
            &jump,
            &c,
            &format!(
                "  UserKnownHostsFile {}\n  GlobalKnownHostsFile /dev/null\n  IdentitiesOnly yes\n  IdentityAgent none\n",
                c.ssh_dir().join("known_hosts").display()
            )
        ),
    ));
    let ran = exec_ok(&c, "gpu");
    ok(&ran, &[&jump, &gpu]);
    assert_eq!(ran.stdout_str(), "ok\n");
    assert!(forwarded_to(&jump, "127.0.0.2", gpu.port), "{}", jump.log());
}

#[test]
fn failing_proxy_command_is_exit_3_with_what_it_said() {
    let c = Client::bare();
    c.write_ssh_config("Host gpu\n  ProxyCommand sh -c 'echo \"proxy: no route to %h\" >&2; exit 1'\n");
    let ran = exec_ok(&c, "gpu");
    assert_eq!(ran.code, 3, "{ran}");
    assert!(ran.stderr.contains("cannot reach gpu: ProxyCommand"), "{ran}");
    assert!(ran.stderr.contains("it said: proxy: no route to gpu"), "{ran}");
}

// --- Library level: the hops belong to the Session. ------------------------------------------

fn library_target(c: &Client, host: &str) -> rtrain::config::Target {
    let paths = rtrain::config::Paths::resolve(c.home.path().to_path_buf(), None, None, current_user());
    rtrain::config::resolve_target(host, &rtrain::config::ConfigFile::default(), &paths, false).unwrap()
}

fn opts() -> rtrain::ssh::ConnectOptions {
    rtrain::ssh::ConnectOptions {
        keepalive_interval: Duration::from_millis(300),
        keepalive_max: 2,
        connect_timeout: Duration::from_secs(5),
        handshake_timeout: Duration::from_secs(5),
        agent_socket: None,
    }
}

async fn echo(session: &rtrain::ssh::Session, word: &str) -> String {
    let out = session
        .exec(&format!("echo {word}"), None, Some(Duration::from_secs(5)))
        .await
        .unwrap_or_else(|e| panic!("exec {word}: {e}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_owns_its_jump_hosts_and_a_dead_bastion_closes_it() {
    let mut jump = bastion();
    let gpu = hidden_box();
    let c = client_for(&[&jump, &gpu]);
    c.write_ssh_config(&format!(
        "{}{}",
        block("gpu", &gpu, &c, "  ProxyJump bastion\n"),
        block("bastion", &jump, &c, "")
    ));
    let target = library_target(&c, "gpu");
    let session = rtrain::ssh::connect_once(&target, &opts(), Arc::new(rtrain::ssh::NoPrompt))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", jump.log()));
    assert_eq!(session.jump_hosts(), vec!["bastion"]);
    assert_eq!(echo(&session, "one").await, "one\n");
    // Still usable later: the hop lives as long as the session, not as long as connect_once.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(echo(&session, "two").await, "two\n");
    assert!(!session.is_closed());
    // The bastion dies: keepalives (0.3 s x 2) notice, and the session reports closed.
    jump.stop();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !session.is_closed() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(session.is_closed(), "a dead jump host must make the session closed");
}

fn process_gone(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // A zombie is dead; only its parent has not collected it yet.
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

fn read_pid(file: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(text) = std::fs::read_to_string(file) {
            if !text.trim().is_empty() {
                return text.trim().to_string();
            }
        }
        assert!(Instant::now() < deadline, "{} never written", file.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_command_is_killed_when_the_session_ends() {
    require_nc();
    let gpu = hidden_box();
    let c = client_for(&[&gpu]);
    let pid_file: PathBuf = c.home.path().join("proxy.pid");
    // `exec` keeps the pid: the shell that wrote it becomes nc.
    c.write_ssh_config(&block(
        "gpu",
        &gpu,
        &c,
        &format!(
            "  ProxyCommand sh -c 'echo $$ > {}; exec nc %h %p'\n",
            pid_file.display()
        ),
    ));
    let target = library_target(&c, "gpu");
    let session = rtrain::ssh::connect_once(&target, &opts(), Arc::new(rtrain::ssh::NoPrompt))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", gpu.log()));
    assert_eq!(echo(&session, "via-nc").await, "via-nc\n");
    let pid = read_pid(&pid_file);
    assert!(!process_gone(&pid), "the ProxyCommand must run while the session does");
    session.close().await;
    let deadline = Instant::now() + Duration::from_secs(3);
    while !process_gone(&pid) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        process_gone(&pid),
        "ProxyCommand (pid {pid}) still running after the session ended"
    );
}

// --- `rtrain hosts HOST`: the route, compared with what OpenSSH resolves. --------------------

/// `ssh -G` for one host, with the options OpenSSH passes to the ssh it runs for a jump host.
fn ssh_g(
    config: &Path,
    host: &str,
    user: Option<&str>,
    port: Option<&str>,
    jump: Option<&str>,
) -> Vec<(String, String)> {
    let mut cmd = Command::new("ssh");
    cmd.arg("-G").arg("-F").arg(config);
    if let Some(u) = user {
        cmd.args(["-l", u]);
    }
    if let Some(p) = port {
        cmd.args(["-p", p]);
    }
    if let Some(j) = jump {
        cmd.args(["-J", j]);
    }
    let out = cmd
        .arg(host)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("this test needs the OpenSSH client (apt-get install openssh-client)");
    assert!(
        out.status.success(),
        "ssh -G {host}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let (k, v) = l.split_once(' ').unwrap_or((l, ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn get<'a>(g: &'a [(String, String)], key: &str) -> Option<&'a str> {
    g.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// The route OpenSSH takes to `host`, derived the way ssh.c does it: the last ProxyJump element
/// is the hop next to the destination, run as `ssh [-l user] [-p port] [-J earlier] hop`, and
/// that ssh resolves the hop (and how to reach it) from the config. Each entry is
/// (user@hostname:port, identity files).
fn openssh_route(config: &Path, host: &str) -> Vec<(String, Vec<String>)> {
    let mut route = Vec::new();
    let mut g = ssh_g(config, host, None, None, None);
    loop {
        let dest = format!(
            "{}@{}:{}",
            get(&g, "user").unwrap(),
            get(&g, "hostname").unwrap(),
            get(&g, "port").unwrap()
        );
        let ids = g
            .iter()
            .filter(|(k, _)| k == "identityfile")
            .map(|(_, v)| v.clone())
            .collect();
        route.insert(0, (dest, ids));
        let Some(list) = get(&g, "proxyjump").map(str::to_string) else {
            return route;
        };
        let (earlier, last) = match list.rsplit_once(',') {
            Some((e, l)) => (Some(e.to_string()), l.to_string()),
            None => (None, list.clone()),
        };
        let (user, rest) = match last.rsplit_once('@') {
            Some((u, r)) => (Some(u.to_string()), r.to_string()),
            None => (None, last.clone()),
        };
        // ssh -G writes the hop next to the destination back as `user@[host]:port`.
        let (hop, port) = match rest.strip_prefix('[').and_then(|r| r.split_once("]:")) {
            Some((h, p)) => (h.to_string(), Some(p.to_string())),
            None => match rest.split_once(':') {
                Some((h, p)) => (h.to_string(), Some(p.to_string())),
                None => (rest, None),
            },
        };
        g = ssh_g(config, &hop, user.as_deref(), port.as_deref(), earlier.as_deref());
    }
}

#[test]
fn hosts_shows_the_same_route_as_openssh_resolves() {
    let c = Client::bare();
    let config = c.ssh_dir().join("config");
    let user = current_user();
    c.write_ssh_config(&format!(
        "Host gpu\n  HostName 10.9.0.5\n  ProxyJump bastion\n  IdentityFile /k/gpu\n\
         Host chain\n  HostName 10.9.0.6\n  Port 2201\n  ProxyJump jumper@outer:2022,inner\n\
         Host deep\n  ProxyJump inner\n\
         Host inner\n  HostName 10.1.0.1\n  User in-user\n  ProxyJump outer\n  IdentityFile /k/inner\n\
         Host outer\n  HostName outer.example\n  Port 2200\n  IdentityFile /k/outer\n\
         Host bastion\n  HostName b.example\n  User bast\n  IdentityFile /k/bastion\n\
         Host direct bastion outer\n  ProxyJump none\n\
         Match originalhost uhp\n  ProxyJump {user}@127.0.0.1:2022\n\
         Host *\n  ProxyJump bastion\n  IdentityFile /k/all\n"
    ));
    for host in ["gpu", "chain", "deep", "direct", "uhp", "elsewhere"] {
        let want = openssh_route(&config, host);
        let ran = run_with_timeout(c.rtrain().args(["hosts", "--json", host]), LIMIT);
        assert_eq!(ran.code, 0, "{ran}");
        let v: serde_json::Value = serde_json::from_slice(&ran.stdout).unwrap();
        let mut got: Vec<(String, Vec<String>)> = v["jump_hosts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                let ids = h["identity_files"].as_array().unwrap();
                (
                    h["destination"].as_str().unwrap().to_string(),
                    ids.iter().map(|i| i.as_str().unwrap().to_string()).collect(),
                )
            })
            .collect();
        let ids = v["identity_files"].as_array().unwrap();
        got.push((
            v["destination"].as_str().unwrap().to_string(),
            ids.iter().map(|i| i.as_str().unwrap().to_string()).collect(),
        ));
        // ssh -G lists the default key names when none is configured; rtrain leaves that empty.
        let want: Vec<(String, Vec<String>)> = want
            .into_iter()
            .zip(&got)
            .map(|((d, ids), (_, ours))| (d, if ours.is_empty() { Vec::new() } else { ids }))
            .collect();
        assert_eq!(got, want, "route to {host}\n{}", ran.stdout_str());

        // The human form lists the same hops.
        let text = run_with_timeout(c.rtrain().args(["hosts", host]), LIMIT);
        assert_eq!(text.code, 0, "{text}");
        for (i, (dest, _)) in got.iter().take(got.len() - 1).enumerate() {
            let line = format!("jump {} ", i + 1);
            assert!(
                text.stdout_str()
                    .lines()
                    .any(|l| l.starts_with(&line) && l.ends_with(dest.as_str())),
                "{host}: no `{line}... {dest}` line in\n{}",
                text.stdout_str()
            );
        }
    }
}

#[test]
fn hosts_list_marks_routes_and_a_loop_does_not_hide_the_other_hosts() {
    let c = Client::bare();
    c.write_ssh_config(
        "Host gpu\n  ProxyJump bastion\nHost bastion\n  ProxyJump none\nHost broken\n  ProxyJump broken\n",
    );
    let ran = run_with_timeout(c.rtrain().args(["hosts"]), LIMIT);
    assert_eq!(ran.code, 0, "{ran}");
    let out = ran.stdout_str();
    assert!(
        out.lines().any(|l| l.starts_with("gpu ") && l.ends_with("via bastion")),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.starts_with("broken ") && l.contains("loops")),
        "{out}"
    );
}

/// A drop between the bastion and the box (the client's own link to the bastion stays up) during
/// `logs -f`: the box's session dies of keepalives, the link reconnects through the bastion, and
/// the output is still the remote log byte for byte.
#[test]
fn logs_follow_recovers_from_a_drop_between_the_bastion_and_the_box() {
    use crate::resilience::{assert_same_bytes, WRITER};
    let jump = bastion();
    let gpu = Sshd::start();
    let wire = Proxy::start(gpu.port); // the bastion reaches the box only through this
    let c = client_for(&[&jump, &gpu]);
    let line = format!("[127.0.0.1]:{} {}\n", wire.port(), gpu.host_public_key());
    std::fs::write(c.ssh_dir().join("known_hosts"), format!("{}{line}", c.known_hosts())).unwrap();
    c.write_ssh_config(&format!(
        "{}Host gpu\n  HostName 127.0.0.1\n  Port {}\n  User {}\n  IdentityFile {}\n  ProxyJump bastion\n",
        block("bastion", &jump, &c, ""),
        wire.port(),
        gpu.user,
        c.key.display()
    ));
    c.write_rtrain_config("defaults:\n  workdir: ~/w\n  keepalive: 500ms\n");
    std::fs::create_dir_all(gpu.remote_home.join("w")).unwrap();
    std::fs::write(gpu.remote_home.join("w/writer.py"), WRITER).unwrap();
    let ran = run_with_timeout(c.rtrain().args(["up", "gpu", "--", "python3 writer.py 300 15"]), LIMIT);
    ok(&ran, &[&jump, &gpu]);
    let st = run_with_timeout(c.rtrain().args(["status", "gpu", "--json"]), LIMIT);
    let v: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    let log = PathBuf::from(v["run"]["log"].as_str().unwrap());
    let mut cmd = c.rtrain();
    cmd.args(["logs", "gpu", "-f", "-n", "all", "--raw"]);
    let mut bg = Bg::spawn(cmd);
    std::thread::sleep(Duration::from_secs(2));
    wire.set_mode(Mode::BlackHole);
    bg.wait_stderr("reconnecting", LIMIT);
    wire.set_mode(Mode::Pass);
    bg.wait_stderr("reconnected", LIMIT);
    assert_eq!(bg.wait(Duration::from_secs(60)), 0, "{}", bg.stderr());
    assert_same_bytes(&bg.stdout(), &log);
    assert!(
        jump.log().matches("target 127.0.0.1 port").count() >= 2,
        "the reconnect went through the bastion"
    );
}
