//! Test support shared by the integration tests: real sshd boxes, hermetic clients, and a
//! fault-injecting proxy to put between them.
#![allow(dead_code)]

pub mod proxy;
pub mod sshd;

pub use proxy::{Mode, Proxy};
pub use sshd::*;
