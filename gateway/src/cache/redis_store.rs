//! The cache's Redis backend (`cache.backend: redis`, `redis.url`): replicas share entries,
//! and Redis expires them (each is `SET … PX ttl`).
//!
//! - Keys: `sy:cache:<namespace hash>:<cache id>:<p|s>` (plain answer or stream). The
//!   namespace is hashed so a client-chosen `x-bf-cache-key` never lands in a key pattern.
//! - One multiplexed connection per worker thread, made on that worker's runtime the first
//!   time it is needed: no request waits on another thread, no lock is shared.
//! - Every command is bounded by `redis.timeout`. A failure or a timeout is a miss (or a
//!   skipped write), counted, and the worker's connection rests for [`REST`] before it is
//!   made again, so an outage costs requests nothing but the lookup they skip. A request
//!   never waits for a connect: its lookup starts one in the background and misses.
//! - Writes are spawned on the worker's runtime: the answer never waits for them.

use super::CacheId;
use redis::aio::MultiplexedConnection;
use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use thread_local::ThreadLocal;

/// Default bound on one command.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(100);
/// How long a worker leaves Redis alone after a failure.
const REST: Duration = Duration::from_secs(1);
/// Key prefix of every cache entry.
const PREFIX: &str = "sy:cache:";

#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    #[error("Redis is resting after a failure")]
    Resting,
    #[error("this worker's Redis connection is being made")]
    Connecting,
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("Redis: {0}")]
    Command(#[from] redis::RedisError),
}

/// A worker's connection, or when it may try again.
#[derive(Default)]
struct Slot {
    conn: Option<MultiplexedConnection>,
    rest_until: Option<Instant>,
    connecting: bool,
}

pub struct RedisStore {
    client: redis::Client,
    timeout: Duration,
    conns: ThreadLocal<RefCell<Slot>>,
    /// Commands that failed or timed out since start (misses and skipped writes).
    pub errors: AtomicU64,
}

impl RedisStore {
    pub fn new(url: &str, timeout: Option<Duration>) -> Result<RedisStore, String> {
        let client = redis::Client::open(url).map_err(|e| format!("redis.url: {e}"))?;
        Ok(RedisStore {
            client,
            timeout: timeout.unwrap_or(DEFAULT_TIMEOUT),
            conns: ThreadLocal::new(),
            errors: AtomicU64::new(0),
        })
    }

    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The key of entry `id` of `namespace` in one form.
    pub fn key(namespace: &str, id: CacheId, stream: bool) -> String {
        let mut key = String::with_capacity(PREFIX.len() + 16 + 1 + 32 + 2);
        key.push_str(PREFIX);
        key.push_str(&namespace_hash(namespace));
        key.push(':');
        id.write_hex(&mut key);
        key.push_str(if stream { ":s" } else { ":p" });
        key
    }

    /// This worker's connection. Without one, a request's lookup starts making it in the
    /// background and misses (a request never waits for a connect, which can take the whole
    /// connect timeout when Redis is unreachable); work off the request path makes it and
    /// waits (bounded by the timeout).
    async fn conn(self: &Arc<Self>, caller: Caller) -> Result<MultiplexedConnection, RedisError> {
        {
            let mut s = self.conns.get_or_default().borrow_mut();
            if let Some(conn) = &s.conn {
                return Ok(conn.clone());
            }
            if s.rest_until.is_some_and(|t| Instant::now() < t) {
                return Err(RedisError::Resting);
            }
            if caller == Caller::Request {
                if !s.connecting {
                    s.connecting = true;
                    let store = Arc::clone(self);
                    // On this worker's runtime (a current-thread one): the slot it fills is
                    // this thread's.
                    tokio::spawn(async move {
                        let _ = store.connect().await;
                    });
                }
                return Err(RedisError::Connecting);
            }
        }
        self.connect().await
    }

