//! The user's training config, read and edited in one place. Reading the few keys `check`, `up`
//! and `status` need (save_steps, save_total_limit, max_steps, resume_from_checkpoint, ...) is a
//! tolerant line reader rather than a YAML parser: training configs are often templated, nested
//! under a section or not quite valid YAML, and the keys are plain scalars wherever they sit.
//! Editing (`resume`, `up --fresh`) changes one line and is then checked by a real YAML parser, so
//! a file a strict loader would reject is never written.

use serde::Serialize;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TrainConfig {
    pub save_steps: Option<u64>,
    /// `save_steps` below 1 is a fraction of the total steps (Trainer semantics).
    pub save_steps_ratio: Option<f64>,
    pub save_total_limit: Option<u64>,
    pub max_steps: Option<u64>,
    pub num_train_epochs: Option<f64>,
    pub logging_steps: Option<u64>,
    pub output_dir: Option<String>,
    pub resume_from_checkpoint: Option<String>,
}

impl TrainConfig {
    /// save_steps in steps, resolving a fraction against `max_steps` as the Trainer does (ceil).
    pub fn effective_save_steps(&self, max_steps: Option<u64>) -> Option<u64> {
        self.save_steps.or_else(|| {
            let r = self.save_steps_ratio?;
            Some(((max_steps? as f64) * r).ceil().max(1.0) as u64)
        })
    }
}

/// `key: value` (YAML, any indent) or `"key": value,` (JSON); the first occurrence of a key wins.
/// `null`, `~`, empty values and `-1` (the Trainer's "unset") are unknown.
pub fn parse_train_config(text: &[u8]) -> TrainConfig {
    let text = String::from_utf8_lossy(text);
    let mut c = TrainConfig::default();
    for line in text.lines() {
        let Some((key, value)) = key_value(line) else { continue };
        let int = || {
            value.parse::<u64>().ok().or_else(|| {
                value
                    .parse::<f64>()
                    .ok()
                    .filter(|f| f.fract() == 0.0 && *f > 0.0)
                    .map(|f| f as u64)
            })
        };
        let text_value = || (!value.is_empty() && value != "null" && value != "~").then(|| value.to_string());
        match key {
            "save_steps" if c.save_steps.is_none() && c.save_steps_ratio.is_none() => match value.parse::<f64>() {
                Ok(f) if f > 0.0 && f < 1.0 => c.save_steps_ratio = Some(f),
                _ => c.save_steps = int().filter(|n| *n > 0),
            },
            "save_total_limit" if c.save_total_limit.is_none() => c.save_total_limit = int().filter(|n| *n > 0),
            "max_steps" if c.max_steps.is_none() => c.max_steps = int().filter(|n| *n > 0),
            "num_train_epochs" if c.num_train_epochs.is_none() => c.num_train_epochs = value.parse().ok(),
            "logging_steps" if c.logging_steps.is_none() => c.logging_steps = int().filter(|n| *n > 0),
            "output_dir" if c.output_dir.is_none() => c.output_dir = text_value(),
            "resume_from_checkpoint" if c.resume_from_checkpoint.is_none() => c.resume_from_checkpoint = text_value(),
            _ => {}
        }
    }
    c
}

/// What `resume_from_checkpoint` asks the Trainer to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResumeFrom {
    /// Unset, null or `false`: train from scratch.
    Nothing,
    /// `true`: the Trainer picks the last checkpoint in output_dir itself.
    Last,
    /// A checkpoint path (relative to the directory the trainer runs in, unless absolute).
    Path(String),
}

impl TrainConfig {
    pub fn resume_from(&self) -> ResumeFrom {
        match self.resume_from_checkpoint.as_deref().map(str::trim) {
            None | Some("") => ResumeFrom::Nothing,
            Some("false" | "False" | "FALSE") => ResumeFrom::Nothing,
            Some("true" | "True" | "TRUE") => ResumeFrom::Last,
            Some(v) => ResumeFrom::Path(v.to_string()),
        }
    }
}

fn key_value(line: &str) -> Option<(&str, &str)> {
    let t = line.trim_start().trim_start_matches("- ");
    if t.starts_with('#') {
        return None;
    }
    let (key, value) = t.split_once(':')?;
    let key = key.trim().trim_matches(|c| c == '"' || c == '\'');
    // Comments start with ` #` in YAML; a JSON line ends with `,`.
    let value = match value.find(" #") {
        Some(i) => &value[..i],
        None => value,
    };
    let value = value
        .trim()
        .trim_end_matches(',')
        .trim()
        .trim_matches(|c| c == '"' || c == '\'');
    Some((key, value))
}

