//! Logging in wherever OpenSSH can (issue 18): passwords and keyboard-interactive through real
//! sshd and real PAM, in the method order ssh_config asks for.

use crate::support::*;
use rtrain::ssh::{KbdRound, LoginQuestion, Prompter};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

/// A person at a terminal, scripted: answers passwords and keyboard-interactive rounds from lists,
/// and remembers every question.
#[derive(Default)]
struct Person {
    passwords: Mutex<Vec<String>>,
    /// Answers for keyboard-interactive prompts, by a word of the prompt (`Password`, `code`).
    kbd: Vec<(String, Box<dyn Fn() -> String + Send + Sync>)>,
    asked: Mutex<Vec<String>>,
    rounds: Mutex<Vec<KbdRound>>,
    timeout: Option<Duration>,
    notices: Mutex<Vec<String>>,
    /// Called after each password question with how many there were so far (while the person
    /// "types", the test may break the network).
    on_password: Option<Box<dyn Fn(usize) + Send + Sync>>,
}

impl Person {
    fn with_passwords(pws: &[&str]) -> Person {
        Person {
            passwords: Mutex::new(pws.iter().rev().map(|s| s.to_string()).collect()),
            ..Person::default()
        }
    }
    fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }
}

impl Prompter for Person {
    fn passphrase(&self, _: &Path) -> Option<String> {
        None
    }
    fn confirm_new_host_key(&self, _: &str, _: &str, _: &str, _: &[String]) -> Option<bool> {
        Some(false)
    }
    fn password(&self, q: &LoginQuestion) -> Option<String> {
        let n = {
            let mut asked = self.asked.lock().unwrap();
            asked.push(format!("password {}@{} #{}", q.user, q.host, q.attempt));
            asked.len()
        };
        let answer = self.passwords.lock().unwrap().pop();
        if let Some(hook) = &self.on_password {
            hook(n);
        }
        answer
    }
    fn keyboard_interactive(&self, round: &KbdRound) -> Option<Vec<String>> {
        self.rounds.lock().unwrap().push(round.clone());
        let mut answers = Vec::new();
        for p in &round.prompts {
            self.asked
                .lock()
                .unwrap()
                .push(format!("kbd {:?} echo={}", p.text, p.echo));
            let (_, answer) = self.kbd.iter().find(|(word, _)| p.text.contains(word.as_str()))?;
            answers.push(answer());
        }
        Some(answers)
    }
    fn notice(&self, text: &str) {
        self.notices.lock().unwrap().push(text.to_string());
    }
    fn answer_timeout(&self) -> Duration {
        self.timeout.unwrap_or(Duration::from_secs(120))
    }
}

fn opts() -> rtrain::ssh::ConnectOptions {
    rtrain::ssh::ConnectOptions {
        keepalive_interval: Duration::from_secs(5),
        keepalive_max: 2,
        connect_timeout: Duration::from_secs(10),
        handshake_timeout: Duration::from_secs(20),
        agent_socket: None,
    }
}

fn library_target(c: &Client, host: &str) -> rtrain::config::Target {
    let paths = rtrain::config::Paths::resolve(c.home.path().to_path_buf(), None, None, current_user());
    rtrain::config::resolve_target(host, &rtrain::config::ConfigFile::default(), &paths, false).unwrap()
}

/// A box that takes passwords (and keys), and a client that knows it as `box` for `user`, with
/// no key of its own; `extra` goes into the client's Host block.
fn password_box(user: &TestUser, extra: &str) -> (Sshd, Client) {
    let sshd = Sshd::start_opts(SshdOptions {
        auth_config: "PasswordAuthentication yes\n".into(),
        ..SshdOptions::default()
    });
    let c = Client::bare();
    c.write_ssh_config(&format!(
        "Host box\n  HostName 127.0.0.1\n  Port {}\n  User {}\n{extra}",
        sshd.port, user.name
    ));
    c.trust(&sshd);
    (sshd, c)
}

