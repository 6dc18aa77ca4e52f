//! `rtrain push` and `up --sync`: send the local project to the workdir, only what differs. The
//! box's files (path, size, mtime) come in one exec, then one tar stream of what changed goes to
//! the box's own `tar`; `.gitignore`/`.ignore` (the `ignore` crate) and `push.exclude` decide what
//! is part of the project, and also protect ignored files on the box from `--delete`.

use super::{probe, CommandError, Ctx};
use crate::cli::PushArgs;
use crate::config::Target;
use crate::remote::run::{sh_command, RunState};
use crate::remote::transfer::{self, SourceKind};
use crate::ssh::Session;
use crate::train::human::fmt_bytes;
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use std::collections::{BTreeMap, HashSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

const SCRIPT_TIMEOUT: Duration = Duration::from_secs(600);

/// What decides, for a path relative to the project, whether it is part of it.
struct Rules {
    root: PathBuf,
    /// `push.exclude` from the config, then every `.gitignore`/`.ignore` met, by directory.
    matchers: Vec<(PathBuf, Gitignore)>,
}

impl Rules {
    fn new(root: &Path, excludes: &[String]) -> anyhow::Result<Rules> {
        let mut b = GitignoreBuilder::new(root);
        for pat in excludes {
            b.add_line(None, pat)
                .map_err(|e| CommandError::Usage(format!("push.exclude {pat:?}: {e}")))?;
        }
        let config = b.build()?;
        Ok(Rules {
            root: root.to_path_buf(),
            matchers: vec![(root.to_path_buf(), config)],
        })
    }

    fn add_dir(&mut self, dir: &Path) {
        for name in [".gitignore", ".ignore"] {
            let f = dir.join(name);
            if f.is_file() {
                let mut b = GitignoreBuilder::new(dir);
                if b.add(&f).is_none() {
                    if let Ok(g) = b.build() {
                        self.matchers.push((dir.to_path_buf(), g));
                    }
                }
            }
        }
    }

    /// A path the rules leave out (itself or a parent directory matched).
    fn ignored(&self, rel: &str, is_dir: bool) -> bool {
        let full = self.root.join(rel);
        self.matchers
            .iter()
            .any(|(dir, g)| full.starts_with(dir) && g.matched_path_or_any_parents(&full, is_dir).is_ignore())
    }
}

struct LocalFile {
    rel: String,
    size: u64,
    mtime: i64,
    mode: u32,
}

/// The project as it is here: every regular file the rules keep, never `.git/` unless asked and
/// never `.rtrain/` (the box's run records live there).
fn walk(root: &Path, excludes: &[String], include_git: bool) -> anyhow::Result<(Vec<LocalFile>, Rules)> {
    let mut rules = Rules::new(root, excludes)?;
    let config_rules = Arc::new(Rules::new(root, excludes)?);
    let walker = ignore::WalkBuilder::new(root)
        .hidden(false)
        .parents(false)
        .git_global(false)
        .git_exclude(false)
        .require_git(false)
        .follow_links(false)
        .filter_entry({
            let root = root.to_path_buf();
            let rules = config_rules.clone();
            move |e| {
                let rel = e.path().strip_prefix(&root).unwrap_or(e.path());
                if rel.as_os_str().is_empty() {
                    return true;
                }
                let is_dir = e.file_type().is_some_and(|t| t.is_dir());
                if is_dir && (rel == Path::new(".rtrain") || (!include_git && rel == Path::new(".git"))) {
                    return false;
                }
                !rel.to_str().is_some_and(|r| rules.ignored(r, is_dir))
            }
        })
        .build();
    let mut files = Vec::new();
    for entry in walker {
        let e = entry?;
        let Some(t) = e.file_type() else { continue };
        if t.is_dir() {
            rules.add_dir(e.path());
            continue;
        }
        if !t.is_file() {
            continue;
        }
        let rel = e.path().strip_prefix(root).unwrap_or(e.path());
        let rel = rel
            .to_str()
            .ok_or_else(|| anyhow::anyhow!("{} is not a UTF-8 name; rename it or exclude it", rel.display()))?
            .to_string();
        let meta = e.metadata()?;
        let mtime = meta
            .modified()
            .ok()
            .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs() as i64);
        files.push(LocalFile {
            rel,
            size: meta.len(),
            mtime,
            mode: meta.permissions().mode() & 0o7777,
        });
    }
    files.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok((files, rules))
}

