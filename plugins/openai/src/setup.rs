//! The provider's configuration: `base_url` and `options` turned, once at start, into the
//! exact URLs and auth header name every request uses.
//!
//! Options: `chat_path` (default `/chat/completions`) and `embeddings_path` (default
//! `/embeddings`), appended to `base_url`; `query`, appended to both (Azure OpenAI's
//! `api-version=…`: with `base_url` …/openai/deployments/{deployment}, the embeddings URL is
//! …/openai/deployments/{deployment}/embeddings?api-version=…); `auth_header` (default
//! `authorization`, sent as `Bearer <key>`; any other name gets the bare key).

use serde_json::Value;
use switchyard_plugin_api::sdk::ProviderSetup;
use switchyard_plugin_api::sdk::setup::{OptionsReader, base_url, option_str};

pub(crate) const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
const DEFAULT_CHAT_PATH: &str = "/chat/completions";
const DEFAULT_EMBEDDINGS_PATH: &str = "/embeddings";
const DEFAULT_AUTH_HEADER: &str = "authorization";
const OPTIONS: OptionsReader<'static> =
    OptionsReader::new("openai", &["chat_path", "embeddings_path", "auth_header", "query"]);

/// Where and how requests go; built once so per-request code only copies bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// `base_url` + `chat_path` (+ `?query`).
    pub url: String,
    /// `base_url` + `embeddings_path` (+ `?query`).
    pub embeddings_url: String,
    /// Lower-case header name carrying the key.
    pub auth_header: String,
    /// `authorization` gets `Bearer <key>`; any other header (Azure's `api-key`) the raw key.
    pub bearer: bool,
}

impl Endpoint {
    pub(crate) fn from_setup(setup: &ProviderSetup) -> Result<Endpoint, String> {
        let options = Options::parse(&setup.options)?;
        let base = base_url(setup, DEFAULT_BASE_URL)?;
        let auth_header = options.auth_header.to_ascii_lowercase();
        let bearer = auth_header == DEFAULT_AUTH_HEADER;
        Ok(Endpoint {
            url: join(base, options.chat_path, options.query),
            embeddings_url: join(base, options.embeddings_path, options.query),
            auth_header,
            bearer,
        })
    }
}

/// `base` + `path` (+ `?query`).
fn join(base: &str, path: &str, query: &str) -> String {
    let mut url = String::with_capacity(base.len() + path.len() + 2 + query.len());
    url.push_str(base);
    if !path.starts_with('/') {
        url.push('/');
    }
    url.push_str(path);
    let query = query.trim_start_matches('?');
    if !query.is_empty() {
        // A path may already carry a query string of its own.
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(query);
    }
    url
}

/// The plugin's `options:` mapping, checked key by key so a typo or a wrong type is named
/// in the startup error instead of being silently ignored.
struct Options<'a> {
    chat_path: &'a str,
    embeddings_path: &'a str,
    auth_header: &'a str,
    query: &'a str,
}

impl<'a> Options<'a> {
    fn parse(value: &'a Value) -> Result<Options<'a>, String> {
        let mut options = Options {
            chat_path: DEFAULT_CHAT_PATH,
            embeddings_path: DEFAULT_EMBEDDINGS_PATH,
            auth_header: DEFAULT_AUTH_HEADER,
            query: "",
        };
        for (key, value) in OPTIONS.entries(value)? {
            let slot = match key {
                "chat_path" => &mut options.chat_path,
                "embeddings_path" => &mut options.embeddings_path,
                "auth_header" => &mut options.auth_header,
                "query" => &mut options.query,
                _ => return Err(OPTIONS.unknown(key)),
            };
            *slot = option_str(key, value)?;
        }
        for (key, path) in [
            ("chat_path", options.chat_path),
            ("embeddings_path", options.embeddings_path),
        ] {
            if path.trim().is_empty() || path.chars().any(|c| c.is_whitespace()) {
                return Err(format!(
                    "option `{key}` (`{path}`) must be a non-empty path without spaces"
                ));
            }
        }
        if !is_header_name(options.auth_header) {
            return Err(format!(
                "option `auth_header` (`{}`) is not a valid HTTP header name",
                options.auth_header
            ));
        }
        if options.query.chars().any(|c| c.is_whitespace() || c == '#') {
            return Err(format!(
                "option `query` (`{}`) must be a URL query string such as api-version=2024-10-21",
                options.query
            ));
        }
        Ok(options)
    }
}

/// RFC 9110 token characters: what every HTTP stack accepts as a header name.
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn endpoint(base_url: Option<&str>, options: Value) -> Result<Endpoint, String> {
        Endpoint::from_setup(&ProviderSetup {
            name: "p".into(),
            base_url: base_url.map(str::to_string),
            options,
        })
    }

    #[test]
    fn defaults_point_at_openai() {
        let e = endpoint(None, Value::Null).expect("defaults");
        assert_eq!(e.url, "https://api.openai.com/v1/chat/completions");
        assert_eq!(e.embeddings_url, "https://api.openai.com/v1/embeddings");
        assert_eq!(e.auth_header, "authorization");
        assert!(e.bearer);
    }

    #[test]
    fn trailing_slash_is_stripped_and_options_apply() {
        let e = endpoint(
            Some("https://res.openai.azure.com/openai/deployments/gpt4o/"),
            json!({"auth_header": "Api-Key", "query": "api-version=2024-10-21"}),
        )
        .expect("azure");
        assert_eq!(
            e.url,
            "https://res.openai.azure.com/openai/deployments/gpt4o/chat/completions?api-version=2024-10-21"
        );
        assert_eq!(
            e.embeddings_url,
            "https://res.openai.azure.com/openai/deployments/gpt4o/embeddings?api-version=2024-10-21"
        );
        assert_eq!(e.auth_header, "api-key");
        assert!(!e.bearer);

        let e = endpoint(
            Some("http://127.0.0.1:11434/v1"),
            json!({"chat_path": "chat?x=1", "query": "?y=2"}),
        )
        .expect("custom path");
        assert_eq!(e.url, "http://127.0.0.1:11434/v1/chat?x=1&y=2");
        assert_eq!(e.embeddings_url, "http://127.0.0.1:11434/v1/embeddings?y=2");
        let e = endpoint(Some("http://127.0.0.1:8000"), json!({"embeddings_path": "v1/embed"})).expect("custom");
        assert_eq!(e.embeddings_url, "http://127.0.0.1:8000/v1/embed");
    }

    #[test]
    fn bad_configuration_is_named() {
        let err = |base: Option<&str>, options: Value| endpoint(base, options).expect_err("refused");
        assert!(err(Some("api.openai.com/v1"), Value::Null).contains("http:// or https://"));
        assert!(err(Some("https://"), Value::Null).contains("base_url"));
        assert!(err(None, json!({"chat_paht": "/x"})).contains("unknown option `chat_paht`"));
        assert!(err(None, json!({"query": 5})).contains("option `query` must be a string, not a number"));
        assert!(err(None, json!({"auth_header": "bad header"})).contains("auth_header"));
        assert!(err(None, json!({"embeddings_path": " "})).contains("embeddings_path"));
        assert!(err(None, json!(["x"])).contains("options must be a mapping"));
    }
}
