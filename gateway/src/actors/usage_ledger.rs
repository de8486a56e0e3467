//! The UsageLedger actor receives usage from every answered request (batched per worker) and
//! keeps the ledger that `GET /v1/usage` reads, for any time range it still holds.
//!
//! The ledger's names come from the config, never from a client: a line per configured
//! provider and target model (an alias target or a `provider/model` fallback), and one
//! [`OTHER_MODELS`] line per provider for everything clients route there by
//! `provider/anything`. So its size is bounded by the config, whatever clients send.
//!
//! Time: besides the totals since the daemon started, the ledger keeps time buckets of those
//! lines: one per UTC minute for (at least) the last 24 hours, then one per UTC hour for the
//! last 31 days; older ones are dropped. An hour's minute buckets are merged into one hour
//! bucket once the whole hour is more than 24 hours old, so there are at most 1,500 minute
//! buckets (25 h) and 720 hour buckets (the 30 days before those), each holding at most the
//! lines of the config in force (of both, for a bucket a reload falls in) — and only minutes
//! and hours that saw usage have a bucket at all.
//!
//! A range's buckets: one is counted when its start lies in `[start, end)` (the first
//! bucket's start is taken as the daemon's start). So adjacent ranges never count a bucket
//! twice, and an edge inside a bucket is honoured to the bucket's size: to the minute within
//! the minute window, to the hour before it.

use crate::actors::router::RouterHandle;
use crate::routing::RouteTable;
use actix::prelude::*;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone)]
pub struct UsageRecord {
    pub provider: Arc<str>,
    /// The model the request was sent to (`model_deployment`): a configured target, or
    /// whatever a client asked for with `provider/model`.
    pub model: Arc<str>,
    /// The parts of the codec's usage ([`switchyard_plugin_api::host::Usage`]), each as is.
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Input tokens read from the provider's prompt cache.
    pub cached_tokens: u64,
    /// Input tokens written to the provider's prompt cache.
    pub cache_write_tokens: u64,
    pub reasoning_tokens: u64,
    /// The gateway estimated these figures because the upstream never reported them (a
    /// stream the client abandoned before its usage arrived).
    pub estimated: bool,
    /// What the answer cost in USD; `None` when its model has no price.
    pub cost_usd: Option<f64>,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct UsageBatch(pub Vec<UsageRecord>);

/// Totals for one provider and model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LedgerLine {
    /// Answers with usage (estimated ones included).
    pub requests: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cached_tokens: u64,
    pub cache_write_tokens: u64,
    pub reasoning_tokens: u64,
    /// How many of `requests` carry usage the gateway estimated; their tokens are in the
    /// totals above.
    pub estimated_requests: u64,
    /// USD, over the requests whose model has a price (estimated ones included).
    pub cost_usd: f64,
    /// Requests whose model has no price: their tokens are counted, their cost is not.
    pub unpriced_requests: u64,
}

impl LedgerLine {
    fn add(&mut self, r: &UsageRecord) {
        // Saturating: token counts come from upstreams, and a total must never wrap.
        self.requests = self.requests.saturating_add(1);
        self.prompt_tokens = self.prompt_tokens.saturating_add(r.prompt_tokens);
        self.completion_tokens = self.completion_tokens.saturating_add(r.completion_tokens);
        self.cached_tokens = self.cached_tokens.saturating_add(r.cached_tokens);
        self.cache_write_tokens = self.cache_write_tokens.saturating_add(r.cache_write_tokens);
        self.reasoning_tokens = self.reasoning_tokens.saturating_add(r.reasoning_tokens);
        self.estimated_requests = self.estimated_requests.saturating_add(u64::from(r.estimated));
        match r.cost_usd {
            Some(usd) => self.cost_usd += usd,
            None => self.unpriced_requests = self.unpriced_requests.saturating_add(1),
        }
    }

    fn merge(&mut self, other: &LedgerLine) {
        self.requests = self.requests.saturating_add(other.requests);
        self.prompt_tokens = self.prompt_tokens.saturating_add(other.prompt_tokens);
        self.completion_tokens = self.completion_tokens.saturating_add(other.completion_tokens);
        self.cached_tokens = self.cached_tokens.saturating_add(other.cached_tokens);
        self.cache_write_tokens = self.cache_write_tokens.saturating_add(other.cache_write_tokens);
        self.reasoning_tokens = self.reasoning_tokens.saturating_add(other.reasoning_tokens);
        self.estimated_requests = self.estimated_requests.saturating_add(other.estimated_requests);
        self.cost_usd += other.cost_usd;
        self.unpriced_requests = self.unpriced_requests.saturating_add(other.unpriced_requests);
    }
}

