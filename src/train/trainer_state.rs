//! Reads the Hugging Face Trainer's `trainer_state.json`, the one file that records the run's
//! effective schedule (save/log steps, max_steps) and its loss history, from whole or from a capped
//! head and tail when the file is too large to send on every `status`.

use serde::Serialize;
use serde_json::{Map, Value};

#[derive(Debug, thiserror::Error)]
pub enum TrainerStateError {
    #[error("trainer_state.json is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("trainer_state.json is not a JSON object")]
    NotObject,
}

/// The fields rtrain uses; each is `None` when absent, `null` or not meaningful.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TrainerState {
    pub global_step: Option<u64>,
    pub max_steps: Option<u64>,
    pub epoch: Option<f64>,
    pub num_train_epochs: Option<f64>,
    pub save_steps: Option<u64>,
    pub logging_steps: Option<u64>,
    pub eval_steps: Option<u64>,
    /// Not written by the Trainer itself (it lives in training_args.bin), read when present.
    pub save_total_limit: Option<u64>,
    pub train_batch_size: Option<u64>,
    pub best_model_checkpoint: Option<String>,
    pub best_global_step: Option<u64>,
    pub best_metric: Option<f64>,
    /// The newest training `loss` in `log_history`, and its step.
    pub last_loss: Option<f64>,
    pub last_loss_step: Option<u64>,
    pub last_eval_loss: Option<f64>,
    /// Present only once training finished (the final summary entry).
    pub train_runtime: Option<f64>,
    /// The loss curve `log_history` records (whole files only: a capped head and tail has no
    /// middle), oldest first.
    pub history: Vec<HistoryPoint>,
}

/// One logged point of the loss curve: a training log entry or an evaluation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct HistoryPoint {
    pub step: Option<u64>,
    pub loss: Option<f64>,
    pub eval_loss: Option<f64>,
    pub learning_rate: Option<f64>,
}

impl HistoryPoint {
    /// A point from one dict of logged numbers, when it holds a loss at all.
    pub fn from_logged(step: Option<u64>, get: impl Fn(&str) -> Option<f64>) -> Option<HistoryPoint> {
        let p = HistoryPoint {
            step,
            loss: get("loss"),
            eval_loss: get("eval_loss"),
            learning_rate: get("learning_rate"),
        };
        (p.loss.is_some() || p.eval_loss.is_some()).then_some(p)
    }
}

/// A number, also when Python wrote it as a string or as `NaN`/`Infinity` (made strings below).
fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A count of steps: `40`, or `40.0` as newer versions write; fractions and negatives are not.
fn as_steps(v: &Value) -> Option<u64> {
    let f = as_f64(v)?;
    (f.is_finite() && f >= 0.0 && f.fract() == 0.0 && f < u64::MAX as f64).then_some(f as u64)
}

fn from_object(obj: &Map<String, Value>) -> TrainerState {
    let f = |k: &str| obj.get(k).and_then(as_f64);
    let n = |k: &str| obj.get(k).and_then(as_steps);
    let mut st = TrainerState {
        global_step: n("global_step"),
        // -1 means "by epochs" in TrainingArguments; the state then holds the computed count.
        max_steps: n("max_steps").filter(|m| *m > 0),
        epoch: f("epoch"),
        num_train_epochs: f("num_train_epochs"),
        save_steps: n("save_steps").filter(|s| *s > 0),
        logging_steps: n("logging_steps").filter(|s| *s > 0),
        eval_steps: n("eval_steps").filter(|s| *s > 0),
        save_total_limit: n("save_total_limit").filter(|s| *s > 0),
        train_batch_size: n("train_batch_size"),
        best_model_checkpoint: obj
            .get("best_model_checkpoint")
            .and_then(Value::as_str)
            .map(str::to_string),
        best_global_step: n("best_global_step"),
        best_metric: f("best_metric"),
        ..TrainerState::default()
    };
    if let Some(history) = obj.get("log_history").and_then(Value::as_array) {
        st.history = history
            .iter()
            .filter_map(Value::as_object)
            .filter_map(|e| HistoryPoint::from_logged(e.get("step").and_then(as_steps), |k| e.get(k).and_then(as_f64)))
            .collect();
        for entry in history.iter().rev() {
            let Some(e) = entry.as_object() else { continue };
            if st.last_loss.is_none() {
                if let Some(loss) = e.get("loss").and_then(as_f64) {
                    st.last_loss = Some(loss);
                    st.last_loss_step = e.get("step").and_then(as_steps);
                }
            }
            if st.last_eval_loss.is_none() {
                st.last_eval_loss = e.get("eval_loss").and_then(as_f64);
            }
            if st.train_runtime.is_none() {
                st.train_runtime = e.get("train_runtime").and_then(as_f64);
            }
        }
    }
    st
}

/// Python's json writes `NaN`, `Infinity` and `-Infinity` (a diverged loss), which are not JSON.
/// They only ever appear as values, after `": "`, so quoting them there is safe and keeps them.
fn quote_python_specials(text: &str) -> String {
    text.replace(": NaN", ": \"NaN\"")
        .replace(": -Infinity", ": \"-inf\"")
        .replace(": Infinity", ": \"inf\"")
}

/// Parses a whole trainer_state.json.
pub fn parse_trainer_state(json: &[u8]) -> Result<TrainerState, TrainerStateError> {
    let value: Value = match serde_json::from_slice(json) {
        Ok(v) => v,
        Err(e) => {
            let fixed = quote_python_specials(&String::from_utf8_lossy(json));
            serde_json::from_str(&fixed).map_err(|_| e)?
        }
    };
    value.as_object().map(from_object).ok_or(TrainerStateError::NotObject)
}

