//! Property fuzzing of everything a hostile client or upstream controls (DESIGN §7).
//!
//! The targets are tests in `tests/fuzz/`, run by the ordinary test command, so CI fuzzes on
//! every run:
//!
//! | target | what is fed | invariants |
//! |---|---|---|
//! | `request` | bytes to the gateway's `ChatRequest::parse` | no panic; a 400 or a request whose upstream body is one valid JSON object that parses again |
//! | `sse` | bytes, split anywhere, to the SDK's `SseParser` | no panic; same events whatever the split; bounded events |
//! | `<provider>-stream` | an upstream stream, split anywhere, to the built plugin's stream decoder | no panic; chunks are JSON objects whose flags and usage agree with their JSON; one end at most, nothing after it |
//! | `<provider>-response` | a 2xx body to `decode_response` | no panic; a JSON object or a clean error |
//! | `<provider>-error` | a non-2xx body and status to `decode_error` | no panic; a bounded, non-empty message |
//!
//! Providers: `openai`, `anthropic`, `gemini`, each loaded from its real `.so` in
//! `target/debug` through the host API, as the gateway loads it.
//!
//! Each target first replays its corpus (`fuzz/corpus/<target>/`: real wire shapes and every
//! input that once failed), then runs generated cases (mutations of the corpus, structured
//! JSON, raw bytes) for a bounded time:
//!
//! - `SWITCHYARD_FUZZ_SECONDS`: seconds per target (the body decoders get half); default 3,
//!   or 20 when `CI` is set.
//! - `SWITCHYARD_FUZZ_SEED`: the run's seed (printed by every target), to replay a run.
//!
//! A failure is shrunk to a small input, written under `target/fuzz-failures/<target>/`, and
//! printed; copy it into the corpus when fixing the bug. Bugs that are known and not fixed yet
//! are listed in `tests/fuzz/known.rs`: their checks are tolerated (and counted) so CI stays
//! green, and their reproducers must keep failing until the entry is removed.
//!
//! This library is empty: the harness lives with the tests, so nothing here is built by
//! `cargo build --workspace`.
