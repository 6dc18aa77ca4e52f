//! rtrain's integration tests: one binary, every test against a real OpenSSH sshd on 127.0.0.1.

#[path = "../support/mod.rs"]
mod support;

mod attach;
mod foundation;
mod lifecycle;
mod observe;
mod proxy;
mod ssh_compat;
