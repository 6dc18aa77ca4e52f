//! `rtrain pull`: bring a checkpoint home over the resilient link. Each file lands in `NAME.part`,
//! resumes from that length after a drop or a rerun, and is renamed only once its SHA-256 matches
//! the box's; `trainer_state.json` comes last, so a local checkpoint with it is whole.

use super::resilient::StatusLine;
use super::{probe, CommandError, Ctx};
use crate::cli::PullArgs;
use crate::config::Target;
use crate::remote::quote::quote_path;
use crate::remote::run::{remote_path, sh_command};
use crate::remote::transfer::{self, HashTool, Manifest, SendOutcome, SourceKind};
use crate::ssh::capture::HeadTail;
use crate::ssh::session::STDERR_KEPT;
use crate::ssh::{Session, SshError};
use crate::train::checkpoints::{classify, EntryKind, Layout};
use crate::train::human::fmt_bytes;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use std::ffi::OsStr;
use std::future::Future as _;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, UNIX_EPOCH};
use tokio::io::AsyncWrite;

const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);
/// What `--weights-only` leaves on the box: optimizer, scheduler, scaler and RNG state.
const NOT_WEIGHTS: &[&str] = &[
    "optimizer.pt",
    "scheduler.pt",
    "scaler.pt",
    "rng_state*.pth",
    "*_optim_states.pt",
];
/// A file whose content keeps differing from the box's is given up on after this many tries.
const MAX_ATTEMPTS: u32 = 4;

#[derive(Debug, Clone, PartialEq, Eq)]
enum What {
    Latest,
    Best,
    Name(String),
    Path(String),
}

fn parse_what(s: &str) -> What {
    match s {
        "latest" => What::Latest,
        "best" => What::Best,
        _ if s.contains('/') || s.starts_with('~') || s.starts_with('.') => What::Path(s.to_string()),
        _ => What::Name(s.to_string()),
    }
}

/// `20M`, `500K`, `1G`, `123` (bytes per second; K = 1024).
fn parse_rate(s: &str) -> Result<u64, CommandError> {
    let bad = || {
        CommandError::Usage(format!(
            "--limit-rate takes bytes per second like 500K or 20M, not {s:?}"
        ))
    };
    let t = s.trim();
    let (num, mul) = match t.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => (&t[..t.len() - 1], 1u64 << 10),
        Some('M') => (&t[..t.len() - 1], 1 << 20),
        Some('G') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    let n: f64 = num.parse().map_err(|_| bad())?;
    if !n.is_finite() || n <= 0.0 {
        return Err(bad());
    }
    Ok(((n * mul as f64) as u64).max(1))
}

/// The checkpoint chosen on the box.
struct Source {
    name: String,
    /// As the remote shell takes it (absolute, or `~`-based).
    path: String,
    /// `Some(false)`: known to be incomplete.
    complete: Option<bool>,
}

fn path_str(bytes: Vec<u8>, what: &str) -> anyhow::Result<String> {
    String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("the path of {what} on the box is not valid UTF-8; rename it"))
}

