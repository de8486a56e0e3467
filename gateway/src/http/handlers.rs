use super::AppState;
use super::body;
use super::respond::{self, ErrorDetails, error_response, with_request_id};
use super::write_stall::StallGuarded;
use crate::cache::CacheHeaders;
use crate::error::GatewayError;
use crate::observability::escaped;
use crate::pipeline::extra_fields::{CHAT, CHAT_STREAM};
use crate::pipeline::hook_chain::HookChain;
use crate::pipeline::{self, Answer, ChatRequest, Exchange, Failure, RequestContext};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

pub async fn chat_completions(req: HttpRequest, payload: web::Payload, state: web::Data<AppState>) -> HttpResponse {
    let started = Instant::now();
    crate::memory::note_activity();
    let request_id = respond::request_id(&req);
    // A debug-level span: at the default `info` level an enabled span per request cost ~45 µs
    // of CPU (measured, fmt layer). Events that matter carry the request id themselves.
    let span = tracing::debug_span!("chat", request_id = %request_id, model = tracing::field::Empty);
    async move {
        let bytes = match body::read(&req, payload, state.max_body_size, state.body_read_timeout).await {
            Ok(b) => b,
            Err(e) => return error_response(&e, &request_id, &ErrorDetails::none()),
        };
        let (bytes, lease) = bytes.into_parts();
        let chat = match ChatRequest::parse(bytes) {
            Ok(c) => c,
            Err(e) => return error_response(&e, &request_id, &ErrorDetails::none()),
        };
        tracing::Span::current().record("model", tracing::field::display(escaped(&chat.model)));
        let request_type = if chat.stream { CHAT_STREAM } else { CHAT };
        // What the client asked for, shared by the pipeline, its hooks and the error details.
        let model: Arc<str> = Arc::from(chat.model.as_str());
        let request_id_shared: Arc<str> = Arc::from(request_id.as_str());
        let table = state.router.current();
        let hooks = HookChain::new(
            &table.hooks,
            &request_id_shared,
            &model,
            chat.stream,
            started,
            hook_headers(&req, &table.hooks.wanted_headers),
        );
        // Read only when there is a cache to ask: otherwise the headers mean nothing here.
        let cache = match &table.cache {
            Some(_) => match CacheHeaders::parse(req.headers().iter().map(|(n, v)| (n.as_str(), v.as_bytes()))) {
                Ok(h) => h,
                Err(message) => {
                    let e = GatewayError::bad_request(message, "invalid_cache_header", None);
                    return error_response(&e, &request_id, &ErrorDetails::none());
                }
            },
            None => CacheHeaders::default(),
        };
        let ctx = RequestContext {
            request_id: request_id_shared,
            started,
            forwarded_headers: respond::forwarded_headers(&req),
            send_back_raw: req
                .headers()
                .get("x-bf-send-back-raw-response")
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true")),
            cache,
        };
        let exchange = Exchange {
            alias: Arc::clone(&model),
            request: chat,
            ctx,
            hooks,
            _body_lease: Some(lease),
            cache: None,
        };
        match pipeline::chat(table, &state.ledger, exchange).await {
            Ok(Answer::Complete { body, headers }) => {
                let mut resp = HttpResponse::Ok();
                resp.content_type("application/json");
                for h in headers {
                    resp.insert_header(h);
                }
                with_request_id(&mut resp, &request_id);
                tracing::debug!(latency_ms = started.elapsed().as_millis() as u64, "answered");
                resp.body(body)
            }
            Ok(Answer::Stream { relay, headers }) => {
                let mut resp = HttpResponse::Ok();
                resp.content_type("text/event-stream");
                resp.insert_header((header::CACHE_CONTROL, "no-cache"));
                for h in headers {
                    resp.insert_header(h);
                }
                with_request_id(&mut resp, &request_id);
                resp.streaming(StallGuarded::new(relay.into_body(), state.stream_write_timeout))
            }
            Err(Failure {
                error: GatewayError::HookRejected { hook, rejection },
                ..
            }) => {
                tracing::info!(request_id = %request_id, hook = %hook, status = rejection.status, "a hook rejected the request");
                let details = ErrorDetails {
                    request_type: Some(request_type),
                    provider: Some(&hook),
                    model_requested: Some(&model),
                    latency_ms: started.elapsed().as_millis() as u64,
                    attempts: &[],
                };
                respond::hook_rejection(&rejection, &request_id, &details)
            }
            Err(failure) => {
                tracing::info!(request_id = %request_id, model = %escaped(&model), error = %escaped(&failure.error), status = failure.error.status().as_u16(), "request failed");
                let details = ErrorDetails {
                    request_type: Some(request_type),
                    provider: failure.provider.as_deref(),
                    model_requested: Some(&model),
                    latency_ms: started.elapsed().as_millis() as u64,
                    attempts: &failure.attempts,
                };
                error_response(&failure.error, &request_id, &details)
            }
        }
    }
    .instrument(span)
    .await
}

pub async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    let err = GatewayError::MethodNotAllowed {
        method: req.method().to_string(),
        path: req.path().to_string(),
    };
    error_response(&err, &respond::request_id(&req), &ErrorDetails::none())
}

pub async fn not_found(req: HttpRequest) -> HttpResponse {
    let err = GatewayError::RouteNotFound {
        method: req.method().to_string(),
        path: req.path().to_string(),
    };
    error_response(&err, &respond::request_id(&req), &ErrorDetails::none())
}

fn model_object(id: &str, owned_by: &str) -> serde_json::Value {
    serde_json::json!({ "id": id, "object": "model", "created": 0, "owned_by": owned_by })
}

pub async fn list_models(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let table = state.router.current();
    let data: Vec<serde_json::Value> = table
        .model_ids()
        .iter()
        .map(|(id, owner)| model_object(id, owner))
        .collect();
    respond::ok_json(&req, serde_json::json!({ "object": "list", "data": data }))
}

pub async fn get_model(req: HttpRequest, path: web::Path<String>, state: web::Data<AppState>) -> HttpResponse {
    let id = path.into_inner();
    let table = state.router.current();
    if let Some((id, owner)) = table.model_ids().into_iter().find(|(x, _)| *x == id) {
        return respond::ok_json(&req, model_object(&id, &owner));
    }
    // Any `provider/model` with a configured provider is routable, listed or not.
    if let Some(target) = table.resolve(&id).filter(|_| !table.aliases.contains_key(&id)) {
        return respond::ok_json(&req, model_object(&id, &target.provider.name));
    }
    error_response(
        &GatewayError::ModelNotFound { model: id },
        &respond::request_id(&req),
        &ErrorDetails::none(),
    )
}

/// `GET /health`: liveness only. Topology, counters and usage are admin matters
/// (`/admin/status`, `/v1/usage`).
pub async fn health(req: HttpRequest) -> HttpResponse {
    let mut resp = HttpResponse::Ok();
    with_request_id(&mut resp, &respond::request_id(&req));
    resp.content_type("application/json").body(r#"{"status":"ok"}"#)
}

/// The client headers some hook asked for (none read when no hook did).
fn hook_headers(req: &HttpRequest, wanted: &[header::HeaderName]) -> Vec<(String, String)> {
    if wanted.is_empty() {
        return Vec::new();
    }
    wanted
        .iter()
        .filter_map(|name| {
            let value = req.headers().get(name)?.to_str().ok()?;
            Some((name.as_str().to_string(), value.to_string()))
        })
        .collect()
}
