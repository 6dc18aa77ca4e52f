//! Recognises checkpoints of the trainers people actually run (Hugging Face, Lightning, DeepSpeed,
//! Accelerate) in a directory listing, decides which are complete, and orders them by step as an
//! integer, so `resume` never picks a half-written or text-sorted "latest".

use serde::Serialize;

/// The layout a checkpoint was recognised as; it decides how completeness is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// `checkpoint-N/`: complete once `trainer_state.json` exists (the Trainer writes it last).
    HuggingFace,
    /// `tmp-checkpoint-N/`: left over by transformers 4.36–4.38 when a save did not finish.
    HuggingFaceTmp,
    /// `*.ckpt` files, `epoch=E-step=S.ckpt` (`-v1` on clashes) and `last.ckpt`.
    Lightning,
    /// `global_stepN/` next to a `latest` file naming the last finished tag.
    DeepSpeed,
    /// `checkpoints/checkpoint_N/`, where N counts saves, not steps.
    Accelerate,
}

/// What the probe reported about one file system entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    File,
    Other,
}

/// One entry found under the checkpoint directory, as reported by the remote probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path relative to the checkpoint directory, raw bytes (names need not be UTF-8).
    pub rel_path: Vec<u8>,
    /// Kind after following a symlink.
    pub kind: EntryKind,
    pub symlink: bool,
    /// Disk usage in bytes (`du -sk` × 1024); for a symlink, that of its target.
    pub bytes: Option<u64>,
    /// Modification time, seconds since the epoch (remote clock).
    pub mtime: Option<i64>,
    /// A directory holding `trainer_state.json`.
    pub has_trainer_state: bool,
    /// A directory holding `random_states_0.pkl` (written by Accelerate after model and optimizer).
    pub has_random_states: bool,
    /// Content of a file named `latest` (DeepSpeed's tag), capped by the probe.
    pub content: Option<Vec<u8>>,
}

impl Entry {
    pub fn new(rel_path: impl Into<Vec<u8>>, kind: EntryKind) -> Entry {
        Entry {
            rel_path: rel_path.into(),
            kind,
            symlink: false,
            bytes: None,
            mtime: None,
            has_trainer_state: false,
            has_random_states: false,
            content: None,
        }
    }

    /// The last path component.
    pub fn name(&self) -> &[u8] {
        split_parent(&self.rel_path).1
    }

    /// The directory part of `rel_path` (empty for entries directly in the checkpoint directory).
    pub fn parent(&self) -> &[u8] {
        split_parent(&self.rel_path).0
    }
}

fn split_parent(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|b| *b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (&[], path),
    }
}

/// A recognised checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// The name for display (lossy when the name is not UTF-8).
    pub name: String,
    /// The exact path relative to the checkpoint directory, for building commands.
    pub rel_path: Vec<u8>,
    pub layout: Layout,
    /// Training step, when the name carries one (not Accelerate), or for Lightning's `last.ckpt` the step of
    /// the step-named checkpoint saved with it (see [`recognise`]).
    pub step: Option<u64>,
    /// `step` was not in this checkpoint's own name but taken from the step-named checkpoint saved at the same
    /// moment (`last.ckpt`): a named checkpoint of the same step is preferred as `latest`.
    pub step_inferred: bool,
    /// Accelerate's save counter, which is not a step.
    pub save_index: Option<u64>,
    pub bytes: Option<u64>,
    pub mtime: Option<i64>,
    pub symlink: bool,
    pub complete: bool,
    /// The newest complete checkpoint: the one `resume` picks.
    pub latest: bool,
}

impl Checkpoint {
    /// The integer the listing is ordered by: the step, or Accelerate's save counter.
    pub fn ordinal(&self) -> Option<u64> {
        self.step.or(self.save_index)
    }
}