// ------------------------------------------------------------------------------------------------
// A minimal tar writer: ustar headers, with a pax header for what ustar cannot hold (long names,
// sizes of 8 GiB and more). GNU tar, bsdtar and busybox read both.

fn octal(field: &mut [u8], value: u64) {
    let width = field.len() - 1;
    let s = format!("{value:0width$o}");
    let s = s.as_bytes();
    let s = &s[s.len().saturating_sub(width)..];
    field[..width].copy_from_slice(s);
    field[width] = 0;
}

fn header(name: &[u8], size: u64, mtime: i64, mode: u32, kind: u8) -> [u8; 512] {
    let mut h = [0u8; 512];
    let n = name.len().min(100);
    h[..n].copy_from_slice(&name[..n]);
    octal(&mut h[100..108], u64::from(mode));
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], size.min(0o77777777777));
    octal(&mut h[136..148], mtime.max(0) as u64);
    h[156] = kind;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u64 = h.iter().map(|b| u64::from(*b)).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    h
}

fn pad(out: &mut Vec<u8>) {
    let rem = out.len() % 512;
    if rem != 0 {
        out.resize(out.len() + 512 - rem, 0);
    }
}

/// One pax record, `LEN key=value\n`, where LEN counts the whole record, itself included.
fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let body = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    let mut r = format!("{len} {key}=").into_bytes();
    r.extend_from_slice(value);
    r.push(b'\n');
    r
}

fn append_file(out: &mut Vec<u8>, rel: &str, data: &[u8], mtime: i64, mode: u32) {
    let name = rel.as_bytes();
    let size = data.len() as u64;
    if name.len() > 100 || size > 0o77777777777 {
        let mut pax = pax_record("path", name);
        if size > 0o77777777777 {
            pax.extend(pax_record("size", size.to_string().as_bytes()));
        }
        out.extend_from_slice(&header(b"././@PaxHeader", pax.len() as u64, mtime, 0o644, b'x'));
        out.extend_from_slice(&pax);
        pad(out);
    }
    out.extend_from_slice(&header(name, size, mtime, mode, b'0'));
    out.extend_from_slice(data);
    pad(out);
}

// ------------------------------------------------------------------------------------------------

#[derive(serde::Serialize)]
struct PushJson {
    host: String,
    dir: String,
    workdir: String,
    /// Files of the project (after the ignore rules).
    files: usize,
    sent_files: usize,
    sent_bytes: u64,
    /// What travelled: the tar stream.
    stream_bytes: u64,
    deleted: Vec<String>,
    dry_run: bool,
    seconds: f64,
}

struct Plan {
    send: Vec<usize>,
    delete: Vec<String>,
}

fn plan(local: &[LocalFile], remote: &[transfer::RemoteFile], rules: &Rules, delete: bool) -> Plan {
    let theirs: BTreeMap<&[u8], (u64, i64)> = remote.iter().map(|f| (&f.rel[..], (f.size, f.mtime))).collect();
    let send = local
        .iter()
        .enumerate()
        .filter(|(_, f)| theirs.get(f.rel.as_bytes()) != Some(&(f.size, f.mtime)))
        .map(|(i, _)| i)
        .collect();
    let mine: HashSet<&[u8]> = local.iter().map(|f| f.rel.as_bytes()).collect();
    let delete = if delete {
        remote
            .iter()
            .filter(|f| !mine.contains(&f.rel[..]))
            .filter_map(|f| String::from_utf8(f.rel.clone()).ok())
            // Ignored here means not part of the project: checkpoints, logs, data stay.
            .filter(|rel| !rules.ignored(rel, false))
            .collect()
    } else {
        Vec::new()
    };
    Plan { send, delete }
}

struct PushOptions {
    delete: bool,
    force: bool,
    git: bool,
    dry_run: bool,
    json: bool,
}