/// Best effort from a head and a tail of a file too large to send whole (or one cut mid-write).
/// The Trainer writes it with `indent=2, sort_keys=True`, so top-level scalars are the lines
/// indented by exactly two spaces: `global_step` and friends sort before `log_history` (in the
/// head), `max_steps` and `save_steps` after it (in the tail); the newest loss is the last
/// `"loss":` line of the tail.
pub fn parse_trainer_state_partial(head: &[u8], tail: &[u8]) -> TrainerState {
    let mut top = Map::new();
    let mut last_loss: Option<(Value, Option<Value>)> = None;
    for part in [head, tail] {
        let text = quote_python_specials(&String::from_utf8_lossy(part));
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let Some((key, value)) = key_value(line) else { continue };
            let indent = line.len() - line.trim_start().len();
            if indent == 2 {
                top.insert(key.to_string(), value);
            } else if key == "loss" {
                let step = lines[i + 1..]
                    .iter()
                    .take_while(|l| !l.trim_start().starts_with('}'))
                    .find_map(|l| key_value(l).filter(|(k, _)| *k == "step").map(|(_, v)| v));
                last_loss = Some((value, step));
            }
        }
    }
    let mut st = from_object(&top);
    if let Some((loss, step)) = last_loss {
        st.last_loss = as_f64(&loss);
        st.last_loss_step = step.as_ref().and_then(as_steps);
    }
    st
}

/// `  "key": scalar,` → (key, value); containers and malformed lines are skipped.
fn key_value(line: &str) -> Option<(&str, Value)> {
    let t = line.trim().strip_prefix('"')?;
    let (key, rest) = t.split_once("\":")?;
    let raw = rest.trim().trim_end_matches(',').trim();
    if raw.starts_with(['{', '[']) {
        return None;
    }
    serde_json::from_str(raw).ok().map(|v| (key, v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::fixtures;

    #[test]
    fn real_trainer_state_from_transformers_5() {
        let st = parse_trainer_state(&fixtures::hf("trainer_state.json")).unwrap();
        assert_eq!(st.global_step, Some(120));
        assert_eq!(st.max_steps, Some(120));
        assert_eq!(st.save_steps, Some(40));
        assert_eq!(st.logging_steps, Some(10));
        assert_eq!(st.eval_steps, Some(500));
        assert_eq!(st.epoch, Some(0.234375));
        assert_eq!(st.train_batch_size, Some(8));
        assert_eq!(st.save_total_limit, None, "the Trainer does not write it");
        assert_eq!(st.best_model_checkpoint, None);
        assert_eq!(st.last_loss, Some(5.375542449951172));
        assert_eq!(st.last_loss_step, Some(120));
        assert_eq!(st.last_eval_loss, None);
        assert_eq!(st.train_runtime, None, "checkpoint copies have no final entry");
    }

    #[test]
    fn float_steps_nan_and_best_checkpoint() {
        let json = br#"{"global_step": 1500, "max_steps": -1, "save_steps": 500.0, "logging_steps": 1.0,
            "eval_steps": null, "save_total_limit": 3, "best_model_checkpoint": "outputs/checkpoint-1000",
            "best_global_step": 1000, "best_metric": 1.93,
            "log_history": [{"loss": 2.0, "step": 1490}, {"eval_loss": 1.98, "step": 1500},
                            {"grad_norm": NaN, "loss": NaN, "step": 1500}]}"#;
        let st = parse_trainer_state(json).unwrap();
        assert_eq!(
            (st.global_step, st.max_steps, st.save_steps, st.logging_steps),
            (Some(1500), None, Some(500), Some(1))
        );
        assert_eq!((st.eval_steps, st.save_total_limit), (None, Some(3)));
        assert_eq!(st.best_model_checkpoint.as_deref(), Some("outputs/checkpoint-1000"));
        assert_eq!(st.best_global_step, Some(1000));
        assert!(
            st.last_loss.unwrap().is_nan(),
            "a diverged loss is a fact to show, not a parse error"
        );
        assert_eq!(st.last_eval_loss, Some(1.98));
        assert_eq!(parse_trainer_state(br#"{"save_steps": 0.1}"#).unwrap().save_steps, None);
    }

    #[test]
    fn invalid_json_is_an_error() {
        assert!(matches!(
            parse_trainer_state(b"{\"global_step\": 1"),
            Err(TrainerStateError::Json(_))
        ));
        assert!(matches!(parse_trainer_state(b"[1]"), Err(TrainerStateError::NotObject)));
    }

    #[test]
    fn head_and_tail_of_a_large_file_give_the_same_facts() {
        let full = fixtures::hf("trainer_state.json");
        let whole = parse_trainer_state(&full).unwrap();
        let (head, tail) = (&full[..700], &full[full.len() - 1200..]);
        let st = parse_trainer_state_partial(head, tail);
        assert_eq!(st.global_step, whole.global_step);
        assert_eq!(st.max_steps, whole.max_steps);
        assert_eq!(st.save_steps, whole.save_steps);
        assert_eq!(st.logging_steps, whole.logging_steps);
        assert_eq!(st.epoch, whole.epoch);
        assert_eq!(st.last_loss, whole.last_loss);
        assert_eq!(st.last_loss_step, Some(120));
    }

    #[test]
    fn a_file_cut_mid_write_still_gives_what_it_holds() {
        let full = fixtures::hf("trainer_state.json");
        let cut = &full[..full.len() / 2];
        assert!(parse_trainer_state(cut).is_err());
        let st = parse_trainer_state_partial(cut, b"");
        assert_eq!(st.global_step, Some(120));
        assert_eq!(st.max_steps, None);
        assert!(st.last_loss.is_some());
    }
}
