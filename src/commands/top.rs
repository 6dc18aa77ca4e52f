//! `rtrain top`: the live dashboard. One task per host keeps its own resilient link and probes
//! over it every 2 s, so a slow or dropped host never holds up the others or the keys; the UI
//! loop only merges what the tasks send and redraws (src/ui/dashboard.rs).

use super::probe::probe_status;
use super::{CommandError, Ctx};
use crate::cli::TopArgs;
use crate::config::Target;
use crate::report::status::{self, StatusJson};
use crate::ssh::link::{Link, LinkEvent};
use crate::train::trainer_state::HistoryPoint;
use crate::ui::dashboard::{self, HostView, LinkView, View};
use crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How often each host is asked (the README says so).
pub const REFRESH: Duration = Duration::from_secs(2);
/// A probe slower than this is reported on the panel (the link's keepalive decides whether the
/// connection is dead).
const PROBE_DEADLINE: Duration = Duration::from_secs(15);

/// What a host task tells the UI.
enum Msg {
    Status(Box<StatusJson>, Vec<HistoryPoint>),
    ProbeFailed(String),
    Lost,
    Up,
    Failed(String),
}

async fn host_task(
    i: usize,
    mut link: Link,
    target: Target,
    tx: mpsc::UnboundedSender<(usize, Msg)>,
    cancel: CancellationToken,
) {
    let send = |m: Msg| {
        let _ = tx.send((i, m));
    };
    let mut session = match link.session().await {
        Ok(s) => Some(s),
        // Never retried: a wrong key or password, an unknown or changed host key.
        Err(e) if matches!(e.exit_code(), 2 | 4 | 5) => {
            send(Msg::Failed(e.to_string()));
            return;
        }
        Err(_) => None,
    };
    loop {
        let s = match session.take() {
            Some(s) => s,
            None => {
                send(Msg::Lost);
                match link.reconnect(&cancel, |_ev: LinkEvent| {}).await {
                    Ok(s) => s,
                    Err(e) => {
                        if !cancel.is_cancelled() {
                            send(Msg::Failed(e.to_string()));
                        }
                        return;
                    }
                }
            }
        };
        send(Msg::Up);
        // Probe over this session until it dies.
        loop {
            let dead = link.wait_dead();
            tokio::select! {
                r = tokio::time::timeout(PROBE_DEADLINE, probe_status(&s, &target)) => match r {
                    Ok(Ok(p)) => {
                        let mut json = StatusJson::build(&target.name, &target.settings.session, &p);
                        json.apply_stall_after(target.settings.stall_after);
                        send(Msg::Status(Box::new(json), status::history(&p)));
                    }
                    Ok(Err(e)) => {
                        if s.is_closed() {
                            break;
                        }
                        send(Msg::ProbeFailed(e.to_string()));
                    }
                    Err(_) => {
                        // Ask the link to check now rather than at the next keepalive.
                        link.probe_now();
                        send(Msg::ProbeFailed(format!("no answer in {} s", PROBE_DEADLINE.as_secs())));
                    }
                },
                _ = dead => break,
                _ = cancel.cancelled() => return,
            }
            let dead = link.wait_dead();
            tokio::select! {
                _ = tokio::time::sleep(REFRESH) => {}
                _ = dead => break,
                _ = cancel.cancelled() => return,
            }
        }
    }
}

/// Keys come from a thread (crossterm's reads block); `paused` hands the terminal to a child
/// (attach) and is acknowledged once the thread no longer reads.
struct Keys {
    rx: mpsc::UnboundedReceiver<Event>,
    paused: Arc<AtomicBool>,
    reading: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Keys {
    fn start() -> Keys {
        let (tx, rx) = mpsc::unbounded_channel();
        let paused = Arc::new(AtomicBool::new(false));
        let reading = Arc::new(AtomicBool::new(true));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, r, s) = (paused.clone(), reading.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                if p.load(Ordering::SeqCst) {
                    r.store(false, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
                r.store(true, Ordering::SeqCst);
                match event::poll(Duration::from_millis(200)) {
                    Ok(true) => match event::read() {
                        Ok(ev) => {
                            if tx.send(ev).is_err() {
                                return;
                            }
                        }
                        Err(_) => return,
                    },
                    Ok(false) => {}
                    Err(_) => return,
                }
            }
        });
        Keys {
            rx,
            paused,
            reading,
            stop,
        }
    }