// ---------------------------------------------------------------------------------------------
// The resume edit: one line of the training config, every other byte untouched, and checked by a
// real YAML parser before anything is written

/// The result of [`edit_resume_from_checkpoint`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumeEdit {
    /// The whole new file.
    pub text: String,
    /// 1-based number of the changed (or inserted) line in `text`.
    pub line: usize,
    /// The replaced line without its line ending; `None` when the line was inserted.
    pub old: Option<String>,
    /// The new line without its line ending.
    pub new: String,
}

impl ResumeEdit {
    /// The `--dry-run` preview: `- old` / `+ new` (just `+ new` for an insertion), lines as they are in the file.
    pub fn diff(&self) -> String {
        match &self.old {
            Some(old) => format!("- {old}\n+ {}\n", self.new),
            None => format!("+ {}\n", self.new),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResumeEditError {
    #[error("the training config has no top-level `training:` block")]
    NoTrainingBlock,
    #[error("`training:` on line {0} is not a block of `key: value` lines")]
    NotABlock(usize),
    #[error("resume_from_checkpoint is set twice in `training:` (lines {0} and {1})")]
    Duplicate(usize, usize),
    #[error("resume_from_checkpoint on line {0} spans several lines; set it by hand")]
    MultiLine(usize),
    /// The edited text, read back by serde_yaml_ng, is not the original with just that key set (or does not
    /// parse at all): nothing is written.
    #[error("refusing to write it: {0}; set resume_from_checkpoint by hand")]
    Unsafe(String),
}

const KEY: &str = "resume_from_checkpoint";

struct Line<'a> {
    /// Without the line ending.
    content: &'a str,
    /// `"\n"`, `"\r\n"` or `""` (last line without one).
    ending: &'a str,
}

fn split_lines(text: &str) -> Vec<Line<'_>> {
    text.split_inclusive('\n')
        .map(|l| {
            if let Some(c) = l.strip_suffix("\r\n") {
                Line {
                    content: c,
                    ending: "\r\n",
                }
            } else if let Some(c) = l.strip_suffix('\n') {
                Line {
                    content: c,
                    ending: "\n",
                }
            } else {
                Line { content: l, ending: "" }
            }
        })
        .collect()
}

fn indent_of(s: &str) -> usize {
    s.len() - s.trim_start_matches(' ').len()
}

fn is_blank_or_comment(s: &str) -> bool {
    let t = s.trim_start_matches([' ', '\t']);
    t.is_empty() || t.starts_with('#')
}

/// `rest` after a key: `:` then whitespace or end. Returns what follows the `:`.
fn after_colon(rest: &str) -> Option<&str> {
    let rest = rest.trim_start_matches(' ').strip_prefix(':')?;
    (rest.is_empty() || rest.starts_with([' ', '\t'])).then_some(rest)
}

/// The value part of a `key: value  # comment` line: (leading whitespace, value, trailing whitespace + comment).
/// `None` when the value continues on the next lines (block scalar, unclosed quote).
fn split_value(after: &str) -> Option<(&str, &str, &str)> {
    let ws_len = after.len() - after.trim_start_matches([' ', '\t']).len();
    let (ws, rest) = after.split_at(ws_len);
    let value_len = if rest.starts_with('\'') {
        let mut i = 1;
        let b = rest.as_bytes();
        loop {
            match b.get(i) {
                None => return None,
                Some(b'\'') if b.get(i + 1) == Some(&b'\'') => i += 2,
                Some(b'\'') => break i + 1,
                Some(_) => i += 1,
            }
        }
    } else if rest.starts_with('"') {
        let mut i = 1;
        let b = rest.as_bytes();
        loop {
            match b.get(i) {
                None => return None,
                Some(b'\\') => i += 2,
                Some(b'"') => break i + 1,
                Some(_) => i += 1,
            }
        }
    } else if rest.starts_with(['|', '>']) {
        return None;
    } else if rest.starts_with('#') {
        0
    } else {
        // A plain scalar ends where a comment (` #`) starts.
        let b = rest.as_bytes();
        let mut end = rest.len();
        for i in 1..b.len() {
            if b[i] == b'#' && (b[i - 1] == b' ' || b[i - 1] == b'\t') {
                end = i;
                break;
            }
        }
        rest[..end].trim_end_matches([' ', '\t']).len()
    };
    let (value, tail) = rest.split_at(value_len);
    Some((ws, value, tail))
}

/// What follows `resume_from_checkpoint:` when `trimmed` is that key, plain or quoted (`"..."`, `'...'`).
fn resume_key_rest(trimmed: &str) -> Option<&str> {
    [
        "resume_from_checkpoint",
        "\"resume_from_checkpoint\"",
        "'resume_from_checkpoint'",
    ]
    .iter()
    .find_map(|k| trimmed.strip_prefix(k).and_then(after_colon))
}

fn is_training_header(content: &str) -> Option<&str> {
    let content = content.strip_prefix('\u{feff}').unwrap_or(content);
    ["training", "\"training\"", "'training'"]
        .iter()
        .find_map(|k| content.strip_prefix(k).and_then(after_colon))
}

/// A block scalar indicator (`|`, `>-`, `|2` ...) ends this value: the following more-indented lines are text.
fn opens_block_scalar(after: &str) -> bool {
    let v = after.trim_start_matches([' ', '\t']);
    let v = v.split(" #").next().unwrap_or("").trim_end();
    v.starts_with(['|', '>']) && v[1..].chars().all(|c| matches!(c, '-' | '+' | '0'..='9'))
}

/// Render `path` as a YAML scalar that reads back as exactly that string: plain when that is unambiguous (no
/// number, bool, null, date or special character), else single-quoted, or double-quoted with escapes when it
/// holds control characters.
pub fn yaml_scalar(path: &str) -> String {
    let safe_chars = path
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-'));
    let first_ok = path.starts_with(|c: char| c.is_ascii_alphabetic() || matches!(c, '/' | '.' | '_'));
    let has_letter = path.chars().any(|c| c.is_ascii_alphabetic());
    let lower = path.to_ascii_lowercase();
    let special = matches!(
        lower.as_str(),
        "null" | "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n" | ".inf" | ".nan"
    ) || path.parse::<f64>().is_ok();
    if safe_chars && first_ok && has_letter && !special {
        return path.to_string();
    }
    // YAML folds line breaks inside single quotes, takes U+2028/2029/FEFF for breaks or a BOM, and
    // refuses the non-characters U+FFFE/FFFF outside its printable set unless escaped.
    let needs_escape =
        |c: char| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}');
    if path.chars().any(needs_escape) {
        let mut out = String::from("\"");
        for c in path.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                c if needs_escape(c) => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
        return out;
    }
    format!("'{}'", path.replace('\'', "''"))
}

