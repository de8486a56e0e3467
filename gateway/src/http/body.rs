//! Reading the request body: bounded in size and time, whatever the Content-Type says, and
//! counted against the process-wide body budget for as long as it is held.

use super::error::HttpError;
use crate::body_budget::{self, Lease};
use crate::error::GatewayError;
use actix_web::{HttpRequest, web};
use bytes::BytesMut;
use futures_util::StreamExt;
use std::ops::Deref;
use std::time::Duration;

/// A request body and its bytes in the body budget, given back when it is dropped.
pub struct RequestBody {
    bytes: BytesMut,
    _lease: Lease<'static>,
}

impl Deref for RequestBody {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

impl RequestBody {
    /// The bytes (shared, no copy) and the budget lease to hold for as long as they are.
    pub fn into_parts(self) -> (bytes::Bytes, Lease<'static>) {
        (self.bytes.freeze(), self._lease)
    }
}

pub async fn read(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: u64,
    timeout: Duration,
) -> Result<RequestBody, HttpError> {
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(GatewayError::BodyTooLarge { limit }.into());
    }
    let budget = &body_budget::IN_FLIGHT;
    // A body announced larger than what is free now is refused before it is read.
    if declared.is_some_and(|n| !budget.has_room_for(n)) {
        budget.note_refused();
        return Err(HttpError::ServerBusy);
    }
    let read_all = async {
        let mut lease = budget.lease();
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
                return Err(GatewayError::BodyTooLarge { limit }.into());
            }
            lease.grow(chunk.len() as u64).map_err(|_| HttpError::ServerBusy)?;
            buf.extend_from_slice(&chunk);
        }
        Ok(RequestBody {
            bytes: buf,
            _lease: lease,
        })
    };
    tokio::time::timeout(timeout, read_all)
        .await
        .unwrap_or(Err(GatewayError::BodyTimeout {
            secs: timeout.as_secs(),
        }
        .into()))
}
