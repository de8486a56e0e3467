//! The provider's `options:` from YAML, checked strictly at start-up.
//!
//! Parsed by hand rather than with `#[derive(Deserialize)]` because serde's type errors do
//! not name the field ("invalid type: string, expected u64"), and an operator fixing a
//! config needs to know which option is wrong.

use serde_json::{Map, Value};

/// Every key the mock accepts, for the "unknown option" message.
const KNOWN: &str = "text, latency_ms, chunk_delay_ms, words_per_chunk, fault_models";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockOptions {
    /// Fixed answer for models other than `echo`; `None` means echo.
    pub text: Option<String>,
    /// Delay before the response, or before the first chunk of a stream.
    pub latency_ms: u64,
    /// Delay before each content chunk after the first chunk of a stream.
    pub chunk_delay_ms: u64,
    /// Words per content chunk; at least 1.
    pub words_per_chunk: usize,
    /// Whether `fault-*` models fail as documented on the crate; when off they are model
    /// names like any other.
    pub fault_models: bool,
}

impl Default for MockOptions {
    fn default() -> Self {
        MockOptions {
            text: None,
            latency_ms: 0,
            chunk_delay_ms: 0,
            words_per_chunk: 1,
            fault_models: false,
        }
    }
}

impl MockOptions {
    /// Reads `options:`; absent (`null`) means all defaults.
    pub fn from_json(options: &Value) -> Result<MockOptions, String> {
        let map = match options {
            Value::Null => return Ok(MockOptions::default()),
            Value::Object(map) => map,
            other => {
                return Err(format!(
                    "mock options must be a mapping of option names to values, got {other}"
                ));
            }
        };
        MockOptions::from_map(map)
    }

    fn from_map(map: &Map<String, Value>) -> Result<MockOptions, String> {
        let mut options = MockOptions::default();
        for (key, value) in map {
            match key.as_str() {
                "text" => match value {
                    Value::String(text) => options.text = Some(text.clone()),
                    // An explicit null reads as "not set", as YAML's `text: ~` would mean.
                    Value::Null => options.text = None,
                    other => {
                        return Err(format!("mock option `text` must be a string, got {other}"));
                    }
                },
                "latency_ms" => options.latency_ms = millis(key, value)?,
                "chunk_delay_ms" => options.chunk_delay_ms = millis(key, value)?,
                "words_per_chunk" => {
                    let n = value.as_u64().filter(|n| *n >= 1).ok_or_else(|| {
                        format!("mock option `words_per_chunk` must be a whole number ≥ 1, got {value}")
                    })?;
                    // Beyond usize (32-bit hosts) every answer fits in one chunk anyway.
                    options.words_per_chunk = usize::try_from(n).unwrap_or(usize::MAX);
                }
                "fault_models" => {
                    options.fault_models = value
                        .as_bool()
                        .ok_or_else(|| format!("mock option `fault_models` must be true or false, got {value}"))?;
                }
                _ => {
                    return Err(format!("unknown mock option `{key}` (known options: {KNOWN})"));
                }
            }
        }
        Ok(options)
    }
}

fn millis(key: &str, value: &Value) -> Result<u64, String> {
    value
        .as_u64()
        .ok_or_else(|| format!("mock option `{key}` must be a whole number of milliseconds (≥ 0), got {value}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn absent_options_mean_defaults() {
        assert_eq!(MockOptions::from_json(&Value::Null), Ok(MockOptions::default()));
        assert_eq!(MockOptions::from_json(&json!({})), Ok(MockOptions::default()));
        assert_eq!(MockOptions::default().words_per_chunk, 1);
        assert!(
            !MockOptions::default().fault_models,
            "fault models are off unless asked for"
        );
    }

    #[test]
    fn every_option_is_read() {
        let o = MockOptions::from_json(&json!({
            "text": "hi there", "latency_ms": 20, "chunk_delay_ms": 5, "words_per_chunk": 3, "fault_models": true
        }))
        .expect("valid options");
        assert_eq!(o.text.as_deref(), Some("hi there"));
        assert_eq!((o.latency_ms, o.chunk_delay_ms, o.words_per_chunk), (20, 5, 3));
        assert!(o.fault_models);
    }

    #[test]
    fn errors_name_the_option() {
        let cases = [
            (json!({"latncy_ms": 1}), "`latncy_ms`"),
            (json!({"latency_ms": "fast"}), "`latency_ms`"),
            (json!({"latency_ms": -1}), "`latency_ms`"),
            (json!({"chunk_delay_ms": 1.5}), "`chunk_delay_ms`"),
            (json!({"words_per_chunk": 0}), "`words_per_chunk`"),
            (json!({"text": 3}), "`text`"),
            (json!({"fault_models": "yes"}), "`fault_models`"),
        ];
        for (options, needle) in cases {
            let err = MockOptions::from_json(&options).expect_err("invalid options");
            assert!(err.contains(needle), "{err} should name {needle}");
        }
        assert!(MockOptions::from_json(&json!([1])).is_err());
    }
}
