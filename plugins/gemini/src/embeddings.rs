//! The unified embeddings request → `models.batchEmbedContents`, and its answer → OpenAI's
//! embeddings `list`.
//!
//! | OpenAI | Gemini |
//! |---|---|
//! | `input` (a string or strings) | `requests[i].content.parts[0].text`, one request per string, each with `model: models/{model}` |
//! | `dimensions` | `requests[i].outputDimensionality` |
//! | `encoding_format` | kept for the answer: Gemini sends floats, the codec writes them as asked (`float` or `base64`) |
//! | `user`, `model` | not sent (the model is the URL's) |
//! | `data[i].embedding`, `index` i | `embeddings[i].values` |
//! | `usage.prompt_tokens` | estimated: Gemini reports no usage for embeddings (see [`estimate_tokens`]) |
//!
//! Gemini takes at most [`MAX_BATCH`] texts per call; more is a 400 before anything is sent.

use crate::error;
use crate::gemini::{BatchEmbedContentsRequest, BatchEmbedContentsResponse, Content, EmbedContentRequest, PartOut};
use crate::setup::{Endpoint, resource_name};
use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use switchyard_plugin_api::sdk::embeddings::{self, EmbeddingList, EmbeddingsRequest, Encoding};
use switchyard_plugin_api::sdk::{Context, Out, ProviderError};

/// The most texts one `batchEmbedContents` call takes.
pub(crate) const MAX_BATCH: usize = 100;
/// Requests encoded and not yet decoded that [`Pending`] remembers.
const MAX_PENDING: usize = 1024;

/// What decoding an answer needs from its request, which only encoding sees: how many texts
/// were sent, the encoding the client asked for, and the estimated prompt tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Expect {
    inputs: usize,
    encoding: Encoding,
    prompt_tokens: u64,
}

/// [`Expect`]s from `encode_request` to `decode_response`, by request id.
///
/// The ABI hands a decoder the upstream's body only, and Gemini's answer carries neither a
/// token count nor the client's `encoding_format`, so the codec keeps them between the two
/// calls. Bounded: an attempt that is never decoded (a timeout, a reset) is pushed out by
/// later ones. Without its entry (pushed out, or an empty or reused request id matched to
/// another request) an answer is still decoded: as floats, with 0 prompt tokens, unchecked
/// against the input count.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    queue: Mutex<VecDeque<(String, Expect)>>,
}

impl Pending {
    fn put(&self, request_id: &str, expect: Expect) {
        // The queue holds plain data, whole after any panic: a poisoned lock is still usable.
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        if queue.len() >= MAX_PENDING {
            queue.pop_front();
        }
        queue.push_back((request_id.to_string(), expect));
    }

    /// Removes and returns the latest entry for `request_id` (retries encode the same request
    /// again: any of its entries would do).
    pub(crate) fn take(&self, request_id: &str) -> Option<Expect> {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        let at = queue.iter().rposition(|(id, _)| id == request_id)?;
        queue.remove(at).map(|(_, expect)| expect)
    }
}

/// Gemini's `batchEmbedContents` reports no token usage, so prompt tokens are estimated from
/// the text: one token per four characters, rounded up (the usual rule of thumb for English).
/// Counting characters, not bytes, keeps non-Latin text from counting several times over.
fn estimate_tokens(text: &str) -> u64 {
    text.chars().count().div_ceil(4) as u64
}

pub(crate) fn encode(
    endpoint: &Endpoint,
    pending: &Pending,
    ctx: &Context<'_>,
    body: &[u8],
    out: &mut Out<'_>,
) -> Result<(), ProviderError> {
    let request = EmbeddingsRequest::parse(body)?;
    if request.inputs.len() > MAX_BATCH {
        return Err(ProviderError::invalid_request(format!(
            "Gemini embeds at most {MAX_BATCH} inputs per request, got {}",
            request.inputs.len()
        ))
        .with_param("input"));
    }
    let model = resource_name(ctx.model);
    let batch = BatchEmbedContentsRequest {
        requests: request
            .inputs
            .iter()
            .map(|text| EmbedContentRequest {
                model: &model,
                content: Content {
                    role: None,
                    parts: vec![PartOut {
                        text: Some(text),
                        ..PartOut::default()
                    }],
                },
                output_dimensionality: request.dimensions,
            })
            .collect(),
    };
    let json = serde_json::to_vec(&batch)
        .map_err(|e| ProviderError::invalid_request(format!("the request cannot be written for Gemini: {e}")))?;
    out.method("POST");
    out.url(&endpoint.embed_url(ctx.model));
    out.header("content-type", "application/json");
    out.header("accept", "application/json");
    // The key travels in its header only: a URL ends up in logs and proxies.
    if !ctx.api_key.is_empty() {
        out.header("x-goog-api-key", ctx.api_key);
    }
    out.body(&json);
    pending.put(
        ctx.request_id,
        Expect {
            inputs: request.inputs.len(),
            encoding: request.encoding,
            prompt_tokens: request.inputs.iter().map(|text| estimate_tokens(text)).sum(),
        },
    );
    Ok(())
}

