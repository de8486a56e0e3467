//! Micro-benchmarks of the request path's pieces (`cargo bench -p switchyard`): request parse
//! and re-encode, route selection, the OpenAI codec through the real C ABI (encode, decode,
//! stream decode), and the SSE framing with `extra_fields`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;
use switchyard::actors::provider_health::ProviderHealthHandle;
use switchyard::pipeline::ChatRequest;
use switchyard::pipeline::extra_fields::StreamExtraFields;
use switchyard::redact::Redactor;
use switchyard::resilience::breaker::BreakerConfig;
use switchyard::resilience::{CircuitBreaker, RetryBudget, RetryPolicy};
use switchyard::routing::{Alias, ApiKey, ProviderRuntime, RouteTable, Target, Timeouts};
use switchyard::upstream::Egress;
use switchyard_plugin_api::abi::PluginDecl;
use switchyard_plugin_api::host::{self, CallInfo, ProviderCodec};

// The openai plugin is linked as an rlib here; its entry symbol is reached by its C name, the
// way the gateway reaches it in the .so.
use switchyard_openai as _;
unsafe extern "C" {
    fn switchyard_plugin_entry_v1() -> *const PluginDecl;
}

fn main() {
    divan::main();
}

const REQUEST: &[u8] = include_bytes!("../../bench/request.json");
const RESPONSE: &[u8] = br#"{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_bench","choices":[{"index":0,"message":{"role":"assistant","content":"Hello, benchmark! It is sunny and calm today.","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":38,"completion_tokens":12,"total_tokens":50,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}"#;
const CHUNK: &[u8] = br#"{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_bench","choices":[{"index":0,"delta":{"content":" sunny"},"logprobs":null,"finish_reason":null}],"usage":null}"#;

fn codec() -> Arc<ProviderCodec> {
    // SAFETY: the declaration is the plugin's static one, linked into this binary.
    let lib = unsafe { host::from_declaration(switchyard_plugin_entry_v1(), std::path::Path::new("openai")) }
        .expect("openai plugin declaration");
    let setup = br#"{"name":"up","base_url":"http://127.0.0.1:9/v1","options":{}}"#;
    Arc::new(lib.provider("up", setup).expect("openai codec"))
}

fn info() -> CallInfo<'static> {
    CallInfo {
        stream: false,
        unix_time_ms: 1,
        model: "gpt-4o-mini",
        api_key: "sk-bench-0123456789",
        request_id: "r",
        ..CallInfo::default()
    }
}

#[divan::bench]
fn parse_and_encode_request(b: divan::Bencher) {
    b.bench(|| {
        // The daemon hands over its buffer (`Bytes`); a static one costs no copy either.
        let r = ChatRequest::parse(bytes::Bytes::from_static(black_box(REQUEST))).expect("valid");
        black_box(r.encode_for("gpt-4o-mini"))
    });
}

#[divan::bench]
fn route_selection(b: divan::Bencher) {
    switchyard::app::install_crypto_provider();
    let table = actix::System::new().block_on(async {
        let arbiter = actix::Arbiter::current();
        let breaker = Arc::new(CircuitBreaker::new(
            BreakerConfig {
                failures: 5,
                window: Duration::from_secs(30),
                cooldown: Duration::from_secs(10),
                auth_cooldown: Duration::from_secs(300),
            },
            1,
        ));
        let provider = Arc::new(ProviderRuntime {
            name: Arc::from("up"),
            plugin_name: Arc::from("openai"),
            operations: switchyard_plugin_api::abi::operation::CHAT,
            codec: codec(),
            keys: vec![ApiKey {
                index: 0,
                secret: Arc::from("sk-bench-0123456789"),
                weight: 1.0,
                models: None,
            }],
            keys_configured: true,
            send_back_raw: false,
            egress: Egress::new(
                switchyard::upstream::build_client(Duration::from_secs(5)).expect("client"),
                100,
                Default::default(),
            ),
            health: ProviderHealthHandle::start(&arbiter, Arc::from("up"), Arc::clone(&breaker)),
            timeouts: Timeouts {
                timeout: Duration::from_secs(30),
                first_byte: Duration::from_secs(30),
                first_token: None,
                stream_idle: None,
            },
            retry: RetryPolicy {
                max: 2,
                backoff: Duration::from_millis(500),
                max_backoff: Duration::from_secs(5),
            },
            budget: RetryBudget::default(),
            breaker,
        });
        let target = |w: f64| Target {
            provider: Arc::clone(&provider),
            model: Arc::from("gpt-4o-mini"),
            weight: w,
            price: switchyard::cost::PriceTable::bundled().get("openai/gpt-4o-mini"),
        };
        let mut aliases = indexmap::IndexMap::new();
        aliases.insert(
            "bench".to_string(),
            Alias {
                targets: vec![target(3.0), target(1.0)],
                fallbacks: vec![],
                cache: false,
            },
        );
        let mut providers = indexmap::IndexMap::new();
        providers.insert("up".to_string(), Arc::clone(&provider));
        RouteTable {
            providers,
            aliases,
            redactor: Arc::new(Redactor::default()),
            prices: switchyard::cost::PriceTable::bundled(),
            cache: None,
            hooks: Default::default(),
        }
    });
    b.bench(|| {
        let plan = table.plan(black_box("bench"), &[]).expect("routed");
        black_box(plan[0].provider.pick_key(&plan[0].model).ok());
    });
}

#[divan::bench]
fn openai_encode_request(b: divan::Bencher) {
    let c = codec();
    b.bench(|| black_box(c.encode_request(&info(), black_box(REQUEST)).expect("encoded")));
}

#[divan::bench]
fn openai_decode_response(b: divan::Bencher) {
    let c = codec();
    b.bench(|| black_box(c.decode_response(&info(), 200, black_box(RESPONSE)).expect("decoded")));
}

#[divan::bench]
fn openai_stream_decode_per_event(b: divan::Bencher) {
    let c = codec();
    let mut event = b"data: ".to_vec();
    event.extend_from_slice(CHUNK);
    event.extend_from_slice(b"\n\n");
    let mut decoder = c.open_stream(&info()).expect("stream");
    let mut items = Vec::with_capacity(4);
    b.bench_local(|| {
        items.clear();
        decoder.feed(&info(), black_box(&event), &mut items).expect("fed");
        black_box(items.len())
    });
}

#[divan::bench]
fn sse_frame_with_extra_fields(b: divan::Bencher) {
    let mut out = Vec::with_capacity(1024);
    let extra = StreamExtraFields::new("up", "bench", "gpt-4o-mini");
    b.bench_local(|| {
        out.clear();
        out.extend_from_slice(b"data: ");
        extra.append_to(&mut out, black_box(CHUNK), 1, 7);
        out.extend_from_slice(b"\n\n");
        black_box(out.len())
    });
}
