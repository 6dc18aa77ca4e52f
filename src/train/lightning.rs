//! PyTorch Lightning's own output: its per-epoch progress bars (TQDM's `Epoch 3: 45%|…| 40/88 […]`, or Rich's
//! `Epoch 3/9 ━━━━ 40/88 0:00:01 • 0:00:02 30.10it/s train_loss: 0.043`) count steps within an epoch, not the
//! global step, and its default CSVLogger writes the loss to `lightning_logs/version_N/metrics.csv`. This turns
//! both into what `status` shows: a global step where the epoch length is known, and the loss with its real step.

use crate::train::progress::{parse_clock, parse_rate, parse_tqdm, TqdmUpdate};

/// One redraw of a Lightning epoch bar.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochUpdate {
    pub epoch: u64,
    /// Steps done within this epoch, and the bar's total for it (the last epoch of a `max_steps` run is
    /// shorter: its bar counts only the steps left).
    pub step_in_epoch: u64,
    pub epoch_total: Option<u64>,
    pub elapsed_seconds: Option<u64>,
    pub seconds_per_step: Option<f64>,
    /// The last `train_loss`-like metric the bar shows (`train_loss=0.043`, `loss: 0.043`).
    pub loss: Option<f64>,
}

/// The metric names that mean "the training loss", best first (issue 19): `train_loss`, `loss`, `train/loss`,
/// then anything ending in `_loss_step` (`self.log(..., on_step=True, on_epoch=True)`).
pub fn is_train_loss(name: &str) -> bool {
    matches!(name, "train_loss" | "loss" | "train/loss" | "train_loss_step") || name.ends_with("_loss_step")
}

/// Lightning's TQDM bar: `Epoch 3:  45%|████▌     | 40/88 [00:01<00:02, 30.10it/s, v_num=0, train_loss=0.043]`.
pub fn parse_tqdm_epoch(segment: &str) -> Option<EpochUpdate> {
    let rest = segment.trim_start().strip_prefix("Epoch ")?;
    let (epoch, rest) = rest.split_once(':')?;
    let epoch: u64 = epoch.trim().parse().ok()?;
    let bar: TqdmUpdate = parse_tqdm(rest)?;
    let inner = &rest[rest.rfind('[')? + 1..];
    let inner = inner.strip_suffix(']').unwrap_or(inner);
    let loss = inner
        .split(", ")
        .skip(2)
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| is_train_loss(k.trim()))
        .and_then(|(_, v)| v.trim().parse().ok());
    Some(EpochUpdate {
        epoch,
        step_in_epoch: bar.step,
        epoch_total: Some(bar.total),
        elapsed_seconds: bar.elapsed_seconds,
        seconds_per_step: bar.seconds_per_step,
        loss,
    })
}

