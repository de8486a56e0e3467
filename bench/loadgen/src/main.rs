//! A small, bounded load generator for the benchmarks in `bench/`. Loopback only: it refuses
//! any target that is not 127.0.0.0/8 or ::1, and every mode stops by itself.
//!
//! Modes:
//! - closed loop (default): `--connections N` keep one request in flight each for `--duration`;
//! - fixed rate: `--rate R` schedules requests at R/s over the connections. Latency is measured
//!   from when each request is sent (the timer's 1 ms granularity would otherwise dominate);
//!   `late` counts requests sent more than 1 ms after their slot, which shows a server that
//!   cannot keep up;
//! - `--hold-streams N`: opens N streaming requests at once, waits until each has its first
//!   byte, reports, keeps them open for `--duration`, then exits (memory under open streams).
//!
//! Prints one JSON object: requests, errors, rps, latency percentiles (µs), SSE events seen.

use bytes::Bytes;
use clap::Parser;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

#[derive(Parser, Debug, Clone)]
struct Args {
    /// Target, e.g. http://127.0.0.1:8080/v1/chat/completions (loopback only).
    #[arg(long)]
    url: String,
    /// File with the request body (JSON).
    #[arg(long)]
    body: std::path::PathBuf,
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Seconds to run (closed loop, rate) or to hold streams open.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Fixed request rate per second (open loop) instead of closed loop.
    #[arg(long)]
    rate: Option<f64>,
    /// Open this many streaming requests at once and hold them.
    #[arg(long)]
    hold_streams: Option<usize>,
    /// Hard cap on requests, whatever the duration.
    #[arg(long, default_value_t = 5_000_000)]
    max_requests: u64,
    /// An extra request header, `name: value` (repeatable), e.g. `x-bf-cache-key: bench`.
    #[arg(long = "header")]
    headers: Vec<String>,
}

struct Target {
    addr: SocketAddr,
    host: String,
    path: String,
    headers: Vec<(String, String)>,
}

fn parse_target(url: &str) -> Result<Target, String> {
    let rest = url.strip_prefix("http://").ok_or("only http:// URLs")?;
    let (authority, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(a, p)| (a, format!("/{p}")));
    let addr: SocketAddr = authority
        .replace("localhost", "127.0.0.1")
        .parse()
        .map_err(|e| format!("{authority}: {e} (give an IP:port)"))?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "{addr} is not a loopback address; benchmarks only target this machine"
        ));
    }
    Ok(Target {
        addr,
        host: authority.to_string(),
        path,
        headers: Vec::new(),
    })
}

#[derive(Default)]
struct Tally {
    hist: Option<Histogram<u64>>,
    requests: u64,
    errors: u64,
    events: u64,
    late: u64,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            hist: Histogram::new_with_bounds(1, 60_000_000, 3).ok(),
            ..Tally::default()
        }
    }
    fn merge(&mut self, other: Tally) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.events += other.events;
        self.late += other.late;
        if let (Some(a), Some(b)) = (self.hist.as_mut(), other.hist.as_ref()) {
            let _ = a.add(b);
        }
    }
    fn record(&mut self, us: u64) {
        if let Some(h) = self.hist.as_mut() {
            let _ = h.record(us.max(1));
        }
    }
}

type Sender = http1::SendRequest<Full<Bytes>>;

fn with_headers(mut req: hyper::http::request::Builder, t: &Target) -> hyper::http::request::Builder {
    for (name, value) in &t.headers {
        req = req.header(name.as_str(), value.as_str());
    }
    req
}

async fn connect(t: &Target) -> Result<Sender, String> {
    let stream = TcpStream::connect(t.addr).await.map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::task::spawn_local(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// One request; returns the number of SSE events in the answer (0 for plain JSON).
async fn one(sender: &mut Sender, t: &Target, body: &Bytes) -> Result<u64, String> {
    let req = with_headers(Request::post(&t.path), t)
        .header("host", &t.host)
        .header("content-type", "application/json")
        .body(Full::new(body.clone()))
        .map_err(|e| e.to_string())?;
    sender.ready().await.map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let ok = resp.status().is_success();
    let mut body = resp.into_body();
    let mut events = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| e.to_string())?;
        if let Some(data) = frame.data_ref() {
            events += data.windows(6).filter(|w| w == b"data: ").count() as u64;
        }
    }
    if ok { Ok(events) } else { Err("non-2xx answer".into()) }
}

async fn closed_loop(t: &Target, body: Bytes, end: Instant, cap: u64) -> Tally {
    let mut tally = Tally::new();
    let Ok(mut sender) = connect(t).await else {
        tally.errors += 1;
        return tally;
    };
    while Instant::now() < end && tally.requests < cap {
        let start = Instant::now();
        match one(&mut sender, t, &body).await {
            Ok(ev) => {
                tally.requests += 1;
                tally.events += ev;
                tally.record(start.elapsed().as_micros() as u64);
            }
            Err(_) => {
                tally.errors += 1;
                match connect(t).await {
                    Ok(s) => sender = s,
                    Err(_) => return tally,
                }
            }
        }
    }
    tally
}

