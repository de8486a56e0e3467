//! Finding, layering and reading the config: `--config` / `SWITCHYARD_CONFIG`, else
//! `config/gateway.yaml` in the working folder, else the embedded default; then CLI and
//! environment overrides on top (the `config` crate does the layering).

use super::error::{ConfigError, InvalidConfig, yaml_line_of, yaml_path_at_line};
use super::schema::GatewayConfig;
use super::validate::validate;
use std::path::{Path, PathBuf};

/// The default config compiled into the binary: the `mock` provider, no keys, no network.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../../config/gateway.yaml");

/// Where the config text came from.
#[derive(Debug, Clone)]
pub struct ConfigSource {
    /// `None` for the embedded default.
    pub path: Option<PathBuf>,
    pub text: String,
}

impl ConfigSource {
    /// How error messages name this source.
    pub fn label(&self) -> String {
        match &self.path {
            Some(p) => p.display().to_string(),
            None => "<embedded default config/gateway.yaml>".into(),
        }
    }

    pub fn embedded() -> ConfigSource {
        ConfigSource {
            path: None,
            text: EMBEDDED_DEFAULT.to_string(),
        }
    }

    /// Finds the config: an explicit path must exist; otherwise `config/gateway.yaml` in the
    /// working folder; otherwise the embedded default.
    pub fn locate(explicit: Option<&Path>) -> Result<ConfigSource, ConfigError> {
        let path = match explicit {
            Some(p) => p.to_path_buf(),
            None => {
                let local = PathBuf::from("config/gateway.yaml");
                if !local.is_file() {
                    return Ok(ConfigSource::embedded());
                }
                local
            }
        };
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        Ok(ConfigSource { path: Some(path), text })
    }
}

/// Values from the command line or the environment that win over the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub host: Option<String>,
    pub port: Option<u16>,
}

/// Reads, layers and validates a config.
pub fn load(source: &ConfigSource, overrides: &Overrides) -> Result<GatewayConfig, ConfigError> {
    let label = source.label();
    // Typed parse with positions first: it gives line-accurate messages for unknown keys,
    // wrong types and bad units, which the layered parse below cannot.
    if let Err(e) = serde_saphyr::from_str::<GatewayConfig>(&source.text) {
        let location = e.location();
        let line = location.as_ref().map(|l| l.line()).filter(|l| *l > 0);
        let column = location.as_ref().map(|l| l.column()).filter(|c| *c > 0);
        let message = first_line(&e.to_string());
        let field = line.and_then(|l| yaml_path_at_line(&source.text, l as usize));
        return Err(ConfigError::invalid(&label, line, column, field, message));
    }

    let layered = config::Config::builder()
        .add_source(config::File::from_str(&source.text, config::FileFormat::Yaml))
        .set_override_option("server.host", overrides.host.clone())
        .and_then(|b| b.set_override_option("server.port", overrides.port.map(i64::from)))
        .and_then(|b| b.build())
        .and_then(|c| c.try_deserialize::<GatewayConfig>())
        .map_err(|e| ConfigError::invalid(&label, None, None, None, e.to_string()))?;

    validate(&layered).map_err(|issue| {
        let line = yaml_line_of(&source.text, &issue.path);
        ConfigError::Invalid(Box::new(InvalidConfig {
            file: label.clone(),
            line,
            column: None,
            field: Some(issue.path.join(".")),
            message: issue.message,
            fix: issue.fix,
        }))
    })?;
    Ok(layered)
}

/// The parser's message without its own `error: line N column M:` prefix (we print the
/// position ourselves).
fn first_line(s: &str) -> String {
    let line = s.lines().find(|l| !l.trim().is_empty()).unwrap_or(s).trim();
    let line = line.strip_prefix("error:").unwrap_or(line).trim_start();
    match line.strip_prefix("line ").and_then(|r| r.split_once(": ")) {
        Some((pos, msg)) if pos.contains("column") => msg.to_string(),
        _ => line.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<GatewayConfig, ConfigError> {
        load(
            &ConfigSource {
                path: Some("test.yaml".into()),
                text: text.into(),
            },
            &Overrides::default(),
        )
    }

    #[test]
    fn embedded_default_is_valid() {
        let cfg = load(&ConfigSource::embedded(), &Overrides::default()).expect("valid default");
        assert!(cfg.providers.contains_key("local"));
        assert!(cfg.models.contains_key("default"));
    }

    #[test]
    fn overrides_win_over_the_file() {
        let o = Overrides {
            host: Some("0.0.0.0".into()),
            port: Some(0),
        };
        let cfg = load(&ConfigSource::embedded(), &o).expect("valid");
        assert_eq!(cfg.server.host, "0.0.0.0");
        assert_eq!(cfg.server.port, 0);
    }

    #[test]
    fn unknown_key_names_file_line_field_and_suggests() {
        let text = "providers:\n  up:\n    plugin: openai\n    bse_url: http://x\n";
        let err = parse(text).expect_err("unknown key").to_string();
        assert!(err.contains("test.yaml:4"), "{err}");
        assert!(err.contains("bse_url"), "{err}");
        assert!(err.contains("did you mean `base_url`"), "{err}");
        assert!(err.contains("providers.up"), "{err}");
    }

    #[test]
    fn bad_duration_names_the_field() {
        let text = "providers:\n  up:\n    plugin: openai\n    timeout: 5 parsecs\n";
        let err = parse(text).expect_err("bad duration").to_string();
        assert!(err.contains("timeout") && err.contains("test.yaml:4"), "{err}");
    }

    #[test]
    fn wrong_type_is_refused() {
        let text = "server:\n  port: lots\n";
        let err = parse(text).expect_err("bad port").to_string();
        assert!(err.contains("test.yaml:2"), "{err}");
    }

    #[test]
    fn alias_target_must_name_a_provider() {
        let text = "providers:\n  local:\n    plugin: mock\nmodels:\n  a:\n    targets:\n      - {provider: lcal, model: echo}\n";
        let err = parse(text).expect_err("unknown provider").to_string();
        assert!(err.contains("lcal") && err.contains("did you mean `local`"), "{err}");
        assert!(err.contains("models.a.targets"), "{err}");
    }

    #[test]
    fn fallbacks_must_resolve() {
        let text = "providers:\n  local:\n    plugin: mock\nmodels:\n  a:\n    targets: [{provider: local, model: echo}]\n    fallbacks: [nowhere]\n";
        let err = parse(text).expect_err("bad fallback").to_string();
        assert!(err.contains("nowhere"), "{err}");
    }

    #[test]
    fn model_names_with_dots_and_slashes_survive_layering() {
        let text = "providers:\n  local:\n    plugin: mock\nmodels:\n  gpt-4.1:\n    targets: [{provider: local, model: echo}]\n  team/Big:\n    targets: [{provider: local, model: Echo.V2}]\n";
        let cfg = parse(text).expect("valid");
        assert!(cfg.models.contains_key("gpt-4.1"), "{:?}", cfg.models.keys());
        assert!(cfg.models.contains_key("team/Big"), "{:?}", cfg.models.keys());
        assert_eq!(cfg.models["team/Big"].targets[0].model, "Echo.V2");
    }
}
