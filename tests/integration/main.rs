//! rtrain's integration tests: one binary, against a real OpenSSH sshd on 127.0.0.1 (the proxy's
//! own tests use a plain echo server).

#[path = "../support/mod.rs"]
mod support;

mod foundation;
mod link;
mod proxy;