/// The ledger line of a provider's models that no alias or fallback names.
pub const OTHER_MODELS: &str = "(other)";

/// The configured `provider → target models`, which the ledger keeps apart.
#[derive(Debug, Default)]
pub struct ConfiguredTargets(HashMap<Arc<str>, HashSet<Arc<str>>>);

impl ConfiguredTargets {
    pub fn of(table: &RouteTable) -> ConfiguredTargets {
        let mut map: HashMap<Arc<str>, HashSet<Arc<str>>> = HashMap::new();
        for (provider, model) in table.configured_targets() {
            map.entry(Arc::clone(provider)).or_default().insert(model);
        }
        ConfiguredTargets(map)
    }

    fn contains(&self, provider: &str, model: &str) -> bool {
        self.0.get(provider).is_some_and(|models| models.contains(model))
    }
}

/// Ledger lines per provider and model: the usage of one time bucket, of a range, or since
/// the daemon started.
#[derive(Debug, Clone, Default)]
pub struct UsageLines {
    providers: BTreeMap<Arc<str>, BTreeMap<Arc<str>, LedgerLine>>,
}

/// Applies `f` to the line `name` of `models`, made when missing (sharing `name`'s string).
fn with_line(models: &mut BTreeMap<Arc<str>, LedgerLine>, name: &Arc<str>, f: impl FnOnce(&mut LedgerLine)) {
    match models.get_mut(&**name) {
        Some(line) => f(line),
        None => f(models.entry(Arc::clone(name)).or_default()),
    }
}

/// The name of the [`OTHER_MODELS`] lines, shared by every bucket that has one.
static OTHER: std::sync::LazyLock<Arc<str>> = std::sync::LazyLock::new(|| Arc::from(OTHER_MODELS));

impl UsageLines {
    /// Adds one answer's usage to its provider's line for `r.model` if that model is
    /// configured, else to the provider's [`OTHER_MODELS`] line.
    pub fn add(&mut self, r: &UsageRecord, targets: &ConfiguredTargets) {
        let models = match self.providers.get_mut(&*r.provider) {
            Some(m) => m,
            None => self.providers.entry(Arc::clone(&r.provider)).or_default(),
        };
        let model = if targets.contains(&r.provider, &r.model) {
            &r.model
        } else {
            &*OTHER
        };
        with_line(models, model, |line| line.add(r));
    }

    /// Adds every line of `other` to this one's.
    pub fn merge(&mut self, other: &UsageLines) {
        for (provider, lines) in &other.providers {
            let models = match self.providers.get_mut(provider) {
                Some(m) => m,
                None => self.providers.entry(Arc::clone(provider)).or_default(),
            };
            for (model, line) in lines {
                with_line(models, model, |mine| mine.merge(line));
            }
        }
    }

    /// `(provider, model, line)` in name order.
    pub fn lines(&self) -> impl Iterator<Item = (&str, &str, &LedgerLine)> {
        self.providers
            .iter()
            .flat_map(|(p, models)| models.iter().map(move |(m, line)| (&**p, &**m, line)))
    }

    /// How many lines there are.
    pub fn len(&self) -> usize {
        self.providers.values().map(BTreeMap::len).sum()
    }

    /// Whether there are no lines.
    pub fn is_empty(&self) -> bool {
        self.providers.is_empty()
    }

    /// `{"total": line, "providers": {name: {"total": line, "models": {name: line}}}}`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut total = LedgerLine::default();
        let mut providers = serde_json::Map::new();
        for (name, models) in &self.providers {
            let mut provider_total = LedgerLine::default();
            let mut lines = serde_json::Map::new();
            for (model, line) in models {
                provider_total.merge(line);
                lines.insert(model.to_string(), serde_json::json!(line));
            }
            total.merge(&provider_total);
            providers.insert(
                name.to_string(),
                serde_json::json!({ "total": provider_total, "models": lines }),
            );
        }
        serde_json::json!({ "total": total, "providers": providers })
    }
}

const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;
/// Minute buckets are kept while their hour ended less than this long ago…
const MINUTES_KEPT_FOR: u64 = DAY;
/// …and hour buckets while they ended less than this long ago.
const HOURS_KEPT_FOR: u64 = 31 * DAY;

/// `t` rounded down to a multiple of `step`.
fn floor_to(t: u64, step: u64) -> u64 {
    t - t % step
}

