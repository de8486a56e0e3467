//! `extra_fields` on responses and chunks. Codecs hand over JSON objects without it, so the
//! gateway appends it by splicing bytes before the closing brace — no second parse.

use super::raw_object::Members;
use crate::json_scan::string_end;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct ExtraFields<'a> {
    pub request_type: &'static str,
    pub provider: &'a str,
    pub model_requested: &'a str,
    pub model_deployment: &'a str,
    /// Whole milliseconds: the request's total, or for a stream chunk the time since the
    /// previous chunk (the total on the last).
    pub latency: u64,
    pub chunk_index: u64,
    /// What was sent upstream (the body; credentials travel in headers and are never here).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_request: Option<&'a serde_json::value::RawValue>,
    /// What the upstream answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_response: Option<&'a serde_json::value::RawValue>,
    /// For a request that asked the cache: hit or miss, and the entry's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_debug: Option<&'a serde_json::value::RawValue>,
}

pub const CHAT: &str = "chat_completion";
pub const CHAT_STREAM: &str = "chat_completion_stream";

/// Writes `json` with `"extra_fields": {...}` added as its last member into `out`.
/// Returns false (and writes `json` unchanged) when `json` is not an object.
pub fn append_to(out: &mut Vec<u8>, json: &[u8], extra: &ExtraFields<'_>) -> bool {
    // Serialising a struct of strings and integers into a Vec cannot fail.
    splice(out, json, None, |out| {
        let _ = serde_json::to_writer(&mut *out, extra);
    })
}

/// [`append_to`] with `"cost":` and what `write_cost` writes (JSON) added as the last member of the top-level
/// `usage` object, in the same single copy of `json`. Without a usage object, as
/// [`append_to`] (the cost has nowhere to go).
pub fn append_with_cost(
    out: &mut Vec<u8>,
    json: &[u8],
    write_cost: impl FnOnce(&mut Vec<u8>),
    extra: &ExtraFields<'_>,
) -> bool {
    let Some(usage) = usage_object(json) else {
        return append_to(out, json, extra);
    };
    let close = usage.end - 1;
    let empty = json[usage.start + 1..close].iter().all(u8::is_ascii_whitespace);
    let mut member = Vec::with_capacity(128);
    if !empty {
        member.push(b',');
    }
    member.extend_from_slice(b"\"cost\":");
    write_cost(&mut member);
    splice(out, json, Some((close, &member)), |out| {
        let _ = serde_json::to_writer(&mut *out, extra);
    })
}

/// The range of the top-level `usage` object's value, if it is an object.
fn usage_object(json: &[u8]) -> Option<std::ops::Range<usize>> {
    let usage = compact_usage_value(json).or_else(|| member_value(json, b"usage"))?;
    let value = &json[usage.clone()];
    (value.first() == Some(&b'{') && value.last() == Some(&b'}')).then_some(usage)
}

/// A stream's `extra_fields`, of which only `latency` and `chunk_index` change from chunk to
/// chunk: the rest is serialised (escaped) once per stream instead of once per chunk.
pub struct StreamExtraFields {
    /// `{"request_type":…,"provider":…,"model_requested":…,"model_deployment":…,"latency":`
    head: Vec<u8>,
}

impl StreamExtraFields {
    pub fn new(provider: &str, model_requested: &str, model_deployment: &str) -> StreamExtraFields {
        let full = ExtraFields {
            request_type: CHAT_STREAM,
            provider,
            model_requested,
            model_deployment,
            latency: 0,
            chunk_index: 0,
            raw_request: None,
            raw_response: None,
            cache_debug: None,
        };
        let mut head = serde_json::to_vec(&full).unwrap_or_default();
        // Cut at the first varying member; the serialiser writes members in declaration order.
        let cut = head
            .windows(LATENCY_KEY.len())
            .rposition(|w| w == LATENCY_KEY)
            .map_or(head.len(), |p| p + LATENCY_KEY.len());
        head.truncate(cut);
        StreamExtraFields { head }
    }

    /// [`append_to`] for one chunk of this stream.
    pub fn append_to(&self, out: &mut Vec<u8>, json: &[u8], latency: u64, chunk_index: u64) -> bool {
        self.append_with(out, json, latency, chunk_index, &[])
    }

