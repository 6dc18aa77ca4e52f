//! The command line of the benchmark binaries (bench/*.rs): `cargo bench` passes `--bench` (the
//! full run); under `cargo test` they run short. One parser, so every benchmark reads its options
//! and refuses a bad number the same way.

use std::str::FromStr;

pub struct BenchArgs {
    args: Vec<String>,
}

impl BenchArgs {
    pub fn from_env() -> BenchArgs {
        BenchArgs {
            args: std::env::args().collect(),
        }
    }

    /// Run by `cargo bench` (the full run), not by `cargo test`.
    pub fn full(&self) -> bool {
        self.args.iter().any(|a| a == "--bench")
    }

    /// The value after `name` (`--trials 20`); a value that does not parse is an error, not the default.
    pub fn value<T: FromStr>(&self, name: &str) -> Option<T> {
        let i = self.args.iter().position(|a| a == name)?;
        let v = self.args.get(i + 1)?;
        Some(v.parse().unwrap_or_else(|_| panic!("{name} takes a number, not {v:?}")))
    }

    /// `--seed N`, else one from the clock (print it, so the run can be replayed).
    pub fn seed(&self) -> u64 {
        self.value("--seed").unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs()
        })
    }
}
