//! A cached answer as bytes, for a backend outside the process (Redis): JSON, with each
//! unified payload embedded as the JSON it already is (no escaping, no second encoding).
//!
//! ```json
//! {"v":1,"ns":"team-a","provider":"openai","model":"gpt-4o","stream":true,
//!  "items":[{"m":"gpt-4o-2024-08-06","f":1,"u":[10,2,12,0,0,0,0],"j":{…chunk…}}]}
//! ```
//! `u` is the usage in [`Usage`]'s field order (absent when the payload carried none); `f`
//! the chunk flags. What another replica wrote is read with the same care as an upstream's
//! bytes: anything unexpected is a miss, never a panic or a wrong answer.

use super::{CachedAnswer, CachedBody};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;
use switchyard_plugin_api::host::{Payload, Usage};

/// Bumped when the layout changes: entries of another version are misses.
const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Stored<'a> {
    v: u32,
    #[serde(borrow)]
    ns: Cow<'a, str>,
    #[serde(borrow)]
    provider: Cow<'a, str>,
    #[serde(borrow)]
    model: Cow<'a, str>,
    stream: bool,
    #[serde(borrow)]
    items: Vec<StoredItem<'a>>,
}

#[derive(Serialize, Deserialize)]
struct StoredItem<'a> {
    #[serde(borrow)]
    m: Cow<'a, str>,
    #[serde(default)]
    f: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    u: Option<[u64; 7]>,
    #[serde(borrow)]
    j: &'a RawValue,
}

fn usage_parts(u: &Usage) -> [u64; 7] {
    [
        u.prompt_tokens,
        u.completion_tokens,
        u.total_tokens,
        u.cached_tokens,
        u.cache_write_tokens,
        u.cache_write_1h_tokens,
        u.reasoning_tokens,
    ]
}

fn usage_of(p: [u64; 7]) -> Usage {
    Usage {
        prompt_tokens: p[0],
        completion_tokens: p[1],
        total_tokens: p[2],
        cached_tokens: p[3],
        cache_write_tokens: p[4],
        cache_write_1h_tokens: p[5],
        reasoning_tokens: p[6],
    }
}

/// The bytes of `answer`; `None` if a payload is not JSON (never stored then).
pub fn encode(answer: &CachedAnswer) -> Option<Vec<u8>> {
    let (stream, payloads): (bool, &[Payload]) = match &answer.body {
        CachedBody::Plain(p) => (false, std::slice::from_ref(p)),
        CachedBody::Stream(chunks) => (true, chunks),
    };
    let mut items = Vec::with_capacity(payloads.len());
    for p in payloads {
        let json = std::str::from_utf8(&p.json).ok()?;
        items.push(StoredItem {
            m: Cow::Borrowed(&p.model),
            f: p.flags,
            u: p.usage.as_ref().map(usage_parts),
            j: serde_json::from_str::<&RawValue>(json).ok()?,
        });
    }
    serde_json::to_vec(&Stored {
        v: VERSION,
        ns: Cow::Borrowed(&answer.namespace),
        provider: Cow::Borrowed(&answer.provider),
        model: Cow::Borrowed(&answer.model_deployment),
        stream,
        items,
    })
    .ok()
}

/// The answer in `bytes`, if they are one of this version's; `ttl` is what the backend
/// says is left of it.
pub fn decode(bytes: &[u8], ttl: Duration) -> Option<CachedAnswer> {
    let stored: Stored<'_> = serde_json::from_slice(bytes).ok()?;
    if stored.v != VERSION || stored.items.is_empty() || (!stored.stream && stored.items.len() != 1) {
        return None;
    }
    // A stream's chunks name one model: they share one allocation, as decoded ones do.
    let mut model: Arc<str> = Arc::from(&*stored.items[0].m);
    let mut payloads = Vec::with_capacity(stored.items.len());
    for item in stored.items {
        if *model != *item.m {
            model = Arc::from(&*item.m);
        }
        payloads.push(Payload {
            json: item.j.get().as_bytes().to_vec(),
            model: Arc::clone(&model),
            usage: item.u.map(usage_of),
            flags: item.f,
        });
    }
    let body = if stored.stream {
        CachedBody::Stream(payloads)
    } else {
        CachedBody::Plain(payloads.pop()?)
    };
    Some(CachedAnswer {
        namespace: Arc::from(&*stored.ns),
        provider: Arc::from(&*stored.provider),
        model_deployment: Arc::from(&*stored.model),
        body,
        ttl,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(json: &str, usage: Option<Usage>, flags: u64) -> Payload {
        Payload {
            json: json.as_bytes().to_vec(),
            model: Arc::from("m-1"),
            usage,
            flags,
        }
    }

    #[test]
    fn answers_round_trip_and_foreign_bytes_are_misses() {
        let usage = Usage {
            prompt_tokens: 3,
            completion_tokens: 4,
            total_tokens: 7,
            cached_tokens: 1,
            cache_write_tokens: 2,
            cache_write_1h_tokens: 1,
            reasoning_tokens: 5,
        };
        let stream = CachedAnswer {
            namespace: Arc::from("team \"a\""),
            provider: Arc::from("openai"),
            model_deployment: Arc::from("gpt-4o"),
            body: CachedBody::Stream(vec![
                payload("{\"a\":\"é\\n\"}", None, 0),
                payload(r#"{"b":[1, 2]}"#, Some(usage), 5),
            ]),
            ttl: Duration::from_secs(9),
        };
        let bytes = encode(&stream).expect("encodes");
        let back = decode(&bytes, Duration::from_secs(3)).expect("decodes");
        assert_eq!(&*back.namespace, "team \"a\"");
        assert_eq!((&*back.provider, &*back.model_deployment), ("openai", "gpt-4o"));
        assert_eq!(back.ttl, Duration::from_secs(3));
        let CachedBody::Stream(chunks) = back.body else {
            panic!("a stream stays a stream")
        };
        assert_eq!(chunks[0].json, "{\"a\":\"é\\n\"}".as_bytes());
        assert_eq!(chunks[1].json, br#"{"b":[1, 2]}"#);
        assert_eq!((chunks[1].usage, chunks[1].flags), (Some(usage), 5));
        assert!(Arc::ptr_eq(&chunks[0].model, &chunks[1].model));

        let plain = CachedAnswer {
            body: CachedBody::Plain(payload("{}", Some(usage), 0)),
            ..stream
        };
        let back = decode(&encode(&plain).expect("encodes"), Duration::ZERO).expect("decodes");
        assert!(matches!(back.body, CachedBody::Plain(p) if p.json == b"{}"));

        for foreign in [
            &b""[..],
            b"not json",
            br#"{"v":2,"ns":"","provider":"p","model":"m","stream":false,"items":[{"m":"m","j":{}}]}"#,
            br#"{"v":1,"ns":"","provider":"p","model":"m","stream":false,"items":[]}"#,
            br#"{"v":1,"ns":"","provider":"p","model":"m","stream":false,"items":[{"m":"m","j":{}},{"m":"m","j":{}}]}"#,
            br#"{"v":1,"ns":"","provider":"p","model":"m","stream":true,"items":[{"m":"m","u":[1],"j":{}}]}"#,
        ] {
            assert!(
                decode(foreign, Duration::ZERO).is_none(),
                "{}",
                String::from_utf8_lossy(foreign)
            );
        }
    }
}
