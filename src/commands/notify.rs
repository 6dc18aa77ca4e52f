//! `rtrain notify test HOST`: one `test` event through every channel configured for HOST (the
//! box's webhooks, posted from the box as the run wrapper would; the desktop; the terminal), and
//! which of them worked, so a wrong URL or a box without curl is found before a run ends at 3 a.m.

use super::run::{notify_file, run_script_stdin};
use super::{CommandError, Ctx};
use crate::cli::{NotifyArgs, NotifyCommand};
use crate::remote::run;
use crate::ui::alert;
use std::time::Duration;

pub async fn run(ctx: &Ctx, args: NotifyArgs) -> anyhow::Result<u8> {
    let NotifyCommand::Test(a) = args.command;
    let target = ctx.target(&a.host)?;
    let mut ok = true;
    let mut lines = Vec::new();
    match notify_file(&target) {
        None => lines.push("webhooks: none configured (notify: webhook, ntfy or slack)".to_string()),
        Some(file) => {
            let session = ctx.connect(&target).await?;
            let script = run::notify_test_script();
            let text = tokio::select! {
                r = run_script_stdin(&session, &script, Some(file.into_bytes()), Duration::from_secs(90)) => r?,
                _ = ctx.shutdown.cancelled() => return Err(CommandError::Interrupted.into()),
            };
            session.close().await;
            let hooks = run::parse_notify_test(&text).map_err(|e| anyhow::anyhow!("{}: {e}", target.name))?;
            for (preset, via, result) in hooks {
                // Never the URL: it may hold a secret.
                let name = if preset == "json" { "webhook" } else { preset.as_str() };
                if preset == "none" {
                    ok = false;
                    lines.push(format!(
                        "webhooks: {} has neither curl nor wget, so box-side notifications are off",
                        target.name
                    ));
                } else if result == "ok" {
                    lines.push(format!("{name}: sent from {} with {via}", target.name));
                } else {
                    ok = false;
                    lines.push(format!(
                        "{name}: FAILED from {} with {via} (check the URL; `rtrain exec {} -- {via} --version` tells whether it works there)",
                        target.name, target.name
                    ));
                }
            }
        }
    }
    let raised = alert::raise(
        &format!("rtrain: {} test", target.name),
        &format!("a test notification for {}", target.name),
        ctx.env.interactive,
    );
    match raised.desktop {
        Ok(()) => lines.push("desktop: shown".into()),
        Err(e) => {
            ok = false;
            lines.push(format!("desktop: FAILED: {e}"));
        }
    }
    match raised.terminal {
        Some(Ok(())) => lines.push("terminal: bell and OSC 9/777 sent".into()),
        Some(Err(e)) => lines.push(format!("terminal: FAILED: {e}")),
        None => lines.push("terminal: not a terminal, nothing sent".into()),
    }
    for l in lines {
        println!("{l}");
    }
    Ok(if ok { 0 } else { 1 })
}
