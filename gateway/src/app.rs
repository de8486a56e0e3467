//! Assembling the daemon: plugins → providers → routing table → actors → HTTP server.

use crate::actors::provider_health::ProviderHealthHandle;
use crate::actors::router::RouterHandle;
use crate::actors::usage_ledger::UsageLedgerHandle;
use crate::cache::feed::SemanticFeed;
use crate::cache::{CacheSettings, ResponseCache};
use crate::config::{ConfigError, ConfigSource, GatewayConfig, InvalidConfig, Overrides, ProviderConfig, yaml_line_of};
use crate::cost::PriceTable;
use crate::hooks::{ConfiguredHook, HookSet};
use crate::http::{self, AppState};
use crate::plugins::PluginLoader;
use crate::redact::Redactor;
use crate::reload::{ConfigWatcher, Reload, Trigger};
use crate::resilience::breaker::BreakerConfig;
use crate::resilience::{CircuitBreaker, RetryBudget, RetryPolicy};
use crate::routing::{self, ProviderRuntime, RouteTable, Timeouts};
use crate::upstream::forward::ForwardAllowlist;
use crate::upstream::{Egress, build_client, parse_headers};
use actix::Actor;
use actix::{Arbiter, ArbiterHandle};
use actix_web::{App, HttpServer, web};
use indexmap::IndexMap;
use std::sync::Arc;
use std::time::Duration;
use switchyard_plugin_api::host::{LoadError, PanicPolicy};

/// Longest a client may take to send its request line and headers.
const CLIENT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(
        "cannot listen on {addr}: {source}\n  fix: choose another port with --port (0 picks a free one) or stop what uses it"
    )]
    Bind { addr: String, source: std::io::Error },
    #[error("the server failed: {0}")]
    Server(std::io::Error),
}

/// A routing table built from config, plus warnings worth logging (disabled keys, …).
pub struct Built {
    pub table: RouteTable,
    pub admin: http::AdminAccess,
    pub warnings: Vec<String>,
    pub plugin_dir: std::path::PathBuf,
}

fn provider_error(source: &ConfigSource, name: &str, field: &str, message: String, fix: Option<String>) -> ConfigError {
    field_error(source, &["providers", name, field], message, fix)
}

/// A config error at `path` (e.g. `hooks.0.plugin`), pointing at its line in the file.
fn field_error(source: &ConfigSource, path: &[&str], message: String, fix: Option<String>) -> ConfigError {
    let path: Vec<String> = path.iter().map(|s| s.to_string()).collect();
    ConfigError::Invalid(Box::new(InvalidConfig {
        file: source.label(),
        line: yaml_line_of(&source.text, &path),
        column: None,
        field: Some(path.join(".")),
        message,
        fix,
    }))
}

fn load_fix(err: &LoadError, loader: &PluginLoader, plugin: &str) -> Option<String> {
    match err {
        LoadError::NotFound { .. } => Some(format!(
            "build the plugin (cargo build --release) or put {} in the plugins folder ({}), set plugins.dir, or give a path",
            switchyard_plugin_api::host::library_file_name(plugin),
            loader.dir().display()
        )),
        LoadError::MissingSymbol { .. } => {
            Some("is this a Switchyard plugin? It must be built against plugin-api and use export_provider!".into())
        }
        LoadError::AbiVersion { .. } => Some("rebuild the plugin against this gateway's plugin-api".into()),
        _ => None,
    }
}

/// Loads plugins and builds every provider and alias. Each provider's ProviderHealth actor starts on
/// `arbiter`.
pub fn build(cfg: &GatewayConfig, source: &ConfigSource, arbiter: &ArbiterHandle) -> Result<Built, ConfigError> {
    let mut loader = PluginLoader::new(cfg.plugins.dir.as_deref());
    build_with(cfg, source, arbiter, &mut loader, None)
}

/// The config and table a reload replaces.
pub struct Previous<'a> {
    pub config: &'a GatewayConfig,
    pub table: &'a RouteTable,
}