    /// [`Self::append_to`] with `tail` (more `,"name":value` members, already JSON) after
    /// `chunk_index`: the stream's `raw_request` / `raw_response`.
    pub fn append_with(&self, out: &mut Vec<u8>, json: &[u8], latency: u64, chunk_index: u64, tail: &[u8]) -> bool {
        splice(out, json, None, |out| {
            let mut n = itoa::Buffer::new();
            out.extend_from_slice(&self.head);
            out.extend_from_slice(n.format(latency).as_bytes());
            out.extend_from_slice(b",\"chunk_index\":");
            out.extend_from_slice(n.format(chunk_index).as_bytes());
            out.extend_from_slice(tail);
            out.push(b'}');
        })
    }
}

const LATENCY_KEY: &[u8] = b"\"latency\":";

/// Writes `json` into `out` with `"extra_fields":` and what `write_extra` writes added as its
/// last member; `insert` (`(at, bytes)`, `at` inside the object) goes in on the way.
fn splice(
    out: &mut Vec<u8>,
    json: &[u8],
    insert: Option<(usize, &[u8])>,
    write_extra: impl FnOnce(&mut Vec<u8>),
) -> bool {
    let trimmed_end = json.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(0, |p| p + 1);
    let body = &json[..trimmed_end];
    let Some(inner) = body.strip_suffix(b"}") else {
        out.extend_from_slice(json);
        return false;
    };
    if body.first().is_none_or(|b| *b != b'{') {
        out.extend_from_slice(json);
        return false;
    }
    match insert {
        Some((at, bytes)) if at < inner.len() => {
            out.extend_from_slice(&inner[..at]);
            out.extend_from_slice(bytes);
            out.extend_from_slice(&inner[at..]);
        }
        _ => out.extend_from_slice(inner),
    }
    let empty_object = inner
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .is_some_and(|p| inner[p] == b'{');
    if !empty_object {
        out.push(b',');
    }
    out.extend_from_slice(b"\"extra_fields\":");
    write_extra(out);
    out.push(b'}');
    true
}

/// A chunk that carries `finish_reason` with the `usage` of OpenAI's separate usage-only
/// chunk moved onto it (for clients that did not ask for the usage chunk). Once per stream.
/// `usage` is found walking the top-level members from the end (OpenAI writes it last, so
/// only its value is scanned); a chunk where that walk fails takes the general path
/// (top-level parse).
pub fn move_usage(finish_chunk: &[u8], usage_chunk: &[u8]) -> Option<Vec<u8>> {
    if let (Some(usage), Some(target)) = (
        member_value(usage_chunk, b"usage"),
        member_value(finish_chunk, b"usage"),
    ) {
        let usage = &usage_chunk[usage];
        let mut out = Vec::with_capacity(finish_chunk.len() + usage.len());
        out.extend_from_slice(&finish_chunk[..target.start]);
        out.extend_from_slice(usage);
        out.extend_from_slice(&finish_chunk[target.end..]);
        return Some(out);
    }
    let target = Members::parse(finish_chunk).ok()?;
    let usage = Members::parse(usage_chunk).ok()?.get("usage")?;
    let mut out = Vec::with_capacity(finish_chunk.len() + usage.get().len());
    target.write_with(&mut out, "usage", usage.get().as_bytes());
    Some(out)
}

/// `json` with `"cost":` and `cost` (already JSON) added as the last member of its top-level
/// `usage` object; `None` when it has no usage object (e.g. `"usage": null`). Found from the
/// end: OpenAI-shaped answers put `usage` at or near the end, so only their tail is walked.
pub fn add_cost_to_usage(json: &[u8], cost: &[u8]) -> Option<Vec<u8>> {
    let usage = usage_object(json)?;
    let close = usage.end - 1;
    let empty = json[usage.start + 1..close].iter().all(u8::is_ascii_whitespace);
    let mut out = Vec::with_capacity(json.len() + cost.len() + 9);
    out.extend_from_slice(&json[..close]);
    if !empty {
        out.push(b',');
    }
    out.extend_from_slice(b"\"cost\":");
    out.extend_from_slice(cost);
    out.extend_from_slice(&json[close..]);
    Some(out)
}

