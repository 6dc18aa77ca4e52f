//! What the user sees: error lines, prompts, tables, progress and JSON output.

pub mod prompt;

/// One clear line for an error; `-v` adds the chain of causes.
pub fn report_error(e: &anyhow::Error, verbose: u8) {
    eprintln!("rtrain: {e}");
    if verbose > 0 {
        for cause in e.chain().skip(1) {
            eprintln!("  caused by: {cause}");
        }
    }
}
