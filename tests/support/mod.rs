//! Test support shared by the integration tests: real sshd boxes and hermetic clients.
#![allow(dead_code)]

pub mod agent;
pub mod sshd;

pub use agent::*;
pub use sshd::*;
