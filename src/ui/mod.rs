//! What the user sees: error lines, prompts, tables, progress and JSON output.

pub mod alert;
pub mod dashboard;
pub mod prompt;

/// One clear line for an error; `-v` adds the chain of causes.
pub fn report_error(e: &anyhow::Error, verbose: u8) {
    eprintln!("rtrain: {e}");
    if verbose > 0 {
        for cause in e.chain().skip(1) {
            eprintln!("  caused by: {cause}");
        }
    }
}

/// A left-aligned text table with a header row, columns as wide as their widest cell.
pub fn table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == N {
                s.push_str(cell);
            } else {
                s.push_str(cell);
                s.push_str(&" ".repeat(w - cell.chars().count() + 2));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out += &line(row.iter().map(|c| c.as_str()).collect());
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn table_aligns_columns_by_characters_not_bytes() {
        let t = super::table(
            &["A", "BB"],
            &[
                ["ü".to_string(), "x".to_string()],
                ["long".to_string(), "y".to_string()],
            ],
        );
        assert_eq!(t, "A     BB\nü     x\nlong  y\n");
    }
}
