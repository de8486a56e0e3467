//! Test configs: built as JSON values (easy to tweak per test), written out as block YAML.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::{Value, json};

use crate::paths;
use crate::upstream::MockUpstream;

/// The API key configured for the `up` provider in [`standard_config`]. The mock upstream reflects it
/// back in `leaky-401` errors, so tests can check it is redacted.
pub const UPSTREAM_KEY: &str = "sk-e2e-UPSTREAM-secret-7f3a9c41d2b8e605";

/// A path as a YAML scalar.
pub fn path_value(path: &Path) -> Value {
    Value::String(path.display().to_string())
}

/// The config most tests start from:
/// - provider `up`: the `openai` plugin pointed at `upstream`, key [`UPSTREAM_KEY`], one configured
///   header (`x-provider-header: from-config`), generous timeouts;
/// - provider `local`: the `mock` plugin;
/// - aliases `gpt` → `up/gpt-4o` and `echo` → `local/echo`.
pub fn standard_config(upstream: &MockUpstream) -> Value {
    json!({
        "server": {"host": "127.0.0.1", "port": 0},
        "plugins": {"dir": path_value(&paths::plugin_dir())},
        "providers": {
            "up": {
                "plugin": "openai",
                "base_url": upstream.base_url(),
                "keys": [{"value": UPSTREAM_KEY, "weight": 1.0, "models": ["*"]}],
                "connect_timeout": "2s",
                "timeout": "30s",
                "first_byte_timeout": "20s",
                "stream_idle_timeout": "20s",
                "concurrency": 64,
                "headers": {"x-provider-header": "from-config"},
                // One attempt per target, and no circuit opening, unless a test asks:
                // most tests count upstream requests exactly.
                "retries": {"max": 0},
                "circuit_breaker": {"failures": 1000, "auth_failure_cooldown": "0s"},
            },
            // Fault models on: the error, fallback and panic tests ask `local/fault-*` to fail.
            "local": {
                "plugin": "mock",
                "options": {"fault_models": true},
                "retries": {"max": 0},
                "circuit_breaker": {"failures": 1000, "auth_failure_cooldown": "0s"},
            },
        },
        "models": {
            "gpt": {"targets": [{"provider": "up", "model": "gpt-4o", "weight": 1}]},
            "echo": {"targets": [{"provider": "local", "model": "echo", "weight": 1}]},
        },
    })
}

/// Renders a JSON value as block-style YAML (strings always double-quoted, so nothing is re-typed).
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => write_map(&mut out, map, 0),
        Value::Array(items) if !items.is_empty() => write_seq(&mut out, items, 0),
        other => {
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
    out
}

fn scalar(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => quote(s),
        Value::Array(items) if items.is_empty() => "[]".to_owned(),
        Value::Object(map) if map.is_empty() => "{}".to_owned(),
        // Non-empty containers are written in block style by the callers.
        other => other.to_string(),
    }
}

fn quote(s: &str) -> String {
    // A JSON string literal is a valid YAML double-quoted scalar.
    Value::String(s.to_owned()).to_string()
}

fn key(k: &str) -> String {
    let plain = !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
        && !k.starts_with(['-', '.']);
    if plain { k.to_owned() } else { quote(k) }
}

fn is_block(value: &Value) -> bool {
    match value {
        Value::Object(map) => !map.is_empty(),
        Value::Array(items) => !items.is_empty(),
        _ => false,
    }
}

fn write_map(out: &mut String, map: &serde_json::Map<String, Value>, indent: usize) {
    let pad = " ".repeat(indent);
    for (k, v) in map {
        if is_block(v) {
            let _ = writeln!(out, "{pad}{}:", key(k));
            write_block(out, v, indent + 2);
        } else {
            let _ = writeln!(out, "{pad}{}: {}", key(k), scalar(v));
        }
    }
}

fn write_seq(out: &mut String, items: &[Value], indent: usize) {
    let pad = " ".repeat(indent);
    for item in items {
        match item {
            Value::Object(map) if !map.is_empty() => {
                // First key on the dash line, the rest aligned under it.
                let mut first = true;
                for (k, v) in map {
                    let lead = if first { format!("{pad}- ") } else { format!("{pad}  ") };
                    first = false;
                    if is_block(v) {
                        let _ = writeln!(out, "{lead}{}:", key(k));
                        write_block(out, v, indent + 4);
                    } else {
                        let _ = writeln!(out, "{lead}{}: {}", key(k), scalar(v));
                    }
                }
            }
            Value::Array(inner) if !inner.is_empty() => {
                let _ = writeln!(out, "{pad}-");
                write_seq(out, inner, indent + 2);
            }
            other => {
                let _ = writeln!(out, "{pad}- {}", scalar(other));
            }
        }
    }
}

fn write_block(out: &mut String, value: &Value, indent: usize) {
    match value {
        Value::Object(map) => write_map(out, map, indent),
        Value::Array(items) => write_seq(out, items, indent),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_rendering_is_block_style() {
        // Keys in alphabetical order, so the result is the same with or without serde_json's
        // `preserve_order` (feature unification differs between `-p` and `--workspace` builds).
        let v = json!({
            "a": {"b": 1, "c": "x y"},
            "empty": {},
            "list": [{"k": "v", "n": [1, 2]}, "s"],
            "none": [],
            "x-h": true,
        });
        let yaml = to_yaml(&v);
        let expected = "a:\n  b: 1\n  c: \"x y\"\nempty: {}\nlist:\n  - k: \"v\"\n    n:\n      - 1\n      - 2\n  - \"s\"\nnone: []\nx-h: true\n";
        assert_eq!(yaml, expected);
    }
}
