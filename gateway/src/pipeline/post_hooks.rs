//! The post-hook phase: on a plain answer, the hooks' `post_response` (reverse config order),
//! which may replace or reject it; a stream instead takes the request's hooks along, and its
//! relay runs their chunk phase on every upstream read and `on_done` at its end.

use super::{Exchange, Failure, Served};

pub fn run(ex: &mut Exchange, served: Served) -> Result<Served, Failure> {
    let Some(chain) = ex.hooks.as_mut() else {
        return Ok(served);
    };
    match served {
        Served::Plain {
            mut answer,
            finish,
            headers,
        } => {
            chain.post_response(&mut answer)?;
            Ok(Served::Plain {
                answer,
                finish,
                headers,
            })
        }
        Served::Stream { mut relay, headers } => {
            if let Some(chain) = ex.hooks.take() {
                relay.attach_hooks(chain);
            }
            Ok(Served::Stream { relay, headers })
        }
    }
}
