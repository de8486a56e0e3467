//! The semantic index shared through Redis (DESIGN §5): Debian's Redis 7 has no vector
//! search, so each replica keeps the index in its memory and feeds it from one Redis stream
//! of new entries. A replica that stores an answer adds its embedding to the stream
//! ([`xadd`]); every replica's [`SemanticFeed`] actor reads the stream and adds what it finds,
//! so an answer stored by one replica is found by all. A replica that starts (or reconnects
//! after an outage) reads the stream from its beginning; the stream is capped near
//! `cache.max_entries` entries, and an entry whose answer has gone from Redis is simply a miss.

use super::CacheId;
use super::redis_store::RedisStore;
use super::semantic::SemanticIndex;
use actix::prelude::*;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// The stream's key.
pub const STREAM: &str = "sy:cache:semantic";
/// How long one read waits for new entries.
const BLOCK: Duration = Duration::from_millis(1000);
/// After a failure, how long before the feed connects again.
const REST: Duration = Duration::from_secs(1);

/// `XADD` of one entry: partition, id and expiry (unix ms) as text, the vector as
/// little-endian f32 bytes.
pub fn xadd(partition: CacheId, id: CacheId, expires_ms: u64, vector: &[f32], max_entries: u64) -> redis::Cmd {
    let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
    let mut cmd = redis::cmd("XADD");
    cmd.arg(STREAM)
        .arg("MAXLEN")
        .arg("~")
        .arg(max_entries)
        .arg("*")
        .arg("p")
        .arg(partition.hex())
        .arg("i")
        .arg(id.hex())
        .arg("e")
        .arg(expires_ms)
        .arg("v")
        .arg(bytes);
    cmd
}

/// Reads the stream into one cache's index, for as long as that cache is in use.
pub struct SemanticFeed {
    pub redis: Arc<RedisStore>,
    pub index: Weak<SemanticIndex>,
}

impl Actor for SemanticFeed {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let redis = Arc::clone(&self.redis);
        let index = self.index.clone();
        ctx.spawn(run(redis, index).into_actor(self).map(|(), _, ctx| ctx.stop()));
    }
}

/// The feed's loop: ends when the cache it feeds is dropped (a reload replaced it).
async fn run(redis: Arc<RedisStore>, index: Weak<SemanticIndex>) {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(redis.timeout().max(Duration::from_millis(250))))
        .set_response_timeout(Some(BLOCK + redis.timeout() + Duration::from_millis(500)));
    let mut conn = None;
    let mut last = String::from("0-0");
    while index.strong_count() > 0 {
        let c = match &mut conn {
            Some(c) => c,
            None => match redis
                .client()
                .get_multiplexed_async_connection_with_config(&config)
                .await
            {
                Ok(c) => {
                    // Whatever happened while disconnected (a restarted Redis starts its
                    // ids again), read the stream from the start: re-adding is harmless.
                    last = String::from("0-0");
                    conn.insert(c)
                }
                Err(e) => {
                    tracing::debug!(error = %e, "semantic cache feed: Redis unreachable; retrying");
                    tokio::time::sleep(REST).await;
                    continue;
                }
            },
        };
        let mut read = redis::cmd("XREAD");
        read.arg("COUNT")
            .arg(1000)
            .arg("BLOCK")
            .arg(BLOCK.as_millis() as u64)
            .arg("STREAMS")
            .arg(STREAM)
            .arg(&last);
        match read.query_async::<redis::Value>(c).await {
            Ok(reply) => {
                let Some(index) = index.upgrade() else {
                    return;
                };
                for entry in entries(reply) {
                    index.insert(entry.partition, entry.id, &entry.vector, entry.expires_ms);
                    last = entry.stream_id;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "semantic cache feed: reading the Redis stream failed; reconnecting");
                conn = None;
                tokio::time::sleep(REST).await;
            }
        }
    }
}

/// One entry read from the stream.
#[derive(Debug, PartialEq)]
struct FeedEntry {
    stream_id: String,
    partition: CacheId,
    id: CacheId,
    expires_ms: u64,
    vector: Vec<f32>,
}