/// [`build`] with a loader that outlives it (libraries load once, across reloads) and, on a
/// reload, the running config: a provider whose config is unchanged keeps its runtime (its
/// connections, circuit state, counters and concurrency slots).
pub fn build_with(
    cfg: &GatewayConfig,
    source: &ConfigSource,
    arbiter: &ArbiterHandle,
    loader: &mut PluginLoader,
    previous: Option<Previous<'_>>,
) -> Result<Built, ConfigError> {
    let mut warnings = Vec::new();
    let mut secrets = Vec::new();
    let mut providers = IndexMap::new();
    for (name, p) in &cfg.providers {
        let kept = previous.as_ref().and_then(|prev| {
            (prev.config.providers.get(name) == Some(p))
                .then(|| prev.table.providers.get(name).cloned())
                .flatten()
        });
        let runtime = match kept {
            Some(runtime) => runtime,
            None => Arc::new(build_provider(name, p, source, loader, arbiter, &mut warnings)?),
        };
        secrets.extend(runtime.keys.iter().map(|k| k.secret.to_string()));
        // Configured headers often carry credentials too (org ids, gateway tokens).
        secrets.extend(p.headers.values().cloned());
        if runtime
            .keys
            .iter()
            .any(|k| k.secret.len() < crate::redact::MIN_SECRET_LEN)
        {
            warnings.push(format!(
                "providers.{name}.keys: a key shorter than {} characters cannot be redacted from upstream error messages",
                crate::redact::MIN_SECRET_LEN
            ));
        }
        providers.insert(name.clone(), runtime);
    }
    let prices = build_prices(cfg, source)?;
    let aliases = routing::build_aliases(cfg, &providers, &prices);
    for (name, alias) in &aliases {
        for t in alias
            .targets
            .iter()
            .filter(|t| t.price.is_none() && !t.provider.codec.is_local())
        {
            warnings.push(format!(
                "models.{name}: no price for {}/{}; its answers carry no usage.cost (add it under pricing.overrides)",
                t.provider.name, t.model
            ));
        }
    }
    let hooks = build_hooks(cfg, source, loader, previous.as_ref().map(|p| &p.table.hooks))?;
    let cache = build_cache(
        cfg,
        source,
        &providers,
        previous.as_ref().and_then(|p| p.table.cache.as_ref()),
        arbiter,
    )?;
    let table = RouteTable {
        providers,
        aliases,
        redactor: Arc::new(Redactor::new(secrets)),
        hooks,
        prices,
        cache,
    };
    let admin = http::AdminAccess::from_config(&cfg.admin, &mut warnings);
    Ok(Built {
        table,
        admin,
        warnings,
        plugin_dir: loader.dir().to_path_buf(),
    })
}

/// The response cache when `cache.enabled`: the running one if its settings did not change
/// (a reload keeps the entries), else a new one. The semantic tier's embedding provider must
/// serve embeddings; with Redis, a feed actor keeps the semantic index in step with the other
/// replicas for as long as this cache is in use.
fn build_cache(
    cfg: &GatewayConfig,
    source: &ConfigSource,
    providers: &IndexMap<String, Arc<ProviderRuntime>>,
    previous: Option<&Arc<ResponseCache>>,
    arbiter: &ArbiterHandle,
) -> Result<Option<Arc<ResponseCache>>, ConfigError> {
    if !cfg.cache.enabled {
        return Ok(None);
    }
    let semantic = &cfg.cache.semantic;
    if semantic.enabled
        && let Some((provider, _)) = semantic.embedding.as_deref().and_then(|e| e.split_once('/'))
        && let Some(p) = providers.get(provider)
        && p.operations & switchyard_plugin_api::abi::operation::EMBEDDINGS == 0
    {
        return Err(field_error(
            source,
            &["cache", "semantic", "embedding"],
            format!(
                "provider `{provider}` (plugin `{}`) does not serve embeddings",
                p.plugin_name
            ),
            Some("name a provider whose plugin serves embeddings (openai, gemini, mock)".into()),
        ));
    }
    let settings = CacheSettings {
        cache: cfg.cache.clone(),
        redis: cfg.redis.clone(),
    };
    if let Some(kept) = previous.filter(|c| c.settings == settings) {
        return Ok(Some(Arc::clone(kept)));
    }
    let cache = ResponseCache::new(&settings)
        .map_err(|e| field_error(source, &["redis", "url"], e, Some("e.g. redis://127.0.0.1:6379".into())))?;
    if let (Some(redis), Some(tier)) = (cache.redis(), cache.semantic.as_ref()) {
        let feed = SemanticFeed {
            redis: Arc::clone(redis),
            index: Arc::downgrade(&tier.index),
        };
        SemanticFeed::start_in_arbiter(arbiter, |_| feed);
    }
    Ok(Some(Arc::new(cache)))
}

