//! What runs on the remote box: shell quoting and the POSIX-sh scripts rtrain sends, with parsers
//! of their output.

pub mod backend;
pub mod logind;
pub mod probe;
pub mod quote;
pub mod run;
pub mod slurm;
pub mod transfer;