async fn push_on(
    ctx: &Ctx,
    target: &Target,
    session: &Session,
    dir: &Path,
    o: &PushOptions,
) -> anyhow::Result<PushJson> {
    let started = Instant::now();
    let root = std::fs::canonicalize(dir).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", dir.display()))?;
    if !root.is_dir() {
        return Err(CommandError::Usage(format!("{} is not a directory", dir.display())).into());
    }
    let (local, rules) = walk(&root, &ctx.config.push.exclude, o.git)?;
    let workdir = &target.settings.workdir;

    if !o.force {
        let st = probe::probe_status(session, target).await?;
        if let Some(run) = st
            .run
            .filter(|r| matches!(r.state, RunState::Pending | RunState::Running))
        {
            anyhow::bail!(
                "a run is active in {workdir} on {} ({}, pid {}): pushing could change its code under it; stop it first (rtrain stop {}) or use --force",
                target.name,
                run.id,
                run.pid.map(|p| p.to_string()).unwrap_or("?".into()),
                target.name
            );
        }
    }
    let out = session
        .exec(
            &sh_command(&transfer::push_manifest_script(workdir, o.git)),
            None,
            Some(SCRIPT_TIMEOUT),
        )
        .await?;
    let manifest = transfer::parse_manifest(&out.stdout)
        .map_err(|e| anyhow::anyhow!("the file list of {workdir} on {}: {e}", target.name))?;
    let remote = if manifest.kind == SourceKind::Dir {
        manifest.files
    } else {
        Vec::new()
    };
    let p = plan(&local, &remote, &rules, o.delete);

    if !p.delete.is_empty() && !o.json && !ctx.quiet {
        let verb = if o.dry_run { "would delete" } else { "deleting" };
        eprintln!(
            "rtrain: {verb} on {} ({} file{}):",
            target.name,
            p.delete.len(),
            if p.delete.len() == 1 { "" } else { "s" }
        );
        for d in &p.delete {
            eprintln!("  {d:?}");
        }
    }
    if o.dry_run && !o.json && !ctx.quiet {
        for &i in &p.send {
            println!("would send {:?} ({})", local[i].rel, fmt_bytes(local[i].size));
        }
    }
    let mut tar = Vec::new();
    let mut sent_bytes = 0;
    if !o.dry_run && !p.send.is_empty() {
        for &i in &p.send {
            let f = &local[i];
            let data = std::fs::read(root.join(&f.rel)).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", f.rel))?;
            sent_bytes += data.len() as u64;
            append_file(&mut tar, &f.rel, &data, f.mtime, f.mode);
        }
        tar.resize(tar.len() + 1024, 0);
    }
    let stream_bytes = tar.len() as u64;
    if !o.dry_run && (!p.send.is_empty() || !p.delete.is_empty()) {
        let script = transfer::unpack_script(workdir, &p.delete, !p.send.is_empty());
        let out = session
            .exec(&sh_command(&script), Some(tar), Some(SCRIPT_TIMEOUT))
            .await?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !text.contains("@rtrain result=ok") {
            anyhow::bail!(
                "unpacking on {} failed ({}): {}",
                target.name,
                text.trim(),
                String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("").trim()
            );
        }
    }
    Ok(PushJson {
        host: target.name.clone(),
        dir: root.display().to_string(),
        workdir: workdir.clone(),
        files: local.len(),
        sent_files: if o.dry_run { 0 } else { p.send.len() },
        sent_bytes,
        stream_bytes,
        deleted: if o.dry_run { Vec::new() } else { p.delete },
        dry_run: o.dry_run,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn report(ctx: &Ctx, j: &PushJson, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(j)?);
    } else if !ctx.quiet && !j.dry_run {
        let deleted = if j.deleted.is_empty() {
            String::new()
        } else {
            format!(", {} deleted", j.deleted.len())
        };
        println!(
            "pushed {} to {}:{}: {} of {} files sent ({}){deleted} in {:.1} s",
            j.dir,
            j.host,
            j.workdir,
            j.sent_files,
            j.files,
            fmt_bytes(j.sent_bytes),
            j.seconds
        );
    }
    Ok(())
}

pub async fn run(ctx: &Ctx, args: PushArgs) -> anyhow::Result<u8> {
    let target = ctx.target(&args.host)?;
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from("."));
    let session = ctx.connect(&target).await?;
    let o = PushOptions {
        delete: args.delete,
        force: args.force,
        git: args.git,
        dry_run: args.dry_run,
        json: args.json,
    };
    let j = tokio::select! {
        r = push_on(ctx, &target, &session, &dir, &o) => r?,
        _ = ctx.shutdown.cancelled() => return Err(CommandError::Interrupted.into()),
    };
    session.close().await;
    report(ctx, &j, o.json)?;
    Ok(0)
}

