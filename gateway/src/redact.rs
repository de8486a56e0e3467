//! Keeps configured secrets out of anything a client or a log sees.

/// Replaces every configured secret in a text with `[REDACTED]`.
#[derive(Debug, Default, Clone)]
pub struct Redactor {
    secrets: Vec<String>,
}

/// Secrets shorter than this are not searched for: they would match ordinary text.
pub const MIN_SECRET_LEN: usize = 6;

impl Redactor {
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Redactor {
        let mut secrets: Vec<String> = secrets.into_iter().filter(|s| s.len() >= MIN_SECRET_LEN).collect();
        // Longest first, so a secret that contains another is replaced whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redactor { secrets }
    }

    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "[REDACTED]");
            }
        }
        out
    }
}

/// Replaces keys an upstream printed masked (`sk-abc*************wxyz`, `AIza…****…`) with
/// `[REDACTED]`. A masked key still names the operator's key by its head and tail, which is
/// no business of the client's. A word counts as a masked key when it holds a run of at least
/// three `*` next to other key characters.
pub fn redact_masked_keys(text: &str) -> String {
    if !text.contains("***") {
        return text.to_string();
    }
    let is_key_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '*' | '-' | '_' | '.');
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(is_key_char) {
        out.push_str(&rest[..start]);
        let word_len = rest[start..]
            .find(|c: char| !is_key_char(c))
            .unwrap_or(rest.len() - start);
        let word = &rest[start..start + word_len];
        // A sentence's full stop is not part of the key.
        let trimmed = word.trim_end_matches('.');
        if trimmed.contains("***") && trimmed.chars().any(|c| c != '*') {
            out.push_str("[REDACTED]");
            out.push_str(&word[trimmed.len()..]);
        } else {
            out.push_str(word);
        }
        rest = &rest[start + word_len..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_every_occurrence_and_ignores_tiny_values() {
        let r = Redactor::new(["sk-secret-123".to_string(), "abc".to_string()]);
        assert_eq!(
            r.redact("bad key sk-secret-123 (sk-secret-123) abc"),
            "bad key [REDACTED] ([REDACTED]) abc"
        );
    }

    #[test]
    fn masked_key_tails_are_redacted() {
        assert_eq!(
            redact_masked_keys(
                "Incorrect API key provided: sk-abc*************wxyz. You can find your API key at https://x."
            ),
            "Incorrect API key provided: [REDACTED]. You can find your API key at https://x."
        );
        assert_eq!(
            redact_masked_keys("key 'AIza****9f_Q' is invalid"),
            "key '[REDACTED]' is invalid"
        );
        assert_eq!(redact_masked_keys("rate *** limited"), "rate *** limited");
        assert_eq!(redact_masked_keys("no key here"), "no key here");
        assert_eq!(redact_masked_keys("ünï sk-a***b"), "ünï [REDACTED]");
    }
}
