//! The rough edges a new user hit (issue 10, section 3), each pinned through the real binary:
//! an unknown host name, Ctrl-C, help texts.

use crate::support::*;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);
const UNKNOWN: &str =
    "rtrain: unknown host nosuchhost: not in ~/.ssh/config or rtrain's config, and DNS has no such name\n";

/// Regression: `rtrain status nosuchhost` said "cannot reach" twice (a row on stdout and a line on
/// stderr), exit 3, as if the network were down.
#[test]
fn regression_an_unknown_host_is_said_once_as_a_usage_error() {
    let c = Client::bare();
    for args in [
        &["status", "nosuchhost"][..],
        &["status", "--json", "nosuchhost"],
        &["ckpts", "nosuchhost"],
        &["exec", "nosuchhost", "--", "true"],
    ] {
        let ran = run_with_timeout(c.rtrain().args(args), LIMIT);
        assert_eq!(ran.code, 2, "{args:?}: {ran}");
        assert_eq!(ran.stdout_str(), "", "{args:?}: {ran}");
        assert_eq!(ran.stderr, UNKNOWN, "{args:?}: {ran}");
    }
    // An alias of ~/.ssh/config whose HostName does not resolve is an outage, not a typo.
    c.write_ssh_config("Host typo-free\n  HostName nosuchhost\n");
    let ran = run_with_timeout(c.rtrain().args(["status", "typo-free"]), LIMIT);
    assert_eq!(ran.code, 3, "{ran}");
    assert_eq!(ran.stdout_str(), "", "the reason is said once, on stderr: {ran}");
    assert_eq!(ran.stderr.lines().count(), 1, "{ran}");
}

#[test]
fn an_unknown_host_among_several_leaves_the_others_answered() {
    let sshd = Sshd::start();
    let c = Client::for_box(&sshd);
    let human = run_with_timeout(c.rtrain().args(["status", "nosuchhost", "box"]), LIMIT);
    assert_eq!(human.code, 2, "{human}");
    assert_eq!(human.stderr, UNKNOWN, "{human}");
    let out = human.stdout_str();
    assert!(
        out.starts_with("box  "),
        "box still answers, nosuchhost has no row: {human}"
    );
    assert!(!out.contains("nosuchhost"), "{human}");

    let json = run_with_timeout(c.rtrain().args(["status", "--json", "nosuchhost", "box"]), LIMIT);
    assert_eq!(json.code, 2, "{json}");
    assert_eq!(json.stderr, "", "{json}");
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{json}");
    assert_eq!(rows[0]["host"], "nosuchhost");
    assert_eq!(rows[0]["reachable"], false);
    assert_eq!(rows[0]["error"], UNKNOWN.trim_end().trim_start_matches("rtrain: "));
    assert_eq!(rows[1]["host"], "box");
    assert_eq!(rows[1]["reachable"], true, "{json}");
}

/// Regression: `hosts --json` spelled the policy `"AcceptNew"` for the host and `"accept-new"` for
/// its jump hosts; OpenSSH's spelling (what `ssh -G` prints) for both.
#[test]
fn regression_hosts_json_spells_strict_host_key_checking_as_openssh() {
    let c = Client::bare();
    c.write_ssh_config(
        "Host gpu\n  HostName 10.0.0.7\n  ProxyJump bastion\n  StrictHostKeyChecking accept-new\n\
         Host bastion\n  HostName 10.0.0.1\n  StrictHostKeyChecking yes\n\
         Host plain\n  HostName 10.0.0.8\n",
    );
    let policy = |host: &str| {
        let ran = run_with_timeout(c.rtrain().args(["hosts", "--json", host]), LIMIT);
        assert_eq!(ran.code, 0, "{ran}");
        serde_json::from_slice::<serde_json::Value>(&ran.stdout).unwrap()
    };
    let v = policy("gpu");
    assert_eq!(v["strict_host_key_checking"], "accept-new", "{v}");
    assert_eq!(v["jump_hosts"][0]["strict_host_key_checking"], "yes", "{v}");
    assert_eq!(policy("plain")["strict_host_key_checking"], "ask");
    assert_eq!(policy("bastion")["strict_host_key_checking"], "yes");
}
