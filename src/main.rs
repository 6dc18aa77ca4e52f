//! The `rtrain` binary: parse arguments, run, map the outcome to an exit code.

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = rtrain::cli::Cli::parse_with_env();
    let env = rtrain::Env::from_process();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rtrain: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let shutdown = rtrain::shutdown_on_ctrl_c(&runtime);
    let code = runtime.block_on(rtrain::run(cli, env, shutdown));
    // Ctrl-C can end the run while a password prompt's hidden read still has echo off.
    rtrain::ui::prompt::restore_terminal();
    // Do not wait for lingering blocking reads of stdin (attach, prompts).
    runtime.shutdown_background();
    ExitCode::from(code)
}
