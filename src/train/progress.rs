//! Reads a training log the way a terminal would show it: tqdm redraws one line with `\r`, so a
//! log file holds hundreds of overwritten bar states per line. This finds the final state of each
//! line (for `rtrain logs`), the last progress-bar update (step, total, rate, ETA) and the last
//! metrics dict the Trainer printed (for `status`).

use crate::train::lightning::{self, EpochBars};
use std::collections::BTreeMap;

/// A line longer than this is cut and emitted, so a stream without newlines cannot grow memory.
const MAX_LINE: usize = 1 << 20;

/// Streaming `\r` collapse: fed chunks as they arrive, it returns each completed line as a
/// terminal would have left it (the last non-blank `\r` segment, trailing blanks trimmed).
/// It keeps only the current and the last non-blank segment, so a bar redrawn for hours without
/// a newline costs one line of memory.
#[derive(Debug, Default, Clone)]
pub struct CrCollapser {
    /// The segment since the last `\r`.
    current: Vec<u8>,
    /// The last non-blank segment of this line that a later `\r` has ended.
    shown: Vec<u8>,
}

fn is_blank(segment: &[u8]) -> bool {
    segment.iter().all(|b| *b == b' ' || *b == b'\t')
}

fn trim_end_blanks(mut line: Vec<u8>) -> Vec<u8> {
    while matches!(line.last(), Some(b' ' | b'\t')) {
        line.pop();
    }
    line
}

impl CrCollapser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one chunk (any split, even inside a UTF-8 character or a `\r\n`); returns the lines it
    /// completed, without their `\n`.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<Vec<u8>> {
        let mut lines = Vec::new();
        for &b in chunk {
            match b {
                b'\n' => lines.push(self.take_line()),
                b'\r' => self.end_segment(),
                _ => {
                    self.current.push(b);
                    if self.current.len() >= MAX_LINE {
                        lines.push(self.take_line());
                    }
                }
            }
        }
        lines
    }

    /// What the unfinished line shows right now (e.g. the live progress bar).
    pub fn pending(&self) -> Vec<u8> {
        let seg = if is_blank(&self.current) {
            &self.shown
        } else {
            &self.current
        };
        trim_end_blanks(seg.clone())
    }

    /// Ends the stream: the unfinished line, if it shows anything.
    pub fn finish(mut self) -> Option<Vec<u8>> {
        let line = self.take_line();
        (!line.is_empty()).then_some(line)
    }

    fn end_segment(&mut self) {
        if !is_blank(&self.current) {
            self.shown = std::mem::take(&mut self.current);
        }
        self.current.clear();
    }

    fn take_line(&mut self) -> Vec<u8> {
        let line = self.pending();
        self.current.clear();
        self.shown.clear();
        line
    }
}

/// The final state of every line of `bytes`: what `rtrain logs` prints. A final line without a
/// newline is kept, without one.
pub fn collapse_cr(bytes: &[u8]) -> Vec<u8> {
    let mut c = CrCollapser::new();
    let mut out = Vec::with_capacity(bytes.len() / 4);
    for line in c.feed(bytes) {
        out.extend_from_slice(&line);
        out.push(b'\n');
    }
    if let Some(last) = c.finish() {
        out.extend_from_slice(&last);
    }
    out
}

/// One redraw of tqdm's main bar: `  3%|▎         | 150/4500 [10:02<4:50:43,  4.01s/it]`.
#[derive(Debug, Clone, PartialEq)]
pub struct TqdmUpdate {
    pub step: u64,
    pub total: u64,
    pub percent: Option<u32>,
    pub elapsed_seconds: Option<u64>,
    /// tqdm's own estimate; `None` for `?`.
    pub remaining_seconds: Option<u64>,
    /// From the rate (`4.01s/it`, or the inverse of `107.80it/s`); `None` for `?it/s`.
    pub seconds_per_step: Option<f64>,
}

/// `MM:SS` or `H:MM:SS` with unbounded hours; `?` is unknown.
pub fn parse_clock(s: &str) -> Option<u64> {
    let parts: Vec<&str> = s.trim().split(':').collect();
    if parts.len() < 2 || parts.len() > 3 {
        return None;
    }
    let mut total = 0u64;
    for p in parts {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        total = total.checked_mul(60)?.checked_add(p.parse::<u64>().ok()?)?;
    }
    Some(total)
}

/// tqdm's rate field: `4.01s/it`, `107.80it/s`, `1.50kit/s`, `?it/s`. Returns seconds per item.
pub fn parse_rate(s: &str) -> Option<f64> {
    let s = s.trim();
    let num_end = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let value: f64 = s[..num_end].parse().ok()?;
    let unit = &s[num_end..];
    if let Some(per_item) = unit.strip_prefix("s/") {
        return (!per_item.is_empty()).then_some(value);
    }
    let items = unit.strip_suffix("/s")?;
    let scale = match items.chars().next() {
        Some('k') if items.len() > 1 => 1e3,
        Some('M') if items.len() > 1 => 1e6,
        Some('G') if items.len() > 1 => 1e9,
        _ => 1.0,
    };
    let per_second = value * scale;
    (per_second > 0.0).then(|| 1.0 / per_second)
}

