//! rtrain's integration tests: one binary, against a real OpenSSH sshd on 127.0.0.1 (the proxy's
//! own tests use a plain echo server).

#[path = "../support/mod.rs"]
mod support;

mod attach;
mod auth;
mod backends;
mod edges;
mod fault_proxy;
mod foundation;
mod hostile;
mod lifecycle;
mod lightning;
mod link;
mod netfaults;
mod notify;
mod observe;
mod protect;
mod proxy;
mod resilience;
mod shell;
mod slurm;
mod ssh_compat;
mod top;
mod transfer;
