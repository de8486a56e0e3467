//! Config errors: one screen naming the file, the line, the field and a fix.

use std::fmt;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}\n  fix: check the path given with --config or SWITCHYARD_CONFIG", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Invalid(Box<InvalidConfig>),
}

/// What is wrong, and where.
#[derive(Debug)]
pub struct InvalidConfig {
    pub file: String,
    pub line: Option<u64>,
    pub column: Option<u64>,
    /// Dotted path, e.g. `providers.openai.timeout`.
    pub field: Option<String>,
    pub message: String,
    pub fix: Option<String>,
}

impl ConfigError {
    /// An invalid-config error; derives a "did you mean" fix from serde's unknown-key and
    /// unknown-variant messages.
    pub fn invalid(
        file: &str,
        line: Option<u64>,
        column: Option<u64>,
        field: Option<String>,
        message: String,
    ) -> ConfigError {
        let fix = suggestion_for(&message).map(|s| format!("did you mean `{s}`?"));
        ConfigError::Invalid(Box::new(InvalidConfig {
            file: file.to_string(),
            line,
            column,
            field,
            message,
            fix,
        }))
    }
}

impl fmt::Display for InvalidConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let InvalidConfig {
            file,
            line,
            column,
            field,
            message,
            fix,
        } = self;
        write!(f, "invalid config: {file}")?;
        if let Some(l) = line {
            write!(f, ":{l}")?;
            if let Some(c) = column {
                write!(f, ":{c}")?;
            }
        }
        if let Some(field) = field {
            write!(f, "\n  field: {field}")?;
        }
        write!(f, "\n  error: {message}")?;
        if let Some(fix) = fix {
            write!(f, "\n  fix:   {fix}")?;
        }
        Ok(())
    }
}

/// The closest of `candidates` to `word`, if close enough to be a likely typo.
pub fn nearest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// From serde's "unknown field `x`, expected one of `a`, `b`" (or "expected `a` or `b`";
/// some parsers drop the backticks around the candidates).
fn suggestion_for(message: &str) -> Option<String> {
    let rest = message
        .split_once("unknown field")
        .or_else(|| message.split_once("unknown variant"))?
        .1;
    let typo = rest.split('`').nth(1)?;
    let expected = rest.split_once("expected").map(|(_, e)| e)?;
    let expected = expected.trim_start().strip_prefix("one of").unwrap_or(expected);
    let candidates = expected
        .split([',', ' '])
        .map(|w| w.trim().trim_matches('`'))
        .filter(|w| !w.is_empty() && *w != "or");
    nearest(typo, candidates).map(str::to_string)
}

/// Indentation-based view of block-style YAML: each key line with its indent.
fn key_lines(text: &str) -> impl Iterator<Item = (usize, usize, &str)> {
    text.lines().enumerate().filter_map(|(i, raw)| {
        let trimmed = raw.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            return None;
        }
        let indent = raw.len() - trimmed.len();
        let body = trimmed.strip_prefix("- ").unwrap_or(trimmed);
        let extra = trimmed.len() - body.len();
        let key = body.split_once(':').map(|(k, _)| k.trim().trim_matches(['"', '\'']))?;
        if key.is_empty() || key.contains(' ') && !key.contains('/') {
            return None;
        }
        Some((i + 1, indent + extra, key))
    })
}

/// The 1-based line of a dotted path (e.g. `["providers", "up", "timeout"]`), or of its
/// deepest ancestor found. Best effort: exact for block-style YAML.
pub fn yaml_line_of(text: &str, path: &[String]) -> Option<u64> {
    let mut found = None;
    let mut depth = 0;
    let mut min_indent = 0;
    for (line, indent, key) in key_lines(text) {
        if depth == path.len() {
            break;
        }
        if depth > 0 && indent < min_indent {
            break;
        }
        if key == path[depth] && indent >= min_indent {
            found = Some(line as u64);
            depth += 1;
            min_indent = indent + 1;
        }
    }
    found
}

/// The dotted path of the key on a 1-based line (its ancestors by indentation).
pub fn yaml_path_at_line(text: &str, line: usize) -> Option<String> {
    let lines: Vec<(usize, usize, &str)> = key_lines(text).filter(|(l, _, _)| *l <= line).collect();
    let (_, mut indent, key) = *lines.iter().rev().find(|(l, _, _)| *l == line).or(lines.last())?;
    let mut path = vec![key];
    for (_, i, k) in lines.iter().rev() {
        if *i < indent {
            path.push(k);
            indent = *i;
        }
    }
    path.reverse();
    Some(path.join("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str =
        "server:\n  port: 1\nproviders:\n  up:\n    plugin: openai\n    keys:\n      - value: x\n        weight: 2\n";

    #[test]
    fn line_of_a_path() {
        let p = |s: &str| s.split('.').map(str::to_string).collect::<Vec<_>>();
        assert_eq!(yaml_line_of(YAML, &p("providers.up.plugin")), Some(5));
        assert_eq!(yaml_line_of(YAML, &p("server.port")), Some(2));
        assert_eq!(yaml_line_of(YAML, &p("providers.up.keys")), Some(6));
        assert_eq!(yaml_line_of(YAML, &p("providers.down")), Some(3));
    }

    #[test]
    fn path_at_a_line() {
        assert_eq!(yaml_path_at_line(YAML, 5).as_deref(), Some("providers.up.plugin"));
        assert_eq!(yaml_path_at_line(YAML, 8).as_deref(), Some("providers.up.keys.weight"));
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            suggestion_for("unknown field `bse_url`, expected one of `plugin`, `base_url`, `keys`").as_deref(),
            Some("base_url")
        );
        assert_eq!(suggestion_for("unknown field `zzz`, expected `plugin` or `keys`"), None);
        assert_eq!(
            suggestion_for("line 4 column 5: unknown field `bse_url`, expected one of plugin, base_url, keys")
                .as_deref(),
            Some("base_url")
        );
        assert_eq!(nearest("lcal", ["local", "openai"]), Some("local"));
    }
}
