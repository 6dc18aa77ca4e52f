//! `rtrain top`'s screen: a pure function from a view model to ratatui widgets, so every layout
//! (one host, many, 80×24, no GPU, a dropped link) is testable on a `TestBackend` buffer.

use crate::remote::probe::RunState;
use crate::report::status::StatusJson;
use crate::train::human::{fmt_bytes, fmt_duration, fmt_rate};
use crate::train::trainer_state::HistoryPoint;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Block, Chart, Clear, Dataset, Gauge, GraphType, Paragraph, Sparkline};
use ratatui::Frame;

/// How a host's connection stands, as the panel says it.
#[derive(Debug, Clone, PartialEq)]
pub enum LinkView {
    Connecting,
    Up,
    /// Lost; being rebuilt for this many seconds.
    Reconnecting(u64),
    /// Given up (authentication, host key, give_up_after): the reason.
    Failed(String),
}

#[derive(Debug, Clone)]
pub struct HostView {
    pub name: String,
    pub link: LinkView,
    /// The newest answer (kept while reconnecting, so the panel does not go blank).
    pub status: Option<StatusJson>,
    pub history: Vec<HistoryPoint>,
    /// Why the last probe failed, if it did.
    pub error: Option<String>,
}

impl HostView {
    pub fn new(name: &str) -> HostView {
        HostView {
            name: name.to_string(),
            link: LinkView::Connecting,
            status: None,
            history: Vec::new(),
            error: None,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct View {
    pub hosts: Vec<HostView>,
    pub selected: usize,
    /// `L`: the loss axis in log10 (ratatui's axes are linear, so rtrain maps the values).
    pub log_scale: bool,
    pub help: bool,
    /// Off with `NO_COLOR` or when not a terminal.
    pub color: bool,
    /// A question waiting for y/N (`s`), shown on the bottom line.
    pub prompt: Option<String>,
    /// A one-line note on the bottom line (the answer to the last action).
    pub note: Option<String>,
    /// `l`: the selected host's log, full-screen: its name and the lines so far.
    pub log: Option<(String, Vec<String>)>,
}

/// The state word of a host, as the panel and the host list show it.
pub fn state_word(h: &HostView) -> String {
    match &h.link {
        LinkView::Reconnecting(s) => return format!("reconnecting… ({s} s)"),
        LinkView::Failed(_) => return "UNREACHABLE".into(),
        LinkView::Connecting if h.status.is_none() => return "connecting…".into(),
        _ => {}
    }
    match h.status.as_ref().and_then(|s| s.run.as_ref()) {
        None if h.status.is_some() => "NO RUN".into(),
        None => "?".into(),
        Some(r) if r.stalled => "STALLED".into(),
        Some(r) => r.state.as_str().to_uppercase(),
    }
}

fn state_color(h: &HostView) -> Color {
    match &h.link {
        LinkView::Reconnecting(_) | LinkView::Connecting => return Color::Yellow,
        LinkView::Failed(_) => return Color::Red,
        LinkView::Up => {}
    }
    match h.status.as_ref().and_then(|s| s.run.as_ref()) {
        Some(r) if r.stalled => Color::Magenta,
        Some(r) => match r.state {
            RunState::Running => Color::Green,
            RunState::Finished => Color::Cyan,
            RunState::Failed | RunState::Lost => Color::Red,
            RunState::Stopped => Color::Gray,
        },
        None => Color::Gray,
    }
}

fn styled(color: bool, c: Color) -> Style {
    if color {
        Style::default().fg(c).add_modifier(Modifier::BOLD)
    } else {
        Style::default().add_modifier(Modifier::BOLD)
    }
}

/// `step 1500/3000 (50%) · 2.1 it/s · ETA 12 min · loss 1.2345`
fn progress_line(s: &StatusJson) -> String {
    let p = &s.progress;
    let mut parts = Vec::new();
    match (p.step, p.total) {
        (Some(st), Some(t)) if t > 0 => parts.push(format!("step {st}/{t} ({:.0}%)", percent(st, t))),
        (Some(st), _) => parts.push(format!("step {st}")),
        _ => {}
    }
    if let Some(sps) = p.seconds_per_step.filter(|s| *s > 0.0) {
        parts.push(fmt_rate(sps));
    }
    if let Some(eta) = p.eta_seconds {
        parts.push(format!("ETA {}", fmt_duration(eta)));
    }
    if let Some(l) = p.loss {
        parts.push(format!("loss {l:.4}"));
    }
    parts.join(" · ")
}

fn percent(step: u64, total: u64) -> f64 {
    (step as f64 / total as f64 * 100.0).clamp(0.0, 100.0)
}

/// "work at risk: 21 min since checkpoint-1500" while running; the newest checkpoint otherwise.
pub fn risk_line(s: &StatusJson) -> String {
    let running = s.run.as_ref().is_some_and(|r| r.state == RunState::Running);
    match (&s.latest_checkpoint, running) {
        (Some(c), true) => match c.age_seconds {
            Some(a) => format!("work at risk: {} since {}", fmt_duration(a as f64), c.name),
            None => format!("latest checkpoint {}", c.name),
        },
        (None, true) => match s.run.as_ref().and_then(|r| r.started_at.as_ref()) {
            Some(t) => format!("work at risk: everything since {t} (no checkpoint yet)"),
            None => "work at risk: everything (no checkpoint yet)".into(),
        },
        (Some(c), false) => format!("latest checkpoint {}", c.name),
        (None, false) => "no checkpoint".into(),
    }
}

fn disk_line(s: &StatusJson) -> Option<String> {
    let d = s.disk.as_ref()?;
    let (free, total) = (d.free_bytes?, d.total_bytes?);
    Some(format!("disk {} free of {}", fmt_bytes(free), fmt_bytes(total)))
}

/// The chart's points, `(step, value)`, with the value mapped to log10 when asked; points that
/// cannot be drawn (no step, non-finite, ≤ 0 on a log axis) are left out.
pub fn series(history: &[HistoryPoint], pick: fn(&HistoryPoint) -> Option<f64>, log: bool) -> Vec<(f64, f64)> {
    history
        .iter()
        .filter_map(|h| Some((h.step? as f64, pick(h)?)))
        .filter(|(_, v)| v.is_finite() && (!log || *v > 0.0))
        .map(|(s, v)| (s, if log { v.log10() } else { v }))
        .collect()
}

fn fmt_value(v: f64, log: bool) -> String {
    let v = if log { 10f64.powf(v) } else { v };
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn bounds(points: impl Iterator<Item = f64>) -> Option<[f64; 2]> {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in points {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return None;
    }
    if hi - lo < 1e-9 {
        hi = lo + 1.0;
    }
    Some([lo, hi])
}

fn render_chart(f: &mut Frame, area: Rect, h: &HostView, log: bool, color: bool) {
    let train = series(&h.history, |p| p.loss, log);
    let eval = series(&h.history, |p| p.eval_loss, log);
    let title = if log { "loss (log, L: linear)" } else { "loss (L: log)" };
    let block = Block::bordered().title(title);
    let (Some(x), Some(y)) = (
        bounds(train.iter().chain(&eval).map(|p| p.0)),
        bounds(train.iter().chain(&eval).map(|p| p.1)),
    ) else {
        f.render_widget(Paragraph::new("no loss logged yet").block(block), area);
        return;
    };
    let c = |c: Color| {
        if color {
            Style::default().fg(c)
        } else {
            Style::default()
        }
    };
    let mut sets = vec![Dataset::default()
        .name("train")
        .marker(Marker::Braille)
        .graph_type(GraphType::Line)
        .style(c(Color::Cyan))
        .data(&train)];
    if !eval.is_empty() {
        sets.push(
            Dataset::default()
                .name("eval")
                .marker(Marker::Braille)
                .graph_type(GraphType::Line)
                .style(c(Color::Yellow))
                .data(&eval),
        );
    }
    let chart = Chart::new(sets)
        .block(block)
        .x_axis(
            Axis::default()
                .bounds(x)
                .labels([format!("{:.0}", x[0]), format!("{:.0}", x[1])]),
        )
        .y_axis(
            Axis::default()
                .bounds(y)
                .labels([fmt_value(y[0], log), fmt_value(y[1], log)]),
        );
    f.render_widget(chart, area);
}

/// `GPU 0 A100   util ███████░░░  72%   mem 30.1 GiB/80.0 GiB`
fn gpu_lines(s: &StatusJson, width: u16) -> Vec<Line<'static>> {
    let Some(gpus) = &s.gpus else { return Vec::new() };
    let bar = |frac: f64, n: usize| -> String {
        let full = ((frac.clamp(0.0, 1.0)) * n as f64).round() as usize;
        "█".repeat(full) + &"░".repeat(n - full)
    };
    let n = if width >= 100 { 20 } else { 10 };
    gpus.iter()
        .map(|g| {
            let idx = g.index.map(|i| i.to_string()).unwrap_or_else(|| "?".into());
            let util = match g.util_percent {
                Some(u) => format!("util {} {u:>3}%", bar(u as f64 / 100.0, n)),
                None => "util ?".into(),
            };
            let mem = match (g.mem_used_mib, g.mem_total_mib) {
                (Some(u), Some(t)) if t > 0 => format!(
                    "mem {} {}/{}",
                    bar(u as f64 / t as f64, n),
                    fmt_bytes(u * 1024 * 1024),
                    fmt_bytes(t * 1024 * 1024)
                ),
                _ => "mem ?".into(),
            };
            let name = g.name.clone().unwrap_or_default();
            Line::from(format!("GPU {idx} {name}  {util}  {mem}"))
        })
        .collect()
}

fn learning_rates(h: &HostView) -> Vec<u64> {
    let lrs: Vec<f64> = h
        .history
        .iter()
        .filter_map(|p| p.learning_rate)
        .filter(|v| v.is_finite())
        .collect();
    let max = lrs.iter().cloned().fold(0.0, f64::max);
    if max <= 0.0 {
        return Vec::new();
    }
    lrs.iter().map(|v| (v / max * 100.0).round() as u64).collect()
}

/// One host's full panel.
fn render_host(f: &mut Frame, area: Rect, h: &HostView, v: &View) {
    let s = h.status.as_ref();
    let run_id = s.and_then(|s| s.run.as_ref()).map(|r| r.id.as_str()).unwrap_or("-");
    let block = Block::bordered().title(Line::from(vec![
        Span::styled(format!(" {} ", h.name), Style::default().add_modifier(Modifier::BOLD)),
        Span::raw(format!("run {run_id} ")),
    ]));
    let inner = block.inner(area);
    f.render_widget(block, area);

    let mut head = vec![Line::from(vec![
        Span::styled(state_word(h), styled(v.color, state_color(h))),
        Span::raw("  "),
        Span::raw(s.map(progress_line).unwrap_or_default()),
    ])];
    if let LinkView::Failed(why) = &h.link {
        head.push(Line::from(why.clone()));
    } else if let Some(e) = &h.error {
        head.push(Line::from(e.clone()));
    }
    let gauge = s.and_then(|s| match (s.progress.step, s.progress.total) {
        (Some(st), Some(t)) if t > 0 => Some(percent(st, t)),
        _ => None,
    });
    let mut info = Vec::new();
    if let Some(s) = s {
        let mut l = risk_line(s);
        if let Some(d) = disk_line(s) {
            l = format!("{l}   {d}");
        }
        info.push(Line::from(l));
    }
    let gpus = s.map(|s| gpu_lines(s, inner.width)).unwrap_or_default();
    let lr = learning_rates(h);

    // What must show comes first; the chart takes what is left, and goes first when too little is
    // left for it, then the GPUs.
    let fixed = head.len() as u16 + u16::from(gauge.is_some()) + info.len() as u16;
    let mut room = inner.height.saturating_sub(fixed);
    let show_chart = room >= 8 + gpus.len() as u16 || (gpus.is_empty() && room >= 6);
    let lr_rows = if show_chart && !lr.is_empty() && room >= 10 + gpus.len() as u16 {
        2
    } else {
        0
    };
    let chart_rows = if show_chart {
        room - gpus.len() as u16 - lr_rows
    } else {
        0
    };
    room = room.saturating_sub(chart_rows + lr_rows);
    let gpu_rows = (gpus.len() as u16).min(room);

    let rows = Layout::vertical([
        Constraint::Length(head.len() as u16),
        Constraint::Length(u16::from(gauge.is_some())),
        Constraint::Length(info.len() as u16),
        Constraint::Length(chart_rows),
        Constraint::Length(lr_rows),
        Constraint::Length(gpu_rows),
        Constraint::Min(0),
    ])
    .split(inner);
    f.render_widget(Paragraph::new(head), rows[0]);
    if let Some(pct) = gauge {
        let style = if v.color {
            Style::default().fg(Color::Green)
        } else {
            Style::default()
        };
        f.render_widget(
            Gauge::default()
                .gauge_style(style)
                .ratio(pct / 100.0)
                .label(format!("{pct:.1}%"))
                .use_unicode(true),
            rows[1],
        );
    }
    f.render_widget(Paragraph::new(info), rows[2]);
    if chart_rows > 0 {
        render_chart(f, rows[3], h, v.log_scale, v.color);
    }
    if lr_rows > 0 {
        let parts = Layout::vertical([Constraint::Length(1), Constraint::Length(1)]).split(rows[4]);
        let last = h.history.iter().rev().find_map(|p| p.learning_rate);
        f.render_widget(
            Paragraph::new(format!(
                "learning rate{}",
                last.map(|l| format!(" {l:.2e}")).unwrap_or_default()
            )),
            parts[0],
        );
        let shown = &lr[lr.len().saturating_sub(parts[1].width as usize)..];
        f.render_widget(Sparkline::default().data(shown.to_vec()), parts[1]);
    }
    if gpu_rows > 0 {
        f.render_widget(Paragraph::new(gpus[..gpu_rows as usize].to_vec()), rows[5]);
    }
}

/// One line per host: the list above the expanded panel when there are several.
fn host_list(v: &View) -> Vec<Line<'static>> {
    v.hosts
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let mark = if i == v.selected { "▶ " } else { "  " };
            let prog = h.status.as_ref().map(progress_line).unwrap_or_default();
            let mut l = Line::from(vec![
                Span::raw(format!("{mark}{:<14} ", h.name)),
                Span::styled(format!("{:<20}", state_word(h)), styled(v.color, state_color(h))),
                Span::raw(format!(" {prog}")),
            ]);
            if i == v.selected {
                l = l.style(Style::default().add_modifier(Modifier::REVERSED));
            }
            l
        })
        .collect()
}

