//! `GET /v1/usage` for a time range: `start` and `end` (RFC 3339 or Unix seconds) choose the
//! ledger's time buckets to sum — one per UTC minute for the last day — and `range` in the
//! answer says what was covered. The ledger hears of answers in batches, so the tests poll.

use serde_json::Value;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use switchyard_e2e::client::chat_body;
use switchyard_e2e::{Gateway, MockUpstream, Reply, standard_config};

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs()
}

/// `secs` as RFC 3339 in UTC with `Z` (days to civil date: H. Hinnant's algorithm).
fn rfc3339(secs: u64) -> String {
    let (date, time) = civil(secs);
    format!("{date}T{time}Z")
}

/// `secs` as RFC 3339 local time at `offset_hours` east of UTC, written `±HH:00`
/// (its sign as given: `%2B` is an escaped `+`).
fn rfc3339_at(secs: u64, offset_hours: i64, sign: &str) -> String {
    let local = secs.checked_add_signed(offset_hours * 3600).expect("a time after 1970");
    let (date, time) = civil(local);
    format!("{date}T{time}{sign}{:02}:00", offset_hours.abs())
}

fn civil(secs: u64) -> (String, String) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        format!("{year:04}-{month:02}-{day:02}"),
        format!("{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60),
    )
}

async fn usage(gw: &Gateway, query: &str) -> Value {
    let reply = gw.get(&format!("/v1/usage{query}")).await;
    reply.assert_status(200);
    reply.json()
}

fn requests(v: &Value) -> u64 {
    v["total"]["requests"]
        .as_u64()
        .unwrap_or_else(|| panic!("total.requests in {v:#}"))
}