/// `up --sync`: push the current directory (refused while a run is active), then `up` goes on.
pub async fn sync(ctx: &Ctx, host: &str) -> anyhow::Result<()> {
    let target = ctx.target(host)?;
    let session = ctx.connect(&target).await?;
    let o = PushOptions {
        delete: false,
        force: false,
        git: false,
        dry_run: false,
        json: false,
    };
    let j = tokio::select! {
        r = push_on(ctx, &target, &session, Path::new("."), &o) => r?,
        _ = ctx.shutdown.cancelled() => return Err(CommandError::Interrupted.into()),
    };
    session.close().await;
    report(ctx, &j, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn the_tar_stream_unpacks_with_the_systems_tar_long_and_odd_names_included() {
        let d = tempfile::tempdir().unwrap();
        let long = format!("{}/{}.py", "d".repeat(90), "n".repeat(60));
        let odd = "it's \"odd\"\nname $(x).txt";
        let mut t = Vec::new();
        append_file(&mut t, "a.txt", b"hello", 1_600_000_000, 0o644);
        append_file(&mut t, &long, b"long", 1_600_000_001, 0o755);
        append_file(&mut t, odd, b"", 1_600_000_002, 0o600);
        t.resize(t.len() + 1024, 0);
        std::fs::write(d.path().join("x.tar"), &t).unwrap();
        let out = Command::new("tar")
            .args(["-x", "-o", "-f", "x.tar"])
            .current_dir(d.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(std::fs::read(d.path().join("a.txt")).unwrap(), b"hello");
        let lm = std::fs::metadata(d.path().join(&long)).unwrap();
        assert_eq!(std::fs::read(d.path().join(&long)).unwrap(), b"long");
        assert_eq!(lm.permissions().mode() & 0o777, 0o755);
        assert_eq!(
            lm.modified().unwrap().duration_since(UNIX_EPOCH).unwrap().as_secs(),
            1_600_000_001
        );
        assert!(d.path().join(odd).exists());
    }

    #[test]
    fn pax_record_length_counts_itself() {
        let r = pax_record("path", b"abc");
        assert_eq!(r, b"12 path=abc\n");
        let v = vec![b'x'; 95];
        let r = pax_record("path", &v);
        assert_eq!(r.len().to_string(), String::from_utf8_lossy(&r[..3]));
    }

    #[test]
    fn walk_follows_gitignore_and_push_exclude_and_skips_git() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        for (f, body) in [
            (".gitignore", "*.log\ndata/\n"),
            ("src/.gitignore", "gen_*\n"),
            ("src/main.py", "print(1)\n"),
            ("src/gen_x.py", ""),
            ("run.log", ""),
            ("data/big.bin", ""),
            (".git/config", ""),
            ("secrets.txt", ""),
            (".env.example", ""),
        ] {
            std::fs::create_dir_all(p.join(f).parent().unwrap()).unwrap();
            std::fs::write(p.join(f), body).unwrap();
        }
        let (files, rules) = walk(p, &["secrets.txt".into()], false).unwrap();
        let names: Vec<&str> = files.iter().map(|f| f.rel.as_str()).collect();
        assert_eq!(names, [".env.example", ".gitignore", "src/.gitignore", "src/main.py"]);
        assert!(rules.ignored("outputs.log", false) && rules.ignored("data/x/y", false));
        assert!(rules.ignored("src/gen_y.py", false) && !rules.ignored("src/keep.py", false));
        let (files, _) = walk(p, &[], true).unwrap();
        assert!(files.iter().any(|f| f.rel == ".git/config") && files.iter().any(|f| f.rel == "secrets.txt"));
    }
}