pub(crate) fn decode(
    pending: &Pending,
    ctx: &Context<'_>,
    body: &[u8],
    out: &mut Out<'_>,
) -> Result<(), ProviderError> {
    // Taken first, so that an answer that fails to decode leaves nothing behind.
    let expect = pending.take(ctx.request_id);
    let view = BatchEmbedContentsResponse::parse(body).map_err(|reason| {
        ProviderError::malformed(format!(
            "upstream response is not a Gemini embeddings response: {reason}"
        ))
    })?;
    if view.error.is_some() {
        return Err(error::embedded(body));
    }
    let vectors: Vec<Vec<f32>> = view
        .embeddings
        .ok_or_else(|| ProviderError::malformed("upstream response has no `embeddings`"))?
        .into_iter()
        .map(|e| e.values)
        .collect();
    check(&vectors, expect.map(|e| e.inputs))?;
    let usage = embeddings::usage(expect.map_or(0, |e| e.prompt_tokens));
    let list = EmbeddingList {
        model: ctx.model,
        vectors: &vectors,
        encoding: expect.map_or(Encoding::Float, |e| e.encoding),
        usage,
    };
    out.response(&list.to_json()?, ctx.model, Some(&usage));
    Ok(())
}

/// Vectors a client can use: one per input (when the count is known), none empty, all of one
/// length, every value finite (a value past `f32`'s range reads as infinity, which JSON
/// cannot carry).
fn check(vectors: &[Vec<f32>], inputs: Option<usize>) -> Result<(), ProviderError> {
    let malformed = |what: String| Err(ProviderError::malformed(format!("upstream embeddings: {what}")));
    if vectors.is_empty() {
        return malformed("no embeddings".into());
    }
    if let Some(inputs) = inputs
        && inputs != vectors.len()
    {
        return malformed(format!("{} embeddings for {inputs} inputs", vectors.len()));
    }
    let length = vectors[0].len();
    for (i, vector) in vectors.iter().enumerate() {
        if vector.is_empty() {
            return malformed(format!("embeddings[{i}] has no values"));
        }
        if vector.len() != length {
            return malformed(format!(
                "embeddings[{i}] has {} values, embeddings[0] {length}",
                vector.len()
            ));
        }
        if !vector.iter().all(|x| x.is_finite()) {
            return malformed(format!("embeddings[{i}] has a value out of range"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expect(inputs: usize) -> Expect {
        Expect {
            inputs,
            encoding: Encoding::Float,
            prompt_tokens: 1,
        }
    }

    #[test]
    fn tokens_are_estimated_from_characters() {
        assert_eq!(estimate_tokens(""), 0);
        assert_eq!(estimate_tokens("abc"), 1);
        assert_eq!(estimate_tokens("abcd"), 1);
        assert_eq!(estimate_tokens("abcde"), 2);
        // Characters, not bytes: four 3-byte characters are one token.
        assert_eq!(estimate_tokens("東京東京"), 1);
    }

    #[test]
    fn pending_entries_are_taken_once_and_bounded() {
        let pending = Pending::default();
        pending.put("a", expect(1));
        pending.put("b", expect(2));
        pending.put("a", expect(3));
        assert_eq!(pending.take("a"), Some(expect(3)), "the latest for the id");
        assert_eq!(pending.take("b"), Some(expect(2)));
        assert_eq!(pending.take("b"), None);
        for i in 0..MAX_PENDING + 10 {
            pending.put(&i.to_string(), expect(i));
        }
        let len = pending.queue.lock().map(|q| q.len()).unwrap_or_default();
        assert_eq!(len, MAX_PENDING);
        // The 11 oldest were pushed out: the first "a", then "0" to "9".
        assert_eq!(pending.take("a"), None);
        assert_eq!(pending.take("9"), None);
        assert_eq!(pending.take("10"), Some(expect(10)));
        assert_eq!(
            pending.take(&(MAX_PENDING + 9).to_string()),
            Some(expect(MAX_PENDING + 9))
        );
    }

    #[test]
    fn vectors_are_checked() {
        assert!(check(&[vec![0.1, 0.2], vec![0.3, 0.4]], Some(2)).is_ok());
        assert!(check(&[vec![0.1]], None).is_ok());
        for (vectors, inputs) in [
            (vec![], None),
            (vec![vec![0.1]], Some(2)),
            (vec![vec![]], Some(1)),
            (vec![vec![0.1, 0.2], vec![0.3]], None),
            (vec![vec![f32::INFINITY]], None),
            (vec![vec![f32::NAN]], None),
        ] {
            let e = check(&vectors, inputs).expect_err("refused");
            assert_eq!(e.status, 502, "{vectors:?}");
        }
    }
}
