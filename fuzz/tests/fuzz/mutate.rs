//! Byte-level input generation: corpus files changed by a few mutations (a hostile upstream's
//! usual tricks: cut short, line ends changed, numbers out of range, bytes that are not UTF-8,
//! events glued from two streams), token soups from a target's dictionary, and raw bytes.
//! Every part shrinks: fewer mutations, an earlier corpus file, smaller positions.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use std::sync::Arc;

/// Upper bound on a generated input: far above any event, small enough to keep cases fast.
const MAX_INPUT: usize = 256 << 10;

/// Numbers an upstream or client might send to break arithmetic: negative counts, values
/// past u64 / i64 / f64, exponents, negative zero.
pub const NUMBERS: &[&str] = &[
    "0",
    "-1",
    "-0",
    "1.5",
    "12.0",
    "1e300",
    "-1e300",
    "1e-400",
    "1E5",
    "4294967296",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775809",
    "18446744073709551615",
    "18446744073709551616",
    "340282366920938463463374607431768211456",
];

/// JSON pieces that sit on parser edges: escapes (a lone surrogate among them), bytes that
/// are not UTF-8, a BOM, U+2028, structure.
pub const JSON_TOKENS: &[&[u8]] = &[
    b"\"",
    b"\\",
    b"\\\"",
    b"\\u0000",
    b"\\ud800",
    b"\\udfff",
    b"\\ud83d\\ude00",
    b"\\u00e9",
    b"\\n",
    b"\xff",
    b"\xc3",
    b"\xed\xa0\x80",
    b"\xe2\x80\xa8",
    b"\xef\xbb\xbf",
    b"\xf0\x9f\x98\x80",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"null",
    b"true",
    b"false",
    b"{}",
    b"[]",
    b"\"\"",
    b" ",
    b"\t",
    b"\0",
    b"NaN",
];

/// Event-stream framing: every line end, comments, fields the parser must ignore, `[DONE]`.
pub const SSE_TOKENS: &[&[u8]] = &[
    b"\n",
    b"\r\n",
    b"\r",
    b"\n\n",
    b"\r\n\r\n",
    b"\r\r",
    b"data: ",
    b"data:",
    b"data",
    b"event: ",
    b"event: error\n",
    b"event:error\r\n",
    b": keep-alive\n\n",
    b":\n",
    b"id: 1\n",
    b"retry: 10\n",
    b"data: [DONE]\n\n",
    b"[DONE]",
    b"data: {}\n\n",
    b"data: \"x\"\n\n",
];

/// A target's dictionary: its own words plus the shared tokens and numbers, plus deep nesting.
pub fn dictionary(own: &[&[u8]], sse: bool) -> Arc<Vec<Vec<u8>>> {
    let mut words: Vec<Vec<u8>> = own.iter().map(|w| w.to_vec()).collect();
    words.extend(JSON_TOKENS.iter().map(|w| w.to_vec()));
    words.extend(NUMBERS.iter().map(|n| n.as_bytes().to_vec()));
    if sse {
        words.extend(SSE_TOKENS.iter().map(|w| w.to_vec()));
    }
    // Past serde_json's recursion limit (128), and just under it.
    words.push(b"[".repeat(200));
    words.push(b"{\"a\":".repeat(127));
    Arc::new(words)
}

const LINE_ENDS: &[&[u8]] = &[b"\r\n", b"\r", b"\n"];

#[derive(Debug, Clone)]
pub enum Mutation {
    Flip {
        at: Index,
        bit: u8,
    },
    Byte {
        at: Index,
        byte: u8,
    },
    Insert {
        at: Index,
        bytes: Vec<u8>,
    },
    Remove {
        at: Index,
        len: usize,
    },
    /// Repeats a slice in place (long strings, duplicated events).
    Repeat {
        at: Index,
        len: usize,
        times: usize,
    },
    Truncate {
        at: Index,
    },
    /// Replaces the nth number in the text.
    Number {
        nth: Index,
        with: &'static str,
    },
    /// Inserts a slice of another corpus file.
    Splice {
        at: Index,
        donor: Index,
        from: Index,
        len: usize,
    },
    /// Every line end becomes this one.
    LineEnds(&'static [u8]),
}

fn mutation(dict: Arc<Vec<Vec<u8>>>) -> impl Strategy<Value = Mutation> {
    let token = prop_oneof![
        4 => select((*dict).clone()),
        1 => vec(any::<u8>(), 1..8),
    ];
    prop_oneof![
        2 => (any::<Index>(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        1 => (any::<Index>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Byte { at, byte }),
        6 => (any::<Index>(), token).prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        3 => (any::<Index>(), 1usize..32).prop_map(|(at, len)| Mutation::Remove { at, len }),
        1 => (any::<Index>(), 1usize..64, 1usize..64).prop_map(|(at, len, times)| Mutation::Repeat { at, len, times }),
        2 => any::<Index>().prop_map(|at| Mutation::Truncate { at }),
        4 => (any::<Index>(), select(NUMBERS)).prop_map(|(nth, with)| Mutation::Number { nth, with }),
        2 => (any::<Index>(), any::<Index>(), any::<Index>(), 1usize..512)
            .prop_map(|(at, donor, from, len)| Mutation::Splice { at, donor, from, len }),
        1 => select(LINE_ENDS).prop_map(Mutation::LineEnds),
    ]
}

/// A corpus file changed by up to `max_mutations` mutations.
pub fn mutated(seeds: Arc<Vec<Vec<u8>>>, dict: Arc<Vec<Vec<u8>>>, max_mutations: usize) -> BoxedStrategy<Vec<u8>> {
    let n = seeds.len();
    (0..n, vec(mutation(dict), 0..=max_mutations))
        .prop_map(move |(seed, mutations)| apply(&seeds, seed, &mutations))
        .boxed()
}

/// Mutated corpus files mostly; sometimes a soup of dictionary words, sometimes raw bytes.
pub fn bytes(seeds: Arc<Vec<Vec<u8>>>, dict: Arc<Vec<Vec<u8>>>) -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        16 => mutated(seeds, Arc::clone(&dict), 6),
        2 => vec(select((*dict).clone()), 0..48).prop_map(|words| words.concat()),
        1 => vec(any::<u8>(), 0..512),
    ]
    .boxed()
}

/// Fragment sizes for feeding a stream (0: an empty fragment); the rest goes in one piece.
pub fn fragments() -> impl Strategy<Value = Vec<usize>> {
    vec(0usize..=48, 0..40)
}

/// Splits `input` by `sizes` as [`fragments`] describes.
pub fn split<'a>(input: &'a [u8], sizes: &[usize]) -> Vec<&'a [u8]> {
    let mut rest = input;
    let mut out = Vec::with_capacity(sizes.len() + 1);
    for &size in sizes {
        let (a, b) = rest.split_at(size.min(rest.len()));
        out.push(a);
        rest = b;
    }
    out.push(rest);
    out
}