/// Parses one `\r`/`\n` segment as tqdm's main bar. Bars with a description (`Writing model
/// shards:  0%|...`) are other bars and give `None`; nested bars are filtered by the caller.
pub fn parse_tqdm(segment: &str) -> Option<TqdmUpdate> {
    let s = segment.trim_start();
    let bar_at = s.find("%|")?;
    let pct = s[..bar_at].trim();
    if pct.is_empty() || !pct.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let after_bar = &s[bar_at + 2..];
    let rest = after_bar[after_bar.find('|')? + 1..].trim_start();
    let (counts, rest) = rest.split_once(' ')?;
    let (n, total) = counts.split_once('/')?;
    let step: u64 = n.parse().ok()?;
    let total: u64 = total.parse().ok()?;
    let inner = rest.trim_start().strip_prefix('[')?;
    let inner = &inner[..inner.find(']')?];
    let mut fields = inner.split(',');
    let (elapsed, remaining) = fields.next()?.split_once('<')?;
    let rate = fields.next().map(str::trim);
    Some(TqdmUpdate {
        step,
        total,
        percent: pct.parse().ok(),
        elapsed_seconds: parse_clock(elapsed),
        remaining_seconds: parse_clock(remaining),
        seconds_per_step: rate.and_then(parse_rate),
    })
}

/// One Trainer metrics line, 4.x (`{'loss': 2.1043, ...}`) or 5.x (`{'loss': '2.104', ...}`).
/// Values that are not numbers (`None`, `True`, text) are left out; anything nested or malformed
/// makes the whole line `None`.
pub fn parse_dict_line(line: &str) -> Option<BTreeMap<String, f64>> {
    let s = line.trim();
    let mut rest = s.strip_prefix('{')?.strip_suffix('}')?.trim();
    let mut out = BTreeMap::new();
    while !rest.is_empty() {
        let (key, after) = quoted(rest)?;
        let after = after.trim_start().strip_prefix(':')?.trim_start();
        let (value, after) = if after.starts_with(['\'', '"']) {
            let (v, a) = quoted(after)?;
            (v, a)
        } else {
            let end = after.find(',').unwrap_or(after.len());
            let v = after[..end].trim();
            if v.starts_with(['{', '[', '(']) {
                return None;
            }
            (v, &after[end..])
        };
        if let Ok(v) = value.trim().parse::<f64>() {
            out.insert(key.to_string(), v);
        }
        let after = after.trim_start();
        rest = match after.strip_prefix(',') {
            Some(r) => r.trim_start(),
            None if after.is_empty() => after,
            None => return None,
        };
    }
    (!out.is_empty()).then_some(out)
}

/// A Python string literal at the start of `s` (no escapes: the Trainer's keys and values have
/// none): its content and what follows it.
fn quoted(s: &str) -> Option<(&str, &str)> {
    let q = s.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let body = &s[1..];
    let end = body.find(q)?;
    Some((&body[..end], &body[end + 1..]))
}

/// Splits a metrics dict off the text in front of it: `(before, Some(dict))`, or `(segment, None)`.
///
/// Python block-buffers stdout when it is not a terminal (under rtrain's run wrapper it is a pipe),
/// while tqdm writes its bar to stderr unbuffered. The Trainer's metrics lines (`tqdm.write`, to
/// stdout) then reach the log in batches, and each batch lands right after the bar's last redraw:
/// its first dict shares a segment with the bar, `... 40/120 [00:05<00:10,  7.89it/s]{'loss': ...}`.
fn split_glued_dict(segment: &str) -> (&str, Option<&str>) {
    match segment.find("{'") {
        Some(at) if at > 0 && segment[at..].trim_end().ends_with('}') => (&segment[..at], Some(&segment[at..])),
        _ => (segment, None),
    }
}

/// A metrics line Rich wrapped under its epoch bar on a narrow terminal: `train_loss: 0.006` (only `key: value`
/// words); the training loss among them.
fn rich_wrapped_loss(line: &str) -> Option<f64> {
    let words: Vec<&str> = line.split_whitespace().collect();
    if !words.len().is_multiple_of(2) {
        return None;
    }
    let mut loss = None;
    for pair in words.chunks(2) {
        let key = pair[0].strip_suffix(':')?;
        let value: f64 = pair[1].parse().ok()?;
        if loss.is_none() && lightning::is_train_loss(key) {
            loss = Some(value);
        }
    }
    loss
}

/// What `status` needs from the tail of a log.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogSummary {
    /// The last redraw of the main progress bar.
    pub progress: Option<TqdmUpdate>,
    /// Seconds per step, corrected after a resume (see [`summarize_log`]).
    pub seconds_per_step: Option<f64>,
    /// Seconds to the end of the run.
    pub eta_seconds: Option<f64>,
    /// The bar jumped from 0 to about this step in one update: the run resumed from a checkpoint.
    pub resumed_at_step: Option<u64>,
    pub loss: Option<f64>,
    /// The bar's step when the last loss was logged (tqdm.write prints it right after that step's redraw).
    pub loss_step: Option<u64>,
    pub learning_rate: Option<f64>,
    pub grad_norm: Option<f64>,
    pub epoch: Option<f64>,
    pub eval_loss: Option<f64>,
    /// From the final summary line: the run completed its training loop.
    pub train_runtime: Option<f64>,
    pub train_loss: Option<f64>,
    /// Every dict line with a loss, at the bar's step when it was printed (as `loss_step`).
    pub history: Vec<crate::train::trainer_state::HistoryPoint>,
    /// Lightning's per-epoch bars (TQDM or Rich), which `progress` leaves out: their counts are per epoch.
    pub epoch_bars: EpochBars,
}