/// Digits only, as an integer: `checkpoint-0100` is step 100, `checkpoint-1e3` is nothing.
fn number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// What a name means on its own: its layout and the step (or save counter) it carries.
/// `None` for anything that is not a checkpoint (logs, `runs/`, `checkpoint-7 copy`, ...).
pub fn classify(name: &str, kind: EntryKind) -> Option<(Layout, Option<u64>)> {
    match kind {
        EntryKind::Dir => {
            if let Some(n) = name.strip_prefix("checkpoint-").and_then(number) {
                Some((Layout::HuggingFace, Some(n)))
            } else if let Some(n) = name.strip_prefix("tmp-checkpoint-").and_then(number) {
                Some((Layout::HuggingFaceTmp, Some(n)))
            } else if let Some(n) = name.strip_prefix("global_step").and_then(number) {
                Some((Layout::DeepSpeed, Some(n)))
            } else {
                name.strip_prefix("checkpoint_")
                    .and_then(number)
                    .map(|n| (Layout::Accelerate, Some(n)))
            }
        }
        EntryKind::File => {
            let stem = name.strip_suffix(".ckpt")?;
            if is_lightning_last(stem) {
                return Some((Layout::Lightning, None));
            }
            // Lightning's filename template is free-form; its default and every useful custom one
            // carry `step=S` (`epoch=3-step=1500-v1`, `run a step=20 loss=0.1`).
            let at = stem.find("step=")?;
            let digits: String = stem[at + 5..].chars().take_while(|c| c.is_ascii_digit()).collect();
            number(&digits).map(|n| (Layout::Lightning, Some(n)))
        }
        EntryKind::Other => None,
    }
}

/// `last`, `last-v1`, `last-v2`, ...
fn is_lightning_last(stem: &str) -> bool {
    match stem.strip_prefix("last") {
        Some("") => true,
        Some(rest) => rest.strip_prefix("-v").and_then(number).is_some(),
        None => false,
    }
}

/// The `N` of Lightning's clash suffix `-vN.ckpt` (0 without one).
fn lightning_version(name: &str) -> u64 {
    name.strip_suffix(".ckpt")
        .and_then(|stem| stem.rsplit_once("-v"))
        .and_then(|(_, v)| number(v))
        .unwrap_or(0)
}

/// The step named by a DeepSpeed `latest` tag (`global_step1500`), when it names one.
fn deepspeed_tag_step(content: &[u8]) -> Option<u64> {
    let tag = std::str::from_utf8(content).ok()?.trim();
    tag.strip_prefix("global_step").and_then(number)
}

