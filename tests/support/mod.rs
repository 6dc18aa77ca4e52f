//! Test support shared by the integration tests: real sshd boxes and hermetic clients.
#![allow(dead_code, unused_imports)]

pub mod sshd;

pub use sshd::*;
pub mod term;
pub use term::LocalTerm;
