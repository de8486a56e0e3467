//! The admit phase: who may ask, and how much. Virtual keys, rate limits and budget
//! reservations land here (DESIGN §4 governance); until then every request is admitted and
//! the phase is an empty inline call.

use super::{Exchange, Failure};
use crate::routing::RouteTable;

#[inline]
pub fn run(_table: &RouteTable, _ex: &mut Exchange) -> Result<(), Failure> {
    Ok(())
}
