//! The exact tier's key: a hash of the request as routed, in canonical form, and its tenant.
//!
//! Canonical form: the request's JSON with object keys sorted at every depth and whitespace
//! gone; the members that only say how to deliver or route the answer (`stream`,
//! `stream_options`, `fallbacks`) left out. Nothing else is normalised — no lowercasing, no
//! trimming, no cap on the number of messages — so two requests share an answer only when a
//! model would see the same input. The tenant (the `x-bf-cache-key` namespace; the virtual key
//! once governance lands) is hashed in first, so no two tenants ever share an entry.

use ring::digest::{Context, SHA256};
use serde_json::Value;

/// Top-level members that do not change the answer's content.
const DELIVERY_MEMBERS: [&str; 3] = ["stream", "stream_options", "fallbacks"];

/// An entry's id: the first 128 bits of the SHA-256 of tenant and canonical request (far
/// beyond any chance collision), shown to clients as 32 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheId(pub [u8; 16]);

impl CacheId {
    /// The id of `request` (a JSON object) for `namespace`; `None` if it is not an object.
    pub fn of(namespace: &str, request: &[u8]) -> Option<CacheId> {
        let value: Value = serde_json::from_slice(request).ok()?;
        let object = value.as_object()?;
        let mut hash = Context::new(&SHA256);
        hash.update(&(namespace.len() as u64).to_le_bytes());
        hash.update(namespace.as_bytes());
        let mut members: Vec<(&String, &Value)> = object
            .iter()
            .filter(|(k, _)| !DELIVERY_MEMBERS.contains(&k.as_str()))
            .collect();
        members.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut out = Vec::with_capacity(request.len());
        out.push(b'{');
        for (i, (k, v)) in members.into_iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_string(&mut out, k);
            out.push(b':');
            write_canonical(&mut out, v);
        }
        out.push(b'}');
        hash.update(&out);
        let digest = hash.finish();
        let mut id = [0u8; 16];
        id.copy_from_slice(&digest.as_ref()[..16]);
        Some(CacheId(id))
    }

    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn from_hex(text: &str) -> Option<CacheId> {
        if text.len() != 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut id = [0u8; 16];
        for (i, byte) in id.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(CacheId(id))
    }
}

fn write_string(out: &mut Vec<u8>, s: &str) {
    // A string always serialises.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// `v` with every object's keys sorted, no whitespace.
fn write_canonical(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (k, v)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(out, k);
                out.push(b':');
                write_canonical(out, v);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(out, item);
            }
            out.push(b']');
        }
        // Scalars as serde_json writes them (numbers as they were read).
        other => {
            let _ = serde_json::to_writer(&mut *out, other);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(ns: &str, json: &str) -> CacheId {
        CacheId::of(ns, json.as_bytes()).expect("an object")
    }

    #[test]
    fn key_order_whitespace_and_delivery_members_do_not_matter() {
        let a = id(
            "",
            r#"{"model":"m","messages":[{"role":"user","content":"Hi"}],"temperature":0.5}"#,
        );
        let b = id(
            "",
            r#"{ "temperature": 0.5, "messages": [ {"content": "Hi", "role": "user"} ],
                 "stream": true, "stream_options": {"include_usage": true}, "fallbacks": ["x/y"], "model": "m" }"#,
        );
        assert_eq!(a, b);
    }

    #[test]
    fn content_case_spacing_parameters_tenant_and_history_all_matter() {
        let base = id("", r#"{"model":"m","messages":[{"role":"user","content":"Hi"}]}"#);
        for (ns, other) in [
            ("", r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#),
            ("", r#"{"model":"m","messages":[{"role":"user","content":"Hi "}]}"#),
            ("", r#"{"model":"m","messages":[{"role":"system","content":"Hi"}]}"#),
            ("", r#"{"model":"m2","messages":[{"role":"user","content":"Hi"}]}"#),
            (
                "",
                r#"{"model":"m","messages":[{"role":"user","content":"Hi"}],"temperature":0}"#,
            ),
            (
                "tenant-b",
                r#"{"model":"m","messages":[{"role":"user","content":"Hi"}]}"#,
            ),
            (
                "",
                r#"{"model":"m","messages":[{"role":"user","content":"Hi"},{"role":"assistant","content":"Yo"},{"role":"user","content":"Hi"}]}"#,
            ),
        ] {
            assert_ne!(base, id(ns, other), "{ns} {other}");
        }
        // A namespace cannot be forged by moving bytes between it and the request.
        assert_ne!(id("a", r#"{"b":1}"#), id("", r#"{"b":1}"#));
    }

    #[test]
    fn ids_print_and_parse_as_32_hex_digits() {
        let i = id("", r#"{"model":"m"}"#);
        let hex = i.hex();
        assert_eq!(hex.len(), 32);
        assert_eq!(CacheId::from_hex(&hex), Some(i));
        assert_eq!(CacheId::from_hex("zz"), None);
        assert_eq!(CacheId::from_hex(&"g".repeat(32)), None);
        assert!(CacheId::of("", b"[1]").is_none());
    }
}
