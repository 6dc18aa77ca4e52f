//! Logins a person answers, on a real sshd: a throwaway local user with a known password (the
//! tests run as root), and a PAM service of the test's own (password, then a TOTP code from
//! Debian's `pam_google_authenticator` with a fixed secret), so sshd's real keyboard-interactive
//! code talks to real PAM. Everything is removed on Drop. A missing tool fails loudly.

use hmac::{Hmac, KeyInit, Mac};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// useradd/userdel take a lock on /etc/passwd and fail at once when another holds it: one at a
/// time within this test binary, and retried against anything else on the machine.
static PASSWD_LOCK: Mutex<()> = Mutex::new(());

fn retry_passwd_tool(what: &str, mut cmd: impl FnMut() -> Command) {
    let _guard = PASSWD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = cmd()
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{what}: {e} (needs the passwd package: apt-get install passwd)"));
        if out.status.success() {
            return;
        }
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        if !err.contains("lock") || Instant::now() > deadline {
            panic!("{what} failed: {err}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A local user that exists only for one test, with a password sshd (or PAM) checks in /etc/shadow.
pub struct TestUser {
    pub name: String,
    pub password: String,
}

impl TestUser {
    pub fn create(password: &str) -> TestUser {
        assert_eq!(
            super::current_user(),
            "root",
            "the password tests create a throwaway user and need root (run them in the CI container)"
        );
        // Short, unique and recognisable: `rtpw` + pid + a counter (user names max 32 chars).
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("rtpw{}x{n}", std::process::id());
        retry_passwd_tool("useradd", || {
            let mut c = Command::new("useradd");
            c.args(["-M", "-d", "/nonexistent", "-s", "/bin/sh", &name]);
            c
        });
        let user = TestUser {
            name: name.clone(),
            password: password.to_string(),
        };
        let line = format!("{name}:{password}\n");
        let _guard = PASSWD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let mut child = Command::new("chpasswd")
            .stdin(Stdio::piped())
            .spawn()
            .expect("chpasswd (apt-get install passwd)");
        use std::io::Write;
        child.stdin.take().unwrap().write_all(line.as_bytes()).unwrap();
        assert!(child.wait().unwrap().success(), "chpasswd failed for {name}");
        user
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let name = self.name.clone();
        // A session process of the user may linger a moment after sshd was killed.
        let _ = Command::new("pkill").args(["-KILL", "-u", &name]).status();
        retry_passwd_tool("userdel", || {
            let mut c = Command::new("userdel");
            c.arg("-f").arg(&name);
            c
        });
    }
}

/// A fixed TOTP secret (base32 of "12345678901234567890", RFC 6238's test key).
pub const TOTP_SECRET_B32: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
const TOTP_SECRET: &[u8] = b"12345678901234567890";

/// The RFC 6238 code (HMAC-SHA1, 30 s steps, 6 digits) for the fixed secret at `unix_secs`.
pub fn totp_at(unix_secs: u64) -> String {
    let counter = unix_secs / 30;
    let mut mac = <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(TOTP_SECRET).unwrap();
    mac.update(&counter.to_be_bytes());
    let h = mac.finalize().into_bytes();
    let off = (h[19] & 0x0f) as usize;
    let bin =
        ((h[off] as u32 & 0x7f) << 24) | ((h[off + 1] as u32) << 16) | ((h[off + 2] as u32) << 8) | h[off + 3] as u32;
    format!("{:06}", bin % 1_000_000)
}

/// The code valid now.
pub fn totp_now() -> String {
    totp_at(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs())
}

/// A PAM service of the test's own: `/etc/pam.d/<name>` (Linux-PAM reads services only there) and
/// a symlink to sshd named after it, since sshd names its PAM service after its own program name.
/// Removed on Drop.
pub struct PamService {
    dir: tempfile::TempDir,
    pub name: String,
    pub sshd_link: PathBuf,
    pub secret_file: PathBuf,
}

impl PamService {
    /// Password (pam_unix), then a verification code (pam_google_authenticator), in that order.
    pub fn password_then_totp() -> PamService {
        Self::password_then_totp_echo(false)
    }

    /// The same, with the code's prompt asking to show what is typed (`echo_verification_code`),
    /// as a Duo-style menu would.
    pub fn password_then_totp_echo(echo_code: bool) -> PamService {
        let dir = tempfile::Builder::new().prefix("rtrain-pam-").tempdir().unwrap();
        let module_any = ["/lib", "/usr/lib"].iter().any(|root| {
            std::fs::read_dir(root)
                .into_iter()
                .flatten()
                .flatten()
                .any(|d| d.path().join("security/pam_google_authenticator.so").exists())
                || Path::new(root).join("security/pam_google_authenticator.so").exists()
        });
        assert!(
            module_any,
            "pam_google_authenticator is not installed: run ./scripts/test.sh (it installs \
             libpam-google-authenticator), or `apt-get install libpam-google-authenticator`"
        );
        let secret_file = dir.path().join("google_authenticator");
        // Codes may be reused (two tests in one 30 s step), the default window of 3 steps.
        std::fs::write(&secret_file, format!("{TOTP_SECRET_B32}\n\" TOTP_AUTH\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let stack = format!(
            "auth required pam_unix.so\n\
             auth required pam_google_authenticator.so secret={} user=root{}\n\
             account required pam_permit.so\n\
             session required pam_permit.so\n\
             password required pam_deny.so\n",
            secret_file.display(),
            if echo_code { " echo_verification_code" } else { "" }
        );
        Self::install(dir, &stack, secret_file)
    }

    /// Password (pam_unix), checked only after a pause: a first module touches `marker` (the
    /// password has reached the box) and then holds the login for 15 s, so a test can break the
    /// network while the client waits for the verdict.
    pub fn password_after_a_pause(marker: &Path) -> PamService {
        let dir = tempfile::Builder::new().prefix("rtrain-pam-").tempdir().unwrap();
        let script = dir.path().join("pause.sh");
        std::fs::write(
            &script,
            format!("#!/bin/sh\ntouch '{}'\nexec sleep 15\n", marker.display()),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let stack = format!(
            "auth required pam_exec.so {}\n\
             auth required pam_unix.so\n\
             account required pam_permit.so\n\
             session required pam_permit.so\n\
             password required pam_deny.so\n",
            script.display()
        );
        let unused = dir.path().join("unused");
        Self::install(dir, &stack, unused)
    }

    /// `stack` as `/etc/pam.d/<a name of this process's own>` and an sshd link of that name in `dir`.
    fn install(dir: tempfile::TempDir, stack: &str, secret_file: PathBuf) -> PamService {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("rtrain-test-sshd-{}-{n}", std::process::id());
        std::fs::write(Path::new("/etc/pam.d").join(&name), stack).expect("write /etc/pam.d (needs root)");
        let sshd_link = dir.path().join(&name);
        std::os::unix::fs::symlink(super::SSHD, &sshd_link).unwrap();
        PamService {
            dir,
            name,
            sshd_link,
            secret_file,
        }
    }
}

impl Drop for PamService {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(Path::new("/etc/pam.d").join(&self.name));
    }
}
