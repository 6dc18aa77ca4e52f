//! The login methods a person answers: `password` and `keyboard-interactive` (PAM: a password,
//! then a one-time code or a Duo-style menu, in as many rounds as the server sends). Answers go
//! through the caller's [`Prompter`], straight to the server: never stored, never logged.

use super::{method_names, Attempts, Ctx, Step};
use crate::ssh::handler::ClientHandler;
use crate::ssh::{classify, KbdPrompt, KbdRound, LoginQuestion, Prompter, SshError};
use russh::client::{AuthResult, Handle, KeyboardInteractiveAuthResponse};
use std::sync::Arc;

/// A person's answer, or why there is none.
enum Answer<T> {
    Given(T),
    /// No one to ask (no terminal).
    NoOne,
}

/// Ask the person off the async workers, under the prompter's answer timeout: a person who walked
/// away must not hang rtrain (the thread left reading the terminal ends with the process).
async fn ask<T: Send + 'static>(
    ctx: &Ctx<'_>,
    what: &str,
    f: impl FnOnce(&dyn Prompter) -> Option<T> + Send + 'static,
) -> Result<Answer<T>, SshError> {
    let prompter: Arc<dyn Prompter> = ctx.prompter.clone();
    let limit = prompter.answer_timeout();
    let task = tokio::task::spawn_blocking(move || f(prompter.as_ref()));
    match tokio::time::timeout(limit, task).await {
        Err(_) => Err({
            ctx.prompter.abandon();
            SshError::AuthFailed {
                host: ctx.host.clone(),
                user: ctx.user.clone(),
                tried: format!("{what} (no answer within {} s)", limit.as_secs()),
                hint: "; hint: answer sooner (RTRAIN_ANSWER_TIMEOUT sets the seconds to wait), or load a key into ssh-agent".into(),
            }
        }),
        Ok(Err(_)) => Ok(Answer::NoOne), // the prompter panicked: treat as nobody there
        Ok(Ok(Some(v))) => Ok(Answer::Given(v)),
        Ok(Ok(None)) => Ok(Answer::NoOne),
    }
}

fn question(ctx: &Ctx<'_>, attempt: u32) -> LoginQuestion {
    LoginQuestion {
        user: ctx.user.clone(),
        host: ctx.target.ssh.host_name.clone(),
        attempt,
    }
}

/// `password`: up to NumberOfPasswordPrompts tries, as ssh.
pub(crate) async fn password(
    handle: &mut Handle<ClientHandler>,
    ctx: &Ctx<'_>,
    attempts: &mut Attempts,
) -> Result<Step, SshError> {
    let mut last = None;
    for attempt in 1..=ctx.prompts {
        let q = question(ctx, attempt);
        let pw = match ask(ctx, "password", move |p| p.password(&q)).await? {
            Answer::Given(pw) => pw,
            Answer::NoOne => {
                attempts.needed_a_person = true;
                attempts.note("password (no terminal to ask for it)".into());
                return Ok(Step::Failed(last));
            }
        };
        let res = tokio::time::timeout(ctx.limit, handle.authenticate_password(&ctx.user, pw)).await;
        match res {
            Err(_) => return Err(ctx.timeout_err()),
            Ok(Err(e)) => return Err(classify(&ctx.host, e)),
            Ok(Ok(AuthResult::Success)) => return Ok(Step::Success),
            Ok(Ok(AuthResult::Failure {
                remaining_methods,
                partial_success,
            })) => {
                let list = method_names(&remaining_methods);
                if partial_success {
                    attempts.note("password (accepted; the server wants another method too)".into());
                    return Ok(Step::Failed(Some(list)));
                }
                let again = list.iter().any(|m| m == "password");
                last = Some(list);
                if !again || handle.is_closed() {
                    break;
                }
            }
        }
    }
    attempts.note(format!("password (refused {} time(s))", ctx.prompts));
    Ok(Step::Failed(last))
}

/// `keyboard-interactive`: each round's name, instruction and prompts go to the person, their
/// answers back; a round without prompts (PAM's informational messages) is answered at once.
/// A refused conversation counts as one try, up to NumberOfPasswordPrompts, as ssh.
pub(crate) async fn keyboard_interactive(
    handle: &mut Handle<ClientHandler>,
    ctx: &Ctx<'_>,
    attempts: &mut Attempts,
) -> Result<Step, SshError> {
    let mut last = None;
    for attempt in 1..=ctx.prompts {
        let start = handle.authenticate_keyboard_interactive_start(&ctx.user, None);
        let mut reply = match tokio::time::timeout(ctx.limit, start).await {
            Err(_) => return Err(ctx.timeout_err()),
            Ok(Err(e)) => return Err(classify(&ctx.host, e)),
            Ok(Ok(r)) => r,
        };
        let mut rounds = 0u32;
        loop {
            match reply {
                KeyboardInteractiveAuthResponse::Success => return Ok(Step::Success),
                KeyboardInteractiveAuthResponse::Failure {
                    remaining_methods,
                    partial_success,
                } => {
                    let list = method_names(&remaining_methods);
                    if partial_success {
                        attempts.note("keyboard-interactive (accepted; the server wants another method too)".into());
                        return Ok(Step::Failed(Some(list)));
                    }
                    let again = list.iter().any(|m| m == "keyboard-interactive");
                    last = Some(list);
                    if !again || handle.is_closed() {
                        attempts.note(format!("keyboard-interactive (refused after {rounds} round(s))"));
                        return Ok(Step::Failed(last));
                    }
                    break;
                }
                KeyboardInteractiveAuthResponse::InfoRequest {
                    name,
                    instructions,
                    prompts,
                } => {
                    rounds += 1;
                    let answers = if prompts.is_empty() {
                        // Nothing to answer, so no one is needed: show what it says and go on.
                        let text = [name.trim(), instructions.trim()]
                            .iter()
                            .filter(|t| !t.is_empty())
                            .copied()
                            .collect::<Vec<_>>()
                            .join("\n");
                        if !text.is_empty() {
                            let prompter = ctx.prompter.clone();
                            crate::ssh::blocking(move || prompter.notice(&text));
                        }
                        Vec::new()
                    } else {
                        let round = KbdRound {
                            question: question(ctx, attempt),
                            name,
                            instruction: instructions,
                            prompts: prompts
                                .into_iter()
                                .map(|p| KbdPrompt {
                                    text: p.prompt,
                                    echo: p.echo,
                                })
                                .collect(),
                        };
                        let want = round.prompts.len();
                        match ask(ctx, "keyboard-interactive", move |p| p.keyboard_interactive(&round)).await? {
                            Answer::Given(mut a) => {
                                // The server needs exactly one answer per prompt.
                                a.resize(want, String::new());
                                a
                            }
                            Answer::NoOne => {
                                attempts.needed_a_person = true;
                                attempts.note("keyboard-interactive (no terminal to answer its prompts)".into());
                                return Ok(Step::Failed(last));
                            }
                        }
                    };
                    let respond = handle.authenticate_keyboard_interactive_respond(answers);
                    reply = match tokio::time::timeout(ctx.limit, respond).await {
                        Err(_) => return Err(ctx.timeout_err()),
                        Ok(Err(e)) => return Err(classify(&ctx.host, e)),
                        Ok(Ok(r)) => r,
                    };
                }
            }
        }
    }
    attempts.note(format!("keyboard-interactive (refused {} time(s))", ctx.prompts));
    Ok(Step::Failed(last))
}
