//! Building a plugin crate that lives outside the workspace (`tests/external-*`), the way a
//! third party would: its own manifest, its own target folder.

use std::path::PathBuf;
use std::process::Command;

use crate::paths::{self, plugin_file_name, workspace_root};

/// Builds the crate in `<workspace>/<dir>` (debug) into `<target>/<last part of dir>` and
/// returns the path of its library `plugin` (`libswitchyard_<plugin>.so`). Panics with cargo's
/// output when the build fails. Callers cache the result (a `OnceLock` per test binary).
pub fn build_out_of_tree(dir: &str, plugin: &str) -> PathBuf {
    let manifest = workspace_root().join(dir).join("Cargo.toml");
    let name = dir.rsplit('/').next().unwrap_or(dir);
    let target = paths::target_dir().join(name);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .arg("build")
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target)
        // The outer build's target folder must not leak into the crate's own build.
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET_DIR")
        .output()
        .unwrap_or_else(|e| panic!("run cargo build for {dir}: {e}"));
    assert!(
        out.status.success(),
        "building {dir} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lib = target.join("debug").join(plugin_file_name(plugin));
    assert!(lib.is_file(), "{} was not produced", lib.display());
    lib
}
