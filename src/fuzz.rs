//! Fuzz-style property tests: arbitrary and half-valid bytes into every parser that reads what a box
//! (or a config file a user may have mangled) sends: the probe's sections and checkpoint listing,
//! known_hosts lines and host matching, ssh_config lines and argument splitting, tqdm and dict log
//! lines, trainer_state.json whole and cut, the run scripts' `@rtrain` lines, and the training
//! config's resume edit. None may panic; where there is an invariant, it is checked.
//!
//! These stand in for cargo-fuzz targets (issue 17 asks for libFuzzer; that needs a nightly
//! compiler and sanitizer runtimes this project's CI does not have, see the README's "Fuzzing").
//! `scripts/fuzz.sh SECONDS` runs them with many more cases, bounded in time; the default case
//! count keeps `cargo test` quick.

use proptest::prelude::*;

/// Bytes that are mostly structure: the characters the parsers split on, plus anything at all.
fn noisy_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        prop_oneof![
            4 => any::<u8>(),
            1 => Just(b'\n'),
            1 => Just(b'\r'),
            1 => Just(0u8),
            1 => Just(b'='),
            1 => Just(b' '),
            1 => Just(b'\t'),
            1 => Just(b'|'),
            1 => Just(b','),
            1 => Just(b'{'),
            1 => Just(b'}'),
            1 => Just(b'\''),
            1 => Just(b'"'),
        ],
        0..max,
    )
}

fn noisy_text(max: usize) -> impl Strategy<Value = String> {
    noisy_bytes(max).prop_map(|b| String::from_utf8_lossy(&b).into_owned())
}

mod probe {
    use super::*;
    use crate::remote::probe::{parse_ckpts, parse_sections, parse_status};

    /// Every section name the status and ckpts parsers read.
    const NAMES: &[&str] = &[
        "now",
        "workdir",
        "ckpts",
        "ckpts_du",
        "ckpts_mtime",
        "df",
        "df_of",
        "tmux",
        "run_id",
        "run_command",
        "run_started_at",
        "run_pid",
        "run_log",
        "run_state",
        "run_alive",
        "run_is_wrapper",
        "run_group_alive",
        "run_exit",
        "run_stopped",
        "run_backend",
        "run_format",
        "slurm_job",
        "slurm_reason",
        "slurm_node",
        "slurm_restarts",
        "slurm_settings",
        "slurm_squeue",
        "slurm_scontrol",
        "backends",
        "session_backend",
        "session",
        "log_path",
        "log_source",
        "log_size",
        "log_mtime",
        "log_tail",
        "ts_name",
        "trainer_state",
        "trainer_state_head",
        "trainer_state_tail",
        "gpu",
        "gpu_rc",
        "train_config",
        "logind",
    ];

    /// A framed probe output whose sections hold arbitrary bytes (a listing made of NUL fields for `ckpts`).
    fn framed() -> impl Strategy<Value = Vec<u8>> {
        let field = prop_oneof![
            Just(b"S".to_vec()),
            Just(b"ok".to_vec()),
            Just(b"P".to_vec()),
            Just(b"A".to_vec()),
            Just(b"E".to_vec()),
            Just(b"d".to_vec()),
            Just(b"f".to_vec()),
            Just(b"LTR".to_vec()),
            Just(b"checkpoint-12".to_vec()),
            Just(b"global_step7".to_vec()),
            Just(b"epoch=1-step=9.ckpt".to_vec()),
            "[0-9]{0,21}".prop_map(String::into_bytes),
            noisy_bytes(12),
        ];
        let listing = proptest::collection::vec(field, 0..40).prop_map(|fs| {
            let mut out = Vec::new();
            for f in fs {
                out.extend_from_slice(&f);
                out.push(0);
            }
            out
        });
        let section = (
            proptest::sample::select(NAMES),
            prop_oneof![2 => noisy_bytes(200), 1 => listing],
        );
        (proptest::collection::vec(section, 0..24), any::<bool>()).prop_map(|(sections, done)| {
            use base64::Engine as _;
            let mut out = b"motd noise\n@@rtrain:probe 1\n".to_vec();
            for (name, bytes) in sections {
                out.extend_from_slice(format!("@@rtrain:section {name}\n").as_bytes());
                let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
                for chunk in b64.as_bytes().chunks(76) {
                    out.extend_from_slice(chunk);
                    out.push(b'\n');
                }
            }
            if done {
                out.extend_from_slice(b"@@rtrain:done\n");
            }
            out
        })
    }

