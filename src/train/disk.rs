//! Parses `df -Pk DIR`: the free space `check` compares the checkpoint projection against and
//! `status` shows. POSIX output keeps one line per file system, in 1024-byte blocks.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiskUsage {
    pub total_bytes: u64,
    pub used_bytes: u64,
    /// Available to an unprivileged user (root's reserve excluded), which is what a trainer gets.
    pub free_bytes: u64,
    pub mount: Option<String>,
}

/// The last file-system line of `df -Pk` output. Device names and mount points may contain
/// spaces, so the numbers are found as the three integers just before the `NN%` column.
pub fn parse_df(output: &[u8]) -> Option<DiskUsage> {
    let text = String::from_utf8_lossy(output);
    text.lines().rev().find_map(parse_line)
}

fn parse_line(line: &str) -> Option<DiskUsage> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let num = |s: &str| -> Option<u64> { s.parse().ok() };
    for i in 3..words.len() {
        let Some(pct) = words[i].strip_suffix('%') else {
            continue;
        };
        if !(pct == "-" || pct.parse::<u64>().is_ok()) {
            continue;
        }
        let (Some(total), Some(used), Some(avail)) = (num(words[i - 3]), num(words[i - 2]), num(words[i - 1])) else {
            continue;
        };
        // The mount point is the rest of the line after the percentage column.
        let after = line
            .find(words[i])
            .map(|at| line[at + words[i].len()..].trim())
            .filter(|m| !m.is_empty());
        return Some(DiskUsage {
            total_bytes: total.saturating_mul(1024),
            used_bytes: used.saturating_mul(1024),
            free_bytes: avail.saturating_mul(1024),
            mount: after.map(str::to_string),
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::fixtures;

    #[test]
    fn posix_df_with_a_mount_point_containing_spaces() {
        let d = parse_df(&fixtures::own("df/two-lines.txt")).unwrap();
        assert_eq!(d.total_bytes, 102_687_672 * 1024);
        assert_eq!(d.used_bytes, 54_378_912 * 1024);
        assert_eq!(d.free_bytes, 48_292_376 * 1024);
        assert_eq!(d.mount.as_deref(), Some("/home/u/my data"));
    }

    #[test]
    fn header_only_or_garbage_is_unknown() {
        assert_eq!(
            parse_df(b"Filesystem     1024-blocks      Used Available Capacity Mounted on\n"),
            None
        );
        assert_eq!(parse_df(b"df: /nope: No such file or directory\n"), None);
        assert_eq!(parse_df(b""), None);
    }

    #[test]
    fn device_names_with_spaces() {
        let d = parse_df(
            b"Filesystem 1024-blocks Used Available Capacity Mounted on\nmy nas:/vol 1000 400 600 40% /mnt/nas\n",
        )
        .unwrap();
        assert_eq!((d.total_bytes, d.free_bytes), (1000 * 1024, 600 * 1024));
    }
}
