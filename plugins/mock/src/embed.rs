//! Local embeddings: deterministic vectors from hashed text features, no network, no model.
//!
//! A text is lower-cased and its whitespace collapsed to single spaces; its features are the
//! character trigrams of that text padded with one space on each side (so word edges count)
//! and its words with surrounding punctuation trimmed. Each feature is hashed with 64-bit
//! FNV-1a (fixed constants, so a vector is the same on every build and platform), lands in
//! bucket `hash % dimensions` with the sign of the hash's top bit, and the sum is scaled to
//! unit length. Texts sharing most of their trigrams and words point the same way; unrelated
//! texts are close to orthogonal. It is the classic "hashing trick", good enough for testing
//! a semantic cache, with no claim to meaning beyond spelling.
//!
//! A text with no features (empty or only whitespace), or whose features cancel out, gets
//! the unit vector of bucket 0, never a zero vector (which has no direction: cosine
//! similarity with it is undefined).

use crate::Sink;
use crate::request::count_words;
use switchyard_plugin_api::sdk::embeddings::{self, EmbeddingList, EmbeddingsRequest};
use switchyard_plugin_api::sdk::{Context, ProviderError};

/// The vector length when the request names none.
pub const DEFAULT_DIMENSIONS: u32 = 256;
/// The longest vector the mock writes.
pub const MAX_DIMENSIONS: u32 = 4096;
/// Numbers one answer may hold (inputs × dimensions): a shared mock must not be made to
/// write hundreds of megabytes of JSON by one small request.
pub const MAX_VALUES: usize = 1 << 21;

/// Answers one embeddings request (faults already played by the caller).
pub fn respond(ctx: &Context<'_>, latency_ms: u64, request: &[u8], sink: &mut impl Sink) -> Result<(), ProviderError> {
    let request = EmbeddingsRequest::parse(request)?;
    let dimensions = dimensions(request.dimensions, request.inputs.len())?;
    let vectors: Vec<Vec<f32>> = request.inputs.iter().map(|text| embed(text, dimensions)).collect();
    // Tokens are words, as for the mock's chat answers.
    let usage = embeddings::usage(request.inputs.iter().map(|text| count_words(text)).sum());
    let list = EmbeddingList {
        model: ctx.model,
        vectors: &vectors,
        encoding: request.encoding,
        usage,
    };
    let json = list.to_json()?;
    sink.delay(latency_ms);
    sink.response(&json, ctx.model, &usage);
    Ok(())
}

/// The vector length for a request of `inputs` texts: `asked` (1 to [`MAX_DIMENSIONS`]) or
/// [`DEFAULT_DIMENSIONS`].
fn dimensions(asked: Option<u32>, inputs: usize) -> Result<usize, ProviderError> {
    let dimensions = asked.unwrap_or(DEFAULT_DIMENSIONS);
    if !(1..=MAX_DIMENSIONS).contains(&dimensions) {
        return Err(ProviderError::invalid_request(format!(
            "`dimensions` must be between 1 and {MAX_DIMENSIONS} for the mock provider, got {dimensions}"
        ))
        .with_param("dimensions"));
    }
    // ≤ 4096, so the conversion cannot fail on any platform Rust supports.
    let dimensions = usize::try_from(dimensions).unwrap_or(1);
    if inputs.saturating_mul(dimensions) > MAX_VALUES {
        return Err(ProviderError::invalid_request(format!(
            "{inputs} inputs of {dimensions} dimensions exceed the mock provider's {MAX_VALUES} numbers per answer"
        ))
        .with_param("input"));
    }
    Ok(dimensions)
}

/// The unit vector of `text` with `dimensions` (≥ 1) components; see the module docs.
pub fn embed(text: &str, dimensions: usize) -> Vec<f32> {
    let mut sums = vec![0f64; dimensions.max(1)];
    let normalised = normalise(text);
    for hash in features(&normalised) {
        add(&mut sums, hash);
    }
    to_unit(&sums)
}

/// Lower case, words separated by exactly one space, no leading or trailing space.
fn normalise(text: &str) -> String {
    let lower = text.to_lowercase();
    let mut out = String::with_capacity(lower.len());
    for word in lower.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// The hashes of every feature of a normalised text: its padded character trigrams, then
/// its words. A kind byte leads each hash, so the word `abc` and the trigram `abc` differ.
fn features(normalised: &str) -> impl Iterator<Item = u64> + '_ {
    let padded: Vec<char> = if normalised.is_empty() {
        Vec::new()
    } else {
        std::iter::once(' ')
            .chain(normalised.chars())
            .chain(std::iter::once(' '))
            .collect()
    };
    let trigrams: Vec<u64> = padded
        .windows(3)
        .map(|w| {
            let mut buf = [0u8; 12];
            let mut len = 0;
            for c in w {
                len += c.encode_utf8(&mut buf[len..]).len();
            }
            fnv1a(b'3', &buf[..len])
        })
        .collect();
    let words = normalised
        .split(' ')
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()))
        .filter(|w| !w.is_empty())
        .map(|w| fnv1a(b'w', w.as_bytes()));
    trigrams.into_iter().chain(words)
}

