//! The foundation: connecting, authenticating, verifying host keys and running commands over a
//! real sshd, through the real binary (exit codes) and the library (prompts).

use crate::support::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

fn ok(ran: &Ran, sshd: &Sshd) {
    assert_eq!(ran.code, 0, "{ran}\n--- sshd log\n{}", sshd.log());
}

#[test]
fn exec_with_key_auth_runs_and_propagates_output() {
    let sshd = Sshd::start();
    let c = Client::for_box(&sshd);
    let ran = run_with_timeout(c.rtrain().args(["exec", "box", "--", "echo", "hello"]), LIMIT);
    ok(&ran, &sshd);
    assert_eq!(ran.stdout_str(), "hello\n");
}

#[test]
fn remote_exit_status_and_stderr_propagate() {
    let sshd = Sshd::start();
    let c = Client::for_box(&sshd);
    let ran = run_with_timeout(
        c.rtrain()
            .args(["exec", "box", "--", "sh", "-c", "echo oops >&2; exit 7"]),
        LIMIT,
    );
    assert_eq!(ran.code, 7, "{ran}");
    assert!(ran.stderr.contains("oops"), "{ran}");
}

#[test]
fn exec_arguments_arrive_byte_exact_and_execute_nothing() {
    let sshd = Sshd::start();
    let c = Client::for_box(&sshd);
    let marker = sshd.dir.path().join("pwned");
    let evil = format!("$(touch {})", marker.display());
    let args = [
        "a b",
        "it's",
        "\"dq\"",
        evil.as_str(),
        "line1\nline2",
        "`touch x`",
        "; exit 3",
        "*",
        "~",
    ];
    let mut cmd = c.rtrain();
    cmd.args(["exec", "box", "--", "printf", "%s\\0"]).args(args);
    let ran = run_with_timeout(&mut cmd, LIMIT);
    ok(&ran, &sshd);
    let got: Vec<&[u8]> = ran.stdout.split(|b| *b == 0).collect();
    let want: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).chain([&b""[..]]).collect();
    assert_eq!(got, want, "{ran}");
    assert!(!marker.exists(), "a quoted $(...) was executed remotely");
}

#[test]
fn exec_shell_string_passes_pipes_through() {
    let sshd = Sshd::start();
    let c = Client::for_box(&sshd);
    let ran = run_with_timeout(
        c.rtrain().args(["exec", "box", "--shell", "echo abc | tr a-c x-z"]),
        LIMIT,
    );
    ok(&ran, &sshd);
    assert_eq!(ran.stdout_str(), "xyz\n");
}

#[test]
fn exec_without_a_command_is_a_usage_error() {
    let c = Client::bare();
    let ran = run_with_timeout(c.rtrain().args(["exec", "box"]), LIMIT);
    assert_eq!(ran.code, 2, "{ran}");
}

#[test]
fn literal_user_host_port_destination_works_without_ssh_config_alias() {
    let sshd = Sshd::start();
    let c = Client::for_box(&sshd);
    // Default key name, so no IdentityFile is needed.
    std::fs::copy(&c.key, c.ssh_dir().join("id_ed25519")).unwrap();
    c.write_ssh_config("");
    let dest = format!("{}@127.0.0.1:{}", sshd.user, sshd.port);
    let ran = run_with_timeout(c.rtrain().args(["exec", &dest, "--", "true"]), LIMIT);
    ok(&ran, &sshd);
}

#[test]
fn rsa_key_authenticates_with_sha2_signatures() {
    let sshd = Sshd::start();
    let c = Client::for_box(&sshd);
    let rsa = c.ssh_dir().join("id_rsa_test");
    keygen(&rsa, "rsa", "");
    sshd.authorize(&rsa.with_extension("pub"));
    c.write_ssh_config(&format!(
        "Host box\n  HostName 127.0.0.1\n  Port {}\n  User {}\n  IdentityFile {}\n",
        sshd.port,
        sshd.user,
        rsa.display()
    ));
    let ran = run_with_timeout(c.rtrain().args(["exec", "box", "--", "true"]), LIMIT);
    ok(&ran, &sshd);
    // OpenSSH 9 refuses ssh-rsa (SHA-1); the log names the signature algorithm accepted.
    let log = sshd.log();
    assert!(log.contains("Accepted publickey") && log.contains("RSA"), "{log}");
}