/// The start of the oldest hour kept in minute buckets at `now`: an hour older than that is
/// one hour bucket.
fn minutes_since(now: u64) -> u64 {
    floor_to(now.saturating_sub(MINUTES_KEPT_FOR), HOUR)
}

/// The start of the oldest hour kept at all at `now`.
fn hours_since(now: u64) -> u64 {
    floor_to(now.saturating_sub(HOURS_KEPT_FOR), HOUR)
}

/// The usage of one UTC minute or hour (Unix seconds, a multiple of its length).
#[derive(Debug, Clone)]
struct Bucket {
    start: u64,
    lines: UsageLines,
}

/// The time range of a query, in Unix seconds: `None` is unbounded (everything kept).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsageRange {
    pub start: Option<u64>,
    pub end: Option<u64>,
}

/// How precisely a range's edges were honoured: to the bucket size at the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Resolution {
    Minute,
    Hour,
}

/// What a range answer covers (Unix seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RangeInfo {
    /// The range asked for (the daemon's start when not given)…
    pub start: u64,
    /// …and its end (now when not given).
    pub end: u64,
    pub resolution: Resolution,
    /// The answer holds every usage from this time on: usage before it was dropped (or
    /// happened before the daemon started).
    pub kept_since: u64,
}

/// The usage of a time range.
#[derive(Debug, Clone)]
pub struct UsageReport {
    pub lines: UsageLines,
    pub range: RangeInfo,
}

impl UsageReport {
    /// [`UsageLines::to_json`] and `"range": {start, end, resolution, kept_since}`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut body = self.lines.to_json();
        if let Some(obj) = body.as_object_mut() {
            obj.insert("range".into(), serde_json::json!(self.range));
        }
        body
    }
}

/// The usage totals since the daemon started, and per minute and hour as long as they are
/// kept (see the module's documentation). Every function that depends on the time takes it
/// as `now` (Unix seconds), so tests need no clock.
#[derive(Debug, Clone)]
pub struct Ledger {
    /// When the daemon started (Unix seconds).
    since: u64,
    total: UsageLines,
    /// Minute buckets, oldest first, each start later than the one before.
    minutes: VecDeque<Bucket>,
    /// Hour buckets, oldest first, each start later than the one before; all older than the
    /// minute buckets (while the clock goes forward).
    hours: VecDeque<Bucket>,
}

impl Ledger {
    /// An empty ledger of a daemon started at `since` (Unix seconds).
    pub fn new(since: u64) -> Ledger {
        Ledger {
            since,
            total: UsageLines::default(),
            minutes: VecDeque::new(),
            hours: VecDeque::new(),
        }
    }

    /// Adds one answer's usage, as received at `now` (see [`UsageLines::add`] for its line).
    pub fn add(&mut self, r: &UsageRecord, targets: &ConfiguredTargets, now: u64) {
        self.total.add(r, targets);
        let start = floor_to(now, MINUTE);
        match self.minutes.back_mut() {
            // This minute's bucket; or, after the wall clock was set back, the latest bucket:
            // buckets stay in order, and no more of them are made.
            Some(latest) if latest.start >= start => latest.lines.add(r, targets),
            _ => {
                let mut lines = UsageLines::default();
                lines.add(r, targets);
                self.minutes.push_back(Bucket { start, lines });
            }
        }
    }

    /// Merges the minute buckets of hours older than the minute window into hour buckets,
    /// and drops the hour buckets older than the hour window.
    pub fn age(&mut self, now: u64) {
        let minutes_since = minutes_since(now);
        while let Some(oldest) = self.minutes.front()
            && oldest.start < minutes_since
        {
            let Some(minute) = self.minutes.pop_front() else {
                break;
            };
            let hour = floor_to(minute.start, HOUR);
            match self.hours.back_mut() {
                // Its hour's bucket (or, after the clock was set back, the latest one).
                Some(latest) if latest.start >= hour => latest.lines.merge(&minute.lines),
                _ => self.hours.push_back(Bucket {
                    start: hour,
                    lines: minute.lines,
                }),
            }
        }
        let hours_since = hours_since(now);
        while self.hours.front().is_some_and(|oldest| oldest.start < hours_since) {
            self.hours.pop_front();
        }
    }

    /// The oldest time whose usage is still kept at `now`: the daemon's start, or the start
    /// of the oldest hour kept once older ones have been dropped.
    pub fn kept_since(&self, now: u64) -> u64 {
        self.since.max(hours_since(now))
    }

