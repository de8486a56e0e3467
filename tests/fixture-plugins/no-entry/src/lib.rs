//! Fixture: a valid shared library that is not a Switchyard plugin.
//!
//! It exports a C function, so it loads fine, but not `switchyard_plugin_entry_v1`; the
//! end-to-end tests use it to check that the gateway refuses it at start-up with a
//! "does not export the symbol" message rather than crashing or ignoring it.

/// Some unrelated export, so the library has a dynamic symbol table worth searching.
#[unsafe(no_mangle)]
pub extern "C" fn switchyard_noentry_abi_major() -> u32 {
    u32::from(switchyard_plugin_api::abi::ABI_MAJOR)
}