pub const HELP: &[&str] = &[
    "↑/↓   select a host",
    "L     loss axis: linear / log",
    "a     attach to the selected host's run",
    "l     its log, full-screen, following (q back)",
    "s     stop it at the next checkpoint (asks first)",
    "?     this help",
    "q     quit (Ctrl-C too)",
];

/// The log view: the newest lines that fit, following.
fn render_log(f: &mut Frame, host: &str, lines: &[String]) {
    let area = f.area();
    let block = Block::bordered().title(format!(" log of {host} (following; q back) "));
    let rows = block.inner(area).height as usize;
    let shown: Vec<Line> = lines[lines.len().saturating_sub(rows)..]
        .iter()
        .map(|l| Line::from(l.clone()))
        .collect();
    f.render_widget(Paragraph::new(shown).block(block), area);
}

pub fn render(f: &mut Frame, v: &View) {
    if let Some((host, lines)) = &v.log {
        render_log(f, host, lines);
        return;
    }
    let area = f.area();
    let list_rows = if v.hosts.len() > 1 {
        (v.hosts.len() as u16).min(area.height / 3)
    } else {
        0
    };
    let rows = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(list_rows),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .split(area);
    let n = v.hosts.len();
    f.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled("rtrain top", Style::default().add_modifier(Modifier::BOLD)),
            Span::raw(format!(
                "  {n} host{}  ↑/↓ select · L log · ? help · q quit",
                if n == 1 { "" } else { "s" }
            )),
        ])),
        rows[0],
    );
    if list_rows > 0 {
        let list = host_list(v);
        // Keep the selected host in view when the list is cut.
        let skip = v.selected.saturating_sub(list_rows as usize - 1);
        f.render_widget(Paragraph::new(list[skip..].to_vec()), rows[1]);
    }
    if let Some(h) = v.hosts.get(v.selected) {
        render_host(f, rows[2], h, v);
    }
    let bottom = match (&v.prompt, &v.note) {
        (Some(p), _) => Line::from(Span::styled(p.clone(), Style::default().add_modifier(Modifier::BOLD))),
        (None, Some(n)) => Line::from(n.clone()),
        _ => Line::from(""),
    };
    f.render_widget(Paragraph::new(bottom), rows[3]);
    if v.help {
        let w = 54.min(area.width);
        let hgt = (HELP.len() as u16 + 2).min(area.height);
        let r = Rect::new(area.x + (area.width - w) / 2, area.y + (area.height - hgt) / 2, w, hgt);
        f.render_widget(Clear, r);
        f.render_widget(
            Paragraph::new(HELP.iter().map(|l| Line::from(*l)).collect::<Vec<_>>())
                .block(Block::bordered().title(" keys ")),
            r,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::status::{self as probe, StatusJson};
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    fn fixture(rel: &str) -> Vec<u8> {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(rel);
        std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    fn running(step: u64, total: u64) -> StatusJson {
        let mut j = StatusJson::unreachable("gpu-box", "training");
        j.reachable = true;
        j.run = Some(probe::RunJson {
            id: "20261201-101500-ab12".into(),
            state: RunState::Running,
            pid: Some(4242),
            started_at: Some("2026-12-01T10:15:00Z".into()),
            exit_code: None,
            log: None,
            command: Some("make train".into()),
            silent_seconds: Some(3),
            stalled: false,
        });
        j.progress.step = Some(step);
        j.progress.total = Some(total);
        j.progress.seconds_per_step = Some(0.5);
        j.progress.eta_seconds = Some((total - step) as f64 * 0.5);
        j.progress.loss = Some(1.25);
        j.latest_checkpoint = Some(probe::LatestCheckpointJson {
            name: "checkpoint-1500".into(),
            step: Some(1500),
            age_seconds: Some(21 * 60),
            of_current_run: Some(true),
        });
        j.gpus = Some(Vec::new());
        j.disk = Some(probe::DiskJson {
            path: "/home/u/project/outputs".into(),
            free_bytes: Some(120 << 30),
            total_bytes: Some(500 << 30),
        });
        j
    }

    fn descending(n: u64) -> Vec<HistoryPoint> {
        (1..=n)
            .map(|i| HistoryPoint {
                step: Some(i * 10),
                loss: Some(4.0 / i as f64),
                eval_loss: (i % 5 == 0).then_some(4.5 / i as f64),
                learning_rate: Some(5e-5 * (1.0 - i as f64 / (n + 1) as f64)),
            })
            .collect()
    }

    fn one(status: StatusJson, history: Vec<HistoryPoint>) -> View {
        let mut h = HostView::new(&status.host.clone());
        h.link = LinkView::Up;
        h.status = Some(status);
        h.history = history;
        View {
            hosts: vec![h],
            ..View::default()
        }
    }

    fn draw(v: &View, w: u16, h: u16) -> Vec<String> {
        let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
        t.draw(|f| render(f, v)).unwrap();
        let buf = t.backend().buffer().clone();
        (0..h)
            .map(|y| (0..w).map(|x| buf[(x, y)].symbol().to_string()).collect::<String>())
            .collect()
    }

    fn find(screen: &[String], needle: &str) -> Option<(usize, usize)> {
        screen
            .iter()
            .enumerate()
            .find_map(|(y, l)| l.find(needle).map(|x| (l[..x].chars().count(), y)))
    }

    fn has(screen: &[String], needle: &str) -> bool {
        find(screen, needle).is_some()
    }

    #[test]
    fn a_running_run_shows_state_gauge_risk_and_disk() {
        let s = draw(&one(running(1500, 3000), descending(30)), 100, 30);
        let text = s.join("\n");
        assert!(has(&s, "RUNNING"), "{text}");
        assert!(has(&s, "50.0%"), "gauge label: {text}");
        assert!(has(&s, "step 1500/3000 (50%)"), "{text}");
        assert!(has(&s, "work at risk: 21 min since checkpoint-1500"), "{text}");
        assert!(has(&s, "disk 120.0 GiB free of 500.0 GiB"), "{text}");
        assert!(!has(&s, "GPU "), "no GPU section without GPUs: {text}");
    }

    /// The curve's braille dots sit high on the left and low on the right for a falling loss, and
    /// the y axis is labelled with the loss's range.
    #[test]
    fn the_loss_chart_descends_for_a_descending_loss() {
        let mut v = one(running(300, 3000), descending(30));
        v.hosts[0].history.iter_mut().for_each(|p| p.eval_loss = None);
        let s = draw(&v, 100, 30);
        let text = s.join("\n");
        assert!(has(&s, "4.00"), "y max label: {text}");
        assert!(has(&s, "0.133"), "y min label: {text}");
        assert!(has(&s, "300"), "x max label: {text}");
        let dots: Vec<(usize, usize)> = s
            .iter()
            .enumerate()
            .flat_map(|(y, l)| {
                l.chars()
                    .enumerate()
                    .filter(|(_, c)| ('\u{2801}'..='\u{28ff}').contains(c))
                    .map(move |(x, _)| (x, y))
            })
            .collect();
        assert!(dots.len() > 10, "braille curve drawn: {text}");
        let left = dots.iter().min_by_key(|d| d.0).unwrap();
        let right = dots.iter().max_by_key(|d| d.0).unwrap();
        assert!(
            left.1 < right.1,
            "the curve starts higher than it ends: {left:?} {right:?}\n{text}"
        );
    }

    #[test]
    fn the_log_toggle_maps_the_axis_and_says_so() {
        let mut v = one(running(300, 3000), descending(30));
        let lin = draw(&v, 100, 30);
        v.log_scale = true;
        let log = draw(&v, 100, 30);
        assert!(has(&lin, "loss (L: log)"));
        assert!(has(&log, "loss (log, L: linear)"), "{}", log.join("\n"));
        // The labels are the loss values, not their logarithms.
        assert!(has(&log, "4.00"), "{}", log.join("\n"));
        let pts = series(&v.hosts[0].history, |p| p.loss, true);
        assert!((pts[0].1 - 4f64.log10()).abs() < 1e-12);
    }

    #[test]
    fn two_gpus_get_a_line_each_with_util_and_memory() {
        let mut st = running(1500, 3000);
        let gpus = crate::train::gpu::parse_nvidia_smi(&fixture("nvidia-smi/two-gpus.csv"), Some(0));
        st.gpus = Some(gpus.gpus);
        let s = draw(&one(st, descending(30)), 100, 30);
        let text = s.join("\n");
        assert!(has(&s, "GPU 0 "), "{text}");
        assert!(has(&s, "GPU 1 "), "{text}");
        assert!(has(&s, "util "), "{text}");
    }

    #[test]
    fn a_failed_run_says_failed_and_risks_nothing() {
        let mut st = running(700, 3000);
        let r = st.run.as_mut().unwrap();
        r.state = RunState::Failed;
        r.exit_code = Some(1);
        st.progress.eta_seconds = None;
        let s = draw(&one(st, descending(7)), 80, 24);
        let text = s.join("\n");
        assert!(has(&s, "FAILED"), "{text}");
        assert!(!has(&s, "work at risk"), "{text}");
        assert!(has(&s, "latest checkpoint checkpoint-1500"), "{text}");
    }

    #[test]
    fn a_dropped_host_says_reconnecting_and_keeps_its_last_numbers() {
        let mut v = one(running(1500, 3000), descending(30));
        let mut other = HostView::new("box-b");
        other.link = LinkView::Up;
        other.status = Some(running(100, 3000));
        v.hosts.push(other);
        v.hosts[0].link = LinkView::Reconnecting(12);
        let s = draw(&v, 100, 30);
        let text = s.join("\n");
        assert!(has(&s, "reconnecting… (12 s)"), "{text}");
        assert!(has(&s, "step 1500/3000"), "the last numbers stay: {text}");
        assert!(has(&s, "box-b"), "{text}");
        assert!(has(&s, "step 100/3000"), "the other host's row: {text}");
    }

    /// 80×24 with two GPUs and two hosts: the chart goes first, the GPUs stay.
    #[test]
    fn a_small_terminal_drops_the_chart_before_the_gpus() {
        let mut st = running(1500, 3000);
        st.gpus = Some(crate::train::gpu::parse_nvidia_smi(&fixture("nvidia-smi/two-gpus.csv"), Some(0)).gpus);
        let mut v = one(st.clone(), descending(30));
        let big = draw(&v, 80, 24);
        assert!(has(&big, "loss (L: log)"), "{}", big.join("\n"));
        for i in 0..4 {
            let mut h = HostView::new(&format!("box-{i}"));
            h.status = Some(st.clone());
            v.hosts.push(h);
        }
        let s = draw(&v, 80, 16);
        let text = s.join("\n");
        assert!(!has(&s, "loss (L: log)"), "{text}");
        assert!(has(&s, "GPU 1 "), "{text}");
        assert!(has(&s, "RUNNING"), "{text}");
    }

    #[test]
    fn the_log_view_shows_the_newest_lines_that_fit() {
        let mut v = one(running(1500, 3000), Vec::new());
        v.log = Some(("gpu-box".into(), (1..=100).map(|i| format!("line {i}")).collect()));
        let s = draw(&v, 80, 24);
        assert!(has(&s, "log of gpu-box"), "{}", s.join("\n"));
        assert!(has(&s, "line 100"));
        assert!(has(&s, "line 79"), "22 rows inside the border: {}", s.join("\n"));
        assert!(!has(&s, "line 78 "));
        assert!(!has(&s, "RUNNING"), "the dashboard is hidden");
    }

    #[test]
    fn help_lists_the_keys() {
        let mut v = one(running(1500, 3000), Vec::new());
        v.help = true;
        let s = draw(&v, 80, 24);
        assert!(has(&s, "loss axis: linear / log"), "{}", s.join("\n"));
        assert!(has(&s, "quit"));
    }

    /// The history a real HF run's status probe yields: its checkpoint's log_history, then what the
    /// log printed after it, in step order.
    #[test]
    fn history_joins_the_checkpoint_and_the_log_in_step_order() {
        let ts = crate::train::trainer_state::parse_trainer_state(
            br#"{"global_step": 20, "logging_steps": 10, "log_history": [
                {"loss": 3.0, "learning_rate": 5e-5, "step": 10}, {"loss": 2.5, "step": 20}, {"eval_loss": 2.6, "step": 20}]}"#,
        )
        .unwrap();
        assert_eq!(ts.history.len(), 3);
        let log = b"{'loss': 2.9, 'step': 10}\n 30%|###  | 30/100 [00:03<00:07, 10.0it/s]\n{'loss': 2.1, 'learning_rate': 4e-05}\n";
        let sum = crate::train::progress::summarize_log(log, false);
        assert_eq!(sum.history.len(), 2);
        assert_eq!(sum.history[1].step, Some(30));
        assert_eq!(sum.history[1].learning_rate, Some(4e-5));
    }
}
