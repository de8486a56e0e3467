//! Reading the request body: bounded in size and time, whatever the Content-Type says.

use crate::error::GatewayError;
use actix_web::{HttpRequest, web};
use bytes::BytesMut;
use futures_util::StreamExt;
use std::time::Duration;

pub async fn read(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: u64,
    timeout: Duration,
) -> Result<BytesMut, GatewayError> {
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(GatewayError::BodyTooLarge { limit });
    }
    let read_all = async {
        // Grow as bytes arrive: a declared length is a promise, not a reason to reserve memory.
        let mut buf = BytesMut::with_capacity(declared.unwrap_or(1024).min(limit).min(64 * 1024) as usize);
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| {
                GatewayError::bad_request(
                    format!("The request body could not be read: {e}."),
                    "invalid_body",
                    None,
                )
            })?;
            if (buf.len() + chunk.len()) as u64 > limit {
                return Err(GatewayError::BodyTooLarge { limit });
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf)
    };
    tokio::time::timeout(timeout, read_all)
        .await
        .unwrap_or(Err(GatewayError::BodyTimeout {
            secs: timeout.as_secs(),
        }))
}
