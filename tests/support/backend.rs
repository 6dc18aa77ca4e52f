//! The three backends a test can run on, each as a box where `auto` picks it (tmux on a full box,
//! screen on one without tmux, nohup on one without either), and [`per_backend!`]: one test per
//! backend from one body.

use super::Sshd;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Tmux,
    Screen,
    Nohup,
}

impl Kind {
    /// As the run record and JSON name it.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Tmux => "tmux",
            Kind::Screen => "screen",
            Kind::Nohup => "nohup",
        }
    }

    /// A box where `backend: auto` picks this backend.
    pub fn sshd(self) -> Sshd {
        match self {
            Kind::Tmux => Sshd::start(),
            Kind::Screen => Sshd::start_without(&["tmux"]),
            Kind::Nohup => Sshd::start_without(&["tmux", "screen"]),
        }
    }

    /// A box where `auto` picks this backend and whose sessions also get `extra_env` (SetEnv).
    pub fn sshd_with_env(self, extra_env: &[(&str, &str)]) -> Sshd {
        match self {
            Kind::Tmux => Sshd::start_with_env(extra_env),
            Kind::Screen => Sshd::start_without_with_env(&["tmux"], extra_env),
            Kind::Nohup => Sshd::start_without_with_env(&["tmux", "screen"], extra_env),
        }
    }

    /// The backend keeps a session (tmux's or screen's) that `attach` joins.
    pub fn has_session(self) -> bool {
        self != Kind::Nohup
    }
}

/// `per_backend! { fn name(kind) { ... } }`: a module `name` with the tests `tmux`, `screen` and
/// `nohup`, each running the one body with its [`Kind`].
#[macro_export]
macro_rules! per_backend {
    ($(#[$meta:meta])* fn $name:ident($kind:ident) $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            fn body($kind: $crate::support::Kind) $body
            #[test]
            fn tmux() {
                body($crate::support::Kind::Tmux)
            }
            #[test]
            fn screen() {
                body($crate::support::Kind::Screen)
            }
            #[test]
            fn nohup() {
                body($crate::support::Kind::Nohup)
            }
        }
    };
}
