//! OpenSSH client-config keywords that change how rtrain connects (StrictHostKeyChecking,
//! UserKnownHostsFile, IdentitiesOnly, IdentityAgent, unsupported keywords), each against a real
//! sshd through the real binary.

use crate::support::*;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(30);

fn ok(ran: &Ran, sshd: &Sshd) {
    assert_eq!(ran.code, 0, "{ran}\n--- sshd log\n{}", sshd.log());
}

fn box_config(sshd: &Sshd, c: &Client, extra: &str) -> String {
    format!(
        "Host box\n  HostName 127.0.0.1\n  Port {}\n  User {}\n  IdentityFile {}\n{extra}",
        sshd.port,
        sshd.user,
        c.key.display()
    )
}

#[test]
fn strict_host_key_checking_no_warns_records_new_keys_and_never_accepts_a_changed_one() {
    let mut sshd = Sshd::start();
    let c = Client::for_box(&sshd);
    std::fs::remove_file(c.ssh_dir().join("known_hosts")).unwrap();
    c.write_ssh_config(&box_config(&sshd, &c, "  StrictHostKeyChecking no\n"));
    let ran = run_with_timeout(c.rtrain().args(["exec", "box", "--", "echo", "ok"]), LIMIT);
    ok(&ran, &sshd);
    assert_eq!(ran.stdout_str(), "ok\n");
    let warning = "rtrain: warning: StrictHostKeyChecking no is set for box: rtrain treats it as accept-new";
    assert!(ran.stderr.starts_with(warning), "{ran}");
    assert_eq!(ran.stderr.lines().count(), 1, "one line: {ran}");
    assert!(c.known_hosts().contains("ssh-ed25519"), "a new key is recorded");
    // -q silences the warning.
    let ran = run_with_timeout(c.rtrain().args(["-q", "exec", "box", "--", "true"]), LIMIT);
    ok(&ran, &sshd);
    assert_eq!(ran.stderr, "", "{ran}");
    // Unlike OpenSSH's `no`, a changed key is refused all the same.
    sshd.change_host_key();
    let ran = run_with_timeout(c.rtrain().args(["exec", "box", "--", "true"]), LIMIT);
    assert_eq!(ran.code, 5, "{ran}");
    assert!(ran.stderr.contains("CHANGED"), "{ran}");
}

#[test]
fn several_user_known_hosts_files_are_all_checked_and_new_keys_go_to_the_first() {
    let known = Sshd::start();
    let new = Sshd::start();
    let c = Client::for_box(&known);
    new.authorize(&c.key.with_extension("pub"));
    let first = c.home.path().join("kh-first");
    let second = c.home.path().join("kh-second");
    std::fs::rename(c.ssh_dir().join("known_hosts"), &second).unwrap();
    c.write_ssh_config(&format!(
        "Host known new\n  HostName 127.0.0.1\n  User {}\n  IdentityFile {}\n  UserKnownHostsFile {} {}\n\
         Host known\n  Port {}\nHost new\n  Port {}\n",
        known.user,
        c.key.display(),
        first.display(),
        second.display(),
        known.port,
        new.port
    ));
    // Known from the second file only.
    let ran = run_with_timeout(c.rtrain().args(["exec", "known", "--", "true"]), LIMIT);
    ok(&ran, &known);
    assert!(!first.exists(), "nothing to record for a known host");
    let ran = run_with_timeout(
        c.rtrain().args(["--accept-new-host-key", "exec", "new", "--", "true"]),
        LIMIT,
    );
    ok(&ran, &new);
    let recorded = std::fs::read_to_string(&first).unwrap();
    assert!(
        recorded.starts_with(&format!("[127.0.0.1]:{} ", new.port)),
        "{recorded}"
    );
    assert!(!std::fs::read_to_string(&second)
        .unwrap()
        .contains(&format!(":{} ", new.port)));
}

#[test]
fn user_known_hosts_file_none_records_nothing_anywhere() {
    let sshd = Sshd::start();
    let c = Client::for_box(&sshd);
    std::fs::remove_file(c.ssh_dir().join("known_hosts")).unwrap();
    c.write_ssh_config(&box_config(&sshd, &c, "  UserKnownHostsFile none\n"));
    let cwd = tempfile::tempdir().unwrap();
    // Nothing known: refused as usual without a terminal.
    let ran = run_with_timeout(
        c.rtrain().current_dir(cwd.path()).args(["exec", "box", "--", "true"]),
        LIMIT,
    );
    assert_eq!(ran.code, 5, "{ran}");
    // Accepted for this connection, but there is no file to record it in: not even one named "none".
    let ran = run_with_timeout(
        c.rtrain()
            .current_dir(cwd.path())
            .args(["--accept-new-host-key", "exec", "box", "--", "true"]),
        LIMIT,
    );
    ok(&ran, &sshd);
    assert!(!cwd.path().join("none").exists(), "recorded into a file called `none`");
    assert_eq!(c.known_hosts(), "");
}

#[test]
fn identities_only_keeps_other_agent_keys_back() {
    let sshd = Sshd::start();
    let c = Client::for_box(&sshd);
    let agent = Agent::with_key_for(&sshd, "ed25519", "agent_only");
    // The configured key is one the server does not accept; only the agent's would work.
    keygen(&c.key, "ed25519", "");
    let run = |extra: &str| {
        c.write_ssh_config(&box_config(&sshd, &c, extra));
        run_with_timeout(
            c.rtrain()
                .env("SSH_AUTH_SOCK", &agent.sock)
                .args(["exec", "box", "--", "true"]),
            LIMIT,
        )
    };
    let ran = run("");
    ok(&ran, &sshd);
    let ran = run("  IdentitiesOnly yes\n");
    assert_eq!(
        ran.code, 4,
        "IdentitiesOnly must not offer the agent's other key: {ran}"
    );
}

#[test]
fn identity_agent_dollar_variable_names_the_socket() {
    let sshd = Sshd::start();
    let c = Client::for_box(&sshd);
    let agent = Agent::with_key_for(&sshd, "ed25519", "agent_ed");
    c.write_ssh_config(&format!(
        "Host box\n  HostName 127.0.0.1\n  Port {}\n  User {}\n  IdentityAgent $MY_AGENT\n",
        sshd.port, sshd.user
    ));
    let ran = run_with_timeout(
        c.rtrain()
            .env("MY_AGENT", &agent.sock)
            .args(["exec", "box", "--", "true"]),
        LIMIT,
    );
    ok(&ran, &sshd);
}

#[test]
fn unsupported_keywords_are_a_verbose_note_never_an_error() {
    let sshd = Sshd::start();
    let c = Client::for_box(&sshd);
    c.write_ssh_config(&box_config(
        &sshd,
        &c,
        "  ControlMaster auto\n  ForwardX11 yes\n  SomeFutureOption 42\n",
    ));
    let ran = run_with_timeout(c.rtrain().args(["exec", "box", "--", "true"]), LIMIT);
    ok(&ran, &sshd);
    assert_eq!(ran.stderr, "", "silent without -v: {ran}");
    let ran = run_with_timeout(c.rtrain().args(["-v", "exec", "box", "--", "true"]), LIMIT);
    ok(&ran, &sshd);
    for kw in ["ControlMaster", "ForwardX11", "SomeFutureOption"] {
        assert!(ran.stderr.contains(&format!("note: ssh_config {kw} (")), "{kw}: {ran}");
    }
}
