//! The exact tier's key: a hash of the request as routed, in canonical form, and its tenant.
//!
//! Canonical form: the request's JSON with object keys sorted at every depth and whitespace
//! gone; the members that only say how to deliver or route the answer (`stream`,
//! `stream_options`, `fallbacks`) left out. Nothing else is normalised — no lowercasing, no
//! trimming, no cap on the number of messages — so two requests share an answer only when a
//! model would see the same input. The tenant (the `x-bf-cache-key` namespace; the virtual key
//! once governance lands) is hashed in first, so no two tenants ever share an entry.

use crate::json_scan::string_end;

/// Top-level members that do not change the answer's content.
const DELIVERY_MEMBERS: [&[u8]; 3] = [b"\"stream\"", b"\"stream_options\"", b"\"fallbacks\""];

/// An entry's id: the first 128 bits of the BLAKE3 hash of tenant and canonical request (no
/// chance or crafted collision), shown to clients as 32 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheId(pub [u8; 16]);

impl CacheId {
    /// The id of `request` (a JSON object, already validated) for `namespace`; `None` if it
    /// is not an object.
    pub fn of(namespace: &str, request: &[u8]) -> Option<CacheId> {
        Self::hashed(b"exact", namespace, request, false)
    }

    /// The semantic tier's partition of `request`: its tenant, the embedding model (vectors of
    /// two models are never compared, even from replicas configured apart), and everything
    /// but `messages` (model and parameters), so a stored conversation only ever answers a
    /// request with the same model and parameters. Hashed apart from exact ids.
    pub fn partition(namespace: &str, embedding: &str, request: &[u8]) -> Option<CacheId> {
        let mut domain = Vec::with_capacity(32 + embedding.len());
        domain.extend_from_slice(b"semantic-partition\0");
        domain.extend_from_slice(&(embedding.len() as u64).to_le_bytes());
        domain.extend_from_slice(embedding.as_bytes());
        Self::hashed(&domain, namespace, request, true)
    }

    fn hashed(domain: &[u8], namespace: &str, request: &[u8], skip_messages: bool) -> Option<CacheId> {
        let mut canonical = Vec::with_capacity(request.len());
        let mut scan = Canonical {
            json: request,
            at: 0,
            members: Vec::new(),
            skip_messages,
        };
        scan.space();
        if scan.peek() != Some(b'{') {
            return None;
        }
        scan.object(&mut canonical, true)?;
        let mut hash = blake3::Hasher::new();
        if skip_messages {
            // Exact ids hash no domain (their values stay as they were); partitions do.
            hash.update(domain);
        }
        hash.update(&(namespace.len() as u64).to_le_bytes());
        hash.update(namespace.as_bytes());
        hash.update(&canonical);
        let mut id = [0u8; 16];
        id.copy_from_slice(&hash.finalize().as_bytes()[..16]);
        Some(CacheId(id))
    }

    pub fn hex(&self) -> String {
        let mut out = String::with_capacity(32);
        self.write_hex(&mut out);
        out
    }

    /// The 32 hex digits, appended (no formatting machinery: this runs on every lookup).
    pub fn write_hex(&self, out: &mut String) {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        for b in self.0 {
            out.push(DIGITS[usize::from(b >> 4)] as char);
            out.push(DIGITS[usize::from(b & 15)] as char);
        }
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

/// Writes valid JSON in canonical form in one pass over its bytes: whitespace between tokens
/// dropped, each object's members sorted by their key's bytes. Strings and numbers are kept
/// exactly as written (a string spelt with different escapes is a different key: a miss,
/// never a wrong hit). No parse into a tree: on the request path that parse and its
/// re-serialisation cost more than the rest of a cache lookup (measured).
struct Canonical<'a> {
    json: &'a [u8],
    at: usize,
    /// (start, key end, end) of the members written, as offsets in the output, for every
    /// object being written (each uses the part above where it started): one allocation
    /// for the whole request instead of one per object.
    members: Vec<(usize, usize, usize)>,
    /// Leave the top-level `messages` out too (the semantic partition).
    skip_messages: bool,
}

impl Canonical<'_> {
    fn peek(&self) -> Option<u8> {
        self.json.get(self.at).copied()
    }

