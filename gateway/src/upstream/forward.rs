//! Which client headers may reach an upstream: the client's `x-bf-eh-NAME` headers, sent as
//! `NAME`, only where the provider's `forward_headers` allowlist names them.
//!
//! An allowlist rather than a denylist, because what a forwarded header can do is decided by
//! the upstream, and the operator's key pays for it: `openai-organization` or
//! `openai-project` pick whose bill a request lands on, `anthropic-beta` opts into beta
//! behaviour, and `accept-encoding: gzip` makes the upstream answer in a form the codec
//! cannot read — a failure that counts against the provider's shared circuit, so one client
//! could open it for everyone.

use http::header::{HeaderName, HeaderValue};

/// Forwarded when a provider does not say otherwise: tracing and correlation headers, which
/// change nothing about how the upstream answers or bills.
pub const DEFAULT_FORWARDED: &[&str] = &["traceparent", "tracestate", "baggage", "x-correlation-id"];

/// Never forwarded, even when listed: credentials (upstream auth comes only from configured
/// keys), headers that describe this hop's connection or body (the gateway sets them), and
/// encodings the codecs do not read.
pub const NEVER_FORWARDED: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
    "cookie",
    "set-cookie",
    "host",
    "content-length",
    "content-type",
    "content-encoding",
    "accept-encoding",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
];

const PREFIX: &str = "x-bf-eh-";

/// Why a `forward_headers` entry is refused (reported by config validation).
pub fn refuse_reason(name: &str) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    if HeaderName::from_bytes(lower.as_bytes()).is_err() {
        return Some(format!("`{name}` is not a valid header name"));
    }
    NEVER_FORWARDED.contains(&lower.as_str()).then(|| {
        format!(
            "`{name}` is never forwarded from clients: credentials come only from configured keys, \
             and connection, body and encoding headers are the gateway's own"
        )
    })
}

/// A provider's allowlist, parsed once at config load.
#[derive(Debug, Clone, Default)]
pub struct ForwardAllowlist {
    names: Box<[HeaderName]>,
}

impl ForwardAllowlist {
    /// `configured` = `providers.NAME.forward_headers`, `None` for the default set. Names that
    /// validation refuses are skipped here too, so the allowlist can never hold one.
    pub fn new(configured: Option<&[String]>) -> ForwardAllowlist {
        let names: Vec<HeaderName> = match configured {
            Some(list) => list.iter().map(String::as_str).collect::<Vec<_>>(),
            None => DEFAULT_FORWARDED.to_vec(),
        }
        .into_iter()
        .filter(|n| refuse_reason(n).is_none())
        .filter_map(|n| HeaderName::from_bytes(n.to_ascii_lowercase().as_bytes()).ok())
        .collect();
        ForwardAllowlist {
            names: names.into_boxed_slice(),
        }
    }

    pub fn allows(&self, name: &HeaderName) -> bool {
        self.names.contains(name)
    }
}

/// The client's `x-bf-eh-NAME: v` headers as `(NAME, v)`, minus those never forwarded. Which
/// of them a provider receives is its allowlist's decision, at send time.
pub fn client_extra_headers<'a>(headers: impl Iterator<Item = (&'a str, &'a [u8])>) -> Vec<(HeaderName, HeaderValue)> {
    headers
        .filter_map(|(name, value)| {
            let rest = name.strip_prefix(PREFIX)?;
            if rest.is_empty() || NEVER_FORWARDED.contains(&rest) {
                return None;
            }
            let n = HeaderName::from_bytes(rest.as_bytes()).ok()?;
            let v = HeaderValue::from_bytes(value).ok()?;
            Some((n, v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn extra(pairs: &[(&'static str, &'static str)]) -> Vec<(HeaderName, HeaderValue)> {
        client_extra_headers(pairs.iter().map(|(k, v)| (*k, v.as_bytes())))
    }

    #[test]
    fn only_prefixed_headers_minus_the_never_list() {
        let got = extra(&[
            ("x-bf-eh-traceparent", "00-abc-def-01"),
            ("x-bf-eh-authorization", "Bearer sk-smuggled"),
            ("x-bf-eh-accept-encoding", "gzip"),
            ("x-bf-eh-", "empty"),
            ("traceparent", "not prefixed"),
        ]);
        let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["traceparent"]);
    }

    #[test]
    fn default_allowlist_is_tracing_only() {
        let allow = ForwardAllowlist::new(None);
        for n in DEFAULT_FORWARDED {
            assert!(allow.allows(&HeaderName::from_static(n)));
        }
        for n in [
            "openai-organization",
            "openai-project",
            "anthropic-beta",
            "accept-encoding",
        ] {
            assert!(!allow.allows(&HeaderName::from_static(n)), "{n}");
        }
    }

    #[test]
    fn operator_lists_win_but_never_the_never_list() {
        let allow = ForwardAllowlist::new(Some(&["OpenAI-Organization".into(), "accept-encoding".into()]));
        assert!(allow.allows(&HeaderName::from_static("openai-organization")));
        assert!(!allow.allows(&HeaderName::from_static("accept-encoding")));
        assert!(!allow.allows(&HeaderName::from_static("traceparent")));
        assert!(refuse_reason("Authorization").is_some());
        assert!(refuse_reason("bad header").is_some());
        assert!(refuse_reason("anthropic-beta").is_none());
    }
}