/// The range of the top-level `"usage":{…}` object in compact JSON (what the codecs write):
/// found from the end with a SIMD search, then confirmed top-level by scanning only what
/// follows it — a `usage` nested deeper would have its parent closed before the final brace.
/// `None` sends the caller to the general walk ([`member_value`]).
fn compact_usage_value(json: &[u8]) -> Option<std::ops::Range<usize>> {
    const KEY: &[u8] = b"\"usage\":{";
    static FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(KEY));
    // Inside a JSON string every quote is escaped, so this byte sequence only ever starts a
    // member (the key's closing quote cannot be a string's `\"`). Searched forward (the
    // SIMD direction; backward was most of the cost feature's CPU); the first occurrence that
    // is top-level wins, and there is at most one.
    FINDER
        .find_iter(json)
        .find_map(|key| top_level_object_at(json, key + KEY.len() - 1))
}

/// The range of the object starting at `start` if it is a member of `json`'s top-level
/// object: everything after it closes no object but the outermost.
fn top_level_object_at(json: &[u8], start: usize) -> Option<std::ops::Range<usize>> {
    let end = scan_value_end(json, start)?;
    // What follows: members at depth 0 up to the object's closing brace, and only space after.
    let mut i = end;
    let mut depth = 0usize;
    while i < json.len() {
        i = next_structural(json, i);
        match *json.get(i)? {
            b'"' => i = string_end(json, i)?,
            b'{' | b'[' => depth += 1,
            b'}' | b']' if depth > 0 => depth -= 1,
            b'}' => return json[i + 1..].iter().all(u8::is_ascii_whitespace).then_some(start..end),
            b']' => return None,
            _ => {}
        }
        i += 1;
    }
    None
}

/// The bytes a structural scan stops at: quotes and brackets.
static STRUCTURAL: [bool; 256] = {
    let mut table = [false; 256];
    table[b'"' as usize] = true;
    table[b'{' as usize] = true;
    table[b'}' as usize] = true;
    table[b'[' as usize] = true;
    table[b']' as usize] = true;
    table
};

/// The first structural byte at or after `i` (or `json.len()`): one table load per byte.
#[inline]
fn next_structural(json: &[u8], mut i: usize) -> usize {
    while i < json.len() && !STRUCTURAL[json[i] as usize] {
        i += 1;
    }
    i
}