    proptest! {
        #[test]
        fn fuzz_probe_parsers_take_any_bytes(bytes in noisy_bytes(2000)) {
            let _ = parse_sections(&bytes);
            let _ = parse_status(&bytes);
            let _ = parse_ckpts(&bytes);
        }

        #[test]
        fn fuzz_probe_parsers_take_any_section_contents(out in framed()) {
            let status = parse_status(&out);
            let ckpts = parse_ckpts(&out);
            if let Ok(c) = ckpts {
                // Whatever was listed, the checkpoints come out in ascending step order.
                let steps: Vec<Option<u64>> = c.checkpoints.iter().map(|c| c.step).collect();
                let mut sorted = steps.clone();
                sorted.sort();
                prop_assert_eq!(steps, sorted);
            }
            if let Ok(s) = status {
                // The views built from any probe serialise.
                let j = crate::report::status::StatusJson::build("box", "training", &s);
                prop_assert!(serde_json::to_string(&j).is_ok());
                let c = crate::report::check::CheckJson::build("box", &s);
                prop_assert!(serde_json::to_string(&c).is_ok());
                let _ = crate::report::check::render_report("box", &c.report);
            }
        }
    }
}

mod ssh {
    use super::*;
    use crate::ssh::known_hosts::{hosts_match, parse_line};
    use crate::ssh::ssh_config::{parse_file, split_args, ResolveContext};

    /// A known_hosts line: an optional marker, a host field of patterns or a hashed name, a key type and data.
    fn known_hosts_line() -> impl Strategy<Value = Vec<u8>> {
        let marker = prop_oneof![Just(""), Just("@cert-authority "), Just("@revoked "), Just("@bogus ")];
        let hosts = prop_oneof![
            "[a-z0-9.*?!,\\[\\]:-]{0,30}",
            "\\|1\\|[A-Za-z0-9+/=]{0,30}\\|[A-Za-z0-9+/=]{0,30}",
        ];
        let key_type = prop_oneof![
            Just("ssh-ed25519"),
            Just("ecdsa-sha2-nistp256"),
            Just("ssh-rsa"),
            Just("x")
        ];
        (marker, hosts, key_type, "[A-Za-z0-9+/=]{0,120}", noisy_text(20))
            .prop_map(|(m, h, t, d, c)| format!("{m}{h} {t} {d} {c}").into_bytes())
    }

    proptest! {
        #[test]
        fn fuzz_known_hosts_lines_and_matching(line in prop_oneof![noisy_bytes(300), known_hosts_line()],
                                              name in "[a-z0-9.:\\[\\]-]{0,24}") {
            if let Some((_, hosts, _)) = parse_line(&line) {
                let _ = hosts_match(hosts, name.as_bytes());
            }
            let _ = hosts_match(&line, name.as_bytes());
        }

        #[test]
        fn fuzz_a_plain_name_matches_itself_and_star(name in "[a-z0-9][a-z0-9.-]{0,20}") {
            prop_assert!(hosts_match(name.as_bytes(), name.as_bytes()));
            prop_assert!(hosts_match(b"*", name.as_bytes()));
            let negated = format!("*,!{name}");
            prop_assert!(!hosts_match(negated.as_bytes(), name.as_bytes()));
        }

        #[test]
        fn fuzz_ssh_config_lines(text in noisy_text(600)) {
            // Include would read files outside the test; every other keyword is parsed as it comes.
            let text: String = text
                .split('\n')
                .filter(|l| !l.to_ascii_lowercase().contains("include"))
                .collect::<Vec<_>>()
                .join("\n");
            let home = std::path::Path::new("/nonexistent-rtrain-fuzz-home");
            let ctx = ResolveContext { home, local_user: "me" };
            let _ = parse_file(std::path::Path::new("config"), &text, &ctx, 0);
            let _ = split_args(&text);
        }

        #[test]
        fn fuzz_split_args_round_trips_quoted_words(words in proptest::collection::vec("[ -~]{1,10}", 1..6)) {
            // Each word double-quoted, with `"` and `\` escaped: split_args gives the words back.
            let line = words
                .iter()
                .map(|w| format!("\"{}\"", w.replace('\\', "\\\\").replace('"', "\\\"")))
                .collect::<Vec<_>>()
                .join(" ");
            prop_assert_eq!(split_args(&line), Some(words));
        }
    }
}