/// Set `resume_from_checkpoint: PATH` in the top-level `training:` block, changing only that line: the existing
/// line's value is replaced (its indentation and trailing comment kept); when absent, a line is inserted with
/// the block's indentation after a commented-out `# resume_from_checkpoint:` line of the block if there is one,
/// else after the block's last line. Line endings (CRLF) follow the surrounding lines.
///
/// The result is then read back with serde_yaml_ng and refused ([`ResumeEditError::Unsafe`]) unless it is
/// the original document with exactly `training.resume_from_checkpoint` set to `path`: a second key (which
/// strict loaders reject), a changed neighbour, or text that is not YAML never reaches the disk.
pub fn edit_resume_from_checkpoint(yaml: &str, path: &str) -> Result<ResumeEdit, ResumeEditError> {
    let edit = edit_resume_scalar(yaml, &yaml_scalar(path))?;
    verify_edit(yaml, &edit.text, serde_yaml_ng::Value::String(path.to_string()))?;
    Ok(edit)
}

/// `up --fresh`: `resume_from_checkpoint: null`, the same one-line, verified edit.
pub fn edit_resume_to_null(yaml: &str) -> Result<ResumeEdit, ResumeEditError> {
    let edit = edit_resume_scalar(yaml, "null")?;
    verify_edit(yaml, &edit.text, serde_yaml_ng::Value::Null)?;
    Ok(edit)
}

