//! Finding and loading plugin libraries. `plugin: NAME` loads
//! `<plugins.dir>/libswitchyard_NAME.so`; a value containing `/` is a path. Each library is
//! loaded once, shared by every provider that names it, and never unloaded.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use switchyard_plugin_api::host::{self, LoadError, PluginLibrary};

pub struct PluginLoader {
    dir: PathBuf,
    loaded: HashMap<PathBuf, PluginLibrary>,
}

impl PluginLoader {
    /// `dir` from `plugins.dir`; default: the folder of the running binary.
    pub fn new(dir: Option<&Path>) -> PluginLoader {
        let dir = dir.map(Path::to_path_buf).unwrap_or_else(|| {
            std::env::current_exe()
                .ok()
                .and_then(|p| p.parent().map(Path::to_path_buf))
                .unwrap_or_else(|| PathBuf::from("."))
        });
        PluginLoader {
            dir,
            loaded: HashMap::new(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn resolve(&self, spec: &str) -> PathBuf {
        if spec.contains('/') || spec.contains(std::path::MAIN_SEPARATOR) {
            PathBuf::from(spec)
        } else {
            self.dir.join(host::library_file_name(spec))
        }
    }

    pub fn load(&mut self, spec: &str) -> Result<PluginLibrary, LoadError> {
        let path = self.resolve(spec);
        let key = path.canonicalize().unwrap_or_else(|_| path.clone());
        if let Some(lib) = self.loaded.get(&key) {
            return Ok(lib.clone());
        }
        let lib = host::load(&path)?;
        self.loaded.insert(key, lib.clone());
        Ok(lib)
    }
}
