//! Checks for [`Provider::create`](super::Provider::create): the `base_url` and a reader for
//! the plugin's `options:` mapping, so that a typo or a wrong type in the gateway's YAML is
//! named in the startup error instead of being silently ignored.
//!
//! ```
//! use switchyard_plugin_api::sdk::setup::{self, OptionsReader};
//! use switchyard_plugin_api::sdk::{ProviderSetup, serde_json};
//!
//! const OPTIONS: OptionsReader<'static> = OptionsReader::new("example", &["api_version"]);
//!
//! fn create(setup: &ProviderSetup) -> Result<String, String> {
//!     let mut api_version = "v1";
//!     for (key, value) in OPTIONS.entries(&setup.options)? {
//!         match key {
//!             "api_version" => api_version = setup::option_str(key, value)?,
//!             _ => return Err(OPTIONS.unknown(key)),
//!         }
//!     }
//!     let base = setup::base_url(setup, "https://api.example.com")?;
//!     Ok(format!("{base}/{api_version}"))
//! }
//!
//! let setup = |options| ProviderSetup { name: "ex".into(), base_url: None, options };
//! assert_eq!(create(&setup(serde_json::Value::Null)).unwrap(), "https://api.example.com/v1");
//! let err = create(&setup(serde_json::json!({"api_verison": "v2"}))).unwrap_err();
//! assert_eq!(err, "unknown option `api_verison`; the example plugin accepts api_version");
//! ```

use super::ProviderSetup;
use serde_json::Value;

/// The configured `base_url` (or `default` when there is none), trimmed and without trailing
/// slashes, so that a path can be appended to it.
///
/// Refused, with a message naming the value: anything but an `http://` or `https://` URL
/// (scheme case-insensitive, with something after it), and whitespace or control characters.
pub fn base_url<'a>(setup: &'a ProviderSetup, default: &'a str) -> Result<&'a str, String> {
    let base = setup.base_url.as_deref().map(str::trim).unwrap_or(default);
    let base = base.trim_end_matches('/');
    if !has_http_scheme(base) {
        return Err(format!(
            "base_url `{base}` must start with http:// or https:// (for example {default})"
        ));
    }
    if base.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("base_url `{base}` contains whitespace or control characters"));
    }
    Ok(base)
}

fn has_http_scheme(url: &str) -> bool {
    let starts = |scheme: &str| {
        url.get(..scheme.len()).is_some_and(|s| s.eq_ignore_ascii_case(scheme)) && url.len() > scheme.len()
    };
    starts("http://") || starts("https://")
}

/// Reads a plugin's `options:` mapping key by key, in the order written; the errors name the
/// plugin and the keys it accepts.
#[derive(Debug, Clone, Copy)]
pub struct OptionsReader<'a> {
    plugin: &'a str,
    keys: &'a [&'a str],
}

impl<'a> OptionsReader<'a> {
    /// `plugin` is the plugin's name, `keys` every option it accepts (for the messages).
    pub const fn new(plugin: &'a str, keys: &'a [&'a str]) -> OptionsReader<'a> {
        OptionsReader { plugin, keys }
    }

    /// The options' keys and values: none when `options:` is absent (`null`); an error when it
    /// is not a mapping.
    pub fn entries<'v>(
        &self,
        options: &'v Value,
    ) -> Result<impl Iterator<Item = (&'v str, &'v Value)> + use<'v>, String> {
        let map = match options {
            Value::Null => None,
            Value::Object(map) => Some(map),
            other => {
                return Err(format!(
                    "options must be a mapping ({}), not {}",
                    self.keys.join(", "),
                    json_type(other)
                ));
            }
        };
        Ok(map.into_iter().flatten().map(|(key, value)| (key.as_str(), value)))
    }

    /// The error for an option the plugin does not know.
    pub fn unknown(&self, key: &str) -> String {
        format!(
            "unknown option `{key}`; the {} plugin accepts {}",
            self.plugin,
            self.keys.join(", ")
        )
    }
}

/// An option that must be a string.
pub fn option_str<'v>(key: &str, value: &'v Value) -> Result<&'v str, String> {
    value
        .as_str()
        .ok_or_else(|| format!("option `{key}` must be a string, not {}", json_type(value)))
}

/// What a JSON value is, for a message: `null`, `a boolean`, `a number`, `a string`, `a list`,
/// `a mapping` (the YAML words).
pub fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn setup(base_url: Option<&str>) -> ProviderSetup {
        ProviderSetup {
            name: "p".into(),
            base_url: base_url.map(str::to_string),
            options: Value::Null,
        }
    }

    const DEFAULT: &str = "https://api.example.com/v1";

    #[test]
    fn base_url_defaults_trims_and_checks() {
        assert_eq!(base_url(&setup(None), DEFAULT), Ok(DEFAULT));
        assert_eq!(
            base_url(&setup(Some(" HTTP://127.0.0.1:8080/v1// ")), DEFAULT),
            Ok("HTTP://127.0.0.1:8080/v1")
        );
        let err = |url: &str| base_url(&setup(Some(url)), DEFAULT).expect_err("refused");
        assert_eq!(
            err("api.example.com"),
            "base_url `api.example.com` must start with http:// or https:// (for example https://api.example.com/v1)"
        );
        assert!(err("https://").contains("must start with http:// or https://"));
        assert!(err("https:///").contains("must start with http:// or https://"));
        assert!(err("ftp://x").contains("must start with http:// or https://"));
        assert_eq!(
            err("https://a b"),
            "base_url `https://a b` contains whitespace or control characters"
        );
        assert!(err("https://a\u{7}").contains("control characters"));
    }

    const READER: OptionsReader<'static> = OptionsReader::new("demo", &["one", "two"]);

    #[test]
    fn options_are_read_in_order_and_named_in_errors() {
        assert_eq!(READER.entries(&Value::Null).expect("null").count(), 0);
        assert_eq!(READER.entries(&json!({})).expect("empty").count(), 0);
        let options = json!({"one": "a", "two": 2});
        let entries: Vec<_> = READER.entries(&options).expect("mapping").collect();
        assert_eq!(entries, [("one", &json!("a")), ("two", &json!(2))]);
        assert_eq!(
            READER.entries(&json!(["one"])).err().as_deref(),
            Some("options must be a mapping (one, two), not a list")
        );
        assert_eq!(
            READER.unknown("three"),
            "unknown option `three`; the demo plugin accepts one, two"
        );
        assert_eq!(option_str("one", &json!("a")), Ok("a"));
        assert_eq!(
            option_str("two", &json!(2)),
            Err("option `two` must be a string, not a number".to_string())
        );
    }

    #[test]
    fn json_types_use_the_yaml_words() {
        let names = [json!(null), json!(true), json!(1.5), json!("s"), json!([]), json!({})].map(|v| json_type(&v));
        assert_eq!(
            names,
            ["null", "a boolean", "a number", "a string", "a list", "a mapping"]
        );
    }
}
