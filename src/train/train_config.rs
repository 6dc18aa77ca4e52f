//! Reads the few keys `check` needs (save_steps, save_total_limit, max_steps, ...) from the
//! user's training config. A tolerant line reader rather than a YAML parser: training configs are
//! often templated, nested under a section or not quite valid YAML, and the keys are plain
//! scalars wherever they sit.

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
