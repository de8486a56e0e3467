//! The cache lookup phase: an exact or semantic cache hit answers the request here, through
//! the same post-hook, finish and settle phases as an upstream's answer (DESIGN §4 cache).
//! No cache exists yet, so nothing is ever found and the phase is an empty inline call.

use super::{Exchange, Served};
use crate::routing::RouteTable;

#[inline]
pub fn run(_table: &RouteTable, _ex: &Exchange) -> Option<Served> {
    None
}
