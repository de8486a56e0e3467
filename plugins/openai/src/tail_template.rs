//! Recognising a stream chunk without parsing it: OpenAI's content chunks differ from one
//! another only inside string values (the text delta, an `obfuscation` pad), so once one has
//! been parsed, the next ones that match it everywhere outside its string values have the
//! same facts.
//!
//! Why that is exact: a JSON text whose string values are replaced by other valid string
//! bodies keeps its structure, keys, numbers and literals, and the facts the decoder reads
//! from a chunk's tail (how many choices, whether one has a `finish_reason`, usage, error,
//! `extra_fields`) depend on nothing else. Keys are never holes: only strings followed by
//! something other than `:`. A replacement body must be one `serde_json` would skip without
//! error (no raw control characters, valid escapes).

use crate::views::ChoicesSummary;

/// A parsed chunk tail, cut at its string values.
pub(crate) struct TailTemplate {
    bytes: Vec<u8>,
    /// The body (between the quotes) of each string value, in order: the holes.
    holes: Vec<(usize, usize)>,
    /// What every tail that matches has.
    pub(crate) choices: ChoicesSummary,
}

impl TailTemplate {
    /// Cuts `tail` (valid JSON, already parsed to `choices`) at its string values.
    pub(crate) fn learn(tail: &[u8], choices: ChoicesSummary) -> Option<TailTemplate> {
        let mut holes = Vec::new();
        let mut i = 0;
        while i < tail.len() {
            if tail[i] != b'"' {
                i += 1;
                continue;
            }
            let start = i + 1;
            let end = start + string_body_len(&tail[start..])?;
            // Past the closing quote: a key is followed by `:`.
            i = end + 1;
            let next = tail[i..].iter().find(|b| !b.is_ascii_whitespace());
            if next != Some(&b':') {
                holes.push((start, end));
            }
        }
        Some(TailTemplate {
            bytes: tail.to_vec(),
            holes,
            choices,
        })
    }

    /// Whether `tail` is this template with other valid bodies in its holes.
    pub(crate) fn matches(&self, tail: &[u8]) -> bool {
        let mut from = 0; // in the template
        let mut at = 0; // in `tail`
        for &(start, end) in &self.holes {
            let literal = &self.bytes[from..start];
            if tail.get(at..at + literal.len()) != Some(literal) {
                return false;
            }
            at += literal.len();
            match string_body_len(&tail[at..]) {
                Some(len) => at += len,
                None => return false,
            }
            from = end;
        }
        tail.get(at..) == Some(&self.bytes[from..])
    }
}

/// The length of the JSON string body at the start of `bytes`, up to (not including) its
/// closing quote; `None` if it has no closing quote or holds what `serde_json` refuses in a
/// string it skips (a raw control character, an unknown escape, a `\u` without four hex digits).
fn string_body_len(bytes: &[u8]) -> Option<usize> {
    let mut i = 0;
    let mut ascii = true;
    loop {
        match *bytes.get(i)? {
            // The codec forwards the body as it came: it must be UTF-8 text. Checked only for
            // a body with non-ASCII bytes, which plain English deltas never have.
            b'"' if !ascii && std::str::from_utf8(&bytes[..i]).is_err() => return None,
            b'"' => return Some(i),
            b'\\' => match *bytes.get(i + 1)? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
                b'u' => {
                    let hex = bytes.get(i + 2..i + 6)?;
                    if !hex.iter().all(u8::is_ascii_hexdigit) {
                        return None;
                    }
                    i += 6;
                }
                _ => return None,
            },
            0x00..=0x1f => return None,
            0x80.. => {
                ascii = false;
                i += 1;
            }
            _ => i += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAIL: &[u8] = br#""choices":[{"index":0,"delta":{"content":" hi"},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"Qn0"}"#;

    fn template() -> TailTemplate {
        TailTemplate::learn(TAIL, ChoicesSummary::default()).expect("learnt")
    }

    #[test]
    fn only_string_values_are_holes() {
        let t = template();
        let holes: Vec<&[u8]> = t.holes.iter().map(|&(a, b)| &TAIL[a..b]).collect();
        assert_eq!(holes, [&b" hi"[..], b"Qn0"]);
    }

    #[test]
    fn other_string_values_match() {
        let t = template();
        assert!(t.matches(TAIL));
        for tail in [
            &br#""choices":[{"index":0,"delta":{"content":""},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"x"}"#[..],
            br#""choices":[{"index":0,"delta":{"content":"a \"quoted\" \\ \u00e9 \/ \n word"},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":""}"#,
            "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"caf\u{e9} \u{1f600}\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null,\"obfuscation\":\"Qn0\"}".as_bytes(),
        ] {
            assert!(t.matches(tail), "{}", String::from_utf8_lossy(tail));
        }
    }

    #[test]
    fn anything_else_does_not() {
        let t = template();
        for tail in [
            // Another structure, number, literal or key.
            &br#""choices":[{"index":1,"delta":{"content":" hi"},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"Qn0"}"#[..],
            br#""choices":[{"index":0,"delta":{"content":" hi"},"logprobs":null,"finish_reason":"stop"}],"usage":null,"obfuscation":"Qn0"}"#,
            br#""choices":[{"index":0,"delta":{"contenu":" hi"},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"Qn0"}"#,
            br#""choices":[{"index":0,"delta":{"content":" hi"},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"Qn0"},"#,
            br#""choices":[{"index":0,"delta":{"content":" hi"},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"Qn0""#,
            // A hole that swallows structure: the quote ends the string where the template's
            // literal does not continue.
            br#""choices":[{"index":0,"delta":{"content":"x"},"y":"z"},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"Qn0"}"#,
            // Bodies serde_json refuses.
            b"\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\tb\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null,\"obfuscation\":\"Qn0\"}",
            br#""choices":[{"index":0,"delta":{"content":"\q"},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"Qn0"}"#,
            br#""choices":[{"index":0,"delta":{"content":"\u12"},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"Qn0"}"#,
            br#""choices":[{"index":0,"delta":{"content":"open"#,
        ] {
            assert!(!t.matches(tail), "{}", String::from_utf8_lossy(tail));
        }
    }

    /// Whatever matches parses, and to the template's facts; checked against serde_json on
    /// every single-byte change of a tail.
    #[test]
    fn a_match_is_always_what_a_parse_would_say() {
        let t = template();
        let facts = |tail: &[u8]| {
            let mut object = b"{".to_vec();
            object.extend_from_slice(tail);
            crate::views::CompletionView::parse(&object).ok().map(|v| {
                (
                    v.choices.map(|c| (c.len, c.finish_reason)),
                    v.usage.is_some(),
                    v.error.is_some(),
                )
            })
        };
        let want = facts(TAIL);
        assert_eq!(want, Some((Some((1, false)), false, false)));
        for i in 0..TAIL.len() {
            for b in [b'"', b'\\', b'x', b'1', b'}', b',', b':', 0x01, b' '] {
                let mut tail = TAIL.to_vec();
                tail[i] = b;
                if t.matches(&tail) {
                    assert_eq!(facts(&tail), want, "{}", String::from_utf8_lossy(&tail));
                }
            }
        }
    }
}