async fn choose(session: &Session, target: &Target, what: &What) -> anyhow::Result<Source> {
    if let What::Path(p) = what {
        let path = remote_path(&target.settings.workdir, p);
        let name = path
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or("checkpoint")
            .to_string();
        return Ok(Source {
            name,
            path,
            complete: None,
        });
    }
    let listing = probe::probe_ckpts(session, target).await?;
    let from_listing = |c: &crate::train::checkpoints::Checkpoint| -> anyhow::Result<Source> {
        Ok(Source {
            name: c.name.clone(),
            path: path_str(listing.checkpoint_path(c), &c.name)?,
            complete: Some(c.complete),
        })
    };
    let newest = || {
        listing.newest_complete().ok_or_else(|| {
            anyhow::anyhow!(
                "no complete checkpoint in {} on {}: nothing to pull",
                listing.dir_display(),
                target.name
            )
        })
    };
    match what {
        What::Latest => from_listing(newest()?),
        What::Name(want) => {
            let c = listing.checkpoints.iter().find(|c| c.name == *want).ok_or_else(|| {
                let names: Vec<&str> = listing.checkpoints.iter().map(|c| c.name.as_str()).collect();
                anyhow::anyhow!(
                    "no checkpoint {want:?} in {} on {} (there are: {})",
                    listing.dir_display(),
                    target.name,
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                )
            })?;
            from_listing(c)
        }
        What::Best => {
            let newest = newest()?;
            let state_path = format!(
                "{}/trainer_state.json",
                path_str(listing.checkpoint_path(newest), &newest.name)?
            );
            let out = session
                .exec(
                    &sh_command(&format!("cat -- {}", quote_path(&state_path))),
                    None,
                    Some(SCRIPT_TIMEOUT),
                )
                .await?;
            let state = crate::train::trainer_state::parse_trainer_state(&out.stdout)
                .map_err(|e| anyhow::anyhow!("cannot read {state_path} on {}: {e}", target.name))?;
            let best = state.best_model_checkpoint.ok_or_else(|| {
                anyhow::anyhow!(
                    "{} has no best_model_checkpoint (set metric_for_best_model and load_best_model_at_end in training); name a checkpoint instead",
                    newest.name
                )
            })?;
            let base = best.trim_end_matches('/').rsplit('/').next().unwrap_or("");
            match listing.checkpoints.iter().find(|c| c.name == base) {
                Some(c) => from_listing(c),
                None => Ok(Source {
                    name: base.to_string(),
                    path: remote_path(&target.settings.workdir, &best),
                    complete: None,
                }),
            }
        }
        What::Path(_) => unreachable!("handled above"),
    }
}

/// A file of the plan, with what the box said of it last.
#[derive(Debug, Clone)]
struct Item {
    rel: Vec<u8>,
    size: u64,
    mtime: i64,
    done: bool,
    attempts: u32,
}

/// Counters shared by the concurrent file transfers.
struct Shared {
    items: Mutex<Vec<Item>>,
    bar: Option<indicatif::ProgressBar>,
    limit: Option<Rate>,
    /// Bytes that came over the network this run.
    transferred: std::sync::atomic::AtomicU64,
    /// Bytes found in `.part` files and kept.
    resumed: std::sync::atomic::AtomicU64,
    restarted: std::sync::atomic::AtomicU64,
}

/// A shared `--limit-rate`: senders are held back until the total is under the limit.
struct Rate {
    per_sec: u64,
    start: Instant,
    bytes: Mutex<u64>,
}

impl Rate {
    fn delay_after(&self, n: usize) -> Duration {
        let mut b = self.bytes.lock().unwrap();
        *b += n as u64;
        let due = Duration::from_secs_f64(*b as f64 / self.per_sec as f64);
        due.saturating_sub(self.start.elapsed())
    }
}

fn os(bytes: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(bytes))
}

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn mtime_of(meta: &std::fs::Metadata) -> Option<i64> {
    meta.modified()
        .ok()?
        .duration_since(UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs() as i64)
}

/// Already here from an earlier pull: same size, and the mtime rtrain gave it on rename.
fn already_there(dest: &Path, it: &Item) -> bool {
    std::fs::metadata(dest.join(os(&it.rel)))
        .map(|m| m.is_file() && m.len() == it.size && mtime_of(&m) == Some(it.mtime))
        .unwrap_or(false)
}

/// The `.part`'s usable length: only if its `.part.meta` says it was started from this very
/// version of the file (size and mtime), else 0.
fn part_len(dest: &Path, it: &Item) -> u64 {
    let fin = dest.join(os(&it.rel));
    let meta = std::fs::read_to_string(with_suffix(&fin, ".part.meta")).unwrap_or_default();
    if meta.trim() != format!("{} {}", it.size, it.mtime) {
        return 0;
    }
    match std::fs::metadata(with_suffix(&fin, ".part")) {
        Ok(m) if m.len() <= it.size => m.len(),
        _ => 0,
    }
}