    /// The usage in `range` at `now` (call [`Ledger::age`] first). A bucket is counted when
    /// its start lies in `[start, end)`, the first bucket's start being the daemon's start
    /// (so a `start` at or before the daemon's start counts from its very first answer).
    /// Without an `end`, and with no `start` after the daemon's start, the answer is the
    /// totals since the daemon started, dropped buckets or not.
    pub fn usage(&self, range: UsageRange, now: u64) -> UsageReport {
        let since = self.since;
        // Nothing happened before the daemon started: such a start is no bound.
        let start = range.start.filter(|&s| s > since);
        let end = range.end;
        let (lines, kept_since) = if start.is_none() && end.is_none() {
            (self.total.clone(), since)
        } else {
            let mut lines = UsageLines::default();
            let counted = |b: &&Bucket| {
                let t = b.start.max(since);
                start.is_none_or(|s| t >= s) && end.is_none_or(|e| t < e)
            };
            for bucket in self.hours.iter().chain(&self.minutes).filter(counted) {
                lines.merge(&bucket.lines);
            }
            (lines, self.kept_since(now))
        };
        // An edge is honoured to the minute inside the minute window, and exactly at or
        // before the daemon's start; elsewhere to the hour.
        let minutes_since = minutes_since(now);
        let to_the_minute = |edge: Option<u64>| edge.is_none_or(|e| e <= since || e >= minutes_since);
        let resolution = if to_the_minute(start) && to_the_minute(end) {
            Resolution::Minute
        } else {
            Resolution::Hour
        };
        UsageReport {
            lines,
            range: RangeInfo {
                start: range.start.unwrap_or(since),
                end: range.end.unwrap_or(now),
                resolution,
                kept_since,
            },
        }
    }
}

/// Unix seconds of `t` (0 before 1970).
fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

pub struct UsageLedger {
    ledger: Ledger,
    router: RouterHandle,
    /// The configured targets of the routing table they were taken from (weak: a replaced
    /// table is not kept alive for this).
    targets: ConfiguredTargets,
    targets_of: Weak<RouteTable>,
}

impl Actor for UsageLedger {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(super::MAILBOX_CAPACITY);
    }
}

impl UsageLedger {
    fn new(router: RouterHandle, since: SystemTime) -> UsageLedger {
        UsageLedger {
            ledger: Ledger::new(unix_secs(since)),
            router,
            targets: ConfiguredTargets::default(),
            targets_of: Weak::new(),
        }
    }

    /// The configured targets of the current routing table (recomputed after a reload).
    fn refresh_targets(&mut self) {
        let table = self.router.current();
        if Weak::as_ptr(&self.targets_of) != Arc::as_ptr(&table) {
            self.targets = ConfiguredTargets::of(&table);
            self.targets_of = Arc::downgrade(&table);
        }
    }
}

impl Handler<UsageBatch> for UsageLedger {
    type Result = ();
    fn handle(&mut self, batch: UsageBatch, _ctx: &mut Self::Context) {
        // A record's time is when its batch reaches this actor, not when its answer was
        // sent: workers flush their batches within about 200 ms (the outbox's `MAX_AGE` and
        // ticker), so an answer near the end of a minute may be counted in the next one.
        let now = unix_secs(SystemTime::now());
        self.ledger.age(now);
        self.refresh_targets();
        for r in &batch.0 {
            self.ledger.add(r, &self.targets, now);
        }
    }
}

/// Asks for the usage of a time range.
#[derive(Message)]
#[rtype(result = "UsageReport")]
pub struct ReadUsage(pub UsageRange);

impl Handler<ReadUsage> for UsageLedger {
    type Result = MessageResult<ReadUsage>;
    fn handle(&mut self, ReadUsage(range): ReadUsage, _ctx: &mut Self::Context) -> Self::Result {
        let now = unix_secs(SystemTime::now());
        self.ledger.age(now);
        MessageResult(self.ledger.usage(range, now))
    }
}

/// How long an admin read waits for the actor (its mailbox may be full under load).
const READ_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct UsageLedgerHandle {
    pub addr: Addr<UsageLedger>,
    started: SystemTime,
}

impl UsageLedgerHandle {
    /// Starts the actor; `router` tells it which models are configured.
    pub fn start(arbiter: &ArbiterHandle, router: RouterHandle) -> UsageLedgerHandle {
        let started = SystemTime::now();
        let addr = UsageLedger::start_in_arbiter(arbiter, move |_| UsageLedger::new(router, started));
        UsageLedgerHandle { addr, started }
    }