async fn echo(session: &rtrain::ssh::Session) -> String {
    let out = session
        .exec("echo in-as-$(id -un)", None, Some(Duration::from_secs(10)))
        .await
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_right_password_from_the_prompter_logs_in_and_is_asked_once() {
    let user = TestUser::create("pa55 word");
    let (sshd, c) = password_box(&user, "");
    let person = Arc::new(Person::with_passwords(&["pa55 word"]));
    let session = rtrain::ssh::connect_once(&library_target(&c, "box"), &opts(), person.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", sshd.log()));
    assert_eq!(echo(&session).await, format!("in-as-{}", user.name));
    assert_eq!(person.asked(), [format!("password {}@127.0.0.1 #1", user.name)]);
    assert!(sshd.log().contains("Accepted password for"), "{}", sshd.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_three_times_fails_with_exit_4_after_three_prompts() {
    let user = TestUser::create("right");
    let (sshd, c) = password_box(&user, "");
    let person = Arc::new(Person::with_passwords(&["wrong1", "wrong2", "wrong3", "right"]));
    let err = rtrain::ssh::connect_once(&library_target(&c, "box"), &opts(), person.clone())
        .await
        .err()
        .expect("wrong passwords must not log in");
    assert_eq!(err.exit_code(), 4, "{err}");
    assert!(err.to_string().contains("password (refused 3 time(s))"), "{err}");
    let asked = person.asked();
    assert_eq!(asked.len(), 3, "NumberOfPasswordPrompts defaults to 3: {asked:?}");
    assert!(asked[2].ends_with("#3"), "{asked:?}");
    assert!(!sshd.log().contains("Accepted"), "{}", sshd.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn number_of_password_prompts_and_password_authentication_no_are_obeyed() {
    let user = TestUser::create("right");
    let (_sshd, c) = password_box(&user, "  NumberOfPasswordPrompts 1\n");
    let person = Arc::new(Person::with_passwords(&["wrong", "right"]));
    let err = rtrain::ssh::connect_once(&library_target(&c, "box"), &opts(), person.clone())
        .await
        .err()
        .expect("one wrong password is all it may ask");
    assert_eq!(err.exit_code(), 4, "{err}");
    assert_eq!(person.asked().len(), 1, "{:?}", person.asked());

    c.write_ssh_config(&format!(
        "Host box\n  HostName 127.0.0.1\n  Port {}\n  User {}\n  PasswordAuthentication no\n",
        _sshd.port, user.name
    ));
    let person = Arc::new(Person::with_passwords(&["right"]));
    let err = rtrain::ssh::connect_once(&library_target(&c, "box"), &opts(), person.clone())
        .await
        .err()
        .expect("PasswordAuthentication no: nothing else to try");
    assert_eq!(err.exit_code(), 4, "{err}");
    assert!(
        person.asked().is_empty(),
        "asked although switched off: {:?}",
        person.asked()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preferred_authentications_puts_password_before_a_working_key() {
    let user = TestUser::create("right");
    let (sshd, c) = password_box(&user, "");
    // A key the box would accept for this user, and an order that asks for the password first.
    keygen(&c.key, "ed25519", "");
    sshd.authorize(&c.key.with_extension("pub"));
    let cfg = |order: &str| {
        format!(
            "Host box\n  HostName 127.0.0.1\n  Port {}\n  User {}\n  IdentityFile {}\n{order}",
            sshd.port,
            user.name,
            c.key.display()
        )
    };
    c.write_ssh_config(&cfg("  PreferredAuthentications password,publickey\n"));
    let person = Arc::new(Person::with_passwords(&["right"]));
    rtrain::ssh::connect_once(&library_target(&c, "box"), &opts(), person.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", sshd.log()));
    assert_eq!(person.asked().len(), 1, "password first: {:?}", person.asked());

    // The default order tries the key first: no question at all.
    c.write_ssh_config(&cfg(""));
    let person = Arc::new(Person::with_passwords(&["right"]));
    rtrain::ssh::connect_once(&library_target(&c, "box"), &opts(), person.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", sshd.log()));
    assert!(person.asked().is_empty(), "{:?}", person.asked());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_box_that_demands_a_key_then_a_password_counts_both_in_the_outcome() {
    let user = TestUser::create("second");
    let sshd = Sshd::start_opts(SshdOptions {
        auth_config: "PasswordAuthentication yes\nAuthenticationMethods publickey,password\n".into(),
        ..SshdOptions::default()
    });
    let c = Client::bare();
    keygen(&c.key, "ed25519", "");
    sshd.authorize(&c.key.with_extension("pub"));
    c.write_ssh_config(&format!(
        "Host box\n  HostName 127.0.0.1\n  Port {}\n  User {}\n  IdentityFile {}\n",
        sshd.port,
        user.name,
        c.key.display()
    ));
    c.trust(&sshd);
    let person = Arc::new(Person::with_passwords(&["second"]));
    let session = rtrain::ssh::connect_once(&library_target(&c, "box"), &opts(), person.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", sshd.log()));
    assert_eq!(session.auth().offered, ["publickey"], "what the server first accepts");
    assert_eq!(session.auth().used, ["publickey", "password"]);
}

#[test]
fn verbose_says_what_the_server_offered_and_which_method_logged_in() {
    let sshd = Sshd::start();
    let c = Client::for_box(&sshd);
    let ran = run_with_timeout(c.rtrain().args(["-v", "exec", "box", "--", "true"]), LIMIT);
    assert_eq!(ran.code, 0, "{ran}\n{}", sshd.log());
    let note = ran
        .stderr
        .lines()
        .find(|l| l.contains(" offered "))
        .unwrap_or_else(|| panic!("no note of what the server offered: {ran}"));
    assert!(
        note.contains("publickey") && note.ends_with("logged in with publickey"),
        "{note}"
    );
    // Without -v, nothing of it.
    let ran = run_with_timeout(c.rtrain().args(["exec", "box", "--", "true"]), LIMIT);
    assert!(!ran.stderr.contains(" offered "), "{ran}");
}

#[test]
fn a_password_box_without_a_terminal_fails_with_exit_4_and_a_hint() {
    let user = TestUser::create("right");
    let (sshd, c) = password_box(&user, "");
    let ran = run_with_timeout(c.rtrain().args(["exec", "box", "--", "true"]), LIMIT);
    assert_eq!(ran.code, 4, "{ran}\n{}", sshd.log());
    assert!(ran.stderr.contains("no terminal to ask"), "{ran}");
    assert!(
        ran.stderr.contains("hint:") && ran.stderr.contains("ssh-agent"),
        "{ran}"
    );
    assert_eq!(ran.stderr.trim().lines().count(), 1, "one line: {ran}");
}

#[test]
fn on_a_real_terminal_the_password_is_asked_without_echo() {
    let user = TestUser::create("s3cret-pw");
    let (sshd, c) = password_box(&user, "");
    let script = format!(
        "{} exec box -- sh -c 'echo in-as-$(id -un)'; echo EXIT=$?; sleep 30",
        rtrain_bin().display()
    );
    let term = LocalTerm::start(&["sh".into(), "-c".into(), script], &c.env_pairs());
    let t = Duration::from_secs(30);
    term.wait_for(&format!("{}@127.0.0.1's password:", user.name), t);
    term.type_text("s3cret-pw");
    term.send_keys(&["Enter"]);
    let screen = term.wait_for("EXIT=", t);
    assert!(screen.contains("EXIT=0"), "{screen}\n{}", sshd.log());
    assert!(screen.contains(&format!("in-as-{}", user.name)), "{screen}");
    let all = String::from_utf8_lossy(&term.output()).into_owned();
    assert!(!all.contains("s3cret-pw"), "the password was echoed: {all:?}");
}

/// A box whose logins go through real PAM: a password, then a verification code (TOTP), both as
/// keyboard-interactive rounds; the client knows it as `box` for `user`, with no key.
fn mfa_box(user: &TestUser, pam: &PamService) -> (Sshd, Client) {
    let sshd = Sshd::start_opts(SshdOptions {
        auth_config: "UsePAM yes\nKbdInteractiveAuthentication yes\nPasswordAuthentication no\n".into(),
        program: Some(pam.sshd_link.clone()),
        ..SshdOptions::default()
    });
    let c = Client::bare();
    c.write_ssh_config(&format!(
        "Host box\n  HostName 127.0.0.1\n  Port {}\n  User {}\n",
        sshd.port, user.name
    ));
    c.trust(&sshd);
    (sshd, c)
}

fn mfa_person(password: &str, code: impl Fn() -> String + Send + Sync + 'static) -> Person {
    let pw = password.to_string();
    Person {
        kbd: vec![
            ("Password".into(), Box::new(move || pw.clone())),
            ("code".into(), Box::new(code)),
        ],
        ..Person::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyboard_interactive_through_pam_takes_a_password_then_a_one_time_code_in_two_rounds() {
    let user = TestUser::create("mfa-pw");
    let pam = PamService::password_then_totp();
    let (sshd, c) = mfa_box(&user, &pam);
    let person = Arc::new(mfa_person("mfa-pw", totp_now));
    let session = rtrain::ssh::connect_once(&library_target(&c, "box"), &opts(), person.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", sshd.log()));
    assert_eq!(echo(&session).await, format!("in-as-{}", user.name));
    let rounds = person.rounds.lock().unwrap().clone();
    assert_eq!(rounds.len(), 2, "{rounds:?}");
    assert_eq!(rounds[0].prompts.len(), 1);
    assert!(rounds[0].prompts[0].text.contains("Password"), "{rounds:?}");
    assert!(rounds[1].prompts[0].text.contains("Verification code"), "{rounds:?}");
    assert!(
        rounds.iter().all(|r| !r.prompts[0].echo),
        "neither answer is shown: {rounds:?}"
    );
    assert!(
        sshd.log().contains("Accepted keyboard-interactive/pam"),
        "{}",
        sshd.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_one_time_code_fails_with_exit_4() {
    let user = TestUser::create("mfa-pw");
    let pam = PamService::password_then_totp();
    let (sshd, c) = mfa_box(&user, &pam);
    // Yesterday's code: a real code, long expired.
    let stale = || {
        totp_at(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs()
                - 86_400,
        )
    };
    let person = Arc::new(mfa_person("mfa-pw", stale));
    let err = rtrain::ssh::connect_once(&library_target(&c, "box"), &opts(), person.clone())
        .await
        .err()
        .expect("a wrong code must not log in");
    assert_eq!(err.exit_code(), 4, "{err}");
    assert!(err.to_string().contains("keyboard-interactive (refused"), "{err}");
    let asked = person.asked();
    assert_eq!(
        asked.len(),
        6,
        "password and code, NumberOfPasswordPrompts (3) times: {asked:?}"
    );
    assert!(!sshd.log().contains("Accepted"), "{}", sshd.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_who_does_not_answer_does_not_hang_the_login() {
    let user = TestUser::create("mfa-pw");
    let pam = PamService::password_then_totp();
    let (_sshd, c) = mfa_box(&user, &pam);
    let mut person = mfa_person("mfa-pw", || {
        std::thread::sleep(Duration::from_secs(20));
        "000000".into()
    });
    person.timeout = Some(Duration::from_secs(2));
    let start = std::time::Instant::now();
    let err = rtrain::ssh::connect_once(&library_target(&c, "box"), &opts(), Arc::new(person))
        .await
        .err()
        .expect("no answer, no login");
    assert_eq!(err.exit_code(), 4, "{err}");
    assert!(err.to_string().contains("no answer within 2 s"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(15), "took {:?}", start.elapsed());
}

#[test]
fn on_a_real_terminal_a_two_round_mfa_login_shows_each_prompt_without_echo() {
    let user = TestUser::create("mfa-term-pw");
    let pam = PamService::password_then_totp();
    let (sshd, c) = mfa_box(&user, &pam);
    let script = format!(
        "{} exec box -- sh -c 'echo in-as-$(id -un)'; echo EXIT=$?; sleep 30",
        rtrain_bin().display()
    );
    let term = LocalTerm::start(&["sh".into(), "-c".into(), script], &c.env_pairs());
    let t = Duration::from_secs(30);
    term.wait_for("Password:", t);
    term.type_text("mfa-term-pw");
    term.send_keys(&["Enter"]);
    term.wait_for("Verification code:", t);
    let code = totp_now();
    term.type_text(&code);
    term.send_keys(&["Enter"]);
    let screen = term.wait_for("EXIT=", t);
    assert!(screen.contains("EXIT=0"), "{screen}\n{}", sshd.log());
    let all = String::from_utf8_lossy(&term.output()).into_owned();
    assert!(
        !all.contains("mfa-term-pw") && !all.contains(&code),
        "an answer was echoed: {all:?}"
    );
    eprintln!("---- transcript ----\n{}", screen.trim_end());
}

#[test]
fn an_mfa_box_without_a_terminal_fails_with_exit_4_and_the_hint() {
    let user = TestUser::create("mfa-pw");
    let pam = PamService::password_then_totp();
    let (sshd, c) = mfa_box(&user, &pam);
    let ran = run_with_timeout(c.rtrain().args(["exec", "box", "--", "true"]), LIMIT);
    assert_eq!(ran.code, 4, "{ran}\n{}", sshd.log());
    assert!(ran.stderr.contains("keyboard-interactive (no terminal"), "{ran}");
    assert!(ran.stderr.contains("one-time code"), "{ran}");
}

#[test]
fn the_test_totp_matches_rfc_6238s_vectors() {
    // RFC 6238 appendix B, SHA-1, the last six of its eight digits.
    assert_eq!(totp_at(59), "287082");
    assert_eq!(totp_at(1_111_111_109), "081804");
    assert_eq!(totp_at(20_000_000_000), "353130");
}

/// A client that knows `sshd` as `box` for `user` through a fault proxy, with no key of its own,
/// so the network can be broken under a login.
fn behind_a_proxy(sshd: &Sshd, user: &TestUser) -> (Arc<Proxy>, Client) {
    let proxy = Arc::new(Proxy::start(sshd.port));
    let c = Client::bare();
    c.write_ssh_config(&format!(
        "Host box\n  HostName 127.0.0.1\n  Port {}\n  User {}\n",
        proxy.port(),
        user.name
    ));
    std::fs::write(
        c.ssh_dir().join("known_hosts"),
        format!("[127.0.0.1]:{} {}\n", proxy.port(), sshd.host_public_key()),
    )
    .unwrap();
    (proxy, c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_a_login_the_network_cuts_off_is_a_lost_connection_not_a_refused_password() {
    // CI once failed the outage test below: the reset landed after the password was sent, russh
    // reported the dead connection as an empty refusal, and the reconnect gave up as if the
    // password were wrong. Here the box holds the verdict until the test has broken the network.
    let user = TestUser::create("slow-pw");
    let marker_dir = tempfile::tempdir().unwrap();
    let marker = marker_dir.path().join("password-arrived");
    let pam = PamService::password_after_a_pause(&marker);
    let sshd = Sshd::start_opts(SshdOptions {
        auth_config: "UsePAM yes\nPasswordAuthentication yes\nKbdInteractiveAuthentication no\n".into(),
        program: Some(pam.sshd_link.clone()),
        ..SshdOptions::default()
    });
    let (proxy, c) = behind_a_proxy(&sshd, &user);
    let person = Arc::new(Person::with_passwords(&["slow-pw"]));
    let target = library_target(&c, "box");
    let p = person.clone();
    let login = tokio::spawn(async move {
        rtrain::ssh::session::connect_once(&target, &opts(), p)
            .await
            .map(|_| ())
    });
    let deadline = std::time::Instant::now() + LIMIT;
    while !marker.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the password never reached PAM\n{}",
            sshd.log()
        );
        assert!(
            !login.is_finished(),
            "the login ended before the password reached PAM\n{}",
            sshd.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    proxy.set_mode(Mode::Reset);
    let err = tokio::time::timeout(LIMIT, login)
        .await
        .expect("the login ends once the network is gone")
        .unwrap()
        .expect_err("no login through a reset connection");
    assert!(err.is_retryable(), "a cut-off login must be worth retrying, got: {err}");
    assert_eq!(person.asked().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_asks_for_the_password_once_per_outage_not_once_per_attempt() {
    use rtrain::ssh::link::{Link, LinkEvent, ReconnectPolicy};
    let user = TestUser::create("flaky-pw");
    let sshd = Sshd::start_opts(SshdOptions {
        auth_config: "PasswordAuthentication yes\n".into(),
        ..SshdOptions::default()
    });
    let (proxy, c) = behind_a_proxy(&sshd, &user);
    // While the person types the reconnect password, the network drops again: that attempt fails
    // after the question, and the next attempt of the same outage must not ask again.
    let broke = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (p2, b2) = (proxy.clone(), broke.clone());
    let person = Arc::new(Person {
        passwords: Mutex::new(vec!["flaky-pw".to_string(); 10]),
        on_password: Some(Box::new(move |n| {
            if n == 2 {
                p2.set_mode(Mode::Reset);
                b2.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        })),
        ..Person::default()
    });
    let mut o = opts();
    o.keepalive_interval = Duration::from_millis(500);
    let mut link = Link::new(library_target(&c, "box"), o, person.clone(), ReconnectPolicy::default());
    let first = link.session().await.unwrap_or_else(|e| panic!("{e}\n{}", sshd.log()));
    assert_eq!(echo(&first).await, format!("in-as-{}", user.name));
    assert_eq!(person.asked().len(), 1);
    assert!(
        person.notices.lock().unwrap().is_empty(),
        "no notice on the first login"
    );

    // The outage: every connection reset, the session declared dead, then the network is back.
    proxy.set_mode(Mode::Reset);
    tokio::time::timeout(Duration::from_secs(20), link.wait_dead())
        .await
        .expect("declared dead");
    drop(first);
    proxy.set_mode(Mode::Pass);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let cancel = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(async move {
        let r = link
            .reconnect(&cancel, |e| {
                let _ = tx.send(e);
            })
            .await;
        r.map(|s| (s, link))
    });
    // The attempt the reset broke reports a retry; then the network comes back for good.
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .expect("an event within 30 s");
        assert!(ev.is_some(), "reconnect ended before the break");
        if matches!(ev, Some(LinkEvent::Retrying { .. })) && broke.load(std::sync::atomic::Ordering::SeqCst) {
            break;
        }
    }
    proxy.set_mode(Mode::Pass);
    let (session, _link) = tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("reconnected in time")
        .unwrap()
        .unwrap_or_else(|e| panic!("{e}\n{}", sshd.log()));
    assert_eq!(echo(&session).await, format!("in-as-{}", user.name));
    assert_eq!(
        person.asked().len(),
        2,
        "once for the login, once for the outage: {:?}",
        person.asked()
    );
    let notices = person.notices.lock().unwrap().clone();
    assert_eq!(notices, ["box asks for a password to reconnect"], "{notices:?}");
}

/// A CA made with ssh-keygen that the box trusts for users (TrustedUserCAKeys), a client key the
/// box does NOT authorize, and that key's certificate signed for the box's user with `validity`.
fn user_cert_box(validity: &str, cert_beside_key: bool) -> (Sshd, Client, std::path::PathBuf, tempfile::TempDir) {
    let ca_tmp = tempfile::Builder::new().prefix("rtrain-ca-").tempdir().unwrap();
    let ca_dir = ca_tmp.path().to_path_buf();
    let ca = ca_dir.join("user_ca");
    keygen(&ca, "ed25519", "");
    let sshd = Sshd::start_with(&format!("TrustedUserCAKeys {}\n", ca.with_extension("pub").display()));
    let c = Client::bare();
    keygen(&c.key, "ed25519", "");
    let signed = std::process::Command::new("ssh-keygen")
        .args(["-q", "-s"])
        .arg(&ca)
        .args(["-I", "rtrain-test", "-n", &sshd.user, "-V", validity])
        .arg(c.key.with_extension("pub"))
        .output()
        .unwrap();
    assert!(signed.status.success(), "{}", String::from_utf8_lossy(&signed.stderr));
    let cert = c.ssh_dir().join("id_test-cert.pub");
    let mut cfg = format!(
        "Host box\n  HostName 127.0.0.1\n  Port {}\n  User {}\n  IdentityFile {}\n",
        sshd.port,
        sshd.user,
        c.key.display()
    );
    let cert = if cert_beside_key {
        cert
    } else {
        let elsewhere = ca_dir.join("issued.pub");
        std::fs::rename(&cert, &elsewhere).unwrap();
        cfg += &format!("  CertificateFile {}\n", elsewhere.display());
        elsewhere
    };
    c.write_ssh_config(&cfg);
    c.trust(&sshd);
    (sshd, c, cert, ca_tmp)
}

#[test]
fn a_user_certificate_beside_the_key_or_in_certificate_file_logs_in() {
    for beside in [true, false] {
        let (sshd, c, _cert, _ca) = user_cert_box("-5m:+1h", beside);
        let ran = run_with_timeout(c.rtrain().args(["exec", "box", "--", "echo", "cert-ok"]), LIMIT);
        assert_eq!(ran.code, 0, "beside={beside}: {ran}\n{}", sshd.log());
        assert_eq!(ran.stdout_str().trim(), "cert-ok");
        assert!(
            sshd.log().contains("Accepted publickey") && sshd.log().contains("ED25519-CERT"),
            "beside={beside}: {}",
            sshd.log()
        );
    }
}

#[test]
fn an_expired_user_certificate_is_refused_with_its_validity_window() {
    // UTC (the Z), so the window in the message does not depend on the machine's time zone.
    let (sshd, c, cert, _ca) = user_cert_box("20200101000000Z:20200102000000Z", true);
    let ran = run_with_timeout(c.rtrain().args(["exec", "box", "--", "true"]), LIMIT);
    assert_eq!(ran.code, 4, "{ran}\n{}", sshd.log());
    let want = format!(
        "certificate {} (expired: valid from 2020-01-01T00:00:00Z to 2020-01-02T00:00:00Z)",
        cert.display()
    );
    assert!(ran.stderr.contains(&want), "{ran}");
}

fn ssh_keygen(args: &[&str]) {
    let out = std::process::Command::new("ssh-keygen").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ssh-keygen {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A box whose host key is certified by a CA made with ssh-keygen (for `principal`, `validity`),
/// and a client whose known_hosts has no line for the box, only `known_hosts` (use `{ca}` and
/// `{other}` for the CA's and an unrelated CA's public keys).
fn host_cert_box(principal: &str, validity: &str, known_hosts: &str) -> (Sshd, Client, tempfile::TempDir) {
    let ca_dir = tempfile::Builder::new().prefix("rtrain-hostca-").tempdir().unwrap();
    let ca = ca_dir.path().join("host_ca");
    let other = ca_dir.path().join("other_ca");
    keygen(&ca, "ed25519", "");
    keygen(&other, "ed25519", "");
    let mut sshd = Sshd::start();
    let host_pub = sshd.host_key.with_extension("pub");
    ssh_keygen(&[
        "-q",
        "-s",
        ca.to_str().unwrap(),
        "-I",
        "test-host",
        "-h",
        "-n",
        principal,
        "-V",
        validity,
        host_pub.to_str().unwrap(),
    ]);
    let cert = sshd.dir.path().join("ssh_host_ed25519_key-cert.pub");
    sshd.extra_config = format!("HostCertificate {}\n", cert.display());
    sshd.restart();
    let c = Client::for_box(&sshd);
    let public = |p: &std::path::Path| {
        std::fs::read_to_string(p.with_extension("pub"))
            .unwrap()
            .trim()
            .to_string()
    };
    let text = known_hosts
        .replace("{ca}", &public(&ca))
        .replace("{other}", &public(&other));
    std::fs::write(c.ssh_dir().join("known_hosts"), text).unwrap();
    (sshd, c, ca_dir)
}

#[test]
fn a_host_certificate_signed_by_a_trusted_ca_needs_no_known_hosts_line() {
    let (sshd, c, _ca) = host_cert_box("127.0.0.1", "-5m:+1h", "@cert-authority 127.0.0.1,[127.0.0.1]:* {ca}\n");
    let before = c.known_hosts();
    let ran = run_with_timeout(c.rtrain().args(["exec", "box", "--", "echo", "host-cert-ok"]), LIMIT);
    assert_eq!(ran.code, 0, "{ran}\n{}", sshd.log());
    assert_eq!(ran.stdout_str().trim(), "host-cert-ok");
    assert_eq!(c.known_hosts(), before, "nothing recorded for a certified host");
}

#[test]
fn host_certificates_that_must_not_be_trusted_are_refused_with_exit_5_before_authenticating() {
    let cases = [
        (
            "other.example",
            "-5m:+1h",
            "@cert-authority * {ca}\n",
            "it is for other.example, not 127.0.0.1",
        ),
        // Signed by a CA nobody trusts: checked as a bare key, as OpenSSH does, which is new here.
        ("127.0.0.1", "-5m:+1h", "@cert-authority * {other}\n", "is not known"),
        // A CA for other hosts only: the certificate is not even asked for, and the bare key is new.
        (
            "127.0.0.1",
            "-5m:+1h",
            "@cert-authority elsewhere.example {ca}\n",
            "is not known",
        ),
        (
            "127.0.0.1",
            "-5m:+1h",
            "@cert-authority * {ca}\n@revoked * {ca}\n",
            "certificate authority is @revoked",
        ),
        (
            "127.0.0.1",
            "20200101000000Z:20200102000000Z",
            "@cert-authority * {ca}\n",
            "expired: valid from 2020-01-01T00:00:00Z to 2020-01-02T00:00:00Z",
        ),
    ];
    for (principal, validity, known, want) in cases {
        let (sshd, c, _ca) = host_cert_box(principal, validity, known);
        let ran = run_with_timeout(c.rtrain().args(["exec", "box", "--", "true"]), LIMIT);
        let what = format!("{principal} {validity} {known:?}");
        assert_eq!(ran.code, 5, "{what}: {ran}\n{}", sshd.log());
        assert!(ran.stderr.contains(want), "{what}: want {want:?}: {ran}");
        let log = sshd.log();
        assert!(
            !log.contains("Accepted") && !log.contains("Failed"),
            "{what}: authenticated: {log}"
        );
    }
}

#[test]
fn hosts_shows_the_methods_that_will_be_tried_and_why() {
    let c = Client::bare();
    c.write_ssh_config(
        "Host gpu-login\n  HostName login.example\n  PreferredAuthentications keyboard-interactive,publickey,password\n\
         \x20 PasswordAuthentication no\n  CertificateFile ~/.ssh/ca-signed.pub\n",
    );
    let ran = run_with_timeout(c.rtrain().args(["hosts", "gpu-login"]), LIMIT);
    assert_eq!(ran.code, 0, "{ran}");
    let out = ran.stdout_str();
    let auth: Vec<&str> = out.lines().filter(|l| l.starts_with("auth ")).collect();
    assert_eq!(auth.len(), 3, "{out}");
    assert!(
        auth[0].starts_with("auth try keyboard-interactive (PreferredAuthentications"),
        "{out}"
    );
    assert!(auth[1].starts_with("auth try publickey"), "{out}");
    assert_eq!(auth[2], "auth skip password (PasswordAuthentication no)", "{out}");
    let cert = c.ssh_dir().join("ca-signed.pub");
    assert!(out.contains(&format!("certificatefile {}", cert.display())), "{out}");

    let ran = run_with_timeout(c.rtrain().args(["hosts", "--json", "gpu-login"]), LIMIT);
    let v: serde_json::Value = serde_json::from_slice(&ran.stdout).unwrap();
    let methods: Vec<(String, bool)> = v["auth_methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["method"].as_str().unwrap().to_string(),
                m["enabled"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        methods,
        [
            ("keyboard-interactive".to_string(), true),
            ("publickey".to_string(), true),
            ("password".to_string(), false)
        ]
    );
}

#[test]
fn a_user_certificate_held_by_the_agent_logs_in() {
    let (sshd, c, _cert, _ca) = user_cert_box("-5m:+1h", true);
    // Only the agent has the key and its certificate (ssh-add loads the -cert.pub beside it).
    let agent = Agent::start();
    agent.add(&c.key);
    let listed = std::process::Command::new("ssh-add")
        .arg("-l")
        .env("SSH_AUTH_SOCK", &agent.sock)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains("CERT"),
        "the agent holds no certificate"
    );
    std::fs::remove_file(&c.key).unwrap();
    std::fs::remove_file(c.key.with_extension("pub")).unwrap();
    std::fs::remove_file(c.ssh_dir().join("id_test-cert.pub")).unwrap();
    let ran = run_with_timeout(
        c.rtrain()
            .env("SSH_AUTH_SOCK", &agent.sock)
            .args(["exec", "box", "--", "echo", "agent-cert-ok"]),
        LIMIT,
    );
    assert_eq!(ran.code, 0, "{ran}\n{}", sshd.log());
    assert!(sshd.log().contains("ED25519-CERT"), "{}", sshd.log());
}

#[test]
fn a_host_certificate_from_an_untrusted_ca_falls_back_to_its_known_bare_key() {
    let (sshd, c, _ca) = host_cert_box("127.0.0.1", "-5m:+1h", "@cert-authority * {other}\n");
    c.trust(&sshd);
    let ran = run_with_timeout(c.rtrain().args(["exec", "box", "--", "true"]), LIMIT);
    assert_eq!(ran.code, 0, "{ran}\n{}", sshd.log());
}

#[test]
fn a_prompt_the_server_wants_echoed_shows_the_answer_and_the_password_still_does_not() {
    let user = TestUser::create("echo-test-pw");
    let pam = PamService::password_then_totp_echo(true);
    let (sshd, c) = mfa_box(&user, &pam);
    let script = format!(
        "{} exec box -- sh -c 'echo in-as-$(id -un)'; echo EXIT=$?; sleep 30",
        rtrain_bin().display()
    );
    let term = LocalTerm::start(&["sh".into(), "-c".into(), script], &c.env_pairs());
    let t = Duration::from_secs(30);
    term.wait_for("Password:", t);
    term.type_text("echo-test-pw");
    term.send_keys(&["Enter"]);
    term.wait_for("Verification code:", t);
    let code = totp_now();
    term.type_text(&code);
    // Shown as typed, before Enter: the server asked for echo.
    term.wait_for(&format!("Verification code: {code}"), t);
    term.send_keys(&["Enter"]);
    let screen = term.wait_for("EXIT=", t);
    assert!(screen.contains("EXIT=0"), "{screen}\n{}", sshd.log());
    let all = String::from_utf8_lossy(&term.output()).into_owned();
    assert!(!all.contains("echo-test-pw"), "the password was echoed: {all:?}");
}

#[test]
fn an_unanswered_password_prompt_times_out_with_exit_4_and_leaves_the_terminal_echoing() {
    let user = TestUser::create("never-typed");
    let (sshd, c) = password_box(&user, "");
    let script = format!(
        "{} exec box -- true; echo EXIT=$?; stty -a | tr ' ' '\\n' | grep -x -e echo -e -echo | sed 's/^/TTY:/'; sleep 30",
        rtrain_bin().display()
    );
    let mut env = c.env_pairs();
    env.push(("RTRAIN_ANSWER_TIMEOUT".into(), "2".into()));
    let term = LocalTerm::start(&["sh".into(), "-c".into(), script], &env);
    let t = Duration::from_secs(30);
    term.wait_for("'s password:", t);
    let screen = term.wait_for("TTY:", t);
    assert!(screen.contains("EXIT=4"), "{screen}\n{}", sshd.log());
    assert!(screen.contains("no answer within 2 s"), "{screen}");
    assert!(
        screen.contains("TTY:echo") && !screen.contains("TTY:-echo"),
        "echo left off: {screen}"
    );
}

/// Found by hand: Ctrl-C at a password prompt ended rtrain with 130 while the hidden read still
/// had echo off, so the shell after it showed nothing typed.
#[test]
fn ctrl_c_at_a_password_prompt_exits_130_and_leaves_the_terminal_echoing() {
    let user = TestUser::create("never-typed");
    let (sshd, c) = password_box(&user, "");
    let script = format!(
        "trap : INT; {} exec box -- true; echo EXIT=$?; stty -a | tr ' ' '\\n' | grep -x -e echo -e -echo | sed 's/^/TTY:/'; sleep 30",
        rtrain_bin().display()
    );
    // The shell traps SIGINT (a handler, which rtrain does not inherit) so that it outlives Ctrl-C.
    let term = LocalTerm::start(&["sh".into(), "-c".into(), script], &c.env_pairs());
    let t = Duration::from_secs(30);
    term.wait_for("'s password:", t);
    term.send_keys(&["C-c"]);
    let screen = term.wait_for("TTY:", t);
    assert!(screen.contains("EXIT=130"), "{screen}\n{}", sshd.log());
    assert!(
        screen.contains("TTY:echo") && !screen.contains("TTY:-echo"),
        "echo left off: {screen}"
    );
}