/// Whether tqdm's smoothed rate `now` (seconds per step) can stand for the pace while too little
/// time has passed to measure it (`average`, from whole seconds, is coarse). A jump too small to
/// prove from whole seconds (40 steps restored at 20 it/s) still inflates tqdm's rate for dozens
/// of steps; it shows as a first update past step 1 claiming a far faster pace than tqdm claims
/// now. A genuine fast run's first update (tqdm redraws at most ten times a second, so it may
/// show step 10) claims about the pace it keeps.
fn tqdm_rate_holds(now: Option<f64>, average: f64, first_after_zero: bool, n0: u64, first: Option<f64>) -> bool {
    let Some(now) = now else { return false };
    let near_average = now * 3.0 >= average && now <= 3.0 * average;
    let started_like_a_jump = first_after_zero && n0 > 1 && first.is_none_or(|f| now > 2.0 * f);
    near_average && !started_like_a_jump
}

/// A measured average needs this much elapsed time since the jump before it beats tqdm's rate.
const MIN_AVERAGE_SECONDS: u64 = 10;

/// Summarises a log (usually its last 64 KiB). `starts_mid_line` drops the first segment, which a
/// `tail -c` cut at an arbitrary byte.
///
/// After a resume the bar goes from 0 to the restored step in one update, and tqdm's smoothed
/// rate and ETA stay wrong for dozens of steps. When the log shows that jump, seconds per step is
/// measured from the updates after it instead (and the ETA from that), once enough time passed.
pub fn summarize_log(log: &[u8], starts_mid_line: bool) -> LogSummary {
    let text = String::from_utf8_lossy(log);
    let mut segments = text.split(['\r', '\n']);
    if starts_mid_line {
        segments.next();
    }
    let mut sum = LogSummary::default();
    // The current bar instance: its total, whether its 0/total redraw was seen, its first update
    // past 0 with its elapsed time, and whether that update came right after the 0 redraw.
    let mut bar_total: Option<u64> = None;
    let mut saw_zero = false;
    let mut first: Option<(u64, u64)> = None;
    let mut first_after_zero = false;
    // tqdm's rate at that first update.
    let mut first_rate: Option<f64> = None;
    // The last segment was a Rich epoch bar, whose metrics may wrap onto the next line.
    let mut after_rich = false;
    for seg in segments {
        // Nested bars (eval, "Writing model shards") move the cursor with ESC [A; Rich's live display redraws
        // with cursor movements too, so only its epoch bar (and the metrics wrapped under it) is read.
        if seg.contains('\x1b') {
            let clean = lightning::strip_ansi(seg);
            if let Some(u) = lightning::parse_rich_epoch(&clean) {
                sum.epoch_bars.push(u);
                after_rich = true;
            } else if after_rich && !clean.trim().is_empty() {
                if let Some(loss) = rich_wrapped_loss(&clean) {
                    sum.epoch_bars.loss = Some(loss);
                    if let Some(last) = sum.epoch_bars.last.as_mut() {
                        last.loss = Some(loss);
                    }
                }
                after_rich = false;
            }
            continue;
        }
        if let Some(u) = lightning::parse_tqdm_epoch(seg) {
            sum.epoch_bars.push(u);
            continue;
        }
        let (seg, glued) = split_glued_dict(seg);
        if let Some(u) = parse_tqdm(seg) {
            let restarted = sum.progress.as_ref().is_some_and(|p| u.step < p.step);
            if u.step == 0 {
                saw_zero = true;
                first = None;
            } else if bar_total != Some(u.total) || restarted {
                // A new bar (or the first one the tail shows) whose 0 redraw is not in view.
                saw_zero = false;
                first = u.elapsed_seconds.map(|e| (u.step, e));
                first_after_zero = false;
                first_rate = u.seconds_per_step;
            } else if first.is_none() {
                first = u.elapsed_seconds.map(|e| (u.step, e));
                first_after_zero = saw_zero;
                first_rate = u.seconds_per_step;
            }
            bar_total = Some(u.total);
            sum.progress = Some(u);
        }
        if let Some(dict) = glued.or_else(|| Some(seg.trim()).filter(|t| t.starts_with('{'))) {
            if let Some(d) = parse_dict_line(dict) {
                let set = |slot: &mut Option<f64>, key: &str| {
                    if let Some(v) = d.get(key) {
                        *slot = Some(*v);
                    }
                };
                set(&mut sum.loss, "loss");
                if d.contains_key("loss") {
                    sum.loss_step = sum.progress.as_ref().map(|p| p.step);
                }
                set(&mut sum.learning_rate, "learning_rate");
                set(&mut sum.grad_norm, "grad_norm");
                set(&mut sum.epoch, "epoch");
                set(&mut sum.eval_loss, "eval_loss");
                set(&mut sum.train_runtime, "train_runtime");
                set(&mut sum.train_loss, "train_loss");
                let step = sum.progress.as_ref().map(|p| p.step);
                sum.history
                    .extend(crate::train::trainer_state::HistoryPoint::from_logged(step, |k| {
                        d.get(k).copied()
                    }));
            }
        }
    }
    let Some(p) = sum.progress.clone() else {
        // A Lightning run: tqdm's (or Rich's) smoothed rate of the epoch bar.
        sum.seconds_per_step = sum
            .epoch_bars
            .last
            .as_ref()
            .and_then(|u| u.seconds_per_step)
            .filter(|s| s.is_finite() && *s > 0.0);
        return sum;
    };
    sum.seconds_per_step = p.seconds_per_step;
    sum.eta_seconds = p.remaining_seconds.map(|r| r as f64);
    let unknown = |sum: &mut LogSummary| {
        sum.seconds_per_step = None;
        sum.eta_seconds = None;
    };
    match (first, p.elapsed_seconds) {
        (Some((n0, e0)), Some(e)) if p.step > n0 && e > e0 => {
            let average = (e - e0) as f64 / (p.step - n0) as f64;
            // A jump: at the measured pace, the first n0 steps could not have fit in e0 seconds.
            // It also catches a tail that starts after the jump (its 0 redraw cut off).
            let jumped = n0 as f64 * average > 2.0 * (e0 + 1) as f64;
            if jumped && first_after_zero {
                sum.resumed_at_step = Some(n0);
            }
            if e >= e0 + MIN_AVERAGE_SECONDS {
                // The pace over every update the tail shows: steadier than tqdm's smoothed rate,
                // which swings from one redraw to the next (and stays inflated after a jump).
                sum.seconds_per_step = Some(average);
                sum.eta_seconds = Some(p.total.saturating_sub(p.step) as f64 * average);
            } else if jumped || !tqdm_rate_holds(p.seconds_per_step, average, first_after_zero, n0, first_rate) {
                // Too soon after the jump to measure the pace, and tqdm's figure is inflated
                // by it: unknown for now, rather than a rate thousands of times too fast.
                unknown(&mut sum);
            }
        }
        // Nothing of this bar is measured yet (one update, or all within one second). tqdm's
        // rate is trusted only at the very start of a bar seen from 0: a first update past step
        // 1 may be a resume's jump, whose tqdm rate is the jump itself, and a lone update of a
        // bar whose start is cut off may carry a rate still inflated by one.
        (Some((n0, _)), _) if !first_after_zero || n0 > 1 => unknown(&mut sum),
        _ => {}
    }
    if sum.eta_seconds.is_none() {
        sum.eta_seconds = sum
            .seconds_per_step
            .map(|sps| p.total.saturating_sub(p.step) as f64 * sps);
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::fixtures;
    use proptest::prelude::*;

    fn lines(b: &[u8]) -> Vec<String> {
        String::from_utf8_lossy(b).lines().map(str::to_string).collect()
    }

    #[test]
    fn collapse_keeps_the_final_state_of_each_line_of_the_real_log() {
        let log = fixtures::hf("train.log");
        let out = collapse_cr(&log);
        assert!(!out.contains(&b'\r'));
        let l = lines(&out);
        assert_eq!(
            l[0], "python train.py config/training_config.yaml",
            "make's echo, trailing blanks cut"
        );
        // The 0% bar was never overwritten before the warning was appended to it.
        assert!(
            l[3].starts_with("  0%|          | 0/120 [00:00<?, ?it/s][transformers] `loss_type=None`"),
            "{}",
            l[3]
        );
        // Dozens of redraws end as the bar at the first checkpoint, with the first metrics line of the
        // batch that stdout's buffer let out then glued to it (see split_glued_dict).
        assert!(
            l[4].starts_with(" 33%|███▎      | 40/120 [")
                && l[4].ends_with(
                    "it/s]{'loss': '5.377', 'grad_norm': '0.7347', 'learning_rate': '4.625e-05', 'epoch': '0.01953'}"
                ),
            "{}",
            l[4]
        );
        assert_eq!(
            l[5],
            "{'loss': '5.38', 'grad_norm': '0.7485', 'learning_rate': '4.208e-05', 'epoch': '0.03906'}"
        );
        let bars = l.iter().filter(|x| x.contains("%|")).count();
        assert!(bars < 15, "redraws must collapse, got {bars} bar lines");
        assert!(l.iter().any(|x| x.starts_with("100%|██████████| 120/120 [")));
        assert!(
            l.last().unwrap().starts_with("{'train_runtime': '"),
            "stdout's last batch comes after the bar's last redraw: {}",
            l.last().unwrap()
        );
    }

    #[test]
    fn streaming_in_any_chunking_equals_collapse_of_the_whole() {
        let log = fixtures::hf("train.log");
        let whole = collapse_cr(&log);
        for size in [1, 2, 3, 7, 64, 4096] {
            let mut c = CrCollapser::new();
            let mut out = Vec::new();
            for chunk in log.chunks(size) {
                for line in c.feed(chunk) {
                    out.extend_from_slice(&line);
                    out.push(b'\n');
                }
            }
            if let Some(l) = c.finish() {
                out.extend_from_slice(&l);
            }
            assert_eq!(out, whole, "chunk size {size}");
        }
    }

    #[test]
    fn pending_shows_the_live_bar_and_memory_stays_bounded() {
        let mut c = CrCollapser::new();
        for i in 0..100_000u32 {
            assert!(c.feed(format!("\r {i}/100000 [00:01<00:00]   ").as_bytes()).is_empty());
        }
        assert_eq!(c.pending(), b" 99999/100000 [00:01<00:00]");
        assert!(c.current.capacity() < 4096 && c.shown.capacity() < 4096);
        assert_eq!(c.feed(b"\r   \r"), Vec::<Vec<u8>>::new());
        assert_eq!(
            c.pending(),
            b" 99999/100000 [00:01<00:00]",
            "a clearing segment shows nothing new"
        );
        assert_eq!(c.feed(b"done\r\n"), vec![b"done".to_vec()]);
    }

    #[test]
    fn crlf_blank_lines_and_unterminated_tail() {
        assert_eq!(collapse_cr(b"a\r\n\nb\r\nc"), b"a\n\nb\nc");
        assert_eq!(collapse_cr(b"x\r"), b"x");
        assert_eq!(collapse_cr(b""), b"");
    }

    #[test]
    fn tqdm_line_forms() {
        let u = parse_tqdm("  3%|▎         | 150/4500 [10:02<4:50:43,  4.01s/it]").unwrap();
        assert_eq!(
            u,
            TqdmUpdate {
                step: 150,
                total: 4500,
                percent: Some(3),
                elapsed_seconds: Some(602),
                remaining_seconds: Some(4 * 3600 + 50 * 60 + 43),
                seconds_per_step: Some(4.01),
            }
        );
        let start = parse_tqdm("  0%|          | 0/4500 [00:00<?, ?it/s]").unwrap();
        assert_eq!(
            (start.step, start.remaining_seconds, start.seconds_per_step),
            (0, None, None)
        );
        let fast = parse_tqdm(" 42%|████▏     | 51/120 [00:00<00:00, 93.18it/s] ").unwrap();
        assert!((fast.seconds_per_step.unwrap() - 1.0 / 93.18).abs() < 1e-12);
        let long = parse_tqdm("100%|██████████| 4500/4500 [125:00:00<00:00,  100.00s/it, loss=1.2]").unwrap();
        assert_eq!(long.elapsed_seconds, Some(125 * 3600));
        assert_eq!(long.seconds_per_step, Some(100.0));
        assert_eq!(
            parse_tqdm("Writing model shards: 100%|██████████| 1/1 [00:00<00:00, 370.69it/s]"),
            None
        );
        assert_eq!(parse_tqdm("{'loss': '5.375'}"), None);
        assert_eq!(parse_tqdm("50/4500 [00:00<?, ?it/s]"), None, "a line cut by tail -c");
    }

    #[test]
    fn clocks_and_rates() {
        assert_eq!(parse_clock("00:00"), Some(0));
        assert_eq!(parse_clock("10:02"), Some(602));
        assert_eq!(parse_clock("1:00:00"), Some(3600));
        assert_eq!(parse_clock("101:02:03"), Some(101 * 3600 + 123));
        assert_eq!(parse_clock("?"), None);
        assert_eq!(parse_clock("1:2:3:4"), None);
        assert_eq!(parse_rate("?it/s"), None);
        assert_eq!(parse_rate(" 4.01s/it"), Some(4.01));
        assert_eq!(parse_rate("2.00it/s"), Some(0.5));
        assert_eq!(parse_rate("1.00kit/s"), Some(0.001));
        assert_eq!(parse_rate("0.00it/s"), None);
    }

    #[test]
    fn dict_lines_4x_floats_and_5x_strings() {
        let d4 = parse_dict_line(
            "{'loss': 2.1043, 'grad_norm': 1.3271484375, 'learning_rate': 3.8911111111111117e-05, 'epoch': 0.33}",
        )
        .unwrap();
        assert_eq!(d4["loss"], 2.1043);
        assert_eq!(d4["learning_rate"], 3.8911111111111117e-05);
        let d5 =
            parse_dict_line("{'loss': '2.104', 'grad_norm': '1.327', 'learning_rate': '3.891e-05', 'epoch': '0.3333'}")
                .unwrap();
        assert_eq!(d5["loss"], 2.104);
        assert_eq!(d5["epoch"], 0.3333);
        let odd = parse_dict_line("{'loss': nan, 'note': 'hello, world', 'flag': True, 'n': 3}").unwrap();
        assert!(odd["loss"].is_nan());
        assert_eq!(odd["n"], 3.0);
        assert!(!odd.contains_key("note") && !odd.contains_key("flag"));
        assert_eq!(parse_dict_line("{'a': [1, 2]}"), None);
        assert_eq!(parse_dict_line("{'loss': 1.0"), None);
        assert_eq!(parse_dict_line("{}"), None);
    }

    /// The wall time of the capture's whole bar, from its last redraw `120/120 [MM:SS<00:00, ...]`.
    fn elapsed_of_capture(log: &[u8]) -> f64 {
        let text = String::from_utf8_lossy(log);
        let last = text.rsplit(['\r', '\n']).find(|s| s.contains("120/120 [")).unwrap();
        let clock = last.split('[').nth(1).unwrap().split('<').next().unwrap();
        let (m, s) = clock.split_once(':').unwrap();
        m.parse::<f64>().unwrap() * 60.0 + s.parse::<f64>().unwrap()
    }

    #[test]
    fn real_5x_log_summary() {
        let log = fixtures::hf("train.log");
        let s = summarize_log(&log, false);
        let p = s.progress.clone().unwrap();
        assert_eq!((p.step, p.total), (120, 120));
        // The pace is measured over the run's own updates, so 120 steps at that pace take the
        // bar's wall time, give or take its whole-second clock (and the first update's second).
        let whole_run = s.seconds_per_step.unwrap() * 120.0;
        let wall = elapsed_of_capture(&log);
        assert!(
            (whole_run - wall).abs() <= 2.5,
            "120 steps at the pace take {whole_run} s, the bar says {wall} s"
        );
        assert_eq!(s.eta_seconds, Some(0.0));
        assert_eq!(s.resumed_at_step, None, "a fast first update is not a resume");
        assert_eq!(s.loss, Some(5.376));
        assert_eq!(s.grad_norm, Some(0.8445));
        assert_eq!(s.learning_rate, Some(4.167e-07));
        assert_eq!(s.epoch, Some(0.2344));
        assert!(s.train_runtime.is_some_and(|t| t > 0.0));
        assert_eq!(s.train_loss, Some(5.379));
    }

    /// Regression: under rtrain's wrapper Python's stdout is a pipe, so the Trainer's metrics arrive
    /// in batches, the first of each glued to the bar's redraw (`... 80/120 [...]{'loss': ...}`);
    /// that dict was dropped with the bar, and `status` showed the loss of 40 steps before.
    #[test]
    fn a_metrics_line_glued_to_the_bar_by_stdout_buffering_is_read() {
        let log = fixtures::hf("train.log");
        let glued = log.windows(7).position(|w| w == b"80/120 ").unwrap();
        let end = glued + log[glued..].iter().position(|b| *b == b'\n').unwrap();
        let s = summarize_log(&log[..end + 1], false);
        assert_eq!(s.progress.unwrap().step, 80);
        assert_eq!(
            (s.loss, s.grad_norm, s.learning_rate, s.epoch),
            (Some(5.38), Some(0.8203), Some(2.958e-05), Some(0.09766))
        );
        // The first batch: its only line before the cut is the glued one.
        let first = log.windows(7).position(|w| w == b"40/120 ").unwrap();
        let end = first + log[first..].iter().position(|b| *b == b'\n').unwrap();
        assert_eq!(summarize_log(&log[..end + 1], false).loss, Some(5.377));
        assert_eq!(
            split_glued_dict(" 5%| 5/100 [00:10<03:10,  2.00s/it]{'loss': '2.1'}"),
            (" 5%| 5/100 [00:10<03:10,  2.00s/it]", Some("{'loss': '2.1'}"))
        );
        assert_eq!(split_glued_dict("{'loss': '2.1'}"), ("{'loss': '2.1'}", None));
        assert_eq!(split_glued_dict("note {'cut"), ("note {'cut", None));
    }

    #[test]
    fn the_loss_step_is_the_bar_step_the_dict_line_follows() {
        let log = b"\r  5%|\xe2\x96\x8c         | 20/400 [00:01<00:19, 19.5it/s]\r   \r{'loss': '2.104', 'epoch': '0.04'}\n\r  5%|\xe2\x96\x8c         | 21/400 [00:01<00:19, 19.5it/s]";
        let s = summarize_log(log, false);
        assert_eq!((s.loss, s.loss_step), (Some(2.104), Some(20)));
        assert_eq!(s.progress.unwrap().step, 21);
        assert_eq!(summarize_log(b"{'grad_norm': '1.0'}\n", false).loss_step, None);
    }

    #[test]
    fn nested_writing_model_shards_bar_is_ignored() {
        let log = fixtures::hf("train.log");
        let nested = log.windows(14).position(|w| w == b"Writing model ").unwrap();
        // Cut right after the line of the first nested bar, which ends with its 100% redraw.
        let nl = nested + log[nested..].iter().position(|b| *b == b'\n').unwrap();
        assert!(log[nested..nl].ends_with(b"it/s]"), "the cut ends on the nested bar");
        let p = summarize_log(&log[..nl + 1], false).progress.unwrap();
        assert_eq!((p.step, p.total), (40, 120));
    }

    #[test]
    fn transformers_4x_log_with_s_per_it_hours_and_eval_bar() {
        let log = fixtures::own("hf-transformers-4.x/train.log");
        let s = summarize_log(&log, false);
        let p = s.progress.clone().unwrap();
        assert_eq!((p.step, p.total), (1520, 4500));
        assert_eq!(p.elapsed_seconds, Some(3600 + 41 * 60 + 20));
        assert_eq!(p.remaining_seconds, Some(3 * 3600 + 18 * 60 + 40));
        assert_eq!(s.seconds_per_step, Some(4.0));
        assert_eq!(s.eta_seconds, Some((3 * 3600 + 18 * 60 + 40) as f64));
        assert_eq!(s.loss, Some(1.9114));
        assert_eq!(s.eval_loss, Some(1.9821));
        assert_eq!(s.epoch, Some(1.01));
        assert_eq!(s.resumed_at_step, None);
    }

    #[test]
    fn resume_jump_measures_the_rate_after_it() {
        let log = fixtures::own("hf-transformers-4.x/resume.log");
        let s = summarize_log(&log, false);
        let p = s.progress.clone().unwrap();
        assert_eq!(p.step, 1560);
        // tqdm still claims a fast rate; the steps after the jump took 4 s each.
        assert!(p.seconds_per_step.unwrap() < 1.0);
        assert_eq!(s.resumed_at_step, Some(1501));
        assert_eq!(s.seconds_per_step, Some(4.0));
        assert_eq!(s.eta_seconds, Some((4500 - 1560) as f64 * 4.0));
    }

    /// Regression: right after a resume, status showed "74205 steps/s, ETA 0 s" and check
    /// suggested save_steps of millions, from tqdm's rate inflated by the jump.
    #[test]
    fn regression_rate_is_unknown_until_measurable_after_a_resume_jump() {
        let log = fixtures::own("hf-transformers-4.x/resume.log");
        let text = String::from_utf8_lossy(&log);
        // Up to and including the third update after the jump (1503 at 00:10).
        let cut = text.find("1503/4500").unwrap();
        let end = cut + text[cut..].find(['\r', '\n']).unwrap();
        let s = summarize_log(&log[..end], false);
        assert_eq!(s.progress.as_ref().unwrap().step, 1503);
        assert!(
            s.progress.as_ref().unwrap().seconds_per_step.unwrap() < 0.01,
            "tqdm's own figure is inflated"
        );
        assert_eq!(s.resumed_at_step, Some(1501));
        assert_eq!(s.seconds_per_step, None);
        assert_eq!(s.eta_seconds, None);
    }

    #[test]
    fn tail_cut_mid_line_skips_the_fragment() {
        let log = b"rate 50/4500 [00:00<?, ?it/s]\r  1%|          | 60/4500 [04:00<4:56:00,  4.00s/it]";
        let s = summarize_log(&log[4..], true);
        assert_eq!(s.progress.unwrap().step, 60);
        assert_eq!(summarize_log(b"", true), LogSummary::default());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn collapse_never_panics_and_never_keeps_cr(bytes in proptest::collection::vec(any::<u8>(), 0..400), cut in 0usize..400) {
            let out = collapse_cr(&bytes);
            prop_assert!(!out.contains(&b'\r'));
            let cut = cut.min(bytes.len());
            let mut c = CrCollapser::new();
            let mut streamed = Vec::new();
            for part in [&bytes[..cut], &bytes[cut..]] {
                for l in c.feed(part) { streamed.extend_from_slice(&l); streamed.push(b'\n'); }
            }
            if let Some(l) = c.finish() { streamed.extend_from_slice(&l); }
            prop_assert_eq!(streamed, out);
            let _ = summarize_log(&bytes, true);
        }
    }
}

/// The pace after a resume and its steadiness (issue 10): tests apart from the fixture tests above.
#[cfg(test)]
pub(crate) mod pace_tests {
    use super::*;

    pub(crate) fn resume_log() -> String {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/hf-transformers-4.x/resume.log"
        );
        std::fs::read_to_string(path).unwrap()
    }

    /// The log up to the end of the bar redraw that shows `needle`.
    pub(crate) fn up_to(text: &str, needle: &str) -> String {
        let at = text.find(needle).unwrap();
        let end = at + text[at..].find(['\r', '\n']).unwrap();
        text[..end].to_string()
    }

    /// Regression: the first `status` right after `resume` showed `3842110.53 steps/s  ETA 0 s`:
    /// the only update since the jump carries tqdm's rate of the jump itself.
    #[test]
    fn regression_one_update_after_a_resume_jump_gives_no_rate() {
        let log = up_to(&resume_log(), "1501/4500");
        let s = summarize_log(log.as_bytes(), false);
        let bar = s.progress.as_ref().unwrap();
        assert_eq!(bar.step, 1501);
        assert!(bar.seconds_per_step.unwrap() < 0.01, "tqdm claims {bar:?}");
        assert_eq!((s.seconds_per_step, s.eta_seconds), (None, None));
    }

    /// A 64 KiB tail can start after the jump: its 0 redraw and the jump are cut off, yet tqdm's
    /// rate is still inflated by them. The pace comes from this run's own steps in view.
    #[test]
    fn a_tail_starting_after_the_jump_is_measured_on_the_steps_it_shows() {
        let text = resume_log();
        let from = text.find("1505/4500").unwrap();
        let tail = &text[from..];
        let s = summarize_log(tail.as_bytes(), true);
        let bar = s.progress.as_ref().unwrap();
        assert_eq!(bar.step, 1560);
        assert!(bar.seconds_per_step.unwrap() < 1.0, "tqdm still claims {bar:?}");
        assert_eq!(s.seconds_per_step, Some(4.0));
        assert_eq!(s.eta_seconds, Some((4500 - 1560) as f64 * 4.0));
        assert_eq!(s.resumed_at_step, None, "where it jumped from is not in view");

        // Only 8 s of it in view: too little to measure, and tqdm's figure is the jump's.
        let short = up_to(tail, "1507/4500");
        let s = summarize_log(short.as_bytes(), true);
        assert_eq!(s.progress.as_ref().unwrap().step, 1507);
        assert_eq!((s.seconds_per_step, s.eta_seconds), (None, None));
    }

    /// Whatever part of a resumed run's log the 64 KiB tail holds, the pace is the run's real
    /// one (4 s per step after the jump) or unknown: never tqdm's inflated figure.
    #[test]
    fn no_part_of_a_resumed_log_gives_an_inflated_pace() {
        let text = resume_log();
        let log = text.as_bytes();
        let cuts: Vec<usize> = (0..log.len()).filter(|&i| log[i] == b'\r' || log[i] == b'\n').collect();
        let mut measured = 0;
        for (i, &start) in std::iter::once(&0).chain(&cuts).enumerate() {
            for &end in cuts.iter().filter(|&&e| e > start).chain([log.len()].iter()) {
                let s = summarize_log(&log[start..end], i > 0);
                let Some(bar) = &s.progress else { continue };
                if let Some(sps) = s.seconds_per_step {
                    measured += 1;
                    assert!((3.5..=4.5).contains(&sps), "{sps} s/step for bytes {start}..{end}");
                    let eta = s.eta_seconds.unwrap();
                    assert!(
                        eta >= (4500 - bar.step) as f64 * 3.5,
                        "ETA {eta} for bytes {start}..{end}"
                    );
                } else {
                    assert_eq!(s.eta_seconds, None, "bytes {start}..{end}");
                }
            }
        }
        assert!(measured > 100, "the pace is measured in most windows ({measured})");
    }

    /// Regression: a resume from step 40 of a 20 it/s run: the jump (40 steps "in" a millisecond)
    /// is too small to prove from whole seconds, and tqdm's smoothed rate, inflated by the jump,
    /// was still 58.88 it/s after 30 steps (seen with the stand-in trainer), shown as the pace.
    #[test]
    fn regression_a_small_jump_inflates_no_pace() {
        let mut log = String::from("  0%|          | 0/400 [00:00<?, ?it/s]");
        let mut rate = 1_000_000.0f64;
        log += &format!("\r 10%|█         | 40/400 [00:00<00:00, {rate:.2}it/s]");
        for n in 41..=70u64 {
            rate = 0.3 * 20.0 + 0.7 * rate;
            let e = (n - 40) / 20;
            log += &format!("\r 15%|█▌        | {n}/400 [00:{e:02}<00:18, {rate:.2}it/s]");
        }
        let s = summarize_log(log.as_bytes(), false);
        assert_eq!(s.progress.as_ref().unwrap().step, 70);
        assert!(
            1.0 / s.progress.as_ref().unwrap().seconds_per_step.unwrap() > 30.0,
            "tqdm still claims more"
        );
        assert_eq!((s.seconds_per_step, s.eta_seconds), (None, None));
    }

    /// A bar redrawn every step at 0.3 s/step whose tqdm rate swings between redraws.
    pub(crate) fn swinging_log(steps: u64) -> String {
        let mut log = String::from("  0%|          | 0/600 [00:00<?, ?it/s]");
        for n in 1..=steps {
            let e = (n as f64 * 0.3) as u64;
            let rate = if n % 2 == 0 { "5.80it/s" } else { "3.10it/s" };
            log += &format!("\r  1%|          | {n}/600 [{:02}:{:02}<01:00, {rate}]", e / 60, e % 60);
        }
        log
    }

    /// `status` and `check` a few seconds apart reported 0.31 and 0.17 s/step on the same run:
    /// tqdm's smoothed rate of the last redraw. The measured pace barely moves between redraws.
    #[test]
    fn the_pace_is_steady_where_tqdms_rate_swings() {
        let a = summarize_log(swinging_log(199).as_bytes(), false);
        let b = summarize_log(swinging_log(200).as_bytes(), false);
        let (ta, tb) = (
            a.progress.unwrap().seconds_per_step.unwrap(),
            b.progress.unwrap().seconds_per_step.unwrap(),
        );
        assert!(ta / tb > 1.8, "tqdm's own figures swing: {ta} vs {tb}");
        let (pa, pb) = (a.seconds_per_step.unwrap(), b.seconds_per_step.unwrap());
        assert!((pa - 0.3).abs() < 0.01 && (pb - 0.3).abs() < 0.01, "{pa} {pb}");
        assert!((pa - pb).abs() < 0.005, "{pa} vs {pb}");
    }
}