    /// When the ledger started counting.
    pub fn since(&self) -> SystemTime {
        self.started
    }

    /// The usage in `range` as of every batch the actor has received (admin reads only: this
    /// waits for the actor). `None` when it did not answer in time.
    pub async fn usage(&self, range: UsageRange) -> Option<UsageReport> {
        match tokio::time::timeout(READ_TIMEOUT, self.addr.send(ReadUsage(range))).await {
            Ok(Ok(report)) => Some(report),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(pairs: &[(&str, &str)]) -> ConfiguredTargets {
        let mut map: HashMap<Arc<str>, HashSet<Arc<str>>> = HashMap::new();
        for (p, m) in pairs {
            map.entry(Arc::from(*p)).or_default().insert(Arc::from(*m));
        }
        ConfiguredTargets(map)
    }

    fn record(provider: &str, model: &str) -> UsageRecord {
        UsageRecord {
            provider: Arc::from(provider),
            model: Arc::from(model),
            prompt_tokens: 10,
            completion_tokens: 5,
            cached_tokens: 3,
            cache_write_tokens: 7,
            reasoning_tokens: 2,
            estimated: false,
            cost_usd: Some(0.25),
        }
    }

    /// 2026-12-05T10:00:00Z.
    const T0: u64 = 1_796_464_800;

    fn range(start: Option<u64>, end: Option<u64>) -> UsageRange {
        UsageRange { start, end }
    }

    /// Requests counted in `range` at `now`.
    fn requests(ledger: &Ledger, r: UsageRange, now: u64) -> u64 {
        ledger.usage(r, now).lines.lines().map(|(_, _, l)| l.requests).sum()
    }

    fn starts(buckets: &VecDeque<Bucket>) -> Vec<u64> {
        buckets.iter().map(|b| b.start).collect()
    }

    /// A ledger of a daemon started at `since`, given one request of `up/gpt-4o` at each of
    /// `times` (each aged in first, as the actor does).
    fn ledger_with(since: u64, times: &[u64]) -> Ledger {
        let known = targets(&[("up", "gpt-4o")]);
        let mut ledger = Ledger::new(since);
        for &t in times {
            ledger.age(t);
            ledger.add(&record("up", "gpt-4o"), &known, t);
        }
        ledger
    }

    #[test]
    fn client_chosen_models_share_one_line_per_provider() {
        let known = targets(&[("up", "gpt-4o"), ("local", "echo")]);
        let mut lines = UsageLines::default();
        for i in 0..10_000 {
            lines.add(&record("up", &format!("client-made-{i}")), &known);
        }
        lines.add(&record("up", "gpt-4o"), &known);
        lines.add(&record("local", "echo"), &known);
        // A configured model of another provider is not this provider's.
        lines.add(&record("local", "gpt-4o"), &known);
        let got: Vec<(&str, &str, u64)> = lines.lines().map(|(p, m, l)| (p, m, l.requests)).collect();
        assert_eq!(
            got,
            vec![
                ("local", OTHER_MODELS, 1),
                ("local", "echo", 1),
                ("up", OTHER_MODELS, 10_000),
                ("up", "gpt-4o", 1),
            ]
        );
    }

    #[test]
    fn every_usage_part_and_estimates_reach_the_ledger() {
        let known = targets(&[("up", "gpt-4o")]);
        let mut lines = UsageLines::default();
        lines.add(&record("up", "gpt-4o"), &known);
        let mut estimated = record("up", "gpt-4o");
        estimated.estimated = true;
        estimated.completion_tokens = 40;
        lines.add(&estimated, &known);
        let mut unpriced = record("up", "gpt-4o");
        unpriced.cost_usd = None;
        lines.add(&unpriced, &known);
        let line = lines.lines().next().map(|(_, _, l)| *l);
        assert_eq!(
            line,
            Some(LedgerLine {
                requests: 3,
                prompt_tokens: 30,
                completion_tokens: 50,
                cached_tokens: 9,
                cache_write_tokens: 21,
                reasoning_tokens: 6,
                estimated_requests: 1,
                cost_usd: 0.5,
                unpriced_requests: 1,
            })
        );
    }

    #[test]
    fn totals_never_wrap() {
        let known = targets(&[]);
        let mut ledger = Ledger::new(T0);
        let mut huge = record("up", "x");
        huge.prompt_tokens = u64::MAX;
        // In one bucket, across buckets, and in their sum.
        ledger.add(&huge, &known, T0);
        ledger.add(&huge, &known, T0);
        ledger.add(&huge, &known, T0 + HOUR);
        for r in [
            range(None, None),
            range(Some(T0 + 1), None),
            range(None, Some(T0 + DAY)),
        ] {
            let report = ledger.usage(r, T0 + HOUR);
            assert_eq!(
                report.lines.lines().next().map(|(_, _, l)| l.prompt_tokens),
                Some(u64::MAX),
                "{r:?}"
            );
            assert_eq!(report.to_json()["total"]["prompt_tokens"], u64::MAX, "{r:?}");
        }
    }

    #[test]
    fn json_has_totals_per_provider_and_overall_and_the_range() {
        let known = targets(&[("up", "gpt-4o"), ("local", "echo")]);
        let mut ledger = Ledger::new(T0);
        ledger.add(&record("up", "gpt-4o"), &known, T0 + 5);
        ledger.add(&record("up", "other"), &known, T0 + 5);
        ledger.add(&record("local", "echo"), &known, T0 + 5);
        let v = ledger.usage(UsageRange::default(), T0 + 10).to_json();
        assert_eq!(v["total"]["requests"], 3, "{v:#}");
        assert_eq!(v["total"]["cache_write_tokens"], 21, "{v:#}");
        assert_eq!(v["providers"]["up"]["total"]["requests"], 2, "{v:#}");
        assert_eq!(v["providers"]["up"]["models"]["gpt-4o"]["prompt_tokens"], 10, "{v:#}");
        assert_eq!(v["providers"]["up"]["models"][OTHER_MODELS]["requests"], 1, "{v:#}");
        assert_eq!(v["providers"]["local"]["models"]["echo"]["requests"], 1, "{v:#}");
        assert_eq!(
            v["range"],
            serde_json::json!({"start": T0, "end": T0 + 10, "resolution": "minute", "kept_since": T0}),
            "{v:#}"
        );
    }

    #[test]
    fn records_fall_in_the_utc_minute_they_arrive_in() {
        let ledger = ledger_with(T0, &[T0, T0 + 59, T0 + 60, T0 + 61, T0 + 3 * MINUTE + 30]);
        assert_eq!(starts(&ledger.minutes), [T0, T0 + 60, T0 + 180]);
        assert!(ledger.hours.is_empty());
        let per_bucket: Vec<usize> = ledger.minutes.iter().map(|b| b.lines.len()).collect();
        assert_eq!(
            per_bucket,
            [1, 1, 1],
            "one line each: the bucket's lines, not its records"
        );
        let counts: Vec<u64> = ledger
            .minutes
            .iter()
            .map(|b| b.lines.lines().map(|(_, _, l)| l.requests).sum())
            .collect();
        assert_eq!(counts, [2, 2, 1]);
    }

    #[test]
    fn a_range_counts_the_buckets_whose_start_lies_in_it() {
        // The daemon started mid-minute; one request in each of four minutes.
        let since = T0 + 30;
        let times = [T0 + 40, T0 + 60, T0 + 150, T0 + 200];
        let ledger = ledger_with(since, &times);
        let now = T0 + 300;
        let n = |start, end| requests(&ledger, range(start, end), now);
        assert_eq!(n(None, None), 4);
        // At or before the daemon's start: from its first answer, though its minute began
        // before the daemon did.
        assert_eq!(n(Some(since), None), 4);
        assert_eq!(n(Some(0), None), 4);
        assert_eq!(
            n(Some(since + 1), None),
            3,
            "the first minute's start is the daemon's start"
        );
        // Edges on minute boundaries are exact.
        assert_eq!(n(Some(T0 + 60), Some(T0 + 120)), 1);
        assert_eq!(n(Some(T0 + 60), Some(T0 + 180)), 2);
        assert_eq!(
            n(Some(T0 + 120), Some(T0 + 121)),
            1,
            "a bucket starting at `start` counts"
        );
        assert_eq!(n(Some(T0 + 60), Some(T0 + 60)), 0, "an empty range");
        // Inside a minute, an edge is rounded up to the next minute: that minute's start
        // is outside `[start, end)` of a later start, inside that of a later end.
        assert_eq!(n(Some(T0 + 61), None), 2);
        assert_eq!(n(None, Some(T0 + 61)), 2);
        // Adjacent ranges never count a bucket twice, wherever they meet.
        for cut in (since..now).step_by(7) {
            assert_eq!(n(None, Some(cut)) + n(Some(cut), None), 4, "cut at {cut}");
        }
        // Past the latest bucket, or wholly before the first: nothing.
        assert_eq!(n(Some(T0 + 241), None), 0);
        assert_eq!(n(None, Some(since)), 0);
        assert_eq!(n(Some(T0 - DAY), Some(T0)), 0);
    }

    #[test]
    fn a_whole_hour_of_minutes_becomes_one_hour_bucket_when_it_is_a_day_old() {
        let mut ledger = ledger_with(T0, &[T0 + 30, T0 + 59 * MINUTE + 59, T0 + HOUR]);
        // The hour 10:00 ends at 11:00; a day later it is still kept by the minute.
        ledger.age(T0 + HOUR + DAY - 1);
        assert_eq!(starts(&ledger.minutes), [T0, T0 + 59 * MINUTE, T0 + HOUR]);
        assert!(ledger.hours.is_empty());
        ledger.age(T0 + HOUR + DAY);
        assert_eq!(starts(&ledger.minutes), [T0 + HOUR]);
        assert_eq!(starts(&ledger.hours), [T0]);
        let hour: u64 = ledger.hours[0].lines.lines().map(|(_, _, l)| l.requests).sum();
        assert_eq!(hour, 2);
        // Nothing is lost in the merge.
        let now = T0 + HOUR + DAY;
        assert_eq!(requests(&ledger, range(Some(T0), Some(now)), now), 3);
        // The next hour's minutes follow a day after it ended, into their own bucket.
        ledger.age(T0 + 2 * HOUR + DAY);
        assert!(ledger.minutes.is_empty());
        assert_eq!(starts(&ledger.hours), [T0, T0 + HOUR]);
    }

    #[test]
    fn hour_buckets_older_than_31_days_are_dropped() {
        let mut ledger = ledger_with(T0, &[T0 + 10, T0 + HOUR + 10, T0 + 2 * HOUR + 10]);
        // The hour 10:00 is kept while it ended less than 31 days ago.
        let later = T0 + HOUR + 31 * DAY - 1;
        ledger.age(later);
        assert_eq!(starts(&ledger.hours), [T0, T0 + HOUR, T0 + 2 * HOUR]);
        assert_eq!(ledger.kept_since(later), T0);
        ledger.age(T0 + HOUR + 31 * DAY);
        assert_eq!(starts(&ledger.hours), [T0 + HOUR, T0 + 2 * HOUR]);
        assert_eq!(ledger.kept_since(T0 + HOUR + 31 * DAY), T0 + HOUR);
        ledger.age(T0 + 100 * DAY);
        assert!(ledger.hours.is_empty() && ledger.minutes.is_empty());
    }

    #[test]
    fn a_range_older_than_what_is_kept_is_zero_and_says_so() {
        let since = T0;
        let mut ledger = ledger_with(since, &[T0 + 10, T0 + 5 * DAY]);
        let now = T0 + 40 * DAY;
        ledger.age(now);
        let old = ledger.usage(range(Some(T0), Some(T0 + DAY)), now);
        assert_eq!(old.lines.lines().count(), 0, "{old:?}");
        assert_eq!(old.range.start, T0);
        assert_eq!(old.range.end, T0 + DAY);
        assert_eq!(old.range.kept_since, T0 + 9 * DAY, "{old:?}");
        assert!(old.range.kept_since > old.range.end);
        assert_eq!(old.range.resolution, Resolution::Hour);
        assert_eq!(old.to_json()["total"]["requests"], 0);
        // A range reaching back before what is kept counts what is kept.
        let over = ledger.usage(range(Some(T0), Some(now)), now);
        assert_eq!(over.lines.lines().count(), 0, "the day-5 hour is gone too: {over:?}");
        // With no range the totals since the daemon started still hold everything.
        let all = ledger.usage(UsageRange::default(), now);
        assert_eq!(all.lines.lines().map(|(_, _, l)| l.requests).sum::<u64>(), 2);
        assert_eq!(all.range.kept_since, since);
        assert_eq!(all.range.start, since);
        assert_eq!(all.range.end, now);
    }

    #[test]
    fn resolution_is_the_minute_only_when_the_edges_lie_in_the_minute_window() {
        let since = T0;
        let now = T0 + 3 * DAY + 30 * MINUTE;
        let ledger = ledger_with(since, &[T0 + 10, now]);
        let window = minutes_since(now);
        assert_eq!(window, T0 + 2 * DAY, "the hour that began a day before now's hour");
        let resolution = |start, end| ledger.usage(range(start, end), now).range.resolution;
        assert_eq!(resolution(None, None), Resolution::Minute);
        assert_eq!(resolution(Some(window), None), Resolution::Minute);
        assert_eq!(resolution(Some(window - 1), None), Resolution::Hour);
        assert_eq!(
            resolution(Some(since), Some(window)),
            Resolution::Minute,
            "before the daemon: exact"
        );
        assert_eq!(resolution(Some(since + 1), Some(now)), Resolution::Hour);
        assert_eq!(resolution(None, Some(window - 1)), Resolution::Hour);
        assert_eq!(resolution(Some(now + DAY), Some(now + 2 * DAY)), Resolution::Minute);
    }

    #[test]
    fn hour_edges_are_honoured_to_the_hour() {
        let since = T0;
        // Requests at 10:10 and 10:50 on day 0, and one now.
        let now = T0 + 3 * DAY;
        let mut ledger = ledger_with(since, &[T0 + 10 * MINUTE, T0 + 50 * MINUTE, T0 + HOUR + 5, now]);
        ledger.age(now);
        let n = |start, end| requests(&ledger, range(start, end), now);
        assert_eq!(n(Some(T0), Some(T0 + HOUR)), 2);
        assert_eq!(
            n(Some(T0 + 30 * MINUTE), Some(T0 + DAY)),
            1,
            "10:00's bucket starts before 10:30"
        );
        assert_eq!(n(Some(T0 + HOUR), Some(T0 + HOUR + 1)), 1);
        assert_eq!(
            n(Some(T0 + 1), Some(now)),
            1,
            "after the daemon's start, in the first hour"
        );
    }

    #[test]
    fn memory_stays_bounded_whatever_the_uptime_and_the_model_names() {
        let known = targets(&[("up", "gpt-4o")]);
        let mut ledger = Ledger::new(T0);
        let mut max_lines = 0;
        let mut t = T0;
        let mut sent = 0_u64;
        // Forty days, a request every 50 s under a new client-chosen name each time.
        while t < T0 + 40 * DAY {
            ledger.age(t);
            ledger.add(&record("up", &format!("client-{t}")), &known, t);
            ledger.add(&record("up", "gpt-4o"), &known, t);
            sent += 2;
            assert!(ledger.minutes.len() <= 1_500, "{} minute buckets", ledger.minutes.len());
            assert!(ledger.hours.len() <= 720, "{} hour buckets", ledger.hours.len());
            t += 50;
        }
        for b in ledger.minutes.iter().chain(&ledger.hours) {
            max_lines = max_lines.max(b.lines.len());
        }
        assert_eq!(max_lines, 2, "gpt-4o and (other), whatever the names");
        assert_eq!(ledger.hours.len(), 720, "thirty days of hours behind the minute window");
        assert!(ledger.minutes.len() > 1_440, "at least a day by the minute");
        assert_eq!(ledger.total.len(), 2);
        let now = t;
        ledger.age(now);
        // The default answer is everything since the start; an explicit range, what is kept.
        assert_eq!(requests(&ledger, UsageRange::default(), now), sent);
        let kept_since = ledger.kept_since(now);
        let kept = requests(&ledger, range(Some(T0 + 1), None), now);
        let per_day = DAY / 50 * 2;
        let expect = (now - kept_since).div_ceil(50) * 2;
        assert!(kept.abs_diff(expect) <= 4 && kept > 30 * per_day, "{kept} ≈ {expect}");
    }

    #[test]
    fn a_clock_set_back_adds_to_the_latest_bucket() {
        let mut ledger = ledger_with(T0, &[T0 + 10 * MINUTE, T0 + 5 * MINUTE, T0 + 10 * MINUTE + 1]);
        assert_eq!(starts(&ledger.minutes), [T0 + 10 * MINUTE]);
        assert_eq!(requests(&ledger, UsageRange::default(), T0 + 20 * MINUTE), 3);
        // Likewise for hours: a minute bucket older than the latest hour joins that hour.
        let known = targets(&[]);
        ledger.age(T0 + 2 * DAY);
        assert_eq!(starts(&ledger.hours), [T0]);
        ledger.add(&record("up", "x"), &known, T0 + 3 * DAY);
        ledger.add(&record("up", "x"), &known, T0 + 3 * DAY + 5 * MINUTE);
        ledger.minutes[0].start = T0 - HOUR; // as if made while the clock was far behind
        ledger.age(T0 + 5 * DAY);
        assert_eq!(starts(&ledger.hours), [T0, T0 + 3 * DAY]);
        assert!(ledger.minutes.is_empty());
        assert_eq!(requests(&ledger, range(None, Some(T0 + 10 * DAY)), T0 + 5 * DAY), 5);
    }
}