/// Turns a probe listing into checkpoints, ascending by integer step, with completeness and the
/// `latest` flag decided. Entries that are not checkpoints are dropped.
pub fn recognise(entries: &[Entry]) -> Vec<Checkpoint> {
    let mut out = Vec::new();
    for e in entries {
        let name = String::from_utf8_lossy(e.name()).into_owned();
        let Some((layout, n)) = classify(&name, e.kind) else {
            continue;
        };
        let complete = match layout {
            Layout::HuggingFace => e.has_trainer_state,
            Layout::HuggingFaceTmp => false,
            // A .ckpt is written in one go from a memory buffer; only an empty one is clearly broken.
            Layout::Lightning => e.bytes != Some(0),
            // DeepSpeed updates `latest` after a save has finished, so every tag up to it is whole.
            Layout::DeepSpeed => {
                let latest = entries
                    .iter()
                    .find(|o| o.parent() == e.parent() && o.name() == b"latest" && o.kind == EntryKind::File)
                    .and_then(|o| o.content.as_deref())
                    .and_then(deepspeed_tag_step);
                matches!((latest, n), (Some(l), Some(s)) if s <= l)
            }
            Layout::Accelerate => e.has_random_states,
        };
        let (step, save_index) = if layout == Layout::Accelerate {
            (None, n)
        } else {
            (n, None)
        };
        out.push(Checkpoint {
            name,
            rel_path: e.rel_path.clone(),
            layout,
            step,
            save_index,
            bytes: e.bytes,
            mtime: e.mtime,
            symlink: e.symlink,
            complete,
            step_inferred: false,
            latest: false,
        });
    }
    infer_last_steps(&mut out);
    // Integers, never text: 50 < 100 < 1500. Unnumbered ones (last.ckpt) are the newest saves; a last.ckpt that
    // took a named one's step comes right after it; Lightning's `-v1` of the same name was saved after the plain one.
    out.sort_by(|a, b| {
        let key = |c: &Checkpoint| {
            (
                c.ordinal().is_none(),
                c.ordinal(),
                c.step_inferred,
                c.mtime,
                lightning_version(&c.name),
                c.rel_path.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
    // The newest complete one whose own name gives its step; a `last.ckpt` only when nothing else can be (its
    // step, if known at all, is a step-named checkpoint's, and that one is the clearer name to resume from).
    let pick = out
        .iter()
        .rposition(|c| c.complete && c.ordinal().is_some() && !c.step_inferred)
        .or_else(|| out.iter().rposition(|c| c.complete && c.ordinal().is_some()))
        .or_else(|| out.iter().rposition(|c| c.complete));
    if let Some(i) = pick {
        out[i].latest = true;
    }
    out
}

/// Lightning's `last.ckpt` (`last-v1.ckpt`) is rewritten at every save, so it holds the state of the step-named
/// checkpoint saved in the same moment; with `save_last="link"` it is a symlink to it, whose time the probe reads
/// through the link (`stat -L`), so both cases show as the same mtime. It gets the highest step among the
/// complete step-named checkpoints of its directory whose mtime is within [`SAME_SAVE_SECONDS`] of its own;
/// with none, its step stays unknown.
fn infer_last_steps(out: &mut [Checkpoint]) {
    let named: Vec<(Vec<u8>, u64, i64)> = out
        .iter()
        .filter(|c| c.layout == Layout::Lightning && c.complete)
        .filter_map(|c| Some((split_parent(&c.rel_path).0.to_vec(), c.step?, c.mtime?)))
        .collect();
    for c in out
        .iter_mut()
        .filter(|c| c.layout == Layout::Lightning && c.step.is_none())
    {
        let (Some(m), parent) = (c.mtime, split_parent(&c.rel_path).0) else {
            continue;
        };
        let step = named
            .iter()
            .filter(|(p, _, t)| p.as_slice() == parent && t.abs_diff(m) <= SAME_SAVE_SECONDS)
            .map(|(_, s, _)| *s)
            .max();
        if step.is_some() {
            c.step = step;
            c.step_inferred = true;
        }
    }
}

/// Two files of one Lightning save are written one after the other (the step-named one, then `last.ckpt`); a
/// big model on a slow disk takes a while, times are whole seconds, and the next save is normally minutes away.
pub const SAME_SAVE_SECONDS: u64 = 2;

/// The checkpoint `resume` picks: the `latest` one (see [`recognise`]), never an incomplete one.
pub fn newest_complete(checkpoints: &[Checkpoint]) -> Option<&Checkpoint> {
    checkpoints.iter().find(|c| c.latest && c.complete)
}

/// Bytes on disk of all checkpoints (symlinks count nothing: their targets are counted already).
/// `None` when no size is known at all.
pub fn total_bytes(checkpoints: &[Checkpoint]) -> Option<u64> {
    let known: Vec<u64> = checkpoints
        .iter()
        .filter(|c| !c.symlink)
        .filter_map(|c| c.bytes)
        .collect();
    if known.is_empty() && checkpoints.iter().any(|c| !c.symlink) {
        return None;
    }
    Some(known.iter().sum())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::fixtures;
    use std::collections::BTreeMap;

    fn dir(path: &str, trainer_state: bool) -> Entry {
        let mut e = Entry::new(path, EntryKind::Dir);
        e.has_trainer_state = trainer_state;
        e.bytes = Some(1 << 20);
        e
    }

    fn file(path: &str, bytes: u64) -> Entry {
        let mut e = Entry::new(path, EntryKind::File);
        e.bytes = Some(bytes);
        e
    }

    fn names(c: &[Checkpoint]) -> Vec<&str> {
        c.iter().map(|c| c.name.as_str()).collect()
    }

    /// A listing in the format of outputs-listing.txt (`./path size` per file), folded into one
    /// entry per top-level directory or file, the way the probe reports them.
    pub(crate) fn entries_from_listing(text: &str) -> Vec<Entry> {
        let mut dirs: BTreeMap<String, Entry> = BTreeMap::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let (path, size) = line.rsplit_once(' ').unwrap();
            let size: u64 = size.parse().unwrap();
            let path = path.trim_start_matches("./");
            let (top, rest) = match path.split_once('/') {
                Some((t, r)) => (t.to_string(), Some(r)),
                None => (path.to_string(), None),
            };
            let kind = if rest.is_some() {
                EntryKind::Dir
            } else {
                EntryKind::File
            };
            let e = dirs.entry(top.clone()).or_insert_with(|| {
                let mut e = Entry::new(top.as_bytes(), kind);
                e.bytes = Some(0);
                e
            });
            *e.bytes.as_mut().unwrap() += size;
            if rest == Some("trainer_state.json") {
                e.has_trainer_state = true;
            }
        }
        dirs.into_values().collect()
    }

    #[test]
    fn real_hf_listing_has_three_complete_checkpoints_by_integer_step() {
        let listing = fixtures::hf("outputs-listing.txt");
        let ckpts = recognise(&entries_from_listing(std::str::from_utf8(&listing).unwrap()));
        assert_eq!(names(&ckpts), ["checkpoint-40", "checkpoint-80", "checkpoint-120"]);
        assert!(ckpts.iter().all(|c| c.complete && c.layout == Layout::HuggingFace));
        assert_eq!(newest_complete(&ckpts).unwrap().step, Some(120));
        assert!(ckpts[2].latest && !ckpts[0].latest && !ckpts[1].latest);
        let sum: u64 = 3 * (826 + 203 + 141352 + 300891 + 14455 + 1465 + 5265) + 2838 + 1464 + 2149;
        assert_eq!(total_bytes(&ckpts), Some(sum));
    }

    /// Regression: a text sort puts checkpoint-1500 before checkpoint-50 and resumes from 500.
    #[test]
    fn steps_sort_as_integers_never_as_text() {
        let entries = vec![
            dir("checkpoint-500", true),
            dir("checkpoint-1500", true),
            dir("checkpoint-50", true),
            dir("checkpoint-100", true),
        ];
        let ckpts = recognise(&entries);
        assert_eq!(
            names(&ckpts),
            ["checkpoint-50", "checkpoint-100", "checkpoint-500", "checkpoint-1500"]
        );
        assert_eq!(newest_complete(&ckpts).unwrap().name, "checkpoint-1500");
    }

    #[test]
    fn incomplete_and_tmp_checkpoints_are_never_newest_complete() {
        let entries = vec![
            dir("checkpoint-1500", true),
            dir("checkpoint-2000", false),
            dir("tmp-checkpoint-2500", true),
            dir("checkpoint-7 copy", true),
            dir("runs", false),
            file("README.md", 10),
        ];
        let ckpts = recognise(&entries);
        assert_eq!(
            names(&ckpts),
            ["checkpoint-1500", "checkpoint-2000", "tmp-checkpoint-2500"]
        );
        assert_eq!(
            ckpts.iter().map(|c| c.complete).collect::<Vec<_>>(),
            [true, false, false]
        );
        assert_eq!(ckpts[2].layout, Layout::HuggingFaceTmp);
        let newest = newest_complete(&ckpts).unwrap();
        assert_eq!((newest.name.as_str(), newest.latest), ("checkpoint-1500", true));
    }

    #[test]
    fn lightning_names_versions_and_last() {
        let listing = fixtures::own("layouts/lightning.txt");
        let entries = lightning_entries(&listing);
        let ckpts = recognise(&entries);
        assert_eq!(
            names(&ckpts),
            [
                "epoch=0-step=500.ckpt",
                "epoch=1-step=1000.ckpt",
                "epoch=2-step=1500.ckpt",
                "epoch=2-step=1500-v1.ckpt",
                "last.ckpt"
            ]
        );
        assert_eq!(ckpts[3].step, Some(1500));
        assert_eq!(ckpts[4].step, None, "no times: nothing says which save last.ckpt holds");
        assert!(
            ckpts[3].latest && !ckpts[4].latest,
            "a step-named checkpoint is the latest over a last.ckpt of unknown step"
        );
        assert!(ckpts.iter().all(|c| c.layout == Layout::Lightning && c.complete));
        assert_eq!(
            String::from_utf8_lossy(&ckpts[0].rel_path),
            "lightning_logs/version_0/checkpoints/epoch=0-step=500.ckpt"
        );
    }

    fn lightning_entries(listing: &[u8]) -> Vec<Entry> {
        std::str::from_utf8(listing)
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|line| {
                let (path, size) = line.rsplit_once(' ').unwrap();
                file(path.trim_start_matches("./"), size.parse().unwrap())
            })
            .collect()
    }

    fn timed(path: &str, mtime: i64) -> Entry {
        let mut e = file(path, 4096);
        e.mtime = Some(mtime);
        e
    }

    /// Regression (issue 19): `status` called `last.ckpt` the latest checkpoint with step `null`, next to
    /// `epoch=3-step=1000.ckpt` saved in the same second.
    #[test]
    fn regression_last_ckpt_takes_the_step_of_the_named_checkpoint_saved_with_it() {
        let d = "lightning_logs/version_0/checkpoints/";
        let mut link = timed(&format!("{d}last.ckpt"), 1_000);
        link.symlink = true;
        let ckpts = recognise(&[
            timed(&format!("{d}epoch=0-step=500.ckpt"), 900),
            timed(&format!("{d}epoch=1-step=1000.ckpt"), 999),
            link,
        ]);
        let last = ckpts.iter().find(|c| c.name == "last.ckpt").unwrap();
        assert_eq!((last.step, last.step_inferred), (Some(1000), true));
        let newest = newest_complete(&ckpts).unwrap();
        assert_eq!((newest.name.as_str(), newest.latest), ("epoch=1-step=1000.ckpt", true));
        assert_eq!(ckpts.iter().filter(|c| c.latest).count(), 1);

        // Saved at another moment (a save of its own, at the end of an epoch): unknown, and not the latest.
        let ckpts = recognise(&[timed("epoch=0-step=500.ckpt", 900), timed("last.ckpt", 1_300)]);
        assert_eq!(ckpts[1].step, None);
        assert_eq!(newest_complete(&ckpts).unwrap().name, "epoch=0-step=500.ckpt");
        // Another directory's named checkpoint says nothing about this last.ckpt.
        let ckpts = recognise(&[timed("a/epoch=0-step=500.ckpt", 900), timed("b/last.ckpt", 900)]);
        assert_eq!(ckpts.iter().find(|c| c.name == "last.ckpt").unwrap().step, None);
        // The only checkpoint: resume may take it.
        let ckpts = recognise(&[timed("last.ckpt", 1_300)]);
        assert_eq!(newest_complete(&ckpts).unwrap().name, "last.ckpt");
        // last-v1.ckpt, beside a -v1 named one.
        let ckpts = recognise(&[
            timed("epoch=2-step=1500.ckpt", 100),
            timed("epoch=2-step=1500-v1.ckpt", 500),
            timed("last-v1.ckpt", 501),
        ]);
        assert_eq!(
            ckpts.iter().find(|c| c.name == "last-v1.ckpt").unwrap().step,
            Some(1500)
        );
        assert_eq!(newest_complete(&ckpts).unwrap().name, "epoch=2-step=1500-v1.ckpt");
    }

    #[test]
    fn empty_lightning_file_is_incomplete() {
        let ckpts = recognise(&[file("epoch=0-step=10.ckpt", 0), file("epoch=0-step=5.ckpt", 4096)]);
        assert_eq!(ckpts.iter().map(|c| c.complete).collect::<Vec<_>>(), [true, false]);
        assert_eq!(newest_complete(&ckpts).unwrap().step, Some(5));
    }

    #[test]
    fn deepspeed_tags_up_to_latest_are_complete() {
        let listing = fixtures::own("layouts/deepspeed.txt");
        let mut entries = entries_from_listing(std::str::from_utf8(&listing).unwrap());
        for e in &mut entries {
            if e.name() == b"latest" {
                e.content = Some(b"global_step1000".to_vec());
            }
        }
        let ckpts = recognise(&entries);
        assert_eq!(names(&ckpts), ["global_step500", "global_step1000", "global_step1500"]);
        assert_eq!(
            ckpts.iter().map(|c| c.complete).collect::<Vec<_>>(),
            [true, true, false]
        );
        assert!(ckpts[1].latest);
        assert!(ckpts.iter().all(|c| c.layout == Layout::DeepSpeed));
    }

    #[test]
    fn deepspeed_without_latest_file_is_not_resumable() {
        let ckpts = recognise(&[dir("global_step100", false)]);
        assert!(!ckpts[0].complete);
        assert!(newest_complete(&ckpts).is_none());
    }

    #[test]
    fn accelerate_counts_saves_not_steps() {
        let listing = fixtures::own("layouts/accelerate.txt");
        let text = std::str::from_utf8(&listing).unwrap();
        // Fold `checkpoints/checkpoint_N/file` into `checkpoints/checkpoint_N`.
        let mut dirs: BTreeMap<String, Entry> = BTreeMap::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let (path, _) = line.rsplit_once(' ').unwrap();
            let parts: Vec<&str> = path.trim_start_matches("./").split('/').collect();
            let key = parts[..2].join("/");
            let e = dirs.entry(key.clone()).or_insert_with(|| dir(&key, false));
            if parts[2] == "random_states_0.pkl" {
                e.has_random_states = true;
            }
        }
        let ckpts = recognise(&dirs.into_values().collect::<Vec<_>>());
        assert_eq!(
            names(&ckpts),
            ["checkpoint_0", "checkpoint_1", "checkpoint_2", "checkpoint_10"]
        );
        assert!(ckpts.iter().all(|c| c.step.is_none() && c.layout == Layout::Accelerate));
        assert_eq!(
            ckpts.iter().map(|c| c.save_index.unwrap()).collect::<Vec<_>>(),
            [0, 1, 2, 10]
        );
        assert_eq!(
            ckpts.iter().map(|c| c.complete).collect::<Vec<_>>(),
            [true, true, true, false]
        );
        assert_eq!(newest_complete(&ckpts).unwrap().name, "checkpoint_2");
    }

    #[test]
    fn classify_rejects_lookalikes() {
        assert_eq!(classify("checkpoint-", EntryKind::Dir), None);
        assert_eq!(classify("checkpoint-12a", EntryKind::Dir), None);
        assert_eq!(classify("checkpoint-12", EntryKind::File), None);
        assert_eq!(
            classify("checkpoint-0100", EntryKind::Dir),
            Some((Layout::HuggingFace, Some(100)))
        );
        assert_eq!(
            classify("last-v2.ckpt", EntryKind::File),
            Some((Layout::Lightning, None))
        );
        assert_eq!(classify("lastly.ckpt", EntryKind::File), None);
        assert_eq!(classify("model.ckpt", EntryKind::File), None);
        assert_eq!(
            classify("run a step=20 loss=0.1.ckpt", EntryKind::File),
            Some((Layout::Lightning, Some(20)))
        );
        assert_eq!(classify("checkpoint-99999999999999999999999", EntryKind::Dir), None);
    }

    #[test]
    fn total_bytes_skips_symlinks_and_admits_unknown() {
        let mut link = file("last.ckpt", 100);
        link.symlink = true;
        let ckpts = recognise(&[file("epoch=0-step=1.ckpt", 100), link]);
        assert_eq!(total_bytes(&ckpts), Some(100));
        let mut unknown = dir("checkpoint-1", true);
        unknown.bytes = None;
        assert_eq!(total_bytes(&recognise(&[unknown])), None);
        assert_eq!(total_bytes(&[]), Some(0));
    }
}