/// The index just past the object or array that starts at `start`.
fn scan_value_end(json: &[u8], start: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = start;
    while i < json.len() {
        i = next_structural(json, i);
        match *json.get(i)? {
            b'"' => i = string_end(json, i)?,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The value range of `json`'s top-level member `name` (written without escapes), walking
/// the members back from the closing brace. `json` is an object a codec produced, so every
/// quote not escaped by an odd run of backslashes delimits a string.
fn member_value(json: &[u8], name: &[u8]) -> Option<std::ops::Range<usize>> {
    let escaped = |q: usize| json[..q].iter().rev().take_while(|b| **b == b'\\').count() % 2 == 1;
    let last_non_space = |end: usize| json[..end].iter().rposition(|b| !b.is_ascii_whitespace());
    let close = last_non_space(json.len())?;
    if json[close] != b'}' {
        return None;
    }
    let mut end = close;
    loop {
        // The member's value ends at the last non-space before `end`.
        let value_end = last_non_space(end)? + 1;
        if json[value_end - 1] == b'{' && value_end - 1 < close {
            // The object's opening brace: no member left (or an empty object).
            return None;
        }
        // Back to the `:` before the value, at depth 0 and outside strings.
        let (mut i, mut depth, mut in_string) = (value_end, 0usize, false);
        let colon = loop {
            i = i.checked_sub(1)?;
            let b = json[i];
            if in_string {
                if b == b'"' && !escaped(i) {
                    in_string = false;
                }
                continue;
            }
            match b {
                b'"' => in_string = true,
                b'}' | b']' => depth += 1,
                b'{' | b'[' => depth = depth.checked_sub(1)?,
                b':' if depth == 0 => break i,
                b',' if depth == 0 => return None,
                _ => {}
            }
        };
        let value_start = colon
            + 1
            + json[colon + 1..value_end]
                .iter()
                .position(|b| !b.is_ascii_whitespace())?;
        // The key: the string before the colon.
        let key_close = last_non_space(colon)?;
        if json[key_close] != b'"' {
            return None;
        }
        let key_open = (0..key_close).rev().find(|&q| json[q] == b'"' && !escaped(q))?;
        if &json[key_open + 1..key_close] == name {
            return Some(value_start..value_end);
        }
        // Before the key: a comma (another member) or the opening brace (none left).
        let before = last_non_space(key_open)?;
        match json[before] {
            b',' => end = before,
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ef() -> ExtraFields<'static> {
        ExtraFields {
            request_type: CHAT,
            provider: "p",
            model_requested: "alias",
            model_deployment: "m",
            latency: 3,
            chunk_index: 0,
            raw_request: None,
            raw_response: None,
            cache_debug: None,
        }
    }

    #[test]
    fn appends_as_last_member() {
        let mut out = Vec::new();
        assert!(append_to(&mut out, b"{\"a\":1}\n", &ef()));
        let v: serde_json::Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(v["a"], 1);
        assert_eq!(v["extra_fields"]["provider"], "p");
        assert_eq!(v["extra_fields"]["chunk_index"], 0);
        let mut out = Vec::new();
        assert!(append_to(&mut out, b"{ }", &ef()));
        assert!(serde_json::from_slice::<serde_json::Value>(&out).is_ok());
        let mut out = Vec::new();
        assert!(!append_to(&mut out, b"[1]", &ef()));
        assert_eq!(out, b"[1]");
    }

    #[test]
    fn the_stream_form_writes_what_the_general_one_does() {
        let names = ("pro\"vider", "alias/ü", "m\\x");
        let stream = StreamExtraFields::new(names.0, names.1, names.2);
        for (latency, index) in [(0, 0), (7, 12), (u64::MAX, 1)] {
            let general = ExtraFields {
                request_type: CHAT_STREAM,
                provider: names.0,
                model_requested: names.1,
                model_deployment: names.2,
                latency,
                chunk_index: index,
                raw_request: None,
                raw_response: None,
                cache_debug: None,
            };
            let (mut a, mut b) = (Vec::new(), Vec::new());
            assert!(append_to(&mut a, br#"{"id":"x"}"#, &general));
            assert!(stream.append_to(&mut b, br#"{"id":"x"}"#, latency, index));
            assert_eq!(String::from_utf8_lossy(&a), String::from_utf8_lossy(&b));
        }
        let mut out = Vec::new();
        assert!(!stream.append_to(&mut out, b"[]", 1, 1));
        assert_eq!(out, b"[]");
    }

    #[test]
    fn cost_goes_last_into_the_top_level_usage_object() {
        let cost = br#"{"total_cost":1.5}"#;
        let add = |json: &str| add_cost_to_usage(json.as_bytes(), cost).map(|o| String::from_utf8(o).expect("utf-8"));
        // OpenAI's layout: usage then more members.
        assert_eq!(
            add(r#"{"id":"x","choices":[{"message":{"usage":{}}}],"usage":{"prompt_tokens":3},"service_tier":"default","system_fingerprint":"fp"}"#).as_deref(),
            Some(r#"{"id":"x","choices":[{"message":{"usage":{}}}],"usage":{"prompt_tokens":3,"cost":{"total_cost":1.5}},"service_tier":"default","system_fingerprint":"fp"}"#)
        );
        // Usage last, with whitespace and nested objects; strings holding braces, quotes, colons.
        assert_eq!(
            add("{\"a\":\"}:\\\"{,\" , \"usage\" : { \"d\": {\"x\": [1,{}]} } }\n").as_deref(),
            Some("{\"a\":\"}:\\\"{,\" , \"usage\" : { \"d\": {\"x\": [1,{}]} ,\"cost\":{\"total_cost\":1.5}} }\n")
        );
        // Usage first.
        assert_eq!(
            add(r#"{"usage":{},"b":[1,2]}"#).as_deref(),
            Some(r#"{"usage":{"cost":{"total_cost":1.5}},"b":[1,2]}"#)
        );
        // A compact `usage` nested deeper than the top level is not the answer's.
        assert_eq!(
            add(r#"{"x":{"usage":{"a":1}},"usage":{"b":2}}"#).as_deref(),
            Some(r#"{"x":{"usage":{"a":1}},"usage":{"b":2,"cost":{"total_cost":1.5}}}"#)
        );
        assert_eq!(add(r#"{"usage":null,"x":{"usage":{"a":1}}}"#), None);
        assert_eq!(add(r#"{"usage":null,"x":[{"usage":{"a":"}]"}}]}"#), None);
        // No usage object: nothing to add to.
        assert_eq!(add(r#"{"usage":null}"#), None);
        assert_eq!(add(r#"{"choices":[{"usage":{}}]}"#), None);
        assert_eq!(add(r#"{}"#), None);
        assert_eq!(add(r#"[1]"#), None);
        assert_eq!(add(r#"{"usage":"{}"}"#), None);
        // Every result is still valid JSON with the cost inside usage.
        let v: serde_json::Value =
            serde_json::from_str(&add(r#"{"id":"x","usage":{"prompt_tokens":3},"z":"\"usage\":{}"}"#).expect("added"))
                .expect("json");
        assert_eq!(v["usage"]["cost"]["total_cost"], 1.5);
        assert_eq!(v["z"], "\"usage\":{}");
    }

    #[test]
    fn usage_moves_onto_the_finish_chunk() {
        let merged = move_usage(
            br#"{"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}"#,
            br#"{"id":"c","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#,
        )
        .expect("merged");
        // In place, every other member as the upstream wrote it.
        assert_eq!(
            String::from_utf8(merged).expect("utf8"),
            r#"{"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#
        );
        // No usage member on the finish chunk: appended, escaped keys kept valid.
        let merged = move_usage(
            br#"{ "i\"d" : "c" , "choices" : [ ] }"#,
            br#"{"usage":{"total_tokens":3}}"#,
        )
        .expect("merged");
        let v: serde_json::Value = serde_json::from_slice(&merged).expect("json");
        assert_eq!(v["i\"d"], "c");
        assert_eq!(v["usage"]["total_tokens"], 3);
        // Nothing to move, or not objects: no merge (the caller keeps the finish chunk).
        assert!(move_usage(br#"{"choices":[]}"#, br#"{"choices":[]}"#).is_none());
        assert!(move_usage(b"[1]", br#"{"usage":{}}"#).is_none());
        assert!(move_usage(br#"{"choices":[]}"#, b"{").is_none());
    }

    #[test]
    fn usage_moves_onto_the_finish_chunk_whatever_the_layout() {
        let usage = br#"{"id":"x","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#;
        let expect = serde_json::json!({"prompt_tokens":3,"completion_tokens":2,"total_tokens":5});
        // OpenAI's layout (usage last, null on the finish chunk): the fast path.
        let finish = br#"{"id":"x","choices":[{"index":0,"delta":{"content":"a \"usage\":1}"},"finish_reason":"stop"}],"usage":null}"#;
        assert!(member_value(finish, b"usage").is_some());
        let moved = move_usage(finish, usage).expect("moved");
        let v: serde_json::Value = serde_json::from_slice(&moved).expect("valid JSON");
        assert_eq!(v["usage"], expect);
        assert_eq!(v["choices"][0]["delta"]["content"], "a \"usage\":1}");
        // Other layouts take the general path and give the same answer.
        for finish in [
            &br#"{"usage":null,"id":"x","choices":[]}"#[..],
            br#"{"id":"x","choices":[],"xusage":null}"#,
            br#"{"id":"x","choices":[],"\"usage":null}"#,
            br#"{"id":"x","choices":[{"usage":1}]}"#,
        ] {
            let moved = move_usage(finish, usage).expect("moved");
            let v: serde_json::Value = serde_json::from_slice(&moved).expect("valid JSON");
            assert_eq!(v["usage"], expect, "{}", String::from_utf8_lossy(finish));
        }
        assert!(member_value(br#"{"a":"usage"}"#, b"usage").is_none());
        assert!(member_value(br#"{"a":{"usage":1}}"#, b"usage").is_none());
        assert!(member_value(b"[]", b"usage").is_none());
    }
}