async fn fixed_rate(
    t: &Target,
    body: Bytes,
    begin: Instant,
    end: Instant,
    interval: Duration,
    offset: Duration,
) -> Tally {
    let mut tally = Tally::new();
    let Ok(mut sender) = connect(t).await else {
        tally.errors += 1;
        return tally;
    };
    let mut due = begin + offset;
    while due < end {
        tokio::time::sleep_until(due.into()).await;
        let sent = Instant::now();
        if sent.saturating_duration_since(due) > Duration::from_millis(1) {
            tally.late += 1;
        }
        match one(&mut sender, t, &body).await {
            Ok(ev) => {
                tally.requests += 1;
                tally.events += ev;
                tally.record(sent.elapsed().as_micros() as u64);
            }
            Err(_) => {
                tally.errors += 1;
                if let Ok(s) = connect(t).await {
                    sender = s;
                }
            }
        }
        due += interval;
    }
    tally
}

/// Opens a stream and reads it until the first body bytes arrive; then keeps reading until
/// the end or `end`.
async fn held_stream(t: &Target, body: Bytes, first: tokio::sync::mpsc::Sender<bool>, end: Instant) {
    let result = async {
        let mut sender = connect(t).await?;
        let req = with_headers(Request::post(&t.path), t)
            .header("host", &t.host)
            .body(Full::new(body))
            .map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let mut body = resp.into_body();
        let mut reported = false;
        loop {
            let next = tokio::time::timeout_at(end.into(), body.frame()).await;
            match next {
                Ok(Some(Ok(_))) if !reported => {
                    reported = true;
                    let _ = first.send(true).await;
                }
                Ok(Some(Ok(_))) => {}
                _ => break,
            }
        }
        Ok::<bool, String>(reported)
    }
    .await;
    if !matches!(result, Ok(true)) {
        let _ = first.send(false).await;
    }
}

fn rss_kib_of_self() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).map(str::to_string))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut target = match parse_target(&args.url) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::from(2);
        }
    };
    for h in &args.headers {
        let Some((name, value)) = h.split_once(':') else {
            eprintln!("loadgen: --header `{h}` is not `name: value`");
            return ExitCode::from(2);
        };
        target.headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    let body = match std::fs::read(&args.body) {
        Ok(b) => Bytes::from(b),
        Err(e) => {
            eprintln!("loadgen: cannot read {}: {e}", args.body.display());
            return ExitCode::from(2);
        }
    };
    // One thread: the load generator should cost one core at most, and be pinnable.
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::FAILURE;
        }
    };
    let local = tokio::task::LocalSet::new();
    let report = local.block_on(&rt, run(args, target, body));
    #[allow(clippy::print_stdout)]
    {
        println!("{report}");
    }
    ExitCode::SUCCESS
}

async fn run(args: Args, target: Target, body: Bytes) -> serde_json::Value {
    let target = std::rc::Rc::new(target);
    let duration = Duration::from_secs_f64(args.duration.clamp(0.1, 600.0));
    if let Some(n) = args.hold_streams {
        let (tx, mut rx) = tokio::sync::mpsc::channel(n.max(1));
        let opened = Instant::now();
        let end = opened + duration + Duration::from_secs(60);
        for _ in 0..n {
            let (t, b, tx) = (target.clone(), body.clone(), tx.clone());
            tokio::task::spawn_local(async move { held_stream(&t, b, tx, end).await });
        }
        drop(tx);
        let (mut ok, mut failed) = (0u64, 0u64);
        while ok + failed < n as u64 {
            match tokio::time::timeout(Duration::from_secs(60), rx.recv()).await {
                Ok(Some(true)) => ok += 1,
                Ok(Some(false)) => failed += 1,
                _ => break,
            }
        }
        let all_open = opened.elapsed().as_secs_f64();
        // The caller samples the server's memory now.
        eprintln!("loadgen: {ok} streams open");
        tokio::time::sleep(duration).await;
        return serde_json::json!({
            "mode": "hold_streams", "streams_open": ok, "streams_failed": failed,
            "seconds_to_open_all": all_open, "loadgen_rss_kib": rss_kib_of_self(),
        });
    }
    let begin = Instant::now();
    let end = begin + duration;
    let conns = args.connections.max(1);
    let cap = (args.max_requests / conns as u64).max(1);
    let mut tasks = Vec::with_capacity(conns);
    for i in 0..conns {
        let (t, b) = (target.clone(), body.clone());
        let task = match args.rate {
            Some(rate) => {
                let interval = Duration::from_secs_f64(conns as f64 / rate.max(0.001));
                let offset = interval.mul_f64(i as f64 / conns as f64);
                tokio::task::spawn_local(async move { fixed_rate(&t, b, begin, end, interval, offset).await })
            }
            None => tokio::task::spawn_local(async move { closed_loop(&t, b, end, cap).await }),
        };
        tasks.push(task);
    }
    let mut total = Tally::new();
    for task in tasks {
        if let Ok(t) = task.await {
            total.merge(t);
        }
    }
    let secs = begin.elapsed().as_secs_f64();
    let q = |p: f64| total.hist.as_ref().map_or(0, |h| h.value_at_quantile(p));
    serde_json::json!({
        "mode": if args.rate.is_some() { "rate" } else { "closed" },
        "connections": conns,
        "requests": total.requests,
        "errors": total.errors,
        "seconds": secs,
        "rps": total.requests as f64 / secs,
        "p50_us": q(0.50), "p90_us": q(0.90), "p99_us": q(0.99), "max_us": q(1.0),
        "sse_events": total.events,
        "late": total.late,
    })
}
