//! Logging: `tracing` to stderr, as human-readable lines or JSON.

use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// `level` is a tracing filter: `info`, `debug`, or per module (`switchyard=debug,info`).
pub fn init(level: &str, format: LogFormat) -> Result<(), String> {
    let filter = EnvFilter::try_new(level).map_err(|e| format!("invalid --log-level `{level}`: {e}"))?;
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let result = match format {
        LogFormat::Pretty => builder.with_target(false).try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    result.map_err(|e| format!("cannot start logging: {e}"))
}

/// Displays a value with control characters, quotes and non-printing characters escaped
/// (Rust's `escape_debug`), for text a client or an upstream chose: a model name with a
/// newline must not forge a log line in the human format. JSON logs are escaped anyway.
pub struct Escaped<T>(pub T);

/// Wraps `value` so it logs escaped: `tracing::warn!(model = %escaped(&model), …)`.
pub fn escaped<T: std::fmt::Display>(value: T) -> Escaped<T> {
    Escaped(value)
}

impl<T: std::fmt::Display> std::fmt::Display for Escaped<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::fmt::Write;
        // Written through an escaping adapter: no intermediate String for the common case.
        struct Escape<'a, 'b>(&'a mut std::fmt::Formatter<'b>);
        impl Write for Escape<'_, '_> {
            fn write_str(&mut self, s: &str) -> std::fmt::Result {
                for c in s.chars() {
                    if c.is_control() || c == '"' || c == '\\' || c == '\u{2028}' || c == '\u{2029}' {
                        write!(self.0, "{}", c.escape_debug())?;
                    } else {
                        self.0.write_char(c)?;
                    }
                }
                Ok(())
            }
        }
        write!(Escape(f), "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::escaped;

    #[test]
    fn escaped_text_stays_on_one_line() {
        let forged = "gpt-4o\n2026-01-01T00:00:00Z  INFO forged line \"x\"\r\u{1b}[31m";
        let shown = escaped(forged).to_string();
        assert!(!shown.contains('\n') && !shown.contains('\r') && !shown.contains('\u{1b}'));
        assert_eq!(
            shown,
            "gpt-4o\\n2026-01-01T00:00:00Z  INFO forged line \\\"x\\\"\\r\\u{1b}[31m"
        );
        assert_eq!(escaped("plain-model/ünï").to_string(), "plain-model/ünï");
    }
}