/// Polls `/v1/usage` until the ledger holds `n` requests (reports reach it in batches).
async fn until_requests(gw: &Gateway, n: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let v = usage(gw, "").await;
        if requests(&v) == n {
            return v;
        }
        assert!(Instant::now() < deadline, "the ledger never got {n} requests: {v:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Asserts a 400 whose error names `param`, and returns its message.
fn assert_bad_param(reply: &Reply, param: &str) -> String {
    let err = reply.assert_error(400, "invalid_request");
    assert_eq!(err["type"], "invalid_request_error", "{}", reply.text());
    assert_eq!(err["param"], param, "{}", reply.text());
    let message = err["message"].as_str().unwrap_or_default().to_string();
    assert!(message.contains(&format!("`{param}`")), "{message}");
    message
}

#[test]
fn the_tests_write_rfc3339_right() {
    assert_eq!(rfc3339(1_796_464_800), "2026-12-05T10:00:00Z");
    assert_eq!(rfc3339(951_825_599), "2000-02-29T11:59:59Z");
    assert_eq!(rfc3339_at(1_796_464_800, 1, "+"), "2026-12-05T11:00:00+01:00");
    assert_eq!(rfc3339_at(1_796_464_800, -5, "-"), "2026-12-05T05:00:00-05:00");
}

#[tokio::test]
async fn a_range_counts_the_requests_inside_it_in_either_time_form() {
    let up = MockUpstream::start();
    let gw = Gateway::start_cfg(&standard_config(&up));
    let before = now_secs();
    for _ in 0..3 {
        gw.chat(&chat_body("gpt", "in range")).await.assert_status(200);
    }
    gw.chat(&chat_body("echo", "in range")).await.assert_status(200);
    let all = until_requests(&gw, 4).await;
    let after = now_secs();

    // No parameters: everything since the daemon started.
    let since = all["range"]["start"].as_u64().expect("range.start");
    assert!(since <= before, "{all:#}");
    assert_eq!(all["range"]["kept_since"], since, "{all:#}");
    assert_eq!(all["range"]["resolution"], "minute", "{all:#}");
    let end = all["range"]["end"].as_u64().expect("range.end");
    assert!((before..=after).contains(&end), "{all:#}");
    assert_eq!(
        (&all["from"], &all["to"]),
        (&all["range"]["start"], &all["range"]["end"]),
        "{all:#}"
    );
    assert_eq!(all["object"], "usage", "{all:#}");
    assert_eq!(all["providers"]["up"]["models"]["gpt-4o"]["requests"], 3, "{all:#}");
    assert_eq!(all["providers"]["local"]["models"]["echo"]["requests"], 1, "{all:#}");
    assert!(all["total"]["cost_usd"].as_f64().is_some_and(|c| c > 0.0), "{all:#}");

    // A bucket counts when its start lies in [start, end): the requests' minute starts at
    // or after the minute of `before` (or at the daemon's start), and before `after + 1`.
    let first_minute = before - before % 60;
    let past = after + 1;
    for (start, end) in [
        (first_minute.to_string(), past.to_string()),
        (rfc3339(first_minute), rfc3339(past)),
        (since.to_string(), past.to_string()),
        (rfc3339_at(first_minute, 1, "%2B"), rfc3339_at(past, -5, "-")),
        // An unescaped `+` reads as a space; the gateway takes it for the `+` it was.
        (rfc3339_at(first_minute, 2, "+"), rfc3339(past).to_lowercase()),
    ] {
        let v = usage(&gw, &format!("?start={start}&end={end}")).await;
        assert_eq!(requests(&v), 4, "start={start} end={end}: {v:#}");
        assert_eq!(
            v["providers"]["up"]["models"]["gpt-4o"],
            all["providers"]["up"]["models"]["gpt-4o"]
        );
        assert_eq!(v["range"]["end"], past, "{v:#}");
        assert_eq!(v["range"]["resolution"], "minute", "{v:#}");
        assert_eq!(v["range"]["kept_since"], since, "{v:#}");
    }

    // Starting after them: nothing (whether `end` is given or is now).
    for query in [
        format!("?start={past}"),
        format!("?start={}", rfc3339(past)),
        format!("?start={past}&end={}", past + 3600),
        // A fraction of a second rounds the edge up to the next second.
        format!("?start={}", rfc3339(after).replace('Z', ".25Z")),
    ] {
        let v = usage(&gw, &query).await;
        assert_eq!(requests(&v), 0, "{query}: {v:#}");
        assert_eq!(v["range"]["start"], past, "{query}: {v:#}");
        assert_eq!(v["total"]["prompt_tokens"], 0, "{query}: {v:#}");
        assert!(
            v["providers"].as_object().is_some_and(|p| p.is_empty()),
            "{query}: {v:#}"
        );
    }

    // Ending before them: nothing either.
    for query in [
        format!("?end={first_minute}"),
        format!("?end={}", rfc3339(first_minute)),
        format!("?end={since}"),
        format!("?start=0&end={since}"),
    ] {
        let v = usage(&gw, &query).await;
        assert_eq!(requests(&v), 0, "{query}: {v:#}");
    }

    // `start` alone and `end` alone, around them.
    assert_eq!(requests(&usage(&gw, &format!("?start={first_minute}")).await), 4);
    assert_eq!(requests(&usage(&gw, &format!("?end={}", rfc3339(past))).await), 4);

    // Later requests land after `past`'s minute boundary or not, but always before now.
    gw.chat(&chat_body("gpt", "later")).await.assert_status(200);
    until_requests(&gw, 5).await;
    let v = usage(&gw, &format!("?start={first_minute}&end={past}")).await;
    let later = usage(&gw, &format!("?start={past}")).await;
    assert_eq!(requests(&v) + requests(&later), 5, "{v:#} {later:#}");
    assert!(requests(&v) >= 4, "{v:#}");
}

#[tokio::test]
async fn bad_ranges_are_400s_naming_the_parameter_and_old_ones_say_what_is_kept() {
    let up = MockUpstream::start();
    let gw = Gateway::start_cfg(&standard_config(&up));
    gw.chat(&chat_body("gpt", "one")).await.assert_status(200);
    until_requests(&gw, 1).await;

    for (query, param) in [
        ("?start=yesterday", "start"),
        ("?start=", "start"),
        ("?start=-5", "start"),
        ("?start=1796464800.5", "start"),
        // Milliseconds are not seconds: past the year 9999.
        ("?start=1796464800000", "start"),
        ("?start=2026-12-05", "start"),
        ("?start=2026-13-05T10:00:00Z", "start"),
        ("?start=2026-12-05T10:00:00Z%2B01:00", "start"),
        ("?start=0&end=2026-12-05T25:00:00Z", "end"),
        ("?end=%E2%80%AE%00now", "end"),
        // The names a reader might guess are refused with the right ones.
        ("?from=1796464800", "from"),
        ("?to=1796464800", "to"),
    ] {
        let reply = gw.get(&format!("/v1/usage{query}")).await;
        let message = assert_bad_param(&reply, param);
        assert!(
            message.contains("RFC 3339") && message.contains("Unix seconds"),
            "{query}: the accepted forms are named: {message}"
        );
        assert!(!message.contains('\0'), "{query}: {message}");
    }

    let reply = gw.get("/v1/usage?start=1796464900&end=1796464800").await;
    let message = assert_bad_param(&reply, "start");
    assert!(message.contains("after `end`"), "{message}");
    let reply = gw
        .get(&format!("/v1/usage?start={}&end=1796464800", rfc3339(1_796_464_801)))
        .await;
    assert_bad_param(&reply, "start");

    // An empty range, and one in the future, are fine: nothing in them.
    assert_eq!(requests(&usage(&gw, "?start=1796464800&end=1796464800").await), 0);
    let future = now_secs() + 86_400;
    let v = usage(&gw, &format!("?start={future}")).await;
    assert_eq!(requests(&v), 0, "{v:#}");

    // A range before anything kept (here: before the daemon started) is zeros, and says so.
    let old = usage(&gw, "?start=2020-01-01T00:00:00Z&end=2020-01-02T00:00:00Z").await;
    assert_eq!(requests(&old), 0, "{old:#}");
    assert_eq!(old["range"]["start"], 1_577_836_800_u64, "{old:#}");
    assert_eq!(old["range"]["end"], 1_577_923_200_u64, "{old:#}");
    let kept_since = old["range"]["kept_since"].as_u64().expect("range.kept_since");
    assert!(kept_since > 1_577_923_200, "{old:#}");
    assert_eq!(old["range"]["resolution"], "minute", "{old:#}");
}
