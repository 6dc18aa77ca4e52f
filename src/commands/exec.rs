//! `rtrain exec HOST -- ARGS...`: run one command remotely, each argument quoted, and exit with
//! its status.

use super::{CommandError, Ctx};
use crate::cli::ExecArgs;
use crate::remote::quote;
use std::time::Duration;

pub async fn run(ctx: &Ctx, args: ExecArgs) -> anyhow::Result<u8> {
    let command = match (&args.shell, args.args.is_empty()) {
        (Some(s), _) => s.clone(),
        (None, false) => quote::join(&args.args),
        (None, true) => {
            return Err(CommandError::Usage(
                "nothing to run: give the command after `--` (or use --shell \"STRING\")".into(),
            )
            .into())
        }
    };
    let target = ctx.target(&args.host)?;
    let session = ctx.connect(&target).await?;
    let mut stdout = tokio::io::stdout();
    let mut stderr = tokio::io::stderr();
    let timeout = args.timeout.map(Duration::from_secs);
    let result = tokio::select! {
        r = session.exec_streaming(&command, None, &mut stdout, &mut stderr, timeout) => r,
        _ = ctx.shutdown.cancelled() => return Err(CommandError::Interrupted.into()),
    };
    let exit = result?;
    session.close().await;
    Ok(exit.as_code())
}