mod train {
    use super::*;
    use crate::train::progress::{parse_dict_line, parse_tqdm, summarize_log};
    use crate::train::trainer_state::{parse_trainer_state, parse_trainer_state_partial};

    const TRAINER_STATE: &[u8] = include_bytes!("../tests/fixtures/hf-transformers-5.24.0/trainer_state.json");

    /// Log-like text: tqdm bars, dict lines, and noise, joined by `\r` and `\n`.
    fn log_text() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            "[ 0-9]{1,3}%\\|[#█▏▎▍▌▋▊▉ ]{0,10}\\| [0-9]{1,6}/[0-9]{0,6} \\[[0-9:]{0,8}<[0-9:?]{0,8}, {0,2}[0-9.]{0,6}(it/s|s/it)?\\]",
            "\\{'loss': '?[0-9.e+-]{0,8}'?, 'grad_norm': [0-9.naif]{0,6}, 'learning_rate': [0-9.e-]{0,8}, 'epoch': [0-9.]{0,5}\\}",
            "\\{'train_runtime': [0-9.]{0,6}, 'train_loss': [0-9.]{0,6}\\}",
            noisy_text(40),
        ];
        proptest::collection::vec((piece, prop_oneof![Just("\r"), Just("\n"), Just("")]), 0..30).prop_map(|ps| {
            ps.into_iter()
                .flat_map(|(p, sep)| format!("{p}{sep}").into_bytes())
                .collect()
        })
    }

    proptest! {
        #[test]
        fn fuzz_log_parsers(log in prop_oneof![noisy_bytes(1500), log_text()], mid in any::<bool>()) {
            let _ = summarize_log(&log, mid);
            let text = String::from_utf8_lossy(&log);
            for seg in text.split(['\r', '\n']) {
                let _ = parse_tqdm(seg);
                let _ = parse_dict_line(seg);
            }
        }

        #[test]
        fn fuzz_trainer_state_any_bytes(bytes in noisy_bytes(1500)) {
            let _ = parse_trainer_state(&bytes);
            let _ = parse_trainer_state_partial(&bytes, b"");
            let _ = parse_trainer_state_partial(b"", &bytes);
        }

        /// The real file cut anywhere, as a head and a tail (status sends a big one so): never a panic, and a
        /// head that is the whole file reads as the whole file does.
        #[test]
        fn fuzz_trainer_state_cut_anywhere(a in 0usize..=TRAINER_STATE.len(), b in 0usize..=TRAINER_STATE.len()) {
            let (a, b) = (a.min(b), a.max(b));
            let _ = parse_trainer_state(&TRAINER_STATE[..a]);
            let partial = parse_trainer_state_partial(&TRAINER_STATE[..a], &TRAINER_STATE[b..]);
            let whole = parse_trainer_state(TRAINER_STATE).unwrap();
            if a == TRAINER_STATE.len() {
                prop_assert_eq!(partial.global_step, whole.global_step);
            }
        }
    }
}