    async fn pause(&self) {
        self.paused.store(true, Ordering::SeqCst);
        while self.reading.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn resume(&self) {
        self.paused.store(false, Ordering::SeqCst);
    }
}

impl Drop for Keys {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// A host's panel state besides what the view shows: since when its link is down.
struct HostState {
    lost_at: Option<Instant>,
    history: BTreeMap<u64, HistoryPoint>,
    run_id: Option<String>,
}

fn apply(view: &mut HostView, st: &mut HostState, msg: Msg) {
    match msg {
        Msg::Status(json, hist) => {
            let id = json.run.as_ref().map(|r| r.id.clone());
            if id != st.run_id {
                st.history.clear();
                st.run_id = id;
            }
            // The log tail only reaches back so far: what was seen before is kept.
            for h in hist {
                if let Some(step) = h.step {
                    let e = st.history.entry(step).or_default();
                    e.step = Some(step);
                    e.loss = h.loss.or(e.loss);
                    e.eval_loss = h.eval_loss.or(e.eval_loss);
                    e.learning_rate = h.learning_rate.or(e.learning_rate);
                }
            }
            view.history = st.history.values().copied().collect();
            view.status = Some(*json);
            view.error = None;
        }
        Msg::ProbeFailed(e) => view.error = Some(e),
        Msg::Lost => {
            st.lost_at.get_or_insert_with(Instant::now);
        }
        Msg::Up => {
            st.lost_at = None;
            view.link = LinkView::Up;
        }
        Msg::Failed(e) => {
            st.lost_at = None;
            view.link = LinkView::Failed(e);
        }
    }
    if let Some(t) = st.lost_at {
        view.link = LinkView::Reconnecting(t.elapsed().as_secs());
    }
}

/// The command line of a child rtrain (attach, stop) with this one's config.
fn child(ctx: &Ctx, args: &[&str]) -> std::process::Command {
    let exe = std::env::current_exe().unwrap_or_else(|_| "rtrain".into());
    let mut c = std::process::Command::new(exe);
    if ctx.paths.rtrain_config_explicit {
        c.arg("--config").arg(&ctx.paths.rtrain_config);
    }
    if ctx.accept_new_host_key {
        c.arg("--accept-new-host-key");
    }
    c.args(args);
    c
}

pub async fn run(ctx: &Ctx, args: TopArgs) -> anyhow::Result<u8> {
    use std::io::IsTerminal;
    let names: Vec<String> = if args.all {
        ctx.config.hosts.keys().cloned().collect()
    } else {
        args.hosts.clone()
    };
    if names.is_empty() {
        return Err(CommandError::Usage("name a host (or use --all)".into()).into());
    }
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        return Err(
            CommandError::Usage("top needs a terminal; for scripts use `rtrain status --json --watch`".into()).into(),
        );
    }
    // Resolve everything before the screen changes, so a bad name is a plain error line.
    let mut targets = Vec::new();
    for n in &names {
        targets.push(ctx.target(n)?);
    }
    let cancel = ctx.shutdown.child_token();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut tasks = Vec::new();
    for (i, t) in targets.iter().enumerate() {
        ctx.note_unsupported(t);
        tasks.push(tokio::spawn(host_task(
            i,
            ctx.link(t),
            t.clone(),
            tx.clone(),
            cancel.clone(),
        )));
    }
    drop(tx);
    let mut view = View {
        hosts: names.iter().map(|n| HostView::new(n)).collect(),
        color: std::env::var_os("NO_COLOR").is_none(),
        ..View::default()
    };
    let mut states: Vec<HostState> = names
        .iter()
        .map(|_| HostState {
            lost_at: None,
            history: BTreeMap::new(),
            run_id: None,
        })
        .collect();
    // ratatui::init restores the terminal from its panic hook too.
    let mut term = ratatui::try_init()?;
    let mut keys = Keys::start();
    let result = ui_loop(ctx, &mut term, &mut keys, &mut view, &mut states, &mut rx, &targets).await;
    drop(keys);
    ratatui::restore();
    cancel.cancel();
    for t in tasks {
        let _ = t.await;
    }
    result
}

/// The log view's `rtrain logs -f`, ended with the view whichever way the UI ends.
#[derive(Default)]
struct KillOnDrop(Option<std::process::Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

enum Action {
    None,
    Quit,
    Interrupt,
    Attach(usize),
    Stop(usize),
    Log(usize),
    LogBack,
}

fn on_key(view: &mut View, k: KeyEvent) -> Action {
    if k.kind != KeyEventKind::Press {
        return Action::None;
    }
    if k.modifiers.contains(KeyModifiers::CONTROL) && k.code == KeyCode::Char('c') {
        return Action::Interrupt;
    }
    if view.log.is_some() {
        return match k.code {
            KeyCode::Char('q') | KeyCode::Esc => Action::LogBack,
            _ => Action::None,
        };
    }
    if view.prompt.is_some() {
        view.prompt = None;
        if matches!(k.code, KeyCode::Char('y') | KeyCode::Char('Y')) {
            return Action::Stop(view.selected);
        }
        view.note = Some("not stopped".into());
        return Action::None;
    }
    let n = view.hosts.len();
    match k.code {
        KeyCode::Char('q') | KeyCode::Esc if view.help => view.help = false,
        KeyCode::Char('q') => return Action::Quit,
        KeyCode::Char('?') => view.help = !view.help,
        KeyCode::Char('L') => view.log_scale = !view.log_scale,
        KeyCode::Up | KeyCode::Char('k') => view.selected = (view.selected + n - 1) % n,
        KeyCode::Down | KeyCode::Char('j') => view.selected = (view.selected + 1) % n,
        KeyCode::Char('a') => return Action::Attach(view.selected),
        KeyCode::Char('l') => return Action::Log(view.selected),
        KeyCode::Char('s') => {
            let h = &view.hosts[view.selected];
            view.prompt = Some(format!("stop {} at the next checkpoint? [y/N]", h.name));
        }
        _ => {}
    }
    Action::None
}

async fn ui_loop(
    ctx: &Ctx,
    term: &mut ratatui::DefaultTerminal,
    keys: &mut Keys,
    view: &mut View,
    states: &mut [HostState],
    rx: &mut mpsc::UnboundedReceiver<(usize, Msg)>,
    targets: &[Target],
) -> anyhow::Result<u8> {
    let mut stops: Vec<(String, std::process::Child)> = Vec::new();
    // `l`: a child `rtrain logs -f` (which follows across reconnects), its lines sent by a thread.
    let mut log_child = KillOnDrop(None);
    let (log_tx, mut log_rx) = mpsc::unbounded_channel::<String>();
    // The reconnecting counter ticks even when no host says anything.
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // A tick that changed nothing on screen is not drawn (idle CPU: the issue asks for under 2 %).
    let mut quiet_tick = false;
    loop {
        if !quiet_tick {
            term.draw(|f| dashboard::render(f, view))?;
        }
        quiet_tick = false;
        tokio::select! {
            m = rx.recv() => {
                if let Some((i, m)) = m {
                    apply(&mut view.hosts[i], &mut states[i], m);
                }
                // Whatever else has arrived goes into the same frame.
                while let Ok((i, m)) = rx.try_recv() {
                    apply(&mut view.hosts[i], &mut states[i], m);
                }
            }
            ev = keys.rx.recv() => match ev {
                Some(Event::Key(k)) => match on_key(view, k) {
                    Action::None => {}
                    Action::Quit => return Ok(0),
                    Action::Interrupt => return Err(CommandError::Interrupted.into()),
                    Action::Attach(i) => {
                        keys.pause().await;
                        ratatui::restore();
                        let st = tokio::task::block_in_place(|| child(ctx, &["attach", &targets[i].name]).status());
                        *term = ratatui::try_init()?;
                        term.clear()?;
                        keys.resume();
                        view.note = Some(match st {
                            Ok(s) if s.success() => format!("back from {}", targets[i].name),
                            Ok(s) => format!("attach to {} ended: {s}", targets[i].name),
                            Err(e) => format!("cannot start attach: {e}"),
                        });
                    }
                    Action::Log(i) => {
                        let spawned = child(ctx, &["logs", &targets[i].name, "-f", "-n", "500"])
                            .stdin(std::process::Stdio::null())
                            .stdout(std::process::Stdio::piped())
                            .stderr(std::process::Stdio::piped())
                            .spawn();
                        match spawned {
                            Ok(mut c) => {
                                for out in [c.stdout.take().map(|o| Box::new(o) as Box<dyn std::io::Read + Send>),
                                    c.stderr.take().map(|e| Box::new(e) as Box<dyn std::io::Read + Send>)].into_iter().flatten() {
                                    let tx = log_tx.clone();
                                    std::thread::spawn(move || {
                                        use std::io::BufRead;
                                        for line in std::io::BufReader::new(out).split(b'\n').map_while(Result::ok) {
                                            // A progress bar's redraws: what the last one says.
                                            let text = String::from_utf8_lossy(&line);
                                            let last = text.trim_end_matches('\r').rsplit('\r').next().unwrap_or("");
                                            if tx.send(last.to_string()).is_err() {
                                                return;
                                            }
                                        }
                                    });
                                }
                                log_child.0 = Some(c);
                                view.log = Some((targets[i].name.clone(), Vec::new()));
                            }
                            Err(e) => view.note = Some(format!("cannot start `rtrain logs`: {e}")),
                        }
                    }
                    Action::LogBack => {
                        drop(std::mem::take(&mut log_child));
                        view.log = None;
                        // Lines the readers had not handed over yet belong to the closed view.
                        while log_rx.try_recv().is_ok() {}
                    }
                    Action::Stop(i) => {
                        let name = targets[i].name.clone();
                        let spawned = child(ctx, &["stop", &name, "--at-checkpoint"])
                            .stdin(std::process::Stdio::null())
                            .stdout(std::process::Stdio::null())
                            .stderr(std::process::Stdio::null())
                            .spawn();
                        view.note = Some(match spawned {
                            Ok(c) => {
                                stops.push((name.clone(), c));
                                format!("{name}: stopping at the next complete checkpoint")
                            }
                            Err(e) => format!("cannot start `rtrain stop`: {e}"),
                        });
                    }
                },
                Some(_) => {} // a resize: the next draw fits the new size
                None => return Err(anyhow::anyhow!("the terminal's input closed")),
            },
            Some(line) = log_rx.recv() => {
                if let Some((_, lines)) = &mut view.log {
                    lines.push(line);
                    if lines.len() > 5000 {
                        lines.drain(..1000);
                    }
                }
            }
            _ = tick.tick() => {
                let before = stops.len();
                quiet_tick = states.iter().all(|s| s.lost_at.is_none());
                for (h, s) in view.hosts.iter_mut().zip(states.iter()) {
                    if let Some(t) = s.lost_at {
                        h.link = LinkView::Reconnecting(t.elapsed().as_secs());
                    }
                }
                stops.retain_mut(|(name, c)| match c.try_wait() {
                    Ok(Some(st)) => {
                        view.note = Some(if st.success() {
                            format!("{name}: stopped after its checkpoint")
                        } else {
                            format!("{name}: `rtrain stop --at-checkpoint` ended with {st}")
                        });
                        false
                    }
                    _ => true,
                });
                quiet_tick &= stops.len() == before;
            }
            _ = ctx.shutdown.cancelled() => return Err(CommandError::Interrupted.into()),
        }
    }
}