/// The pricing table: `pricing.file` or the bundled one, with `pricing.overrides` merged in.
fn build_prices(cfg: &GatewayConfig, source: &ConfigSource) -> Result<Arc<PriceTable>, ConfigError> {
    let base = match &cfg.pricing.file {
        Some(path) => Arc::new(PriceTable::from_file(path).map_err(|e| {
            let message = if e.key.is_empty() {
                e.message
            } else {
                format!("{}: {}", e.key, e.message)
            };
            field_error(
                source,
                &["pricing", "file"],
                message,
                Some("give a table in the format of the bundled config/pricing.json, or leave pricing.file out".into()),
            )
        })?),
        None => PriceTable::bundled(),
    };
    if cfg.pricing.overrides.is_empty() {
        return Ok(base);
    }
    PriceTable::with_overrides(&base, &cfg.pricing.overrides)
        .map(Arc::new)
        .map_err(|e| {
            field_error(
                source,
                &["pricing", "overrides", &e.key],
                e.message,
                Some("rates are USD per token: input_cost_per_token, output_cost_per_token, cache_read_input_token_cost, cache_creation_input_token_cost, cache_creation_input_token_cost_above_1hr, output_cost_per_reasoning_token, tiers".into()),
            )
        })
}

/// Loads every `hooks:` entry's plugin (checked like a provider's, so `switchyard check`
/// catches a typo) and creates its instance. On a reload, a hook whose entry did not change
/// keeps its instance, panic circuit and fault counter.
fn build_hooks(
    cfg: &GatewayConfig,
    source: &ConfigSource,
    loader: &mut PluginLoader,
    previous: Option<&HookSet>,
) -> Result<HookSet, ConfigError> {
    let mut hooks = Vec::with_capacity(cfg.hooks.len());
    for (i, hook) in cfg.hooks.iter().enumerate() {
        if let Some(kept) = previous.and_then(|p| p.hooks.iter().find(|h| h.config == *hook)) {
            hooks.push(Arc::clone(kept));
            continue;
        }
        let index = i.to_string();
        let fail = |field: &str, message: String, fix: Option<String>| {
            field_error(source, &["hooks", &index, field], message, fix)
        };
        let lib = loader.load(&hook.plugin).map_err(|e| {
            let fix = load_fix(&e, loader, &hook.plugin);
            fail("plugin", format!("plugin `{}`: {e}", hook.plugin), fix)
        })?;
        if !lib.is_hook() {
            return Err(fail(
                "plugin",
                format!(
                    "plugin `{}` is not a hook plugin (it declares no hook vtable)",
                    hook.plugin
                ),
                Some("name a hook plugin here; provider plugins go under providers:".into()),
            ));
        }
        if lib.operations & switchyard_plugin_api::abi::operation::CHAT == 0 {
            return Err(fail(
                "plugin",
                format!(
                    "hook plugin `{}` does not handle chat requests, the only operation this gateway routes",
                    hook.plugin
                ),
                None,
            ));
        }
        let config = serde_json::to_vec(&hook.config).map_err(|e| fail("config", e.to_string(), None))?;
        let instance = lib.hook(hook.name(), &config, PanicPolicy::default()).map_err(|e| {
            fail(
                "config",
                e.to_string(),
                Some("see the hook plugin's documentation for its config".into()),
            )
        })?;
        hooks.push(Arc::new(ConfiguredHook::new(hook.clone(), instance)));
    }
    Ok(HookSet::new(hooks))
}

