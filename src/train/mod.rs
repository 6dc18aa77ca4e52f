//! Pure parsers and models behind `status`, `ckpts`, `check` and `logs`: everything that turns what
//! the remote box printed into facts, kept free of I/O so it is tested on real captured output.

pub mod checkpoints;
pub mod disk;
pub mod gpu;
pub mod human;
pub mod lightning;
pub mod progress;
pub mod risk;
pub mod train_config;
pub mod trainer_state;

pub use human::{fmt_age, fmt_bytes, fmt_duration};

/// Where a test finds a fixture: everything lives in this repository, under `tests/fixtures/`
/// (tests/fixtures/README.md says where each file came from); nothing outside it is read.
#[cfg(test)]
pub(crate) mod fixtures {
    /// The real Hugging Face Trainer capture (scripts/capture-fixtures.sh); a new capture for another
    /// transformers version changes this one line.
    pub const HF: &str = "hf-transformers-5.24.0";

    /// `tests/fixtures/<rel>`.
    pub fn own(rel: &str) -> Vec<u8> {
        let path = format!("{}/tests/fixtures/{rel}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
    }

    /// A file of the real capture: `train.log`, `trainer_state.json` or `outputs-listing.txt`.
    pub fn hf(file: &str) -> Vec<u8> {
        own(&format!("{HF}/{file}"))
    }
}
