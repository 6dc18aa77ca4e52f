//! Test support shared by the integration tests: real sshd boxes and hermetic clients.
#![allow(dead_code, unused_imports)]

pub mod agent;
pub mod sshd;

pub use agent::*;
pub use sshd::*;
pub mod term;
pub use term::LocalTerm;