/// Where the bytes of one file go: the `.part` file, the running hash, the bar, the rate limit.
struct PartSink<'a> {
    file: std::fs::File,
    hasher: Sha256,
    received: u64,
    shared: &'a Shared,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Bytes written since writeback was last started.
    unsynced: u64,
}

/// Writeback is started every this many bytes, so the fsync before the rename has little left to
/// do (measured: an fsync of 1 GiB written at once costs 2 s here).
const WRITEBACK_EVERY: u64 = 16 << 20;

/// Ask the kernel to start writing the file's dirty pages now, without waiting for them.
#[cfg(target_os = "linux")]
fn start_writeback(f: &std::fs::File) {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid fd we own; offset 0 and length 0 mean the whole file.
    unsafe {
        libc::sync_file_range(f.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_f: &std::fs::File) {}

impl AsyncWrite for PartSink<'_> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if let Some(s) = &mut this.sleep {
            if s.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.sleep = None;
        }
        // Written whole before it is counted: the `.part`'s length is always what arrived.
        this.file.write_all(buf)?;
        this.hasher.update(buf);
        this.received += buf.len() as u64;
        this.shared
            .transferred
            .fetch_add(buf.len() as u64, std::sync::atomic::Ordering::Relaxed);
        if let Some(bar) = &this.shared.bar {
            bar.inc(buf.len() as u64);
        }
        this.unsynced += buf.len() as u64;
        if this.unsynced >= WRITEBACK_EVERY {
            start_writeback(&this.file);
            this.unsynced = 0;
        }
        if let Some(rate) = &this.shared.limit {
            let d = rate.delay_after(buf.len());
            if !d.is_zero() {
                this.sleep = Some(Box::pin(tokio::time::sleep(d)));
            }
        }
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Lower-case hex, as `sha256sum` prints it (written out, so it holds for sha2 0.10 and 0.11 alike).
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hash_prefix(path: &Path, len: u64) -> std::io::Result<Sha256> {
    let mut h = Sha256::new();
    let mut f = std::fs::File::open(path)?.take(len);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h)
}

/// A failure the next connection may cure (the link dropped, the stream was cut).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Cut(String);

fn is_retryable(e: &anyhow::Error) -> bool {
    e.chain()
        .any(|c| c.downcast_ref::<Cut>().is_some() || c.downcast_ref::<SshError>().is_some_and(SshError::is_retryable))
}

