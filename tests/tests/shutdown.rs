//! SIGTERM: in-flight requests and streams finish, then the process exits 0.

use std::time::Duration;

use switchyard_e2e::client::{Reply, chat_body, http, stream_body};
use switchyard_e2e::upstream::DRIP_CHUNKS;
use switchyard_e2e::{Gateway, MockUpstream, Sse, standard_config};

/// How long the daemon may take to exit after its in-flight work is done.
const EXIT_TIMEOUT: Duration = Duration::from_secs(20);

#[track_caller]
fn assert_exits_zero(gw: &mut Gateway) {
    let status = gw.wait_exit(EXIT_TIMEOUT).unwrap_or_else(|| {
        panic!(
            "the daemon did not exit within {EXIT_TIMEOUT:?} of SIGTERM\n--- daemon output ---\n{}",
            gw.logs()
        )
    });
    assert_eq!(
        status.code(),
        Some(0),
        "SIGTERM must end in exit code 0, got {status:?}\n--- daemon output ---\n{}",
        gw.logs()
    );
}

#[tokio::test]
async fn sigterm_when_idle_exits_zero() {
    let up = MockUpstream::start();
    let mut gw = Gateway::start_cfg(&standard_config(&up));
    gw.assert_serving().await;
    gw.sigterm();
    assert_exits_zero(&mut gw);
    let after = http().get(gw.url("/health")).send().await;
    assert!(after.is_err(), "nothing listens after exit");
}

#[tokio::test]
async fn sigterm_lets_an_in_flight_request_finish() {
    let up = MockUpstream::start();
    let mut gw = Gateway::start_cfg(&standard_config(&up));
    let url = gw.url("/v1/chat/completions");
    let body = serde_json::to_vec(&chat_body("up/delay-1500", "finish me")).expect("serialise");
    let in_flight = tokio::spawn(async move {
        let resp = http()
            .post(url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("the in-flight request gets an answer");
        Reply::read(resp).await
    });
    // The request is in flight once the upstream has it.
    up.wait_for_requests(1, Duration::from_secs(10)).await;
    gw.sigterm();
    let reply = in_flight.await.expect("request task");
    assert_eq!(
        reply.status,
        200,
        "an in-flight request finishes after SIGTERM: {}\n--- daemon output ---\n{}",
        reply.text(),
        gw.logs()
    );
    assert_eq!(reply.content(), "upstream saw: finish me");
    assert_exits_zero(&mut gw);
}

#[tokio::test]
async fn sigterm_lets_an_in_flight_stream_finish() {
    let up = MockUpstream::start();
    let mut gw = Gateway::start_cfg(&standard_config(&up));
    let mut resp = http()
        .post(gw.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&stream_body("up/drip-stream", "drip")).expect("serialise"))
        .send()
        .await
        .expect("stream starts");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    assert_eq!(status, 200);
    let mut bytes = Vec::new();
    // Read until the first chunk has arrived, then signal.
    while !String::from_utf8_lossy(&bytes).contains("drip0") {
        match resp.chunk().await {
            Ok(Some(c)) => bytes.extend_from_slice(&c),
            other => panic!(
                "stream ended before its first chunk: {other:?}; got {}",
                String::from_utf8_lossy(&bytes)
            ),
        }
    }
    gw.sigterm();
    let mut read_error = None;
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => bytes.extend_from_slice(&c),
            Ok(None) => break,
            Err(e) => {
                read_error = Some(e.to_string());
                break;
            }
        }
    }
    let sse = Sse::from_bytes(status, headers, &bytes, read_error);
    sse.assert_complete();
    let expected: String = (0..DRIP_CHUNKS).map(|i| format!("drip{i} ")).collect();
    assert_eq!(
        sse.content(),
        expected,
        "the whole stream arrives after SIGTERM; {}",
        sse.dump()
    );
    assert_exits_zero(&mut gw);
}

#[tokio::test]
async fn sigint_exits_zero() {
    let up = MockUpstream::start();
    let mut gw = Gateway::start_cfg(&standard_config(&up));
    gw.assert_serving().await;
    gw.signal("INT");
    assert_exits_zero(&mut gw);
}