/// 64-bit FNV-1a of `kind` then `bytes`.
fn fnv1a(kind: u8, bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0100_0000_01b3;
    std::iter::once(&kind)
        .chain(bytes)
        .fold(OFFSET, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(PRIME))
}

/// Adds ±1 at the feature's bucket: the low bits choose the bucket, the top bit the sign.
fn add(sums: &mut [f64], hash: u64) {
    let len = sums.len() as u64;
    // `hash % len` < len, which came from a usize.
    let bucket = usize::try_from(hash % len).unwrap_or(0);
    sums[bucket] += if hash >> 63 == 1 { -1.0 } else { 1.0 };
}

/// `sums` scaled to length 1, or the unit vector of bucket 0 when it has no length.
fn to_unit(sums: &[f64]) -> Vec<f32> {
    let norm = sums.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm == 0.0 {
        let mut unit = vec![0f32; sums.len()];
        unit[0] = 1.0;
        return unit;
    }
    sums.iter().map(|x| (x / norm) as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cosine(a: &[f32], b: &[f32]) -> f64 {
        let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
        let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
        dot / (norm(a) * norm(b))
    }

    const FRANCE: &str = "What is the capital of France?";

    #[test]
    fn the_same_text_gives_the_same_unit_vector() {
        let a = embed(FRANCE, 256);
        assert_eq!(a, embed(FRANCE, 256));
        assert_eq!(a.len(), 256);
        assert!((cosine(&a, &a) - 1.0).abs() < 1e-6);
        let length: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
        assert!((length - 1.0).abs() < 1e-6, "{length}");
        // Case and spacing are not features.
        assert_eq!(a, embed("  what IS the   capital of france?\n", 256));
    }

    #[test]
    fn near_texts_are_close_and_unrelated_ones_are_not() {
        for dimensions in [64, 256, 1024, 4096] {
            let a = embed(FRANCE, dimensions);
            let near = cosine(&a, &embed("What is the capital of France??", dimensions));
            let far = cosine(&a, &embed("How do I bake sourdough bread at home?", dimensions));
            assert!(near > 0.9, "{dimensions}: near {near}");
            assert!(far < 0.5, "{dimensions}: far {far}");
        }
    }

    #[test]
    fn vectors_are_fixed_across_builds() {
        // FNV-1a 64 with the kind byte leading: the published vector for "a" is 0xaf63dc4c8601ec8c.
        let plain = |bytes: &[u8]| {
            bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            })
        };
        assert_eq!(plain(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b'w', b"hi"), plain(b"whi"));
        assert_ne!(fnv1a(b'w', b"abc"), fnv1a(b'3', b"abc"));
        // A golden vector: the bucket sums are [1, 2, 1, 2, -1, -2, 3, 0], scaled by √24.
        let sums = [1.0, 2.0, 1.0, 2.0, -1.0, -2.0, 3.0, 0.0];
        let want: Vec<f32> = sums.iter().map(|x: &f64| (x / 24f64.sqrt()) as f32).collect();
        assert_eq!(embed("Hello, world", 8), want);
    }

    #[test]
    fn empty_text_is_the_unit_vector_of_bucket_zero() {
        for text in ["", "   ", "\n\t"] {
            let v = embed(text, 8);
            assert_eq!(v, [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], "{text:?}");
        }
        assert_eq!(embed("", 1), [1.0]);
    }

    #[test]
    fn multibyte_text_embeds_whole_characters() {
        let a = embed("Crème brûlée à Paris — 東京", 128);
        assert_eq!(a.len(), 128);
        assert!(a.iter().all(|x| x.is_finite()));
        assert!(cosine(&a, &embed("crème brûlée à paris — 東京", 128)) > 0.999);
    }

    #[test]
    fn dimensions_are_bounded() {
        assert_eq!(dimensions(None, 1).ok(), Some(256));
        assert_eq!(dimensions(Some(1), 1).ok(), Some(1));
        assert_eq!(dimensions(Some(4096), 512).ok(), Some(4096));
        for asked in [4097, u32::MAX] {
            let e = dimensions(Some(asked), 1).expect_err("too long");
            assert_eq!((e.status, e.param.as_deref()), (400, Some("dimensions")));
        }
        let e = dimensions(Some(4096), 513).expect_err("too many numbers");
        assert_eq!((e.status, e.param.as_deref()), (400, Some("input")));
    }
}