fn build_provider(
    name: &str,
    p: &ProviderConfig,
    source: &ConfigSource,
    loader: &mut PluginLoader,
    arbiter: &ArbiterHandle,
    warnings: &mut Vec<String>,
) -> Result<ProviderRuntime, ConfigError> {
    let lib = loader.load(&p.plugin).map_err(|e| {
        let fix = load_fix(&e, loader, &p.plugin);
        provider_error(source, name, "plugin", format!("plugin `{}`: {e}", p.plugin), fix)
    })?;
    if lib.operations & switchyard_plugin_api::abi::operation::CHAT == 0 {
        return Err(provider_error(
            source,
            name,
            "plugin",
            format!(
                "plugin `{}` does not serve chat completions, the only operation this gateway routes",
                p.plugin
            ),
            Some("use a plugin built for chat (its declaration's operations include chat)".into()),
        ));
    }
    let setup = serde_json::json!({ "name": name, "base_url": p.base_url, "options": p.options }).to_string();
    // A plugin that keeps panicking is switched off for the provider's circuit cooldown, then probed.
    let policy = PanicPolicy {
        cooldown: p.circuit_breaker.cooldown.0,
        ..PanicPolicy::default()
    };
    let codec = lib.provider_with(name, setup.as_bytes(), policy).map_err(|e| {
        let field = if matches!(e, LoadError::NotAProvider { .. }) {
            "plugin"
        } else {
            "options"
        };
        provider_error(source, name, field, e.to_string(), None)
    })?;
    let keys = routing::build_keys(name, p, warnings);
    let client = build_client(p.connect_timeout.0).map_err(|e| {
        provider_error(
            source,
            name,
            "plugin",
            format!("cannot create the HTTP client: {e}"),
            None,
        )
    })?;
    let headers = parse_headers(p.headers.iter().map(|(k, v)| (k.clone(), v.clone())))
        .map_err(|e| provider_error(source, name, "headers", e, None))?;
    let breaker = Arc::new(CircuitBreaker::new(
        BreakerConfig {
            failures: p.circuit_breaker.failures,
            window: p.circuit_breaker.window.0,
            cooldown: p.circuit_breaker.cooldown.0,
            auth_cooldown: p.circuit_breaker.auth_failure_cooldown.0,
        },
        keys.len().max(1),
    ));
    let health = ProviderHealthHandle::start(arbiter, Arc::from(name), Arc::clone(&breaker));
    let egress = Egress::new(client, p.concurrency, headers)
        .with_forward_allowlist(ForwardAllowlist::new(p.forward_headers.as_deref()));
    Ok(ProviderRuntime {
        name: Arc::from(name),
        plugin_name: Arc::from(lib.name.as_str()),
        operations: lib.operations,
        codec: Arc::new(codec),
        keys,
        keys_configured: !p.keys.is_empty(),
        send_back_raw: p.send_back_raw_response,
        egress,
        health,
        timeouts: Timeouts {
            timeout: p.timeout.non_zero().unwrap_or(Duration::MAX),
            first_byte: p.first_byte_timeout.non_zero().unwrap_or(Duration::MAX),
            first_token: p.first_token_timeout.non_zero(),
            stream_idle: p.stream_idle_timeout.non_zero(),
        },
        retry: RetryPolicy {
            max: p.retries.max,
            backoff: p.retries.backoff.0,
            max_backoff: p.retries.max_backoff.0,
        },
        budget: RetryBudget::default(),
        breaker,
    })
}

/// rustls needs one process-wide crypto provider; ring keeps the build free of C toolchains
/// beyond what ring itself needs.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Runs the daemon until SIGTERM/SIGINT, then drains in-flight requests.
pub fn serve(cfg: GatewayConfig, source: ConfigSource, overrides: Overrides) -> Result<(), StartupError> {
    install_crypto_provider();
    actix_web::rt::System::new().block_on(async move {
        let actors = Arbiter::new();
        let built = build(&cfg, &source, &actors.handle())?;
        crate::memory::release_now();
        for w in &built.warnings {
            tracing::warn!("{w}");
        }
        tracing::info!(config = %source.label(), plugins = %built.plugin_dir.display(), providers = built.table.provider_count(), aliases = built.table.alias_count(), "config loaded");
        crate::body_budget::IN_FLIGHT.set_limit(cfg.server.body_budget());
        let router = RouterHandle::start(&actors.handle(), built.table);
        let watcher = ConfigWatcher::start(&actors.handle(), &source, overrides, cfg.clone(), router.clone());
        // Installed before the daemon listens: a signal sent once it does is never the default
        // action (which for SIGHUP is to exit).
        let signals = Signals::install();
        let state = web::Data::new(AppState {
            ledger: UsageLedgerHandle::start(&actors.handle(), router.clone()),
            router,
            max_body_size: cfg.server.max_body_size.0,
            // 0 = no limit.
            body_read_timeout: cfg.server.body_read_timeout.non_zero().unwrap_or(Duration::MAX),
            stream_write_timeout: cfg.server.stream_write_timeout.0,
            admin: built.admin,
            reload: Some(watcher.clone()),
        });
        let addr = format!("{}:{}", cfg.server.host, cfg.server.port);
        let server = HttpServer::new(move || {
            // The factory runs once on each worker thread: the ticker lives there.
            actix_web::rt::spawn(crate::memory::release_when_quiet());
            App::new().configure(http::configure(state.clone()))
        })
            .disable_signals()
            // Whole seconds is what actix takes; round up so `500ms` does not become 0.
            .shutdown_timeout(cfg.server.shutdown_timeout.0.as_secs_f64().ceil() as u64)
            .client_request_timeout(CLIENT_HEADER_TIMEOUT)
            // A client that closes its side has gone away: its answer is dropped at once, which
            // cancels the upstream request. With half-closes allowed (actix's default) a client
            // gone in the middle of a slow stream was noticed only by a failed write, after the
            // upstream's next chunks (or never, while the upstream was thinking), and its stream
            // kept its memory and the upstream's tokens until then. No LLM client half-closes.
            .h1_allow_half_closed(false)
            .bind(&addr)
            .map_err(|source| StartupError::Bind { addr: addr.clone(), source })?;
        for a in server.addrs() {
            tracing::info!("listening on http://{a}");
        }
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(async move {
            signals.wait_for_shutdown(watcher).await;
            tracing::info!("shutting down: no new connections; finishing in-flight requests");
            handle.stop(true).await;
        });
        server.await.map_err(StartupError::Server)?;
        crate::actors::outbox::flush();
        actors.stop();
        tracing::info!("stopped");
        Ok(())
    })
}

