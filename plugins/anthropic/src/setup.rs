//! The provider's configuration: `base_url` and `options`, turned once at start into what every
//! request reuses (the messages URL, the `anthropic-version` value, the default `max_tokens`).

use serde_json::Value;
use switchyard_plugin_api::sdk::ProviderSetup;
use switchyard_plugin_api::sdk::setup::{OptionsReader, base_url, json_type};

pub(crate) const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
const MESSAGES_PATH: &str = "/v1/messages";
/// The Messages API version this codec speaks (request and response shapes, event names).
pub(crate) const DEFAULT_VERSION: &str = "2023-06-01";
/// The Messages API requires `max_tokens`; OpenAI clients usually leave it out.
pub(crate) const DEFAULT_MAX_TOKENS: u64 = 4096;
const OPTIONS: OptionsReader<'static> = OptionsReader::new("anthropic", &["anthropic_version", "default_max_tokens"]);

/// Where and how requests go; built once so per-request code only copies bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// `base_url` + `/v1/messages`.
    pub url: String,
    /// The `anthropic-version` header value.
    pub version: String,
    /// `max_tokens` when the client sets neither `max_tokens` nor `max_completion_tokens`.
    pub default_max_tokens: u64,
}

impl Endpoint {
    pub(crate) fn from_setup(setup: &ProviderSetup) -> Result<Endpoint, String> {
        let options = Options::parse(&setup.options)?;
        let base = base_url(setup, DEFAULT_BASE_URL)?;
        if base.contains('?') || base.contains('#') {
            return Err(format!(
                "base_url `{base}` must not carry a query or fragment: the plugin appends {MESSAGES_PATH}"
            ));
        }
        // A base_url copied with the path already on it (…/v1) would otherwise become /v1/v1/messages.
        let base = base.strip_suffix("/v1").unwrap_or(base);
        Ok(Endpoint {
            url: format!("{base}{MESSAGES_PATH}"),
            version: options.version.to_string(),
            default_max_tokens: options.default_max_tokens,
        })
    }
}

/// The plugin's `options:` mapping, checked key by key so a typo or a wrong type is named in the
/// startup error instead of being silently ignored.
struct Options<'a> {
    version: &'a str,
    default_max_tokens: u64,
}

impl<'a> Options<'a> {
    fn parse(value: &'a Value) -> Result<Options<'a>, String> {
        let mut options = Options {
            version: DEFAULT_VERSION,
            default_max_tokens: DEFAULT_MAX_TOKENS,
        };
        for (key, value) in OPTIONS.entries(value)? {
            match key {
                "anthropic_version" => {
                    let version = value.as_str().ok_or_else(|| {
                        format!(
                            "option `anthropic_version` must be a string such as \"{DEFAULT_VERSION}\", not {}",
                            json_type(value)
                        )
                    })?;
                    if version.is_empty() || !version.bytes().all(|b| b.is_ascii_graphic()) {
                        return Err(format!(
                            "option `anthropic_version` (`{version}`) must be a version date such as {DEFAULT_VERSION}"
                        ));
                    }
                    options.version = version;
                }
                "default_max_tokens" => {
                    options.default_max_tokens = value.as_u64().filter(|n| *n > 0).ok_or_else(|| {
                        format!(
                            "option `default_max_tokens` must be a positive integer, not {}",
                            match value {
                                Value::Number(n) => n.to_string(),
                                other => json_type(other).to_string(),
                            }
                        )
                    })?;
                }
                _ => return Err(OPTIONS.unknown(key)),
            }
        }
        Ok(options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn endpoint(base_url: Option<&str>, options: Value) -> Result<Endpoint, String> {
        Endpoint::from_setup(&ProviderSetup {
            name: "claude".into(),
            base_url: base_url.map(str::to_string),
            options,
        })
    }

    #[test]
    fn defaults_point_at_anthropic() {
        let e = endpoint(None, Value::Null).expect("defaults");
        assert_eq!(e.url, "https://api.anthropic.com/v1/messages");
        assert_eq!(e.version, "2023-06-01");
        assert_eq!(e.default_max_tokens, 4096);
        assert_eq!(endpoint(None, json!({})).expect("empty options"), e);
    }

    #[test]
    fn base_url_and_options_apply() {
        let e = endpoint(
            Some("http://127.0.0.1:4000/"),
            json!({"anthropic_version": "2024-01-01", "default_max_tokens": 1024}),
        )
        .expect("custom");
        assert_eq!(e.url, "http://127.0.0.1:4000/v1/messages");
        assert_eq!((e.version.as_str(), e.default_max_tokens), ("2024-01-01", 1024));
        let e = endpoint(Some("https://proxy.example.com/anthropic/v1"), Value::Null).expect("with /v1");
        assert_eq!(e.url, "https://proxy.example.com/anthropic/v1/messages");
    }

    #[test]
    fn bad_configuration_is_named() {
        let err = |base: Option<&str>, options: Value| endpoint(base, options).expect_err("refused");
        assert!(err(Some("api.anthropic.com"), Value::Null).contains("http:// or https://"));
        assert!(err(Some("https://a.example/x?y=1"), Value::Null).contains("query"));
        assert!(err(None, json!({"api_version": "x"})).contains("unknown option `api_version`"));
        assert!(err(None, json!({"anthropic_version": 2023})).contains("must be a string"));
        assert!(err(None, json!({"anthropic_version": "2023 06"})).contains("version date"));
        assert!(err(None, json!({"default_max_tokens": "4096"})).contains("positive integer, not a string"));
        assert!(err(None, json!({"default_max_tokens": 0})).contains("positive integer, not 0"));
        assert!(err(None, json!({"default_max_tokens": 1.5})).contains("positive integer"));
        assert!(err(None, json!(["x"])).contains("options must be a mapping"));
    }
}
