//! The provider's configuration: `base_url` and `options`, turned once at start into the URL
//! prefix every request uses.

use serde_json::Value;
use switchyard_plugin_api::sdk::ProviderSetup;
use switchyard_plugin_api::sdk::setup::{OptionsReader, base_url, option_str};

pub(crate) const DEFAULT_BASE_URL: &str = "https://generativelanguage.googleapis.com";
const DEFAULT_API_VERSION: &str = "v1beta";
const OPTIONS: OptionsReader<'static> = OptionsReader::new("gemini", &["api_version"]);

/// Where requests go; built once so per-request code only appends the model and the method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// `base_url` + `/` + `api_version`, without a trailing slash.
    pub prefix: String,
}

impl Endpoint {
    pub(crate) fn from_setup(setup: &ProviderSetup) -> Result<Endpoint, String> {
        let api_version = parse_options(&setup.options)?;
        let base = base_url(setup, DEFAULT_BASE_URL)?;
        if base.contains(['?', '#']) {
            return Err(format!(
                "base_url `{base}` must not carry a query or fragment; the plugin appends \
                 /{api_version}/models/MODEL:generateContent to it"
            ));
        }
        Ok(Endpoint {
            prefix: format!("{base}/{api_version}"),
        })
    }

    /// The URL for one call: `…/models/{model}:generateContent`, or
    /// `…:streamGenerateContent?alt=sse` when streaming. The key never goes here.
    pub(crate) fn url(&self, model: &str, stream: bool) -> String {
        let method = if stream {
            ":streamGenerateContent?alt=sse"
        } else {
            ":generateContent"
        };
        self.method_url(model, method)
    }

    /// The URL of a batch of embeddings: `…/models/{model}:batchEmbedContents`.
    pub(crate) fn embed_url(&self, model: &str) -> String {
        self.method_url(model, ":batchEmbedContents")
    }

    /// `prefix/{collection}{escaped id}{method}`.
    fn method_url(&self, model: &str, method: &str) -> String {
        let (collection, id) = resource(model);
        let mut url = String::with_capacity(self.prefix.len() + 1 + collection.len() + id.len() + method.len() + 8);
        url.push_str(&self.prefix);
        url.push('/');
        url.push_str(collection);
        escape_segment(id, &mut url);
        url.push_str(method);
        url
    }
}

/// A model's collection (`models/` or `tunedModels/`) and id: `models/x` is the resource name
/// of `x`; tuned models live in their own collection.
fn resource(model: &str) -> (&'static str, &str) {
    if let Some(id) = model.strip_prefix("tunedModels/") {
        ("tunedModels/", id)
    } else {
        ("models/", model.strip_prefix("models/").unwrap_or(model))
    }
}

/// The model's resource name (`models/{id}` or `tunedModels/{id}`), as request bodies name it.
pub(crate) fn resource_name(model: &str) -> String {
    let (collection, id) = resource(model);
    let mut name = String::with_capacity(collection.len() + id.len());
    name.push_str(collection);
    name.push_str(id);
    name
}

/// Percent-encodes everything but RFC 3986 unreserved characters, so a model name can never
/// change the path or add a query (a `?key=` included).
fn escape_segment(segment: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in segment.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xF)]));
        }
    }
}

/// The plugin's `options:` mapping, checked key by key so a typo or a wrong type is named in
/// the startup error instead of being ignored. Returns the API version.
fn parse_options(value: &Value) -> Result<&str, String> {
    let mut api_version = DEFAULT_API_VERSION;
    for (key, value) in OPTIONS.entries(value)? {
        match key {
            "api_version" => api_version = option_str(key, value)?,
            _ => return Err(OPTIONS.unknown(key)),
        }
    }
    let valid = api_version.len() >= 2
        && api_version.starts_with('v')
        && api_version
            .bytes()
            .skip(1)
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && api_version.as_bytes()[1].is_ascii_digit();
    if !valid {
        return Err(format!(
            "option `api_version` (`{api_version}`) must be an API version such as v1beta or v1"
        ));
    }
    Ok(api_version)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn endpoint(base_url: Option<&str>, options: Value) -> Result<Endpoint, String> {
        Endpoint::from_setup(&ProviderSetup {
            name: "gem".into(),
            base_url: base_url.map(str::to_string),
            options,
        })
    }

    #[test]
    fn defaults_point_at_google() {
        let e = endpoint(None, Value::Null).expect("defaults");
        assert_eq!(
            e.url("gemini-2.5-flash", false),
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
        );
        assert_eq!(
            e.url("gemini-2.5-flash", true),
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
        );
    }

    #[test]
    fn model_names_are_escaped_and_resource_prefixes_understood() {
        let e = endpoint(Some("http://127.0.0.1:9/"), json!({"api_version": "v1"})).expect("custom");
        assert_eq!(
            e.url("models/gemini-2.0-flash-001", false),
            "http://127.0.0.1:9/v1/models/gemini-2.0-flash-001:generateContent"
        );
        assert_eq!(
            e.url("tunedModels/my-model-7", false),
            "http://127.0.0.1:9/v1/tunedModels/my-model-7:generateContent"
        );
        assert_eq!(
            e.url("odd/name?key=x#y é", false),
            "http://127.0.0.1:9/v1/models/odd%2Fname%3Fkey%3Dx%23y%20%C3%A9:generateContent"
        );
        assert_eq!(
            e.embed_url("models/gemini-embedding-001"),
            "http://127.0.0.1:9/v1/models/gemini-embedding-001:batchEmbedContents"
        );
        assert_eq!(
            e.embed_url("a b"),
            "http://127.0.0.1:9/v1/models/a%20b:batchEmbedContents"
        );
        assert_eq!(resource_name("gemini-embedding-001"), "models/gemini-embedding-001");
        assert_eq!(resource_name("models/text-embedding-004"), "models/text-embedding-004");
        assert_eq!(resource_name("tunedModels/t-1"), "tunedModels/t-1");
    }

    #[test]
    fn bad_configuration_is_named() {
        let err = |base: Option<&str>, options: Value| endpoint(base, options).expect_err("refused");
        assert!(err(Some("generativelanguage.googleapis.com"), Value::Null).contains("http:// or https://"));
        assert!(err(Some("https://x.test/?key=abc"), Value::Null).contains("query"));
        assert!(err(None, json!({"api_verison": "v1"})).contains("unknown option `api_verison`"));
        assert!(err(None, json!({"api_version": 1})).contains("must be a string, not a number"));
        assert!(err(None, json!({"api_version": "v1beta/../x"})).contains("API version"));
        assert!(err(None, json!({"api_version": "beta"})).contains("API version"));
        assert!(err(None, json!("v1")).contains("options must be a mapping"));
    }
}
