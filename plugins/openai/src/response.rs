//! A 2xx upstream body → the unified response (OpenAI's own shape, forwarded as is).

use crate::error;
use crate::views::{CompletionView, lossy_text, without_extra_fields};
use switchyard_plugin_api::sdk::{Context, Out, ProviderError};

pub(crate) fn decode(ctx: &Context<'_>, body: &[u8], out: &mut Out<'_>) -> Result<(), ProviderError> {
    let view = match CompletionView::parse(body) {
        Ok(view) => view,
        // Bytes that are not UTF-8 are repaired, then read again (once: the repair is text).
        Err(_) if let Some(text) = lossy_text(body) => return decode(ctx, &text, out),
        Err(reason) => {
            return Err(ProviderError::malformed(format!(
                "upstream response is not a chat completion: {reason}"
            )));
        }
    };
    if view.choices.is_none() {
        // Some servers answer 200 with an error object instead of an error status.
        if view.error.is_some() {
            return Err(error::embedded(body));
        }
        return Err(ProviderError::malformed("upstream response has no `choices` array"));
    }
    let usage = view.usage.as_ref().map(|u| u.to_usage());
    let model = view.model.as_deref().unwrap_or(ctx.model);
    if view.extra_fields.0 {
        let json = without_extra_fields(body).map_err(ProviderError::malformed)?;
        out.response(&json, model, usage.as_ref());
    } else {
        out.response(body, model, usage.as_ref());
    }
    Ok(())
}