/// The check of every edit: `new` parses, its `training:` mapping has `resume_from_checkpoint` equal to
/// `want` (a YAML mapping cannot hold the key twice: the parser refuses duplicates), and everything else
/// equals `old` as parsed.
pub fn verify_edit(old: &str, new: &str, want: serde_yaml_ng::Value) -> Result<(), ResumeEditError> {
    use serde_yaml_ng::Value;
    let unsafe_ = |m: String| ResumeEditError::Unsafe(m);
    let parsed: Value =
        serde_yaml_ng::from_str(new).map_err(|e| unsafe_(format!("the edited config is not valid YAML ({e})")))?;
    let key = Value::String(KEY.to_string());
    let Some(training) = parsed.get("training").and_then(Value::as_mapping) else {
        return Err(unsafe_("the edited config has no `training:` mapping".into()));
    };
    let count = training.keys().filter(|k| **k == key).count();
    if count != 1 || training.get(&key) != Some(&want) {
        return Err(unsafe_(format!(
            "the edited config does not have exactly one training.resume_from_checkpoint equal to {}",
            serde_yaml_ng::to_string(&want).unwrap_or_default().trim()
        )));
    }
    let mut expected: Value =
        serde_yaml_ng::from_str(old).map_err(|e| unsafe_(format!("the training config is not valid YAML ({e})")))?;
    // An empty `training:` block is null until the edit gives it its first key.
    if let Some(t) = expected.get_mut("training").filter(|t| t.is_null()) {
        *t = Value::Mapping(Default::default());
    }
    match expected.get_mut("training").and_then(Value::as_mapping_mut) {
        Some(m) => {
            m.insert(key, want);
        }
        None => return Err(unsafe_("the training config has no `training:` mapping".into())),
    }
    if expected != parsed {
        return Err(unsafe_("the edit would change more than resume_from_checkpoint".into()));
    }
    Ok(())
}

/// What the `training:` block holds, as far as the edit needs it.
struct Block {
    /// The indent of its keys (`None`: the block is empty).
    indent: Option<usize>,
    /// Its last line that is not blank or a comment (the header when there is none).
    last_content: usize,
    /// A commented-out `# resume_from_checkpoint: ...` line, where a new key goes.
    commented: Option<usize>,
    /// The `resume_from_checkpoint:` line.
    found: Option<usize>,
}