    fn space(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.at += 1;
        }
    }

    fn value(&mut self, out: &mut Vec<u8>) -> Option<()> {
        self.space();
        match self.peek()? {
            b'{' => self.object(out, false),
            b'[' => self.array(out),
            b'"' => {
                let start = self.at;
                self.at = string_end(self.json, start)? + 1;
                out.extend_from_slice(&self.json[start..self.at]);
                Some(())
            }
            _ => {
                let start = self.at;
                while self
                    .peek()
                    .is_some_and(|b| !matches!(b, b',' | b'}' | b']') && !b.is_ascii_whitespace())
                {
                    self.at += 1;
                }
                (self.at > start).then(|| out.extend_from_slice(&self.json[start..self.at]))
            }
        }
    }

    fn array(&mut self, out: &mut Vec<u8>) -> Option<()> {
        self.at += 1;
        out.push(b'[');
        self.space();
        if self.peek()? == b']' {
            self.at += 1;
            out.push(b']');
            return Some(());
        }
        loop {
            self.value(out)?;
            self.space();
            match self.peek()? {
                b',' => {
                    self.at += 1;
                    out.push(b',');
                }
                b']' => {
                    self.at += 1;
                    out.push(b']');
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// Members are written in the order they come, then put in key order if they were not
    /// in it already (the copy only for an object that needs it).
    fn object(&mut self, out: &mut Vec<u8>, top: bool) -> Option<()> {
        self.at += 1;
        out.push(b'{');
        let region = out.len();
        let base = self.members.len();
        let mut sorted = true;
        self.space();
        if self.peek()? == b'}' {
            self.at += 1;
            out.push(b'}');
            return Some(());
        }
        loop {
            self.space();
            if self.peek()? != b'"' {
                return None;
            }
            let key_start = self.at;
            let key_end = string_end(self.json, key_start)? + 1;
            let key = &self.json[key_start..key_end];
            self.at = key_end;
            self.space();
            if self.peek()? != b':' {
                return None;
            }
            self.at += 1;
            let before = out.len();
            if self.members.len() > base {
                out.push(b',');
            }
            let start = out.len();
            out.extend_from_slice(key);
            out.push(b':');
            self.value(out)?;
            if top && (DELIVERY_MEMBERS.contains(&key) || (self.skip_messages && key == b"\"messages\"")) {
                out.truncate(before);
            } else {
                if let Some(&(prev_start, prev_key_end, _)) = self.members.get(base..).and_then(<[_]>::last) {
                    sorted &= out[prev_start..prev_key_end] <= out[start..start + key.len()];
                }
                self.members.push((start, start + key.len(), out.len()));
            }
            self.space();
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    break;
                }
                _ => return None,
            }
        }
        if !sorted {
            let written = out.split_off(region);
            let members = &mut self.members[base..];
            members.sort_by(|a, b| written[a.0 - region..a.1 - region].cmp(&written[b.0 - region..b.1 - region]));
            for (i, &(s, _, e)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(&written[s - region..e - region]);
            }
        }
        self.members.truncate(base);
        out.push(b'}');
        Some(())
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
        // The semantic partition: everything but the messages, and apart from exact ids.
        let part = |ns: &str, json: &str| CacheId::partition(ns, "p/e", json.as_bytes()).expect("partition");
        let base = part(
            "a",
            r#"{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":0}"#,
        );
        assert_eq!(
            base,
            part("a", r#"{"temperature":0,"messages":[],"model":"m","stream":true}"#)
        );
        assert_ne!(
            base,
            part("b", r#"{"model":"m","messages":[],"temperature":0}"#),
            "tenant"
        );
        assert_ne!(
            base,
            part("a", r#"{"model":"n","messages":[],"temperature":0}"#),
            "model"
        );
        assert_ne!(
            base,
            part("a", r#"{"model":"m","messages":[],"temperature":1}"#),
            "parameters"
        );
        assert_ne!(base, id("a", r#"{"model":"m","temperature":0}"#), "its own domain");
        let other_embedding = CacheId::partition("a", "p/f", br#"{"model":"m","messages":[],"temperature":0}"#);
        assert_ne!(Some(base), other_embedding, "another embedding model");
        // A namespace cannot be forged by moving bytes between it and the request.
        assert_ne!(id("a", r#"{"b":1}"#), id("", r#"{"b":1}"#));
    }

    #[test]
    fn the_canonical_form_sorts_every_object_and_drops_only_space_between_tokens() {
        let canonical = |json: &str| {
            let mut out = Vec::new();
            let mut scan = Canonical {
                json: json.as_bytes(),
                at: 0,
                members: Vec::new(),
                skip_messages: false,
            };
            scan.object(&mut out, true).expect("an object");
            String::from_utf8(out).expect("utf-8")
        };
        assert_eq!(
            canonical(r#"{ "b" : [ 1 , {"z": true, "a": null} ], "a": " x , y ", "stream": true, "c": {} }"#),
            r#"{"a":" x , y ","b":[1,{"a":null,"z":true}],"c":{}}"#
        );
        // Escaped quotes and backslashes stay inside their strings.
        assert_eq!(
            canonical(r#"{"k": "a\"}b\\", "j": [ "\\" ] }"#),
            r#"{"j":["\\"],"k":"a\"}b\\"}"#
        );
        assert_eq!(canonical(r#"{"fallbacks": ["a"], "stream_options": {"x": 1}}"#), "{}");
        // Delivery members are only dropped at the top level.
        assert_eq!(canonical(r#"{"m": {"stream": 1}}"#), r#"{"m":{"stream":1}}"#);
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