/// A test's own answer to prompts: the passphrase, and no to new host keys.
struct GivePassphrase(String, std::sync::Mutex<u32>);

impl rtrain::ssh::Prompter for GivePassphrase {
    fn passphrase(&self, _key_path: &Path) -> Option<String> {
        *self.1.lock().unwrap() += 1;
        Some(self.0.clone())
    }
    fn confirm_new_host_key(&self, _: &str, _: &str, _: &str, _: &[String]) -> Option<bool> {
        Some(false)
    }
}

fn library_target(c: &Client, host: &str) -> rtrain::config::Target {
    let paths = rtrain::config::Paths::resolve(c.home.path().to_path_buf(), None, None, current_user());
    rtrain::config::resolve_target(host, &rtrain::config::ConfigFile::default(), &paths, false).unwrap()
}

fn opts() -> rtrain::ssh::ConnectOptions {
    rtrain::ssh::ConnectOptions {
        keepalive_interval: Duration::from_secs(5),
        keepalive_max: 2,
        connect_timeout: Duration::from_secs(10),
        handshake_timeout: Duration::from_secs(10),
        agent_socket: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passphrase_protected_key_uses_the_prompters_passphrase() {
    let sshd = Sshd::start();
    let c = Client::for_box(&sshd);
    keygen(&c.key, "ed25519", "correct horse");
    sshd.authorize(&c.key.with_extension("pub"));
    let target = library_target(&c, "box");

    let wrong = Arc::new(GivePassphrase("wrong".into(), Default::default()));
    let err = rtrain::ssh::connect_once(&target, &opts(), wrong.clone())
        .await
        .err()
        .expect("a wrong passphrase must fail");
    assert_eq!(err.exit_code(), 4, "{err}");
    assert!(err.to_string().contains("wrong passphrase"), "{err}");
    assert_eq!(*wrong.1.lock().unwrap(), 3, "asks three times like ssh");

    let right = Arc::new(GivePassphrase("correct horse".into(), Default::default()));
    let session = rtrain::ssh::connect_once(&target, &opts(), right)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", sshd.log()));
    let out = session
        .exec("echo $((6*7))", None, Some(Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(out.stdout, b"42\n");
}

#[test]
fn passphrase_protected_key_without_a_terminal_fails_cleanly_with_exit_4() {
    let sshd = Sshd::start();
    let c = Client::for_box(&sshd);
    keygen(&c.key, "ed25519", "secret");
    sshd.authorize(&c.key.with_extension("pub"));
    let ran = run_with_timeout(c.rtrain().args(["exec", "box", "--", "true"]), LIMIT);
    assert_eq!(ran.code, 4, "{ran}");
    assert!(
        ran.stderr.contains("encrypted") && ran.stderr.contains("ssh-agent"),
        "{ran}"
    );
    assert_eq!(ran.stderr.lines().count(), 1, "one clear line: {ran}");
}

#[test]
fn agent_keys_authenticate_including_rsa() {
    let sshd = Sshd::start();
    let c = Client::for_box(&sshd);
    let agent = Agent::with_key_for(&sshd, "rsa", "agent_rsa");
    c.write_ssh_config(&format!(
        "Host box\n  HostName 127.0.0.1\n  Port {}\n  User {}\n",
        sshd.port, sshd.user
    ));
    let ran = run_with_timeout(
        c.rtrain()
            .env("SSH_AUTH_SOCK", &agent.sock)
            .args(["exec", "box", "--", "echo", "via agent"]),
        LIMIT,
    );
    ok(&ran, &sshd);
    assert_eq!(ran.stdout_str(), "via agent\n");
    // Without the agent the same client has no key at all.
    let ran = run_with_timeout(c.rtrain().args(["exec", "box", "--", "true"]), LIMIT);
    assert_eq!(ran.code, 4, "{ran}");
}

#[test]
fn identity_agent_none_ignores_the_agent() {
    let sshd = Sshd::start();
    let c = Client::for_box(&sshd);
    let agent = Agent::with_key_for(&sshd, "ed25519", "agent_ed");
    c.write_ssh_config(&format!(
        "Host box\n  HostName 127.0.0.1\n  Port {}\n  User {}\n  IdentityAgent none\n",
        sshd.port, sshd.user
    ));
    let ran = run_with_timeout(
        c.rtrain()
            .env("SSH_AUTH_SOCK", &agent.sock)
            .args(["exec", "box", "--", "true"]),
        LIMIT,
    );
    assert_eq!(ran.code, 4, "{ran}");
}

#[test]
fn wrong_key_is_exit_4() {
    let sshd = Sshd::start();
    let c = Client::for_box(&sshd);
    keygen(&c.key, "ed25519", ""); // a new key the server does not know
    let ran = run_with_timeout(c.rtrain().args(["exec", "box", "--", "true"]), LIMIT);
    assert_eq!(ran.code, 4, "{ran}");
    assert!(ran.stderr.contains("authentication"), "{ran}");
}

#[test]
fn unknown_host_without_terminal_is_exit_5_and_runs_nothing() {
    let sshd = Sshd::start();
    let c = Client::for_box(&sshd);
    std::fs::remove_file(c.ssh_dir().join("known_hosts")).unwrap();
    let marker = sshd.dir.path().join("ran");
    let ran = run_with_timeout(c.rtrain().args(["exec", "box", "--", "touch"]).arg(&marker), LIMIT);
    assert_eq!(ran.code, 5, "{ran}");
    assert!(
        ran.stderr.contains("SHA256:") && ran.stderr.contains("--accept-new-host-key"),
        "{ran}"
    );
    assert!(!marker.exists());
    assert_eq!(c.known_hosts(), "", "nothing recorded");
}

#[test]
fn accept_new_host_key_records_it_and_later_runs_need_no_flag() {
    let sshd = Sshd::start();
    let c = Client::for_box(&sshd);
    std::fs::remove_file(c.ssh_dir().join("known_hosts")).unwrap();
    let ran = run_with_timeout(
        c.rtrain().args(["--accept-new-host-key", "exec", "box", "--", "true"]),
        LIMIT,
    );
    ok(&ran, &sshd);
    assert!(
        c.known_hosts()
            .starts_with(&format!("[127.0.0.1]:{} ssh-ed25519 ", sshd.port)),
        "{}",
        c.known_hosts()
    );
    let ran = run_with_timeout(c.rtrain().args(["exec", "box", "--", "true"]), LIMIT);
    ok(&ran, &sshd);
    // ssh-keygen (OpenSSH's own lookup) finds the recorded entry.
    let found = Command::new("ssh-keygen")
        .arg("-F")
        .arg(format!("[127.0.0.1]:{}", sshd.port))
        .arg("-f")
        .arg(c.ssh_dir().join("known_hosts"))
        .output()
        .unwrap();
    assert!(found.status.success());
}

#[test]
fn strict_host_key_checking_accept_new_from_ssh_config_records_the_key() {
    let sshd = Sshd::start();
    let c = Client::for_box(&sshd);
    std::fs::remove_file(c.ssh_dir().join("known_hosts")).unwrap();
    let cfg = std::fs::read_to_string(c.ssh_dir().join("config")).unwrap();
    c.write_ssh_config(&format!("{cfg}  StrictHostKeyChecking accept-new\n"));
    let ran = run_with_timeout(c.rtrain().args(["exec", "box", "--", "true"]), LIMIT);
    ok(&ran, &sshd);
    assert!(c.known_hosts().contains("ssh-ed25519"));
}

#[test]
fn changed_host_key_is_refused_before_authentication_with_exit_5() {
    let mut sshd = Sshd::start();
    let c = Client::for_box(&sshd);
    sshd.change_host_key();
    let before = sshd.log().len();
    let ran = run_with_timeout(c.rtrain().args(["exec", "box", "--", "true"]), LIMIT);
    assert_eq!(ran.code, 5, "{ran}");
    assert!(
        ran.stderr.contains("CHANGED") && ran.stderr.contains("known_hosts:1"),
        "{ran}"
    );
    assert!(ran.stderr.contains("ssh-keygen -R"), "hint names the fix: {ran}");
    std::thread::sleep(Duration::from_millis(200));
    let log = sshd.log()[before..].to_string();
    for auth_trace in ["publickey", "Accepted", "Failed", "authenticating user"] {
        assert!(
            !log.contains(auth_trace),
            "the client authenticated before refusing the host key: {log}"
        );
    }
    // --accept-new-host-key never overrides a changed key.
    let ran = run_with_timeout(
        c.rtrain().args(["--accept-new-host-key", "exec", "box", "--", "true"]),
        LIMIT,
    );
    assert_eq!(ran.code, 5, "{ran}");
}

#[test]
fn hashed_known_hosts_entry_is_accepted() {
    let sshd = Sshd::start();
    let c = Client::for_box(&sshd);
    let kh = c.ssh_dir().join("known_hosts");
    let st = Command::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(&kh)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    assert!(c.known_hosts().starts_with("|1|"), "{}", c.known_hosts());
    let ran = run_with_timeout(c.rtrain().args(["exec", "box", "--", "true"]), LIMIT);
    ok(&ran, &sshd);
}

#[test]
fn closed_port_is_exit_3_quickly() {
    let c = Client::bare();
    let port = free_port();
    let ran = run_with_timeout(
        c.rtrain().args(["exec", &format!("127.0.0.1:{port}"), "--", "true"]),
        LIMIT,
    );
    assert_eq!(ran.code, 3, "{ran}");
    assert!(ran.stderr.contains("cannot reach"), "{ran}");
    assert!(ran.elapsed < Duration::from_secs(10), "{ran}");
}

#[test]
fn silent_server_times_out_with_exit_3_after_connect_timeout() {
    // Accepts TCP and never says a word: the handshake must time out, not hang.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let c = Client::bare();
    c.write_ssh_config(&format!(
        "Host mute\n  HostName 127.0.0.1\n  Port {port}\n  ConnectTimeout 2\n"
    ));
    let ran = run_with_timeout(c.rtrain().args(["exec", "mute", "--", "true"]), LIMIT);
    drop(listener);
    assert_eq!(ran.code, 3, "{ran}");
    assert!(ran.stderr.contains("timed out"), "{ran}");
}

#[test]
fn malformed_rtrain_config_is_exit_2_naming_file_line_column() {
    let c = Client::bare();
    c.write_rtrain_config("defaults:\n  session: training\n  wrokdir: ~/x\n");
    let ran = run_with_timeout(c.rtrain().args(["exec", "box", "--", "true"]), LIMIT);
    assert_eq!(ran.code, 2, "{ran}");
    assert!(
        ran.stderr.contains("config.yaml:3:3") && ran.stderr.contains("wrokdir"),
        "{ran}"
    );
}

#[test]
fn malformed_ssh_config_is_exit_2_naming_the_line() {
    let c = Client::bare();
    c.write_ssh_config("Host box\n  Port notanumber\n");
    let ran = run_with_timeout(c.rtrain().args(["exec", "box", "--", "true"]), LIMIT);
    assert_eq!(ran.code, 2, "{ran}");
    assert!(ran.stderr.contains("config:2"), "{ran}");
}

#[test]
fn hosts_lists_rtrain_and_ssh_config_hosts() {
    let c = Client::bare();
    c.write_ssh_config("Host gpu-box\n  HostName 10.1.2.3\n  User alice\nHost *\n  ServerAliveInterval 10\n");
    c.write_rtrain_config("hosts:\n  lab:\n    workdir: ~/x\n");
    let ran = run_with_timeout(c.rtrain().args(["hosts", "--json"]), LIMIT);
    assert_eq!(ran.code, 0, "{ran}");
    let v: serde_json::Value = serde_json::from_slice(&ran.stdout).unwrap();
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["lab", "gpu-box"]);
    assert_eq!(v[1]["user"], "alice");
    assert_eq!(v[1]["host_name"], "10.1.2.3");
}

#[test]
fn completions_print_a_script() {
    let c = Client::bare();
    let ran = run_with_timeout(c.rtrain().args(["completions", "bash"]), LIMIT);
    assert_eq!(ran.code, 0, "{ran}");
    assert!(ran.stdout_str().contains("rtrain"));
}

#[test]
fn exec_timeout_ends_a_command_that_runs_too_long() {
    let sshd = Sshd::start();
    let c = Client::for_box(&sshd);
    let ran = run_with_timeout(
        c.rtrain().args(["exec", "box", "--timeout", "1", "--", "sleep", "30"]),
        LIMIT,
    );
    assert_eq!(ran.code, 1, "{ran}");
    assert!(ran.stderr.contains("timed out after 1 s"), "{ran}");
    assert!(ran.elapsed < Duration::from_secs(10), "{ran}");
}