/// The signals the daemon handles: SIGTERM and SIGINT stop it, SIGHUP reloads the config.
struct Signals {
    #[cfg(unix)]
    streams: Option<[tokio::signal::unix::Signal; 3]>,
}

impl Signals {
    fn install() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let streams = match (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
                signal(SignalKind::hangup()),
            ) {
                (Ok(term), Ok(int), Ok(hup)) => Some([term, int, hup]),
                _ => {
                    tracing::error!("cannot install signal handlers; stop with SIGKILL");
                    None
                }
            };
            Signals { streams }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    /// Returns on SIGTERM or SIGINT; meanwhile each SIGHUP reloads the config.
    async fn wait_for_shutdown(self, watcher: actix::Addr<ConfigWatcher>) {
        #[cfg(unix)]
        {
            let Some([mut term, mut int, mut hup]) = self.streams else {
                return std::future::pending::<()>().await;
            };
            loop {
                tokio::select! {
                    _ = term.recv() => return,
                    _ = int.recv() => return,
                    _ = hup.recv() => {
                        // The outcome is logged (and counted) by the watcher.
                        let _ = watcher.send(Reload(Trigger::Signal)).await;
                    }
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = watcher;
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// `switchyard check`: validates config and plugins and renders the routing table.
pub fn check(cfg: &GatewayConfig, source: &ConfigSource) -> Result<String, ConfigError> {
    install_crypto_provider();
    actix_web::rt::System::new().block_on(async {
        let actors = Arbiter::new();
        let built = build(cfg, source, &actors.handle())?;
        actors.stop();
        Ok(render_table(cfg, source, &built))
    })
}

fn render_table(cfg: &GatewayConfig, source: &ConfigSource, built: &Built) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(s, "config:  {} (valid)", source.label());
    let _ = writeln!(s, "plugins: {}", built.plugin_dir.display());
    let _ = writeln!(s, "listen:  {}:{}", cfg.server.host, cfg.server.port);
    let _ = writeln!(s, "\nproviders:");
    for (name, p) in &built.table.providers {
        let conf = &cfg.providers[name.as_str()];
        let keys = if p.keys_configured {
            format!("{} of {} keys usable", p.keys.len(), conf.keys.len())
        } else {
            "no key".into()
        };
        let kind = if p.codec.is_local() {
            "local".to_string()
        } else {
            conf.base_url.clone().unwrap_or_else(|| "plugin default URL".into())
        };
        let _ = writeln!(s, "  {name:<16} plugin {:<10} {kind}  ({keys})", p.codec.plugin_name());
    }
    let _ = writeln!(s, "\nmodels:");
    for (alias, a) in &built.table.aliases {
        let targets: Vec<String> = a
            .targets
            .iter()
            .map(|t| format!("{}/{} (weight {})", t.provider.name, t.model, t.weight))
            .collect();
        let _ = writeln!(s, "  {alias:<16} → {}", targets.join(", "));
        if !a.fallbacks.is_empty() {
            let _ = writeln!(s, "  {:<16}   fallbacks: {}", "", a.fallbacks.join(" → "));
        }
    }
    let _ = writeln!(
        s,
        "\n  any provider/model with a configured provider is routable as well"
    );
    for w in &built.warnings {
        let _ = writeln!(s, "\nwarning: {w}");
    }
    s
}
