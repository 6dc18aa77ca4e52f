//! POSIX-sh quoting: every remote command line is assembled from parts quoted here, so nothing a user
//! typed (a path with spaces, a `$(...)`, a newline) is ever interpreted by the remote shell.

use std::fmt;

/// Characters that never need quoting in POSIX sh (and are not special anywhere in a word).
fn is_safe(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | ',' | ':' | '+' | '=' | '@' | '%')
}

/// Quote one word for POSIX sh: bare when it is made only of safe characters, else single-quoted with
/// each `'` written as `'\''`. Single quotes keep every other byte (newlines included) literal.
pub fn quote(word: &str) -> String {
    if !word.is_empty() && word.chars().all(is_safe) && !word.starts_with('=') {
        return word.to_string();
    }
    let mut out = String::with_capacity(word.len() + 2);
    out.push('\'');
    for c in word.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// Quote a remote path where a leading `~` means the remote `$HOME` (as the user writes it in
/// rtrain's config): `~/a b` becomes `"$HOME"/'a b'`. Only `~` and `~/` are expanded; `~user` is
/// taken literally, since expanding it would need the remote passwd database.
pub fn quote_path(path: &str) -> String {
    if path == "~" {
        return "\"$HOME\"".to_string();
    }
    if let Some(rest) = path.strip_prefix("~/") {
        if rest.is_empty() {
            return "\"$HOME\"/".to_string();
        }
        return format!("\"$HOME\"/{}", quote(rest));
    }
    quote(path)
}

/// A command line built from quoted words. `arg` quotes; `raw` appends shell syntax the caller wrote
/// itself (operators like `&&` or `2>&1`), never user input.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cmd {
    parts: Vec<String>,
}

impl Cmd {
    pub fn new(program: &str) -> Self {
        Cmd {
            parts: vec![quote(program)],
        }
    }

    pub fn arg(mut self, word: impl AsRef<str>) -> Self {
        self.parts.push(quote(word.as_ref()));
        self
    }

    pub fn args<I, S>(mut self, words: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.parts.extend(words.into_iter().map(|w| quote(w.as_ref())));
        self
    }

    /// A path argument where a leading `~` is the remote home (see [`quote_path`]).
    pub fn path(mut self, path: impl AsRef<str>) -> Self {
        self.parts.push(quote_path(path.as_ref()));
        self
    }

    /// Shell syntax written by rtrain itself; never pass user input here.
    pub fn raw(mut self, syntax: &str) -> Self {
        self.parts.push(syntax.to_string());
        self
    }
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.parts.join(" "))
    }
}

/// Join words into one command line, each quoted.
pub fn join<I, S>(words: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    words
        .into_iter()
        .map(|w| quote(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::process::Command;

    /// Run `script` through the real local `sh` and return what `printf %s\0` printed for each word.
    fn sh_words(script_words: &str) -> Vec<String> {
        let script = format!("printf '%s\\0' {script_words}");
        let out = Command::new("sh")
            .arg("-c")
            .arg(&script)
            .output()
            .expect("sh must exist");
        assert!(
            out.status.success(),
            "sh failed on {script:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut words: Vec<String> = out
            .stdout
            .split(|b| *b == 0)
            .map(|w| String::from_utf8(w.to_vec()).unwrap())
            .collect();
        words.pop(); // after the final NUL
        words
    }

    #[test]
    fn safe_words_stay_bare() {
        assert_eq!(quote("make"), "make");
        assert_eq!(quote("a/b-c_d.e"), "a/b-c_d.e");
    }

    #[test]
    fn empty_word_is_quoted() {
        assert_eq!(quote(""), "''");
        assert_eq!(sh_words(&join(["", "x"])), vec!["", "x"]);
    }

    #[test]
    fn injection_attempts_arrive_literally() {
        let marker = tempfile::tempdir().unwrap();
        let target = marker.path().join("pwned");
        let evil = format!("$(touch {})", target.display());
        let words = vec![
            evil.clone(),
            "`id`".into(),
            "a'b\"c".into(),
            "line1\nline2".into(),
            "; rm -rf /".into(),
        ];
        assert_eq!(sh_words(&join(&words)), words);
        assert!(!target.exists(), "the quoted $(...) was executed");
    }

    #[test]
    fn tilde_paths_expand_to_remote_home_only_at_the_start() {
        let home = std::env::var("HOME").unwrap_or_default();
        let got = sh_words(&format!(
            "{} {} {}",
            quote_path("~/my dir/x"),
            quote_path("~"),
            quote_path("a/~/b")
        ));
        assert_eq!(got, vec![format!("{home}/my dir/x"), home.clone(), "a/~/b".to_string()]);
        assert_eq!(quote_path("~user/x"), "'~user/x'");
    }

    #[test]
    fn cmd_builder_quotes_args_but_not_raw_syntax() {
        let c = Cmd::new("echo").arg("a b").raw("2>&1").path("~/x y");
        assert_eq!(c.to_string(), "echo 'a b' 2>&1 \"$HOME\"/'x y'");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn any_words_round_trip_through_real_sh(words in proptest::collection::vec("[^\\x00]{0,12}", 1..5)) {
            prop_assert_eq!(sh_words(&join(&words)), words);
        }
    }
}
