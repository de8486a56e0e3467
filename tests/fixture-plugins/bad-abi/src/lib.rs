//! Fixture: a plugin built for a future, incompatible plugin ABI (major version + 1).
//!
//! The end-to-end tests point the gateway at it to check that start-up refuses it with a
//! message naming the plugin and the version mismatch. The declaration is written by hand,
//! not with `export_provider!`, because the macro always stamps the current ABI version.

use switchyard_plugin_api::abi::{self, ByteSlice, PluginDecl};

/// Only the version prefix matters: the loader must stop at the major-version check, so no
/// vtable is declared (a future ABI's vtable layout is unknowable anyway).
static DECLARATION: PluginDecl = PluginDecl {
    struct_size: std::mem::size_of::<PluginDecl>() as u32,
    abi_major: abi::ABI_MAJOR + 1,
    abi_minor: 0,
    name: ByteSlice::from_str("badabi"),
    version: ByteSlice::from_str(env!("CARGO_PKG_VERSION")),
    capabilities: 0,
    provider: std::ptr::null(),
    hook: std::ptr::null(),
    operations: abi::operation::CHAT,
};

/// The real entry symbol, so loading gets as far as the version check.
#[unsafe(no_mangle)]
pub extern "C" fn switchyard_plugin_entry_v1() -> *const PluginDecl {
    &DECLARATION
}