/// One file, from its `.part`'s length to verified and renamed.
async fn pull_file(
    session: &Session,
    root: &str,
    dest: &Path,
    idx: usize,
    hash: HashTool,
    shared: &Shared,
) -> anyhow::Result<()> {
    loop {
        let it = shared.items.lock().unwrap()[idx].clone();
        let rel_text = String::from_utf8(it.rel.clone())
            .map_err(|_| anyhow::anyhow!("{:?} on the box is not a UTF-8 name; rename it", os(&it.rel)))?;
        let fin = dest.join(os(&it.rel));
        let part = with_suffix(&fin, ".part");
        let meta = with_suffix(&fin, ".part.meta");
        if let Some(parent) = fin.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let offset = part_len(dest, &it);
        let hasher = if offset == 0 {
            std::fs::write(&meta, format!("{} {}\n", it.size, it.mtime))?;
            std::fs::File::create(&part)?;
            Sha256::new()
        } else {
            hash_prefix(&part, offset)?
        };
        let file = std::fs::OpenOptions::new().append(true).open(&part)?;
        file.set_len(offset)?;
        let mut sink = PartSink {
            file,
            hasher,
            received: 0,
            shared,
            sleep: None,
            unsynced: 0,
        };
        let remote = format!("{}/{rel_text}", root.trim_end_matches('/'));
        let script = transfer::send_script(&remote, offset, it.size, it.mtime, hash);
        let mut err = HeadTail::new(STDERR_KEPT, STDERR_KEPT);
        session
            .exec_streaming(&sh_command(&script), None, &mut sink, &mut err, None)
            .await?;
        let err = err.bytes();
        let got = offset + sink.received;
        let outcome = transfer::parse_send(&err).map_err(|e| anyhow::anyhow!("{rel_text}: {e}"))?;
        let restart = |size: u64, mtime: i64, why: &str| -> anyhow::Result<()> {
            let mut items = shared.items.lock().unwrap();
            let i = &mut items[idx];
            i.attempts += 1;
            if i.attempts >= MAX_ATTEMPTS {
                anyhow::bail!(
                    "{rel_text} on the box {why} {MAX_ATTEMPTS} times in a row; is something still writing it?"
                );
            }
            if let Some(bar) = &shared.bar {
                bar.set_length((bar.length().unwrap_or(0) + size).saturating_sub(i.size));
                bar.set_position(bar.position().saturating_sub(got));
            }
            shared.restarted.fetch_add(got, std::sync::atomic::Ordering::Relaxed);
            i.size = size;
            i.mtime = mtime;
            let _ = std::fs::remove_file(&part);
            let _ = std::fs::remove_file(&meta);
            Ok(())
        };
        match outcome {
            None => return Err(Cut(format!("the stream of {rel_text} was cut")).into()),
            Some(SendOutcome::Gone) => {
                anyhow::bail!("{rel_text} disappeared from the box during the pull")
            }
            Some(SendOutcome::Changed { size, mtime }) => restart(size, mtime, "changed while being pulled")?,
            Some(SendOutcome::Done {
                rc,
                size,
                mtime,
                sha256,
            }) => {
                if size != it.size || mtime != it.mtime {
                    restart(size, mtime, "changed while being pulled")?;
                    continue;
                }
                if rc != 0 || got != it.size {
                    // The box said it was done, so the link is fine: counted like a mismatch,
                    // never retried forever.
                    restart(
                        size,
                        mtime,
                        &format!("arrived short ({got} of {size} bytes, tail exit {rc})"),
                    )?;
                    continue;
                }
                let local = hex(&sink.hasher.clone().finalize());
                if hash != HashTool::None && local != sha256 {
                    restart(size, mtime, "did not match its SHA-256")?;
                    continue;
                }
                sink.file.sync_all()?;
                sink.file
                    .set_modified(UNIX_EPOCH + Duration::from_secs(it.mtime.max(0) as u64))?;
                drop(sink);
                std::fs::rename(&part, &fin)?;
                let _ = std::fs::remove_file(&meta);
                shared.items.lock().unwrap()[idx].done = true;
                return Ok(());
            }
        }
    }
}

/// Every file not yet done: all but `trainer_state.json` concurrently, then it.
async fn pull_round(
    session: &Session,
    root: &str,
    dest: &Path,
    hash: HashTool,
    jobs: usize,
    shared: &Shared,
) -> anyhow::Result<()> {
    let (rest, last): (Vec<usize>, Vec<usize>) = {
        let items = shared.items.lock().unwrap();
        (0..items.len())
            .filter(|&i| !items[i].done)
            .partition(|&i| items[i].rel != b"trainer_state.json")
    };
    for phase in [rest, last] {
        let mut results = futures::stream::iter(
            phase
                .into_iter()
                .map(|i| pull_file(session, root, dest, i, hash, shared)),
        )
        .buffer_unordered(jobs);
        while let Some(r) = results.next().await {
            r?;
        }
    }
    Ok(())
}

/// Bytes free for an unprivileged user at `path`, or at its nearest existing ancestor.
fn local_free_bytes(path: &Path) -> Option<u64> {
    let mut p = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().ok()?.join(path)
    };
    while !p.exists() {
        p = p.parent()?.to_path_buf();
    }
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs fills the zeroed struct we own; c is a valid NUL-terminated path.
    unsafe {
        let mut s: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c.as_ptr(), &mut s) != 0 {
            return None;
        }
        Some((s.f_bavail as u64).saturating_mul(s.f_frsize as u64))
    }
}

