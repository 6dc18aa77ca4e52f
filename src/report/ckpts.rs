//! `ckpts`: the `ckpts --json` document (DESIGN.md "JSON": stable names, unknown is null) and the
//! table people read, both from one parsed listing.

use super::rfc3339;
use crate::remote::probe::{CkptsProbe, DirState};
use crate::train::checkpoints::{self, Layout};
use crate::train::human::{fmt_age, fmt_bytes};
use serde::Serialize;
use std::fmt::Write as _;

/// `ckpts --json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CkptsJson {
    pub host: String,
    pub dir: String,
    /// Added: `present`, `missing` or `not_a_directory`.
    pub dir_state: DirState,
    pub checkpoints: Vec<CkptJson>,
    pub total_bytes: Option<u64>,
    pub free_bytes: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CkptJson {
    pub name: String,
    pub path: String,
    pub step: Option<u64>,
    pub bytes: Option<u64>,
    pub mtime: Option<String>,
    pub complete: bool,
    pub latest: bool,
    /// Added: the recognised layout.
    pub layout: Layout,
    /// Added: Accelerate's save counter (its names carry no step).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub save_index: Option<u64>,
}

impl CkptsJson {
    pub fn build(host: &str, probe: &CkptsProbe) -> CkptsJson {
        let checkpoints = probe
            .checkpoints
            .iter()
            .map(|c| CkptJson {
                name: c.name.clone(),
                path: String::from_utf8_lossy(&probe.checkpoint_path(c)).into_owned(),
                step: c.step,
                bytes: c.bytes,
                mtime: c.mtime.and_then(rfc3339),
                complete: c.complete,
                latest: c.latest,
                layout: c.layout,
                save_index: c.save_index,
            })
            .collect();
        CkptsJson {
            host: host.to_string(),
            dir: probe.dir_display(),
            dir_state: probe.dir_state,
            checkpoints,
            total_bytes: checkpoints::total_bytes(&probe.checkpoints),
            free_bytes: probe.disk.as_ref().map(|d| d.free_bytes),
        }
    }
}

pub fn render_ckpts(j: &CkptsJson, p: &CkptsProbe) -> String {
    let mut s = String::new();
    match j.dir_state {
        DirState::Missing => {
            let _ = writeln!(s, "{}: no checkpoint directory {} yet", j.host, j.dir);
            return s;
        }
        DirState::NotADirectory => {
            let _ = writeln!(s, "{}: {} is not a directory", j.host, j.dir);
            return s;
        }
        _ => {}
    }
    let total = j.total_bytes.map(fmt_bytes).unwrap_or_else(|| "?".into());
    let free = j
        .free_bytes
        .map(|f| format!(", {} free", fmt_bytes(f)))
        .unwrap_or_default();
    let _ = writeln!(
        s,
        "{}:{}  ({} checkpoint{}, {total}{free})",
        j.host,
        j.dir,
        j.checkpoints.len(),
        if j.checkpoints.len() == 1 { "" } else { "s" }
    );
    if j.checkpoints.is_empty() {
        let _ = writeln!(s, "no checkpoints yet");
        return s;
    }
    let rows: Vec<[String; 5]> = j
        .checkpoints
        .iter()
        .zip(&p.checkpoints)
        .map(|(c, raw)| {
            let age = match (p.now, raw.mtime) {
                (Some(now), Some(m)) => fmt_age(now - m),
                _ => "?".into(),
            };
            let complete = if c.complete { "yes" } else { "NO (incomplete)" };
            let name = if c.latest {
                format!("{} (latest)", c.name)
            } else {
                c.name.clone()
            };
            [
                c.step.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
                name,
                c.bytes.map(fmt_bytes).unwrap_or_else(|| "?".into()),
                age,
                complete.into(),
            ]
        })
        .collect();
    s += &crate::ui::table(&["STEP", "NAME", "SIZE", "AGE", "COMPLETE"], &rows);
    s
}
