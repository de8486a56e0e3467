//! The HTTP surface (actix-web): routes, body reading, responses and errors.

mod admin;
mod body;
mod error;
mod handlers;
mod respond;
mod write_stall;

pub use admin::AdminAccess;

use crate::actors::router::RouterHandle;
use crate::actors::usage_ledger::UsageLedgerHandle;
use actix_web::web;
use std::time::Duration;

/// Shared by every worker; everything in it is a handle or a snapshot.
pub struct AppState {
    pub router: RouterHandle,
    pub ledger: UsageLedgerHandle,
    pub max_body_size: u64,
    pub body_read_timeout: Duration,
    /// A stream whose client has not taken a frame for this long is cut; zero = never.
    pub stream_write_timeout: Duration,
    pub admin: AdminAccess,
    /// The config watcher, for `POST /admin/reload` (`None` in tests without one).
    pub reload: Option<actix::Addr<crate::reload::ConfigWatcher>>,
}

const CHAT_PATHS: [&str; 3] = [
    "/v1/chat/completions",
    "/openai/v1/chat/completions",
    "/openai/chat/completions",
];

/// Registers every route; used by the daemon and by in-process tests.
pub fn configure(state: web::Data<AppState>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(state);
        for path in CHAT_PATHS {
            cfg.service(
                web::resource(path)
                    .route(web::post().to(handlers::chat_completions))
                    .default_service(web::to(handlers::method_not_allowed)),
            );
        }
        cfg.service(
            web::resource(["/v1/models", "/openai/v1/models"])
                .route(web::get().to(handlers::list_models))
                .default_service(web::to(handlers::method_not_allowed)),
        );
        cfg.service(
            web::resource(["/v1/models/{id:.+}", "/openai/v1/models/{id:.+}"])
                .route(web::get().to(handlers::get_model))
                .default_service(web::to(handlers::method_not_allowed)),
        );
        cfg.service(
            web::resource("/health")
                .route(web::get().to(handlers::health))
                .default_service(web::to(handlers::method_not_allowed)),
        );
        cfg.service(
            web::resource("/admin/status")
                .route(web::get().to(admin::status))
                .default_service(web::to(handlers::method_not_allowed)),
        );
        cfg.service(
            web::resource("/admin/reload")
                .route(web::post().to(admin::reload))
                .default_service(web::to(handlers::method_not_allowed)),
        );
        cfg.service(
            web::resource("/admin/cache")
                .route(web::delete().to(admin::clear_cache))
                .default_service(web::to(handlers::method_not_allowed)),
        );
        cfg.service(
            web::resource("/admin/cache/{cache_id}")
                .route(web::delete().to(admin::delete_cache_entry))
                .default_service(web::to(handlers::method_not_allowed)),
        );
        cfg.service(
            web::resource("/v1/usage")
                .route(web::get().to(admin::usage))
                .default_service(web::to(handlers::method_not_allowed)),
        );
        cfg.default_service(web::to(handlers::not_found));
    }
}