/// Drops ANSI escape sequences (CSI `ESC [ … final`, OSC `ESC ] … BEL`, two-byte `ESC x`): what Rich's live
/// display puts around each redraw on a terminal.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('[') => {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            Some(']') => {
                while let Some(c) = chars.next() {
                    if c == '\x07' || (c == '\x1b' && chars.next_if_eq(&'\\').is_some()) {
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// Lightning's Rich bar (RichProgressBar), its escapes stripped: `Epoch 2/9  ━━━━━━╸━━━ 40/88 0:00:01 • 0:00:02
/// 30.10it/s v_num: 0 train_loss: 0.043` (`Epoch 2/-2` when max_epochs is unlimited).
pub fn parse_rich_epoch(line: &str) -> Option<EpochUpdate> {
    let rest = line.trim().strip_prefix("Epoch ")?;
    let mut words = rest.split_whitespace();
    let epoch: u64 = words.next()?.split('/').next()?.parse().ok()?;
    // The bar itself: one word of box-drawing characters (absent when the terminal is very narrow).
    let mut w = words.next()?;
    if !w.contains('/') {
        w = words.next()?;
    }
    let (n, total) = w.split_once('/')?;
    let step_in_epoch: u64 = n.parse().ok()?;
    let epoch_total = total.parse().ok();
    let elapsed = words.next().and_then(parse_clock);
    let mut loss = None;
    let mut seconds_per_step = None;
    let mut words = words.peekable();
    while let Some(w) = words.next() {
        if w == "•" {
            continue;
        }
        if let Some(key) = w.strip_suffix(':') {
            if let Some(v) = words.next() {
                if loss.is_none() && is_train_loss(key) {
                    loss = v.parse().ok();
                }
            }
        } else if w.ends_with("it/s") || w.ends_with("s/it") {
            seconds_per_step = parse_rate(w);
        }
    }
    Some(EpochUpdate {
        epoch,
        step_in_epoch,
        epoch_total,
        elapsed_seconds: elapsed,
        seconds_per_step,
        loss,
    })
}

/// What the epoch bars of a log tail say together.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EpochBars {
    pub last: Option<EpochUpdate>,
    /// The steps of one whole epoch: the total of an earlier epoch's bar in view, else the current bar's total
    /// (the last epoch of a `max_steps` run is shorter, so an earlier one is preferred).
    pub epoch_length: Option<u64>,
    /// The last loss any bar showed.
    pub loss: Option<f64>,
}

impl EpochBars {
    pub fn push(&mut self, u: EpochUpdate) {
        if let Some(prev) = &self.last {
            if prev.epoch < u.epoch && prev.epoch_total.is_some() {
                self.epoch_length = self.epoch_length.max(prev.epoch_total);
            }
        }
        if u.loss.is_some() {
            self.loss = u.loss;
        }
        self.last = Some(u);
    }

    /// `epoch × epoch length + steps in this epoch`, when the epoch length is known.
    pub fn global_step(&self) -> Option<u64> {
        let u = self.last.as_ref()?;
        let len = self.epoch_length.or(u.epoch_total)?;
        u.epoch.checked_mul(len)?.checked_add(u.step_in_epoch)
    }
}

/// The newest loss a `metrics.csv` holds, and its step.
#[derive(Debug, Clone, PartialEq)]
pub struct CsvLoss {
    pub column: String,
    pub loss: f64,
    pub step: Option<u64>,
    pub epoch: Option<f64>,
}

/// Reads Lightning's CSVLogger file from its header line and a tail of it (the probe sends the first line and the
/// last few KiB; `tail_starts_mid_line` drops the tail's first, cut, line). The loss column is the first of
/// [`is_train_loss`]'s names in the header's order of preference; the value is from the last row that has one
/// (rows of validation metrics leave it empty).
pub fn parse_metrics_csv(header: &[u8], tail: &[u8], tail_starts_mid_line: bool) -> Option<CsvLoss> {
    let header = String::from_utf8_lossy(header);
    let cols: Vec<&str> = header.lines().next()?.split(',').map(str::trim).collect();
    let preference = ["train_loss", "loss", "train/loss", "train_loss_step"];
    let loss_col = preference
        .iter()
        .find_map(|p| cols.iter().position(|c| c == p))
        .or_else(|| cols.iter().position(|c| is_train_loss(c)))?;
    let step_col = cols.iter().position(|c| *c == "step");
    let epoch_col = cols.iter().position(|c| *c == "epoch");
    let tail = String::from_utf8_lossy(tail);
    let mut lines = tail.lines();
    if tail_starts_mid_line {
        lines.next();
    }
    let mut found = None;
    for line in lines {
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != cols.len() {
            continue;
        }
        let Some(loss) = fields[loss_col].trim().parse::<f64>().ok() else {
            continue;
        };
        found = Some(CsvLoss {
            column: cols[loss_col].to_string(),
            loss,
            step: step_col.and_then(|i| fields[i].trim().parse().ok()),
            epoch: epoch_col.and_then(|i| fields[i].trim().parse().ok()),
        });
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::checkpoints::{newest_complete, recognise, Entry, EntryKind};
    use crate::train::fixtures;
    use crate::train::progress::summarize_log;

    /// The real Lightning 2.x capture (scripts/capture-lightning-fixtures.sh): 300 steps of 88 per epoch, so the
    /// bars read `Epoch 0..2: n/88` and `Epoch 3: n/36`.
    fn lt(file: &str) -> Vec<u8> {
        fixtures::own(&format!("lightning/{file}"))
    }

    #[test]
    fn real_tqdm_log_gives_the_global_step_rate_and_bar_loss() {
        let log = lt("tqdm-csv/train.log");
        let s = summarize_log(&log, false);
        assert_eq!(s.progress, None, "Lightning's bars are not the Trainer's");
        let last = s.epoch_bars.last.clone().unwrap();
        assert_eq!((last.epoch, last.step_in_epoch, last.epoch_total), (3, 36, Some(36)));
        assert_eq!(s.epoch_bars.epoch_length, Some(88));
        assert_eq!(s.epoch_bars.global_step(), Some(300));
        assert!(s.seconds_per_step.is_some_and(|x| x > 0.0 && x < 1.0), "{s:?}");
        assert!(s.epoch_bars.loss.is_some_and(|l| l > 0.0 && l < 1.0), "{s:?}");

        // Mid-run, in the third epoch: 2 × 88 + 40.
        let text = String::from_utf8_lossy(&log);
        let at = text.find("Epoch 2:  45%").unwrap();
        let end = at + text[at..].find(['\r', '\n']).unwrap();
        let s = summarize_log(&text.as_bytes()[..end], false);
        assert_eq!(s.epoch_bars.global_step(), Some(2 * 88 + 40));
        // The same from a 64 KiB tail that starts mid-run, with only the third epoch's bar in view: its own total
        // is the epoch length.
        let from = at.saturating_sub(20_000);
        let s = summarize_log(&text.as_bytes()[from..end], true);
        assert_eq!(s.epoch_bars.global_step(), Some(2 * 88 + 40));
    }

    #[test]
    fn real_metrics_csv_last_train_loss_and_step() {
        let csv = lt("tqdm-csv/metrics.csv");
        let header = &csv[..csv.iter().position(|b| *b == b'\n').unwrap() + 1];
        let whole = parse_metrics_csv(header, &csv, false).unwrap();
        assert_eq!(
            (whole.column.as_str(), whole.step, whole.epoch),
            ("train_loss", Some(299), Some(3.0))
        );
        let last_line = String::from_utf8_lossy(&csv).lines().last().unwrap().to_string();
        assert_eq!(
            whole.loss,
            last_line.rsplit(',').next().unwrap().parse::<f64>().unwrap()
        );
        // A tail cut anywhere gives the same last row.
        // The last cut: at the newline before the last row, so the dropped fragment is empty. (Python's csv module
        // ends rows with \r\n.)
        assert!(csv.ends_with(b"\r\n"));
        let before_last = csv[..csv.len() - 1].iter().rposition(|b| *b == b'\n').unwrap();
        for cut in [1, 17, csv.len() / 2, before_last] {
            assert_eq!(
                parse_metrics_csv(header, &csv[cut..], true).as_ref(),
                Some(&whole),
                "cut at {cut}"
            );
        }
    }

    /// `name size mtime` lines as the capture listed version_0/checkpoints.
    fn listing(text: &[u8]) -> Vec<Entry> {
        String::from_utf8_lossy(text)
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                let mut e = Entry::new(f[0], EntryKind::File);
                e.bytes = f[1].parse().ok();
                e.mtime = f[2].parse().ok();
                e
            })
            .collect()
    }

    #[test]
    fn real_checkpoints_give_last_ckpt_the_step_saved_with_it() {
        let ckpts = recognise(&listing(&lt("tqdm-csv/checkpoints.txt")));
        let got: Vec<(&str, Option<u64>)> = ckpts.iter().map(|c| (c.name.as_str(), c.step)).collect();
        assert_eq!(
            got,
            [
                ("epoch=1-step=100.ckpt", Some(100)),
                ("epoch=2-step=200.ckpt", Some(200)),
                ("epoch=3-step=300.ckpt", Some(300)),
                ("last.ckpt", Some(300)),
            ]
        );
        assert_eq!(newest_complete(&ckpts).unwrap().name, "epoch=3-step=300.ckpt");
    }

    #[test]
    fn real_rich_bar_on_a_terminal_gives_the_global_step_and_the_wrapped_loss() {
        let log = lt("rich-tty/typescript");
        let s = summarize_log(&log, false);
        let last = s.epoch_bars.last.clone().unwrap();
        assert_eq!((last.epoch, last.step_in_epoch), (2, 24));
        assert_eq!(s.epoch_bars.global_step(), Some(2 * 88 + 24));
        assert!(s.epoch_bars.loss.is_some_and(|l| l > 0.0 && l < 1.0), "{s:?}");
        assert!(s.seconds_per_step.is_some_and(|x| x > 0.0), "{s:?}");
    }

    #[test]
    fn real_plain_tqdm_loop_still_parses() {
        let s = summarize_log(&lt("plain-tqdm/train.log"), false);
        let p = s.progress.unwrap();
        assert_eq!((p.step, p.total), (200, 200));
        assert_eq!(s.epoch_bars, EpochBars::default());
    }

    #[test]
    fn tqdm_epoch_bar_with_metrics_after_the_rate() {
        let u = parse_tqdm_epoch("Epoch 3:  45%|████▌     | 40/88 [00:01<00:02, 30.10it/s, v_num=0, train_loss=0.043]")
            .unwrap();
        assert_eq!((u.epoch, u.step_in_epoch, u.epoch_total), (3, 40, Some(88)));
        assert_eq!(u.loss, Some(0.043));
        assert!((u.seconds_per_step.unwrap() - 1.0 / 30.1).abs() < 1e-9);
        assert_eq!(u.elapsed_seconds, Some(1));
        assert_eq!(
            parse_tqdm_epoch("Epoch 0:   0%|          | 0/88 [00:00<?, ?it/s]")
                .unwrap()
                .loss,
            None
        );
        assert_eq!(parse_tqdm_epoch("Training: |          | 0/? [00:00<?, ?it/s]"), None);
        assert_eq!(
            parse_tqdm_epoch("Validation DataLoader 0:  50%|█| 1/2 [00:00<00:00]"),
            None
        );
        assert_eq!(parse_tqdm_epoch("Epoch x:  5%|▌| 4/88 [00:00<00:05, 15.5it/s]"), None);
    }

    #[test]
    fn rich_epoch_bar() {
        let u = parse_rich_epoch(
            "Epoch 2/-2  ━━━━━━━━━━━━━━━━ 88/88 0:00:01 • 0:00:00 66.73it/s v_num: 0 train_loss: 0.043",
        )
        .unwrap();
        assert_eq!((u.epoch, u.step_in_epoch, u.epoch_total), (2, 88, Some(88)));
        assert_eq!(u.loss, Some(0.043));
        assert!((u.seconds_per_step.unwrap() - 1.0 / 66.73).abs() < 1e-9);
        assert_eq!(parse_rich_epoch("Epoch of doom"), None);
    }

    #[test]
    fn ansi_escapes_are_stripped() {
        assert_eq!(strip_ansi("\x1b[2K\x1b[1A\x1b[32mEpoch\x1b[0m 1"), "Epoch 1");
        assert_eq!(strip_ansi("a\x1b]8;id=1;http://x\x1b\\b\x1b]0;t\x07c"), "abc");
        assert_eq!(strip_ansi("cut\x1b["), "cut");
    }

    #[test]
    fn global_step_from_the_epoch_length_of_an_earlier_bar() {
        let mut bars = EpochBars::default();
        let up = |epoch, n, total| EpochUpdate {
            epoch,
            step_in_epoch: n,
            epoch_total: Some(total),
            elapsed_seconds: None,
            seconds_per_step: None,
            loss: None,
        };
        bars.push(up(2, 87, 88));
        assert_eq!(
            bars.global_step(),
            Some(2 * 88 + 87),
            "one epoch in view: its own total"
        );
        bars.push(up(2, 88, 88));
        // The last epoch of a max_steps run counts only the steps left.
        bars.push(up(3, 10, 36));
        assert_eq!(bars.global_step(), Some(3 * 88 + 10));
        assert_eq!(EpochBars::default().global_step(), None);
    }

    #[test]
    fn metrics_csv_last_loss_and_its_step() {
        let header = b"epoch,step,train_loss,val_loss\n";
        let tail = b"0,9,0.5,\n0,19,0.25,\n0,19,,0.3\n1,29,0.125,\n1,39,,";
        let got = parse_metrics_csv(header, tail, false).unwrap();
        assert_eq!(
            (got.column.as_str(), got.loss, got.step),
            ("train_loss", 0.125, Some(29))
        );
        assert_eq!(got.epoch, Some(1.0));
        // A cut first line is dropped, a header without a loss gives nothing.
        assert_eq!(
            parse_metrics_csv(header, b"5,0.9,\n1,49,0.1,\n", true).unwrap().step,
            Some(49)
        );
        assert_eq!(parse_metrics_csv(b"epoch,step,acc\n", b"0,1,0.5\n", false), None);
        let odd = parse_metrics_csv(b"epoch,my_loss_step,step\n", b"0,0.7,12\n", false).unwrap();
        assert_eq!(
            (odd.column.as_str(), odd.loss, odd.step),
            ("my_loss_step", 0.7, Some(12))
        );
        let pref = parse_metrics_csv(b"loss,train_loss,step\n", b"1.0,2.0,3\n", false).unwrap();
        assert_eq!(pref.column, "train_loss");
    }
}
