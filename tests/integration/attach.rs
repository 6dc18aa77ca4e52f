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