/// The entries of an `XREAD` reply (RESP2 or RESP3 shapes). What another replica wrote is
/// read with care: a malformed entry is skipped, never a panic.
fn entries(reply: redis::Value) -> Vec<FeedEntry> {
    use redis::Value;
    let streams: Vec<Value> = match reply {
        Value::Array(streams) => streams
            .into_iter()
            .filter_map(|s| match s {
                Value::Array(mut pair) if pair.len() == 2 => pair.pop(),
                _ => None,
            })
            .collect(),
        Value::Map(pairs) => pairs.into_iter().map(|(_, v)| v).collect(),
        _ => Vec::new(),
    };
    let mut out = Vec::new();
    for stream in streams {
        let Value::Array(items) = stream else { continue };
        for item in items {
            let Value::Array(mut pair) = item else { continue };
            if pair.len() != 2 {
                continue;
            }
            let fields = pair.pop();
            let id = pair.pop();
            if let (Some(Value::BulkString(id)), Some(fields)) = (id, fields)
                && let Some(entry) = entry(String::from_utf8_lossy(&id).into_owned(), fields)
            {
                out.push(entry);
            }
        }
    }
    out
}

fn entry(stream_id: String, fields: redis::Value) -> Option<FeedEntry> {
    use redis::Value;
    let flat: Vec<(Vec<u8>, Vec<u8>)> = match fields {
        Value::Array(items) => {
            let mut it = items.into_iter();
            let mut pairs = Vec::new();
            while let (Some(Value::BulkString(k)), Some(Value::BulkString(v))) = (it.next(), it.next()) {
                pairs.push((k, v));
            }
            pairs
        }
        Value::Map(pairs) => pairs
            .into_iter()
            .filter_map(|(k, v)| match (k, v) {
                (Value::BulkString(k), Value::BulkString(v)) => Some((k, v)),
                _ => None,
            })
            .collect(),
        _ => return None,
    };
    let field = |name: &[u8]| flat.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_slice());
    let text = |name: &[u8]| field(name).and_then(|v| std::str::from_utf8(v).ok());
    let v = field(b"v")?;
    if v.is_empty() || v.len() % 4 != 0 {
        return None;
    }
    Some(FeedEntry {
        stream_id,
        partition: CacheId::from_hex(text(b"p")?)?,
        id: CacheId::from_hex(text(b"i")?)?,
        expires_ms: text(b"e")?.parse().ok()?,
        vector: v
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::Value;

    fn bulk(s: &[u8]) -> Value {
        Value::BulkString(s.to_vec())
    }

    #[test]
    fn stream_replies_are_read_and_bad_entries_skipped() {
        let p = CacheId([1; 16]);
        let i = CacheId([2; 16]);
        let v: Vec<u8> = [0.5f32, -1.0].iter().flat_map(|x| x.to_le_bytes()).collect();
        let good = Value::Array(vec![
            bulk(b"1-0"),
            Value::Array(vec![
                bulk(b"p"),
                bulk(p.hex().as_bytes()),
                bulk(b"i"),
                bulk(i.hex().as_bytes()),
                bulk(b"e"),
                bulk(b"99"),
                bulk(b"v"),
                bulk(&v),
            ]),
        ]);
        let bad = Value::Array(vec![
            bulk(b"2-0"),
            Value::Array(vec![bulk(b"p"), bulk(b"zz"), bulk(b"v"), bulk(b"abc")]),
        ]);
        let reply = Value::Array(vec![Value::Array(vec![
            bulk(STREAM.as_bytes()),
            Value::Array(vec![good, bad, Value::Nil]),
        ])]);
        assert_eq!(
            entries(reply),
            vec![FeedEntry {
                stream_id: "1-0".into(),
                partition: p,
                id: i,
                expires_ms: 99,
                vector: vec![0.5, -1.0],
            }]
        );
        assert!(entries(Value::Nil).is_empty(), "a read that timed out");
    }

    #[test]
    fn an_xadd_carries_the_entry() {
        let cmd = xadd(CacheId([1; 16]), CacheId([2; 16]), 7, &[1.0], 100);
        let args: Vec<Vec<u8>> = cmd
            .args_iter()
            .filter_map(|a| match a {
                redis::Arg::Simple(b) => Some(b.to_vec()),
                _ => None,
            })
            .collect();
        assert_eq!(args[0], b"XADD");
        assert_eq!(args[1], STREAM.as_bytes());
        assert!(args.contains(&1.0f32.to_le_bytes().to_vec()));
        assert!(args.contains(&CacheId([2; 16]).hex().into_bytes()));
    }
}
