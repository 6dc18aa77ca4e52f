//! Test support shared by the integration tests: real sshd boxes, hermetic clients, and a
//! fault-injecting proxy to put between them.
#![allow(dead_code, unused_imports)]

pub mod agent;
pub mod http;
pub mod login;
pub mod proxy;
pub mod sshd;

pub use agent::*;
pub use login::*;
pub use proxy::{Mode, Proxy};
pub use sshd::*;
pub mod term;
pub use term::LocalTerm;
