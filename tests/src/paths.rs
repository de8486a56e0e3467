//! Locating the workspace, the target folder, the daemon binary and the plugin libraries.

use std::env;
use std::path::{Path, PathBuf};

/// The workspace root: the parent of this crate's folder (`tests/`).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| manifest.to_path_buf())
}

/// `CARGO_TARGET_DIR` (relative values are taken from the workspace root), else `<root>/target`.
pub fn target_dir() -> PathBuf {
    match env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                workspace_root().join(dir)
            }
        }
        _ => workspace_root().join("target"),
    }
}

/// The `switchyard` binary: `SWITCHYARD_BIN`, else `<target>/debug/switchyard`.
///
/// Panics with instructions when it does not exist.
pub fn switchyard_bin() -> PathBuf {
    let bin = match env::var_os("SWITCHYARD_BIN") {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => target_dir()
            .join("debug")
            .join(format!("switchyard{}", env::consts::EXE_SUFFIX)),
    };
    assert!(
        bin.is_file(),
        "the switchyard binary was not found at {}.\n\
         The end-to-end tests run the real daemon and the real plugins: run `cargo build --workspace` \
         first (or point SWITCHYARD_BIN at a built binary).",
        bin.display()
    );
    bin
}

/// The folder holding the plugin libraries: `SWITCHYARD_PLUGIN_DIR`, else the binary's folder
/// (that is where `cargo build --workspace` puts the `cdylib`s).
pub fn plugin_dir() -> PathBuf {
    if let Some(dir) = env::var_os("SWITCHYARD_PLUGIN_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let bin = switchyard_bin();
    bin.parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The file name of plugin `name` (`libswitchyard_NAME.so` on Linux).
pub fn plugin_file_name(name: &str) -> String {
    format!(
        "{}switchyard_{name}{}",
        env::consts::DLL_PREFIX,
        env::consts::DLL_SUFFIX
    )
}

/// The path of a plugin library built by the workspace; panics with instructions when missing.
pub fn plugin_path(name: &str) -> PathBuf {
    let path = plugin_dir().join(plugin_file_name(name));
    assert!(
        path.is_file(),
        "plugin library {} not found: run `cargo build --workspace` first",
        path.display()
    );
    path
}