    /// Makes this worker's connection and keeps it; a failure rests the slot.
    async fn connect(&self) -> Result<MultiplexedConnection, RedisError> {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout.max(Duration::from_millis(250))))
            .set_response_timeout(Some(self.timeout));
        let made = self.client.get_multiplexed_async_connection_with_config(&config).await;
        // Looked up again, not held across the wait: the slot is this thread's.
        let mut s = self.conns.get_or_default().borrow_mut();
        s.connecting = false;
        match made {
            Ok(conn) => {
                s.conn = Some(conn.clone());
                s.rest_until = None;
                Ok(conn)
            }
            Err(e) => {
                tracing::warn!(error = %e, "cache: cannot connect to Redis; lookups miss meanwhile");
                s.rest_until = Some(Instant::now() + REST);
                Err(e.into())
            }
        }
    }

    /// Runs one command (or pipeline) on this worker's connection, bounded; a failure
    /// drops the connection and rests it.
    async fn run<T: redis::FromRedisValue>(
        self: &Arc<Self>,
        command: &RedisCommand,
        caller: Caller,
    ) -> Result<T, RedisError> {
        let result = async {
            let mut conn = self.conn(caller).await?;
            let reply = match command {
                RedisCommand::Cmd(c) => tokio::time::timeout(self.timeout, c.query_async::<T>(&mut conn)).await,
                RedisCommand::Pipe(p) => tokio::time::timeout(self.timeout, p.query_async::<T>(&mut conn)).await,
            };
            match reply {
                Ok(r) => r.map_err(RedisError::from),
                Err(_) => Err(RedisError::Timeout(self.timeout)),
            }
        }
        .await;
        if let Err(e) = &result {
            self.failed(e);
        }
        result
    }

    fn failed(&self, e: &RedisError) {
        if matches!(e, RedisError::Connecting) {
            return;
        }
        self.errors.fetch_add(1, Ordering::Relaxed);
        if matches!(e, RedisError::Resting) {
            return;
        }
        tracing::warn!(error = %e, "cache: Redis failed; this lookup or write is skipped");
        if let Some(slot) = self.conns.get() {
            let mut s = slot.borrow_mut();
            s.conn = None;
            s.rest_until = Some(Instant::now() + REST);
        }
    }

    /// The values at two keys (an entry's two forms) with the time each has left, in one
    /// round trip; `None` when Redis failed.
    pub async fn get_pair(
        self: &Arc<Self>,
        a: &str,
        b: &str,
    ) -> Option<(Option<(Vec<u8>, Duration)>, Option<(Vec<u8>, Duration)>)> {
        let mut pipe = redis::pipe();
        pipe.cmd("GET")
            .arg(a)
            .cmd("PTTL")
            .arg(a)
            .cmd("GET")
            .arg(b)
            .cmd("PTTL")
            .arg(b);
        let (va, ta, vb, tb): (Option<Vec<u8>>, i64, Option<Vec<u8>>, i64) =
            self.run(&RedisCommand::Pipe(pipe), Caller::Request).await.ok()?;
        let left = |ms: i64| Duration::from_millis(u64::try_from(ms).unwrap_or(0));
        Some((va.map(|v| (v, left(ta))), vb.map(|v| (v, left(tb)))))
    }

    /// Stores `value` at `key` for `ttl`, without making the caller wait.
    pub fn set_later(self: &Arc<Self>, key: String, value: Vec<u8>, ttl: Duration) {
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(value).arg("PX").arg(ms);
        self.later(RedisCommand::Cmd(cmd));
    }

    /// Runs `command` on this worker's runtime, after the caller has moved on.
    pub fn later(self: &Arc<Self>, command: RedisCommand) {
        let store = Arc::clone(self);
        tokio::spawn(async move {
            let _ = store.run::<redis::Value>(&command, Caller::Background).await;
        });
    }

    /// Removes both forms of entry `id`, whatever its namespace; how many keys went.
    pub async fn remove(self: &Arc<Self>, id: CacheId) -> Result<u64, RedisError> {
        let mut pattern = String::from(PREFIX);
        pattern.push_str("*:");
        id.write_hex(&mut pattern);
        pattern.push_str(":*");
        self.remove_matching(&pattern).await
    }

    /// Removes every entry of `namespace`; how many keys went.
    pub async fn clear_namespace(self: &Arc<Self>, namespace: &str) -> Result<u64, RedisError> {
        let pattern = format!("{PREFIX}{}:*", namespace_hash(namespace));
        self.remove_matching(&pattern).await
    }

    /// `SCAN` + `DEL` (admin only: a scan is too slow for the request path, fine here).
    async fn remove_matching(self: &Arc<Self>, pattern: &str) -> Result<u64, RedisError> {
        let mut cursor = 0u64;
        let mut removed = 0u64;
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(1000);
            let (next, keys): (u64, Vec<String>) = self.run(&RedisCommand::Cmd(scan), Caller::Background).await?;
            if !keys.is_empty() {
                let mut del = redis::cmd("DEL");
                del.arg(keys);
                removed += self.run::<u64>(&RedisCommand::Cmd(del), Caller::Background).await?;
            }
            if next == 0 {
                return Ok(removed);
            }
            cursor = next;
        }
    }
}

/// Who runs a command: a request waiting for its answer never waits for a connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Request,
    Background,
}

/// A command or a pipeline, to run now or later.
pub enum RedisCommand {
    Cmd(redis::Cmd),
    Pipe(redis::Pipeline),
}

/// 16 hex digits of the namespace's BLAKE3: fixed length, no pattern characters.
fn namespace_hash(namespace: &str) -> String {
    let hash = blake3::hash(namespace.as_bytes());
    let id = CacheId(hash.as_bytes()[..16].try_into().unwrap_or([0; 16]));
    let mut hex = id.hex();
    hex.truncate(16);
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_hide_the_namespace_and_name_the_form() {
        let id = CacheId([0xab; 16]);
        let a = RedisStore::key("team-*", id, false);
        let b = RedisStore::key("team-*", id, true);
        assert!(
            a.starts_with("sy:cache:") && a.ends_with(&format!("{}:p", id.hex())),
            "{a}"
        );
        assert!(b.ends_with(":s"));
        assert!(!a.contains("team") && !a.contains('*'), "{a}");
        assert_ne!(RedisStore::key("team-b", id, false), a);
        assert_eq!(a.len(), "sy:cache:".len() + 16 + 1 + 32 + 2);
    }
}