fn excluded(rel: &[u8], patterns: &[glob::Pattern]) -> bool {
    let text = String::from_utf8_lossy(rel);
    let base = text.rsplit('/').next().unwrap_or(&text);
    let opts = glob::MatchOptions {
        require_literal_separator: true,
        ..Default::default()
    };
    patterns
        .iter()
        .any(|p| p.matches_with(&text, opts) || p.matches_with(base, opts))
}

#[derive(serde::Serialize)]
struct PullJson {
    host: String,
    checkpoint: String,
    source: String,
    dest: String,
    files: usize,
    bytes: u64,
    /// Bytes that crossed the network this run.
    transferred_bytes: u64,
    /// Bytes kept from `.part` files of an earlier, interrupted pull.
    resumed_bytes: u64,
    /// Files already complete locally, not sent again.
    skipped_files: usize,
    excluded_files: usize,
    /// `sha256`, or `size+mtime` when the box has no SHA-256 tool.
    verified_by: &'static str,
    reconnects: u32,
    seconds: f64,
}

pub async fn run(ctx: &Ctx, args: PullArgs) -> anyhow::Result<u8> {
    let limit = args.limit_rate.as_deref().map(parse_rate).transpose()?;
    let mut patterns = Vec::new();
    let globs = args
        .exclude
        .iter()
        .map(String::as_str)
        .chain(args.weights_only.then_some(NOT_WEIGHTS).into_iter().flatten().copied());
    for g in globs {
        patterns.push(glob::Pattern::new(g).map_err(|e| CommandError::Usage(format!("--exclude {g:?}: {e}")))?);
    }
    let what = parse_what(&args.what);
    let target = ctx.target(&args.host)?;
    let started = Instant::now();
    let mut link = ctx.connected_link(&target).await?;
    let status = StatusLine::new(&target.name, false, ctx.env.interactive, ctx.quiet);
    let mut reconnects = 0u32;

    // Which checkpoint, and what is in it: retried across drops like the transfer itself.
    let (source, manifest) = loop {
        let session = link.session().await?;
        let dead = link.wait_dead();
        let work = async {
            let source = choose(&session, &target, &what).await?;
            let out = session
                .exec(
                    &sh_command(&transfer::manifest_script(&source.path)),
                    None,
                    Some(SCRIPT_TIMEOUT),
                )
                .await?;
            let m = transfer::parse_manifest(&out.stdout)
                .map_err(|e| Cut(format!("the file list of {} from {}: {e}", source.path, target.name)))?;
            Ok::<_, anyhow::Error>((source, m))
        };
        let r = tokio::select! {
            r = work => r,
            reason = dead => Err(Cut(reason).into()),
            _ = ctx.shutdown.cancelled() => return Err(CommandError::Interrupted.into()),
        };
        match r {
            Ok(v) => break v,
            Err(e) if is_retryable(&e) => {}
            Err(e) => return Err(e),
        }
        drop(session);
        link.reconnect(&ctx.shutdown.child_token(), |ev| status.event(&ev))
            .await?;
        reconnects += 1;
    };
    let Manifest {
        kind,
        root,
        hash,
        files,
    } = manifest;
    if kind == SourceKind::Missing {
        anyhow::bail!("{} does not exist on {}", source.path, target.name);
    }
    let complete = source
        .complete
        .unwrap_or_else(|| match classify(&source.name, EntryKind::Dir) {
            Some((Layout::HuggingFace, _)) if kind == SourceKind::Dir => {
                !source.name.starts_with("tmp-") && files.iter().any(|f| f.rel == b"trainer_state.json")
            }
            _ => true,
        });
    if !complete && !args.force {
        anyhow::bail!(
            "checkpoint {} on {} is incomplete (no trainer_state.json: it was probably cut off mid-save); name it with --force to pull it anyway",
            source.name,
            target.name
        );
    }
    let root = path_str(root, &source.path)?;
    let dest = match &args.dest {
        Some(d) => d.clone(),
        None if kind == SourceKind::File => PathBuf::from(&target.name),
        None => Path::new(&target.name).join(&source.name),
    };
    let total_files = files.len();
    let items: Vec<Item> = files
        .into_iter()
        .filter(|f| !excluded(&f.rel, &patterns))
        .map(|f| Item {
            rel: f.rel,
            size: f.size,
            mtime: f.mtime,
            done: false,
            attempts: 0,
        })
        .collect();
    let excluded_files = total_files - items.len();
    let total: u64 = items.iter().map(|i| i.size).sum();
    let (mut have, mut resumed, mut skipped) = (0u64, 0u64, 0usize);
    let items: Vec<Item> = items
        .into_iter()
        .map(|mut it| {
            if already_there(&dest, &it) {
                it.done = true;
                have += it.size;
                skipped += 1;
            } else {
                let p = part_len(&dest, &it);
                have += p;
                resumed += p;
            }
            it
        })
        .collect();
    let need = total - have;
    if let Some(free) = local_free_bytes(&dest) {
        if need > free {
            anyhow::bail!(
                "not enough space for {} in {}: {} more needed, {} free",
                source.name,
                dest.display(),
                fmt_bytes(need),
                fmt_bytes(free)
            );
        }
    }
    std::fs::create_dir_all(&dest).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dest.display()))?;
    if hash == HashTool::None && !ctx.quiet {
        eprintln!(
            "rtrain: note: {} has neither sha256sum nor shasum: files are checked by size and mtime only",
            target.name
        );
    }
    let bar = (ctx.env.fancy && !ctx.quiet && !args.json).then(|| {
        let pb = indicatif::ProgressBar::new(total);
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        pb.set_message(format!("pulling {}", source.name));
        pb.set_position(have);
        pb
    });
    let shared = Shared {
        items: Mutex::new(items),
        bar,
        limit: limit.map(|per_sec| Rate {
            per_sec,
            start: Instant::now(),
            bytes: Mutex::new(0),
        }),
        transferred: 0.into(),
        resumed: resumed.into(),
        restarted: 0.into(),
    };
    let jobs = usize::from(args.jobs);
    loop {
        let session = link.session().await?;
        let dead = link.wait_dead();
        let r = tokio::select! {
            r = pull_round(&session, &root, &dest, hash, jobs, &shared) => r,
            reason = dead => Err(Cut(reason).into()),
            _ = ctx.shutdown.cancelled() => {
                if let Some(b) = &shared.bar { b.abandon(); }
                return Err(CommandError::Interrupted.into());
            }
        };
        match r {
            Ok(()) => break,
            Err(e) if is_retryable(&e) => {
                if let Some(b) = &shared.bar {
                    b.suspend(|| ());
                }
            }
            Err(e) => {
                if let Some(b) = &shared.bar {
                    b.abandon();
                }
                return Err(e);
            }
        }
        drop(session);
        // Parts written so far are kept; the next round resumes each from its length.
        let cancel = ctx.shutdown.child_token();
        let restored = match &shared.bar {
            Some(b) => {
                let b = b.clone();
                link.reconnect(&cancel, |ev| b.suspend(|| status.event(&ev))).await
            }
            None => link.reconnect(&cancel, |ev| status.event(&ev)).await,
        };
        restored?;
        reconnects += 1;
    }
    if let Some(b) = &shared.bar {
        b.finish_and_clear();
    }
    if let Some(s) = link.current() {
        drop(link);
        if let Ok(s) = Arc::try_unwrap(s) {
            s.close().await;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let transferred = shared.transferred.load(std::sync::atomic::Ordering::Relaxed);
    let summary = PullJson {
        host: target.name.clone(),
        checkpoint: source.name.clone(),
        source: format!(
            "{}{}",
            root.trim_end_matches('/'),
            if kind == SourceKind::File { "" } else { "/" }
        ),
        dest: dest.display().to_string(),
        files: shared.items.lock().unwrap().len(),
        bytes: total,
        transferred_bytes: transferred,
        resumed_bytes: shared.resumed.load(std::sync::atomic::Ordering::Relaxed),
        skipped_files: skipped,
        excluded_files,
        verified_by: if hash == HashTool::None { "size+mtime" } else { "sha256" },
        reconnects,
        seconds,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else if !ctx.quiet {
        let rate = transferred as f64 / seconds.max(0.001);
        let mut extra = String::new();
        if summary.resumed_bytes > 0 {
            extra += &format!(", {} resumed from .part files", fmt_bytes(summary.resumed_bytes));
        }
        if skipped > 0 {
            extra += &format!(", {skipped} already here");
        }
        if excluded_files > 0 {
            extra += &format!(", {excluded_files} excluded");
        }
        println!(
            "pulled {} from {} into {}: {} files, {} ({} sent in {:.1} s, {}/s{extra}), verified by {}",
            source.name,
            target.name,
            dest.display(),
            summary.files,
            fmt_bytes(total),
            fmt_bytes(transferred),
            seconds,
            fmt_bytes(rate as u64),
            if hash == HashTool::None {
                "size and mtime"
            } else {
                "SHA-256"
            }
        );
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_a_keyword_a_name_or_a_path() {
        assert_eq!(parse_what("latest"), What::Latest);
        assert_eq!(parse_what("best"), What::Best);
        assert_eq!(parse_what("checkpoint-1500"), What::Name("checkpoint-1500".into()));
        assert_eq!(
            parse_what("outputs/checkpoint-7"),
            What::Path("outputs/checkpoint-7".into())
        );
        assert_eq!(parse_what("/abs/x"), What::Path("/abs/x".into()));
        assert_eq!(parse_what("~/x"), What::Path("~/x".into()));
    }

    #[test]
    fn rates_take_binary_suffixes() {
        assert_eq!(parse_rate("500K").unwrap(), 500 * 1024);
        assert_eq!(parse_rate("2m").unwrap(), 2 << 20);
        assert_eq!(parse_rate("123").unwrap(), 123);
        assert!(parse_rate("0").is_err() && parse_rate("fast").is_err());
    }

    #[test]
    fn weights_only_keeps_the_model_and_drops_optimizer_state() {
        let p: Vec<glob::Pattern> = NOT_WEIGHTS.iter().map(|g| glob::Pattern::new(g).unwrap()).collect();
        for drop in [
            "optimizer.pt",
            "scheduler.pt",
            "rng_state.pth",
            "rng_state_3.pth",
            "scaler.pt",
            "global_step10/zero_pp_rank_0_mp_rank_00_optim_states.pt",
        ] {
            assert!(excluded(drop.as_bytes(), &p), "{drop}");
        }
        for keep in [
            "model.safetensors",
            "config.json",
            "trainer_state.json",
            "training_args.bin",
        ] {
            assert!(!excluded(keep.as_bytes(), &p), "{keep}");
        }
    }

    #[test]
    fn a_part_counts_only_for_the_version_it_was_started_from() {
        let d = tempfile::tempdir().unwrap();
        let it = Item {
            rel: b"sub/a b".to_vec(),
            size: 10,
            mtime: 1000,
            done: false,
            attempts: 0,
        };
        std::fs::create_dir_all(d.path().join("sub")).unwrap();
        std::fs::write(d.path().join("sub/a b.part"), b"0123").unwrap();
        assert_eq!(part_len(d.path(), &it), 0, "no meta: unknown origin");
        std::fs::write(d.path().join("sub/a b.part.meta"), "10 1000\n").unwrap();
        assert_eq!(part_len(d.path(), &it), 4);
        let changed = Item {
            mtime: 1001,
            ..it.clone()
        };
        assert_eq!(part_len(d.path(), &changed), 0);
    }
}
