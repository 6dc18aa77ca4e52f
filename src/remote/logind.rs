//! Whether systemd-logind will kill the run when the user's last SSH session closes
//! (`KillUserProcesses=yes`): then tmux, screen and nohup runs all die at logout, since they are
//! started inside the login session's scope. `up` warns once and `check` reports it.
//!
//! The shell side ([`LOGIND_SH`], `rt_logind`) prints `Key=value` lines: `User=` (`id -un`), then what
//! logind itself says (`loginctl show-session` with no session is the manager's properties,
//! `loginctl show-user -p Linger`) with `Source=loginctl`, or, when loginctl cannot ask a running
//! logind but systemd is PID 1 (`/run/systemd/system`), the `Kill*=` lines of logind.conf and its
//! drop-ins in the order systemd reads them (the last one wins) with `Source=logind.conf`; and
//! `LingerFile=yes` when `/var/lib/systemd/linger/USER` exists. Without systemd there is no logind
//! and nothing to fear: only `User=` is printed.

/// `rt_logind`: the facts above on stdout. Constant text; it reads only fixed paths and `id -un`.
pub const LOGIND_SH: &str = r##"rt_logind() {
  rt_lu=$(id -un 2>/dev/null)
  printf 'User=%s\n' "$rt_lu"
  if command -v loginctl >/dev/null 2>&1 &&
    rt_lm=$(loginctl show-session -p KillUserProcesses -p KillOnlyUsers -p KillExcludeUsers 2>/dev/null); then
    printf 'Source=loginctl\n%s\n' "$rt_lm"
    loginctl show-user -p Linger -- "$rt_lu" 2>/dev/null
  elif [ -d /run/systemd/system ]; then
    printf 'Source=logind.conf\n'
    for rt_lf in /etc/systemd/logind.conf /usr/lib/systemd/logind.conf.d/*.conf /run/systemd/logind.conf.d/*.conf \
      /etc/systemd/logind.conf.d/*.conf; do
      [ -f "$rt_lf" ] && head -c 65536 -- "$rt_lf" | grep -E '^[[:space:]]*Kill(UserProcesses|OnlyUsers|ExcludeUsers)='
    done
  fi
  [ -n "$rt_lu" ] && [ -e "/var/lib/systemd/linger/$rt_lu" ] && printf 'LingerFile=yes\n'
  return 0
}
"##;

/// What the box's logind does to a user's processes at logout.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Logind {
    pub user: String,
    /// `None`: no logind to ask (no systemd), or it said nothing.
    pub source: Option<String>,
    pub kill_user_processes: bool,
    pub kill_only_users: Vec<String>,
    /// logind's default is `root`.
    pub kill_exclude_users: Vec<String>,
    /// `Linger=` from loginctl, else whether the linger file exists; `None` when unknown.
    pub linger: Option<bool>,
}

fn boolean(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "yes" | "true" | "on" | "y" | "t" => Some(true),
        "0" | "no" | "false" | "off" | "n" | "f" => Some(false),
        _ => None,
    }
}

/// Parses `rt_logind`'s output. Unknown keys and junk lines are ignored; the last value of a key wins,
/// as in logind.conf and its drop-ins.
pub fn parse(text: &str) -> Logind {
    let mut l = Logind {
        kill_exclude_users: vec!["root".to_string()],
        ..Logind::default()
    };
    let mut linger_file = false;
    for line in text.lines() {
        let Some((k, v)) = line.trim().split_once('=') else {
            continue;
        };
        let list = || v.split_whitespace().map(str::to_string).collect::<Vec<_>>();
        match k.trim() {
            "User" => l.user = v.trim().to_string(),
            "Source" => l.source = Some(v.trim().to_string()),
            "KillUserProcesses" => l.kill_user_processes = boolean(v).unwrap_or(false),
            "KillOnlyUsers" => l.kill_only_users = list(),
            "KillExcludeUsers" => l.kill_exclude_users = list(),
            "Linger" => l.linger = boolean(v),
            "LingerFile" => linger_file = boolean(v) == Some(true),
            _ => {}
        }
    }
    if linger_file {
        l.linger = Some(true);
    } else if l.linger.is_none() && l.source.as_deref() == Some("logind.conf") {
        // systemd runs and no linger file: lingering is off.
        l.linger = Some(false);
    }
    l
}

impl Logind {
    /// logind kills this user's session processes (and so the run) when the last session closes.
    pub fn kills_at_logout(&self) -> bool {
        self.source.is_some()
            && self.kill_user_processes
            && !self.kill_exclude_users.contains(&self.user)
            && (self.kill_only_users.is_empty() || self.kill_only_users.contains(&self.user))
    }

    /// The warning `up` prints and `check` reports, with the way out; `None` when runs are safe.
    /// Lingering alone is not enough: the run must also leave the login session's scope
    /// (logind.conf(5), systemd-run(1)).
    pub fn warning(&self, host: &str) -> Option<String> {
        if !self.kills_at_logout() {
            return None;
        }
        let user = if self.user.is_empty() { "$USER" } else { &self.user };
        let linger = match self.linger {
            Some(true) => "lingering is on, but ",
            Some(false) => "lingering is off and ",
            None => "",
        };
        Some(format!(
            "logind on {host} has KillUserProcesses=yes: the run dies when your last SSH session to {host} closes \
             ({linger}tmux, screen and nohup all live in the login session). To survive: `loginctl enable-linger \
             {user}` and start the run outside the session (`systemd-run --user --scope ...`), or ask the admin for \
             KillUserProcesses=no (or KillExcludeUsers={user})"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `/etc/systemd/logind.conf` as Debian 12's systemd 252 ships it (captured from this project's
    /// test machine): every setting commented out, so nothing is killed.
    const DEBIAN_LOGIND_CONF: &str = include_str!("../../tests/fixtures/logind/debian-12-logind.conf");

    #[test]
    fn kill_user_processes_without_linger_is_a_warning() {
        let l = parse(
            "User=alice\nSource=loginctl\nKillUserProcesses=yes\nKillOnlyUsers=\nKillExcludeUsers=root\nLinger=no\n",
        );
        assert!(l.kills_at_logout());
        let w = l.warning("gpu-box").unwrap();
        assert!(w.contains("KillUserProcesses=yes"), "{w}");
        assert!(w.contains("loginctl enable-linger alice"), "{w}");
        assert!(w.contains("systemd-run --user --scope"), "{w}");
        assert!(w.contains("lingering is off"), "{w}");
    }

    #[test]
    fn lingering_alone_still_warns_the_session_scope_is_killed() {
        let l = parse("User=alice\nSource=loginctl\nKillUserProcesses=yes\nLinger=yes\n");
        assert!(l.warning("b").unwrap().contains("lingering is on, but"));
    }

    #[test]
    fn no_and_excluded_and_not_only_are_safe() {
        assert!(!parse("User=alice\nSource=loginctl\nKillUserProcesses=no\n").kills_at_logout());
        // logind's default KillExcludeUsers=root.
        assert!(!parse("User=root\nSource=loginctl\nKillUserProcesses=yes\n").kills_at_logout());
        assert!(
            !parse("User=bob\nSource=loginctl\nKillUserProcesses=yes\nKillExcludeUsers=root bob\n").kills_at_logout()
        );
        assert!(!parse("User=bob\nSource=loginctl\nKillUserProcesses=yes\nKillOnlyUsers=alice\n").kills_at_logout());
        assert!(parse("User=root\nSource=loginctl\nKillUserProcesses=yes\nKillExcludeUsers=\n").kills_at_logout());
        // Without systemd nothing is asked and nothing is killed, whatever a stray line says.
        assert!(!parse("User=alice\nKillUserProcesses=yes\n").kills_at_logout());
    }

    #[test]
    fn config_lines_last_wins_and_the_linger_file_counts() {
        let l = parse("User=alice\nSource=logind.conf\nKillUserProcesses=yes\n  KillUserProcesses = no\n");
        assert!(!l.kills_at_logout());
        let l = parse("User=alice\nSource=logind.conf\nKillUserProcesses=no\nKillUserProcesses=1\n");
        assert!(l.kills_at_logout());
        assert_eq!(l.linger, Some(false));
        let l = parse("User=alice\nSource=logind.conf\nKillUserProcesses=yes\nLingerFile=yes\n");
        assert_eq!(l.linger, Some(true));
    }

    #[test]
    fn debian_default_config_through_the_shell_filter_kills_nothing() {
        // What the shell side keeps of the real file: only uncommented Kill* lines, so none.
        let kept: String = DEBIAN_LOGIND_CONF
            .lines()
            .filter(|l| {
                let t = l.trim_start();
                t.starts_with("KillUserProcesses=")
                    || t.starts_with("KillOnlyUsers=")
                    || t.starts_with("KillExcludeUsers=")
            })
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(kept, "");
        assert!(DEBIAN_LOGIND_CONF.contains("#KillUserProcesses=no"));
        assert!(!parse(&format!("User=alice\nSource=logind.conf\n{kept}")).kills_at_logout());
    }

    /// The shell function run by a local `sh` with a stand-in `loginctl` first on PATH.
    #[test]
    fn the_shell_function_reports_a_stand_in_loginctl() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("loginctl");
        std::fs::write(
            &bin,
            "#!/bin/sh\ncase $1 in\n  show-session) printf 'KillUserProcesses=yes\\nKillOnlyUsers=\\nKillExcludeUsers=root\\n' ;;\n  \
             show-user) printf 'Linger=no\\n' ;;\n  *) exit 1 ;;\nesac\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = format!("{}:{}", dir.path().display(), std::env::var("PATH").unwrap_or_default());
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{LOGIND_SH}rt_logind"))
            .env("PATH", path)
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let l = parse(&text);
        assert_eq!(l.source.as_deref(), Some("loginctl"), "{text}");
        assert!(l.kill_user_processes, "{text}");
        assert_eq!(l.linger, Some(false), "{text}");
        assert!(!l.user.is_empty(), "{text}");
    }
}
