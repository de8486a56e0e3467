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
}
