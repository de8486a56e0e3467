//! Switchyard's plugin ABI.
//!
//! - [`abi`]: the `#[repr(C)]` types and constants that cross the dynamic-library boundary.
//! - [`sdk`] (feature `sdk`): what a plugin author uses — the [`sdk::Provider`] trait and
//!   [`export_provider!`].
//! - [`host`] (feature `host`): what the gateway uses — loading, validation, safe wrappers.
//! - [`json`] (either feature): reading JSON on the hot path.

pub mod abi;

#[cfg(any(feature = "sdk", feature = "host"))]
pub mod json;

#[cfg(feature = "sdk")]
pub mod sdk;

#[cfg(feature = "host")]
pub mod host;

#[cfg(all(test, feature = "sdk", feature = "host"))]
mod tests;
