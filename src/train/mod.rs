//! Pure parsers and models behind `status`, `ckpts`, `check` and `logs`: everything that turns what
//! the remote box printed into facts, kept free of I/O so it is tested on real captured output.

pub mod checkpoints;
pub mod disk;
pub mod gpu;
pub mod human;
pub mod progress;
pub mod risk;
pub mod train_config;
pub mod trainer_state;

pub use human::{fmt_age, fmt_bytes, fmt_duration};

/// Where a test finds a fixture of this repository (`tests/fixtures/...`) or of the shared
/// captured-output set (`../shared/fixtures/...`), both relative to the crate root.
#[cfg(test)]
pub(crate) mod fixtures {
    pub fn own(rel: &str) -> Vec<u8> {
        read(&format!("{}/tests/fixtures/{rel}", env!("CARGO_MANIFEST_DIR")))
    }

    pub fn shared(rel: &str) -> Vec<u8> {
        read(&format!("{}/../shared/fixtures/{rel}", env!("CARGO_MANIFEST_DIR")))
    }

    fn read(path: &str) -> Vec<u8> {
        std::fs::read(path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
    }
}