/// The block after the `training:` header at `header`: until the next non-comment line at column 0.
fn scan_training_block(lines: &[Line<'_>], header: usize) -> Result<Block, ResumeEditError> {
    let mut block = Block {
        indent: None,
        last_content: header,
        commented: None,
        found: None,
    };
    let mut in_scalar: Option<usize> = None;
    for (i, line) in lines.iter().enumerate().skip(header + 1) {
        let c = line.content;
        let blank = c.trim_matches([' ', '\t']).is_empty();
        let ind = indent_of(c);
        if let Some(si) = in_scalar {
            if blank || ind > si {
                if !blank {
                    block.last_content = i;
                }
                continue;
            }
            in_scalar = None;
        }
        if blank {
            continue;
        }
        let trimmed = c.trim_start_matches([' ', '\t']);
        if trimmed.starts_with('#') {
            let body = trimmed.trim_start_matches('#').trim_start_matches([' ', '\t']);
            if body.strip_prefix(KEY).and_then(after_colon).is_some() {
                block.commented = Some(i);
            }
            continue;
        }
        if ind == 0 {
            if trimmed.starts_with('-') && block.indent.is_none() {
                return Err(ResumeEditError::NotABlock(header + 1));
            }
            break;
        }
        let bi = *block.indent.get_or_insert(ind);
        block.last_content = i;
        if trimmed.starts_with("- ") || trimmed == "-" {
            if ind == bi {
                return Err(ResumeEditError::NotABlock(header + 1));
            }
        } else if let Some(colon) = trimmed.find(':') {
            let after = &trimmed[colon..];
            if ind == bi && resume_key_rest(trimmed).is_some() {
                if let Some(prev) = block.found {
                    return Err(ResumeEditError::Duplicate(prev + 1, i + 1));
                }
                block.found = Some(i);
            }
            if after_colon(after).is_some_and(opens_block_scalar) {
                in_scalar = Some(ind);
            }
        }
    }
    Ok(block)
}

/// The existing `resume_from_checkpoint:` line `at` with its value replaced by `scalar`, its comment kept.
fn replace_value(lines: &[Line<'_>], at: usize, scalar: &str) -> Result<ResumeEdit, ResumeEditError> {
    let c = lines[at].content;
    let key_end = c.find(KEY).map(|p| p + KEY.len()).unwrap_or(0);
    let colon = key_end + c[key_end..].find(':').unwrap_or(0) + 1;
    let (head, rest) = c.split_at(colon);
    let (ws, value, tail) = split_value(rest).ok_or(ResumeEditError::MultiLine(at + 1))?;
    // A continuation (a multi-line plain scalar or a nested block) would be left behind.
    let next = lines[at + 1..].iter().find(|l| !is_blank_or_comment(l.content));
    if next.is_some_and(|l| indent_of(l.content) > indent_of(c)) {
        return Err(ResumeEditError::MultiLine(at + 1));
    }
    let new = if value.is_empty() && tail.is_empty() {
        format!("{head} {scalar}")
    } else if value.is_empty() {
        format!("{head} {scalar}{ws}{tail}")
    } else {
        format!("{head}{ws}{scalar}{tail}")
    };
    let mut out = String::with_capacity(lines.iter().map(|l| l.content.len() + 2).sum::<usize>() + scalar.len());
    for (j, l) in lines.iter().enumerate() {
        out.push_str(if j == at { &new } else { l.content });
        out.push_str(l.ending);
    }
    Ok(ResumeEdit {
        text: out,
        line: at + 1,
        old: Some(c.to_string()),
        new,
    })
}

/// A new `resume_from_checkpoint: scalar` line after the commented-out one, else after the block's last line,
/// with the file's line ending.
fn insert_key(lines: &[Line<'_>], header: usize, block: &Block, scalar: &str) -> ResumeEdit {
    let indent = " ".repeat(block.indent.unwrap_or(2));
    let after_line = block.commented.unwrap_or(block.last_content);
    let new = format!("{indent}{KEY}: {scalar}");
    let eol = match lines[after_line].ending {
        "" => lines[header].ending,
        e => e,
    };
    let eol = if eol.is_empty() { "\n" } else { eol };
    let mut out = String::with_capacity(lines.iter().map(|l| l.content.len() + 2).sum::<usize>() + new.len() + 2);
    for (j, l) in lines.iter().enumerate() {
        out.push_str(l.content);
        if j == after_line {
            if l.ending.is_empty() {
                // The file had no final newline: keep it that way, after the new last line.
                out.push_str(eol);
                out.push_str(&new);
            } else {
                out.push_str(l.ending);
                out.push_str(&new);
                out.push_str(eol);
            }
        } else {
            out.push_str(l.ending);
        }
    }
    ResumeEdit {
        text: out,
        line: after_line + 2,
        old: None,
        new,
    }
}

/// The edit with `scalar` already rendered as YAML.
fn edit_resume_scalar(yaml: &str, scalar: &str) -> Result<ResumeEdit, ResumeEditError> {
    let lines = split_lines(yaml);
    let header = lines
        .iter()
        .position(|l| is_training_header(l.content).is_some())
        .ok_or(ResumeEditError::NoTrainingBlock)?;
    let after = is_training_header(lines[header].content).unwrap_or_default();
    if !is_blank_or_comment(after) {
        return Err(ResumeEditError::NotABlock(header + 1));
    }
    let block = scan_training_block(&lines, header)?;
    match block.found {
        Some(at) => replace_value(&lines, at, scalar),
        None => Ok(insert_key(&lines, header, &block, scalar)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn nested_yaml_with_comments_and_quotes() {
        let yaml = b"model: gpt2\ntraining:\n  output_dir: \"outputs\"\n  max_steps: 4500   # about 5 h\n  save_steps: 500\n  save_total_limit: 3\n  logging_steps: 10\n  num_train_epochs: 3\n  resume_from_checkpoint: null\n";
        let c = parse_train_config(yaml);
        assert_eq!(c.max_steps, Some(4500));
        assert_eq!(c.save_steps, Some(500));
        assert_eq!(c.save_total_limit, Some(3));
        assert_eq!(c.logging_steps, Some(10));
        assert_eq!(c.num_train_epochs, Some(3.0));
        assert_eq!(c.output_dir.as_deref(), Some("outputs"));
        assert_eq!(c.resume_from_checkpoint, None);
    }

    #[test]
    fn fractions_unset_values_and_json() {
        let c = parse_train_config(b"max_steps: -1\nsave_steps: 0.1\n# save_total_limit: 2\n");
        assert_eq!(c.max_steps, None);
        assert_eq!(c.save_steps, None);
        assert_eq!(c.effective_save_steps(Some(4500)), Some(450));
        assert_eq!(c.effective_save_steps(None), None);
        assert_eq!(c.save_total_limit, None, "a commented-out key is not set");
        let j = parse_train_config(b"{\n  \"save_steps\": 250,\n  \"max_steps\": 1000.0,\n  \"resume_from_checkpoint\": \"outputs/checkpoint-750\"\n}\n");
        assert_eq!((j.save_steps, j.max_steps), (Some(250), Some(1000)));
        assert_eq!(j.resume_from_checkpoint.as_deref(), Some("outputs/checkpoint-750"));
    }

    /// Regression (issue 11 §5): a quoted key was not recognised by the editor, which appended a second
    /// `resume_from_checkpoint` that strict YAML loaders reject.
    #[test]
    fn regression_a_quoted_key_is_replaced_in_place_not_duplicated() {
        for key in ["\"resume_from_checkpoint\"", "'resume_from_checkpoint'"] {
            let yaml = format!("training:\n  max_steps: 10\n  {key}: null  # set by rtrain\n");
            let e = edit_resume_from_checkpoint(&yaml, "outputs/checkpoint-5").unwrap();
            assert_eq!(
                e.text,
                format!("training:\n  max_steps: 10\n  {key}: outputs/checkpoint-5  # set by rtrain\n")
            );
            assert_eq!(e.line, 3);
        }
    }

    #[test]
    fn the_yaml_check_refuses_duplicates_other_changes_and_non_yaml() {
        use serde_yaml_ng::Value;
        let old = "training:\n  a: 1\n  resume_from_checkpoint: null\n";
        let want = || Value::String("c".into());
        let dup = "training:\n  a: 1\n  resume_from_checkpoint: null\n  \"resume_from_checkpoint\": c\n";
        assert!(matches!(verify_edit(old, dup, want()), Err(ResumeEditError::Unsafe(_))));
        let other = "training:\n  a: 2\n  resume_from_checkpoint: c\n";
        assert!(matches!(
            verify_edit(old, other, want()),
            Err(ResumeEditError::Unsafe(_))
        ));
        let wrong = "training:\n  a: 1\n  resume_from_checkpoint: d\n";
        assert!(matches!(
            verify_edit(old, wrong, want()),
            Err(ResumeEditError::Unsafe(_))
        ));
        let templated = "training:\n  a: [1, {{ a }\n  resume_from_checkpoint: null\n";
        assert!(
            edit_resume_from_checkpoint(templated, "c").is_err(),
            "not YAML: never written"
        );
        assert!(verify_edit(old, "training:\n  a: 1\n  resume_from_checkpoint: c\n", want()).is_ok());
        let e = edit_resume_to_null("training:\n  resume_from_checkpoint: outputs/checkpoint-1 # c\n").unwrap();
        assert_eq!(e.text, "training:\n  resume_from_checkpoint: null # c\n");
    }

    /// One `training:` document from generated parts: quoted keys, anchors and aliases, flow maps, comments,
    /// CRLF, the key present in several forms or absent.
    fn config_doc() -> impl Strategy<Value = (String, bool)> {
        // Distinct keys (a repeated key is not YAML), split between before and after the resume line.
        let entries = prop::sample::subsequence(
            vec![
                "max_steps: 10",
                "\"save_steps\": 5",
                "'logging_steps': 1  # often",
                "optim: {lr: 0.1, betas: [0.9, 0.99]}",
                "sched: &sched cosine",
                "hyper: *base",
                "# resume_from_checkpoint: outputs/checkpoint-9",
                "note: \"a: b # not a comment\"",
                "list: [1, 2]",
                "<<: *base",
            ],
            0..7,
        )
        .prop_shuffle();
        let key = prop_oneof![
            Just("resume_from_checkpoint"),
            Just("\"resume_from_checkpoint\""),
            Just("'resume_from_checkpoint'"),
        ];
        let value = prop_oneof![
            Just(""),
            Just(" null"),
            Just(" ~"),
            Just(" ''"),
            Just(" outputs/checkpoint-3"),
            Just(" \"outputs/check point\""),
            Just(" null   # set by rtrain"),
        ];
        (
            entries,
            0usize..8,
            prop::option::of((key, value)),
            prop::bool::ANY,
            prop::bool::ANY,
            prop_oneof![Just(2usize), Just(4)],
            prop::bool::ANY,
        )
            .prop_map(|(entries, split, resume, crlf, preamble, indent, quoted_header)| {
                let (before, after) = entries.split_at(split.min(entries.len()));
                let pad = " ".repeat(indent);
                let mut lines = vec![];
                if preamble {
                    lines.push("# a training config".to_string());
                    lines.push("model:".to_string());
                    lines.push("  name: \"x: y\"  # c".to_string());
                }
                // The anchor the aliases in `training:` point at.
                lines.push("base: &base {lr: 1, wd: 0}".to_string());
                lines.push(
                    if quoted_header {
                        "\"training\":"
                    } else {
                        "training:  # the block"
                    }
                    .to_string(),
                );
                lines.extend(before.iter().map(|e| format!("{pad}{e}")));
                let has = resume.is_some();
                if let Some((k, v)) = resume {
                    lines.push(format!("{pad}{k}:{v}"));
                }
                lines.extend(after.iter().map(|e| format!("{pad}{e}")));
                lines.push("data:".to_string());
                lines.push("  path: d".to_string());
                let eol = if crlf { "\r\n" } else { "\n" };
                (lines.join(eol) + eol, has)
            })
    }

    proptest! {
        /// Every edit either is refused or yields the original document, line for line, with exactly one
        /// resume_from_checkpoint (in `training:`) that a real YAML parser reads as the path; and a config
        /// whose key is on one line of its own is never refused.
        #[test]
        fn the_resume_edit_is_one_line_and_reads_back_as_the_path(
            (doc, has_key) in config_doc(),
            path in "[A-Za-z0-9_./ '\"#:-]{1,24}",
        ) {
            match edit_resume_from_checkpoint(&doc, &path) {
                Ok(e) => {
                    let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&e.text).unwrap();
                    prop_assert_eq!(
                        &v["training"]["resume_from_checkpoint"],
                        &serde_yaml_ng::Value::String(path.clone())
                    );
                    let keyed = |t: &str| {
                        t.lines()
                            .filter(|l| resume_key_rest(l.trim_start()).is_some() && l.starts_with(' '))
                            .count()
                    };
                    prop_assert_eq!(keyed(&e.text), 1);
                    let (old, new): (Vec<&str>, Vec<&str>) =
                        (doc.split_inclusive('\n').collect(), e.text.split_inclusive('\n').collect());
                    let changed = e.line - 1;
                    if has_key {
                        prop_assert_eq!(old.len(), new.len());
                        for (j, (a, b)) in old.iter().zip(&new).enumerate() {
                            if j != changed {
                                prop_assert_eq!(a, b);
                            }
                        }
                    } else {
                        prop_assert_eq!(old.len() + 1, new.len());
                        let mut rest = new.clone();
                        rest.remove(changed);
                        prop_assert_eq!(rest, old);
                    }
                }
                Err(err) => prop_assert!(false, "refused {:?}: {}", doc, err),
            }
        }
    }

    /// Regression: the property test of the resume edit drew U+FFFE once in a full run; YAML's
    /// printable set excludes it and U+FFFF, so unescaped they made the edited config unreadable.
    /// Every char, alone and among others, must read back as itself.
    #[test]
    fn regression_every_char_reads_back_through_yaml_scalar() {
        let mut bad = Vec::new();
        for c in (0u32..0x11_0000).filter_map(char::from_u32) {
            for path in [c.to_string(), format!("{c} a")] {
                let doc = format!("training:\n  resume_from_checkpoint: {}\n", yaml_scalar(&path));
                let back = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&doc)
                    .ok()
                    .and_then(|v| v["training"]["resume_from_checkpoint"].as_str().map(str::to_string));
                if back.as_deref() != Some(path.as_str()) {
                    bad.push(path);
                }
            }
        }
        assert!(
            bad.is_empty(),
            "{} paths do not read back, e.g. {:?}",
            bad.len(),
            &bad[..bad.len().min(10)]
        );
    }
}
