//! Test support shared by the integration tests: real sshd boxes, hermetic clients, and a
//! fault-injecting proxy to put between them.
#![allow(dead_code, unused_imports)]

pub mod agent;
pub mod backend;
pub mod bench_args;
pub mod bg;
pub mod http;
pub mod login;
pub mod netns;
#[cfg(target_os = "linux")]
pub mod netns_kernel;
pub mod project;
pub mod proxy;
pub mod slurm;
pub mod soak;
pub mod sshd;

pub use agent::*;
pub use backend::Kind;
pub use bg::Bg;
pub use login::*;
pub use project::{Project, ProjectBuilder};
pub use proxy::{Mode, Proxy};
pub use sshd::*;
pub mod term;
pub use term::LocalTerm;

/// Copies a directory tree (the demo project into a test box's home), files and subdirectories.
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}