mod run_record {
    use super::*;
    use crate::remote::run::{
        parse_backend, parse_checkpoint_state, parse_log_header, parse_log_trailer, parse_stop, parse_up, up_logind,
    };

    /// `@rtrain key=value` lines with the keys the scripts print, arbitrary values, and noise between them.
    fn script_output() -> impl Strategy<Value = String> {
        let key = prop_oneof![
            Just("result"),
            Just("id"),
            Just("pid"),
            Just("job"),
            Just("started_at"),
            Just("log"),
            Just("session"),
            Just("backend"),
            Just("available"),
            Just("picked"),
            Just("state"),
            Just("exit"),
            Just("signal"),
            Just("start"),
            Just("end"),
            Just("truncated"),
            Just("logind"),
            Just("error"),
            Just("path"),
        ];
        let value = prop_oneof![
            Just("launched".to_string()),
            Just("active".to_string()),
            Just("stopped".to_string()),
            Just("not-running".to_string()),
            Just("ok".to_string()),
            Just("KillUserProcesses=yes".to_string()),
            "[0-9-]{0,22}",
            noisy_text(30),
        ];
        proptest::collection::vec((key, value, noisy_text(20)), 0..20).prop_map(|ls| {
            ls.into_iter()
                .map(|(k, v, noise)| format!("{noise}\n@rtrain {k}={v}\n"))
                .collect()
        })
    }

    proptest! {
        #[test]
        fn fuzz_run_script_output_parsers(out in prop_oneof![noisy_text(800), script_output()]) {
            let _ = parse_up(&out);
            let _ = parse_stop(&out);
            let _ = parse_backend(&out);
            let _ = parse_checkpoint_state(&out);
            let _ = parse_log_header(&out);
            let _ = parse_log_trailer(&out);
            let _ = up_logind(&out).warning("box");
        }
    }
}

mod resume_edit {
    use super::*;
    use crate::train::train_config::edit_resume_from_checkpoint;

    /// YAML-ish documents: a `training:` block among lines of every kind the edit has to step over.
    fn document() -> impl Strategy<Value = String> {
        let line = prop_oneof![
            Just("training:".to_string()),
            Just("  resume_from_checkpoint: null".to_string()),
            Just("  resume_from_checkpoint: outputs/checkpoint-1  # old".to_string()),
            Just("  # resume_from_checkpoint: x".to_string()),
            Just("  notes: |".to_string()),
            Just("    resume_from_checkpoint: inside a block scalar".to_string()),
            Just("  - item".to_string()),
            Just("model: gpt2".to_string()),
            "  [a-z_]{1,8}: [ -~]{0,16}",
            "[ -~]{0,20}",
            noisy_text(20),
        ];
        (proptest::collection::vec(line, 0..14), any::<bool>())
            .prop_map(|(ls, crlf)| ls.join(if crlf { "\r\n" } else { "\n" }))
    }

    proptest! {
        /// Issue 17's invariant: whenever the edit succeeds, the output parses as YAML with exactly one
        /// `resume_from_checkpoint` under `training:`, holding the path, and every other line is byte-identical.
        #[test]
        fn fuzz_resume_edit(yaml in document(), path in "[ -~]{1,24}") {
            let Ok(e) = edit_resume_from_checkpoint(&yaml, &path) else { return Ok(()); };
            // A mapping with a key twice does not parse (serde_yaml_ng refuses duplicate keys): one key, the path.
            let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&e.text).expect("the edit's output is YAML");
            prop_assert_eq!(
                doc.get("training").and_then(|t| t.get("resume_from_checkpoint")).and_then(|v| v.as_str()),
                Some(path.as_str())
            );
            let before: Vec<&str> = yaml.split_inclusive('\n').collect();
            let after: Vec<&str> = e.text.split_inclusive('\n').collect();
            let changed = after.iter().filter(|l| !before.contains(l)).count();
            prop_assert!(changed <= 2, "more than the edited line changed:\n{}\n---\n{}", yaml, e.text);
        }
    }
}