fn apply(seeds: &[Vec<u8>], seed: usize, mutations: &[Mutation]) -> Vec<u8> {
    let mut data = seeds[seed].clone();
    for m in mutations {
        let len = data.len();
        // An insertion point: 0..=len.
        let point = |at: &Index| at.index(len + 1);
        match m {
            Mutation::Flip { at, bit } if len > 0 => data[at.index(len)] ^= 1 << bit,
            Mutation::Byte { at, byte } if len > 0 => data[at.index(len)] = *byte,
            Mutation::Flip { .. } | Mutation::Byte { .. } => {}
            Mutation::Insert { at, bytes } => {
                let at = point(at);
                data.splice(at..at, bytes.iter().copied());
            }
            Mutation::Remove { at, len: n } => {
                let at = point(at);
                data.drain(at..(at + n).min(len));
            }
            Mutation::Repeat { at, len: n, times } => {
                let at = point(at);
                let piece = data[at..(at + n).min(len)].to_vec();
                let copies = piece.repeat(*times);
                data.splice(at..at, copies);
            }
            Mutation::Truncate { at } => data.truncate(point(at)),
            Mutation::Number { nth, with } => {
                let spans = numbers(&data);
                if !spans.is_empty() {
                    let (start, end) = spans[nth.index(spans.len())];
                    data.splice(start..end, with.bytes());
                }
            }
            Mutation::Splice {
                at,
                donor,
                from,
                len: n,
            } => {
                let donor = &seeds[donor.index(seeds.len())];
                let from = from.index(donor.len() + 1);
                let piece = &donor[from..(from + n).min(donor.len())];
                let at = point(at);
                data.splice(at..at, piece.iter().copied());
            }
            Mutation::LineEnds(eol) => data = line_ends(&data, eol),
        }
        data.truncate(MAX_INPUT);
    }
    data
}

/// The spans of JSON-looking numbers (`-?digits` with fraction and exponent).
fn numbers(data: &[u8]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut i = 0;
    while i < data.len() {
        let starts = data[i].is_ascii_digit() || (data[i] == b'-' && data.get(i + 1).is_some_and(u8::is_ascii_digit));
        let inside_word = i > 0 && (data[i - 1].is_ascii_alphanumeric() || data[i - 1] == b'_');
        if !starts || inside_word {
            i += 1;
            continue;
        }
        let start = i;
        i += 1;
        while i < data.len() && matches!(data[i], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-') {
            i += 1;
        }
        spans.push((start, i));
    }
    spans
}

/// Every LF, CRLF and CR in `data` replaced by `eol`.
fn line_ends(data: &[u8], eol: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 8);
    let mut i = 0;
    while i < data.len() {
        match data[i] {
            b'\r' if data.get(i + 1) == Some(&b'\n') => {
                out.extend_from_slice(eol);
                i += 2;
            }
            b'\r' | b'\n' => {
                out.extend_from_slice(eol);
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

#[test]
fn mutations_stay_in_bounds() {
    let seeds = vec![b"data: {\"n\": 12, \"m\": -3.5e2}\n\n".to_vec(), Vec::new()];
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = bytes(Arc::new(seeds), dictionary(&[], true));
    for _ in 0..2000 {
        let tree = strategy.new_tree(&mut runner).expect("a case");
        assert!(tree.current().len() <= MAX_INPUT);
    }
    assert_eq!(numbers(b"a1 -2 x:3.5e+2,id9"), [(3, 5), (8, 14)]);
    assert_eq!(line_ends(b"a\r\nb\rc\n", b"\r\n"), b"a\r\nb\r\nc\r\n");
    assert_eq!(split(b"abcdef", &[2, 0, 9]), [&b"ab"[..], b"", b"cdef", b""]);
}
