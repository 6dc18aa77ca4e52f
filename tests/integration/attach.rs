//! `rtrain attach` in a real (tmux-emulated) local terminal against a real sshd and remote tmux.

use crate::support::*;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

#[test]
fn attach_shows_the_remote_session_takes_input_and_detaches_with_exit_0() {
    let sshd = Sshd::start();
    let c = Client::for_box(&sshd);
    c.write_rtrain_config("defaults:\n  session: train ing\n");
    let term = LocalTerm::start(
        &[env!("CARGO_BIN_EXE_rtrain").to_string(), "attach".into(), "box".into()],
        &c.env_pairs(),
    );
    // tmux's status line shows the session name (cut to 10 columns by tmux's default status-left-length).
    term.wait_for("[train ing", T);
    term.type_text("echo remote-$((40+2))");
    term.send_keys(&["Enter"]);
    term.wait_for("remote-42", T);
    // Detach with the remote tmux's prefix (send-keys goes to the pane, past the local tmux).
    term.send_keys(&["C-b", "d"]);
    let screen = term.wait_for("the run goes on", T);
    assert_eq!(term.wait_exit(T), 0, "{screen}");
    // The session is still there on the box.
    let out = sshd.sh("tmux has-session -t '=train ing'");
    assert!(out.status.success(), "session gone after detach");
}

#[test]
fn attach_needs_a_terminal() {
    let sshd = Sshd::start();
    let c = Client::for_box(&sshd);
    let ran = run_with_timeout(c.rtrain().args(["attach", "box"]), T);
    assert_eq!(ran.code, 2, "{ran}");
    assert!(ran.stderr.contains("needs a terminal"), "{ran}");
}

/// The interactive answers a person gives at a terminal: the new-host question and a passphrase.
#[test]
fn on_a_terminal_a_new_host_key_is_asked_about_and_yes_records_it() {
    let sshd = Sshd::start();
    let c = Client::for_box(&sshd);
    std::fs::remove_file(c.ssh_dir().join("known_hosts")).unwrap();
    let script = format!(
        "{} exec box -- echo ran-$((1+1)); echo EXIT=$?; sleep 30",
        rtrain_bin().display()
    );
    let term = LocalTerm::start(&["sh".into(), "-c".into(), script], &c.env_pairs());
    let screen = term.wait_for("(yes/no)?", T);
    assert!(screen.contains("SHA256:"), "{screen}");
    term.type_text("yes");
    term.send_keys(&["Enter"]);
    term.wait_for("ran-2", T);
    term.wait_for("EXIT=0", T);
    assert!(c.known_hosts().contains("ssh-ed25519"), "yes records the key");
}

#[test]
fn on_a_terminal_no_refuses_the_new_host_key_with_exit_5() {
    let sshd = Sshd::start();
    let c = Client::for_box(&sshd);
    std::fs::remove_file(c.ssh_dir().join("known_hosts")).unwrap();
    let script = format!("{} exec box -- true; echo EXIT=$?; sleep 30", rtrain_bin().display());
    let term = LocalTerm::start(&["sh".into(), "-c".into(), script], &c.env_pairs());
    term.wait_for("(yes/no)?", T);
    term.type_text("no");
    term.send_keys(&["Enter"]);
    term.wait_for("EXIT=5", T);
    assert_eq!(c.known_hosts(), "");
}

#[test]
fn on_a_terminal_an_encrypted_key_asks_for_its_passphrase_without_echo() {
    let sshd = Sshd::start();
    let c = Client::for_box(&sshd);
    keygen(&c.key, "ed25519", "open sesame");
    sshd.authorize(&c.key.with_extension("pub"));
    let script = format!(
        "{} exec box -- echo ran-$((2+2)); echo EXIT=$?; sleep 30",
        rtrain_bin().display()
    );
    let term = LocalTerm::start(&["sh".into(), "-c".into(), script], &c.env_pairs());
    term.wait_for("Enter passphrase for key", T);
    term.type_text("open sesame");
    term.send_keys(&["Enter"]);
    let screen = term.wait_for("EXIT=0", T);
    assert!(screen.contains("ran-4"), "{screen}");
    assert!(!screen.contains("open sesame"), "the passphrase was echoed:\n{screen}");
}

#[test]
fn up_attach_launches_then_shows_the_run_in_the_terminal() {
    let sshd = Sshd::start();
    let c = Client::for_box(&sshd);
    let script = format!(
        "{} up box --attach -- 'echo the-run-says-hi; sleep 60'; echo EXIT=$?; sleep 30",
        rtrain_bin().display()
    );
    let term = LocalTerm::start(&["sh".into(), "-c".into(), script], &c.env_pairs());
    term.wait_for("the-run-says-hi", T);
    term.wait_for("[training", T);
    term.send_keys(&["C-b", "d"]);
    term.wait_for("EXIT=0", T);
    let st = run_with_timeout(c.rtrain().args(["status", "box", "--json"]), T);
    let v: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(v["run"]["state"], "running", "detaching leaves the run going: {v:#}");
    run_with_timeout(c.rtrain().args(["stop", "box", "--force"]), T);
}
