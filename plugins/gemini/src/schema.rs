//! JSON Schema (as OpenAI clients write it for `response_format` and tool `parameters`) →
//! Gemini's `Schema`, a subset of the OpenAPI 3.0 schema object.
//!
//! Gemini refuses a request whose schema carries a keyword it does not know (strict-mode
//! schemas always carry `additionalProperties: false`), so the translation keeps only what
//! `Schema` defines and rewrites the rest where there is an equivalent:
//!
//! | JSON Schema | Gemini `Schema` |
//! |---|---|
//! | `type: "string"` | `type: "STRING"` (enum names) |
//! | `type: ["string", "null"]` | `type: "STRING", nullable: true` |
//! | `type: ["string", "integer"]` | `anyOf` of one schema per type |
//! | `oneOf` | `anyOf` (Gemini has no exclusive union; the model is asked for one branch either way) |
//! | `allOf` with one member | that member, merged in |
//! | `const: "x"` (a string) | `enum: ["x"]` |
//! | `$ref: "#/$defs/X"` (or `#/definitions/X`) | the definition, inlined (to a depth of [`MAX_DEPTH`]) |
//! | `format` | kept only where Gemini accepts it (`date-time`, `enum` for strings; `int32`/`int64`; `float`/`double`) |
//! | `enum` | kept when every value is a string |
//! | `required` | kept, limited to declared `properties` |
//! | `properties` (response schemas) | also listed in `propertyOrdering`, so the answer keeps the schema's order |
//!
//! Dropped: `additionalProperties`, `$schema`, `$id`, `$defs`/`definitions` (after inlining),
//! `strict`, `examples`, `patternProperties`, `unevaluatedProperties`, `dependentRequired`,
//! `exclusiveMinimum`/`exclusiveMaximum`, `multipleOf`, `uniqueItems`, `contains`, `not`,
//! `if`/`then`/`else`, `readOnly`/`writeOnly`, `deprecated`, `contentEncoding`, non-local
//! `$ref`s, and anything else `Schema` does not define. A dropped keyword loosens the
//! constraint the model is given; the client should still validate what comes back.

use serde_json::{Map, Value};

/// How deep `$ref`s are inlined; a recursive schema is cut there (the rest left unconstrained).
pub(crate) const MAX_DEPTH: usize = 16;

/// Where a schema is used.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Use {
    /// `generationConfig.responseSchema`: property order matters for the answer.
    Response,
    /// `functionDeclarations[].parameters`.
    Parameters,
}

/// Translates `schema`; non-object input gives an unconstrained schema (`{}`).
pub(crate) fn to_gemini(schema: &Value, usage: Use) -> Value {
    let root = schema.as_object();
    let defs = Defs {
        defs: root.and_then(|r| r.get("$defs")).and_then(Value::as_object),
        definitions: root.and_then(|r| r.get("definitions")).and_then(Value::as_object),
    };
    Value::Object(translate(schema, &defs, usage, 0))
}

/// Whether a translated tool `parameters` schema constrains nothing: Gemini refuses an
/// `OBJECT` without properties, so such a declaration is sent without `parameters`.
pub(crate) fn is_empty_object(schema: &Value) -> bool {
    let Some(map) = schema.as_object() else {
        return true;
    };
    let no_properties = map
        .get("properties")
        .and_then(Value::as_object)
        .is_none_or(Map::is_empty);
    let object_or_untyped = map.get("type").is_none_or(|t| t == "OBJECT");
    no_properties && object_or_untyped && !map.contains_key("anyOf")
}

struct Defs<'s> {
    defs: Option<&'s Map<String, Value>>,
    definitions: Option<&'s Map<String, Value>>,
}

impl<'s> Defs<'s> {
    fn resolve(&self, reference: &str) -> Option<&'s Value> {
        if let Some(name) = reference.strip_prefix("#/$defs/") {
            return self.defs?.get(&unescape_pointer(name));
        }
        if let Some(name) = reference.strip_prefix("#/definitions/") {
            return self.definitions?.get(&unescape_pointer(name));
        }
        None
    }
}

fn unescape_pointer(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

fn translate(schema: &Value, defs: &Defs<'_>, usage: Use, depth: usize) -> Map<String, Value> {
    let mut out = Map::new();
    let Some(input) = schema.as_object() else {
        return out; // `true` or anything else: no constraint
    };
    if depth > MAX_DEPTH {
        return out;
    }

    // A local reference is replaced by its target; sibling keywords (a description, say) win.
    if let Some(target) = input.get("$ref").and_then(Value::as_str).and_then(|r| defs.resolve(r)) {
        out = translate(target, defs, usage, depth + 1);
    }
    // `allOf: [X]` is X (what generators emit to attach a description to a `$ref`).
    if let Some([only]) = input.get("allOf").and_then(Value::as_array).map(Vec::as_slice) {
        for (k, v) in translate(only, defs, usage, depth + 1) {
            out.insert(k, v);
        }
    }

    let mut nullable = input.get("nullable").and_then(Value::as_bool) == Some(true);
    match input.get("type") {
        Some(Value::String(t)) => {
            if t == "null" {
                nullable = true;
                out.insert("type".into(), Value::String("NULL".into()));
            } else {
                out.insert("type".into(), Value::String(t.to_ascii_uppercase()));
            }
        }
        Some(Value::Array(types)) => {
            let mut named: Vec<&str> = types.iter().filter_map(Value::as_str).collect();
            if named.contains(&"null") {
                nullable = true;
                named.retain(|t| *t != "null");
            }
            match named.as_slice() {
                [] => {}
                [one] => {
                    out.insert("type".into(), Value::String(one.to_ascii_uppercase()));
                }
                many => {
                    // One branch per type, each keeping the keywords that apply to it; the
                    // union itself carries only what describes the whole.
                    let branches = many
                        .iter()
                        .map(|t| {
                            let mut branch = input.clone();
                            branch.insert("type".into(), Value::String((*t).to_string()));
                            for key in ["title", "description", "nullable"] {
                                branch.remove(key);
                            }
                            Value::Object(translate(&Value::Object(branch), defs, usage, depth + 1))
                        })
                        .collect();
                    let mut union = Map::new();
                    for key in ["title", "description"] {
                        if let Some(v) = input.get(key) {
                            union.insert(key.into(), v.clone());
                        }
                    }
                    if nullable {
                        union.insert("nullable".into(), Value::Bool(true));
                    }
                    union.insert("anyOf".into(), Value::Array(branches));
                    return union;
                }
            }
        }
        _ => {}
    }
    if nullable {
        out.insert("nullable".into(), Value::Bool(true));
    }

    for key in ["title", "description", "pattern", "default", "example"] {
        if let Some(v) = input.get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    for key in [
        "minimum",
        "maximum",
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
    ] {
        if let Some(v) = input.get(key).filter(|v| v.is_number()) {
            out.insert(key.into(), v.clone());
        }
    }

    if let Some(format) = input.get("format").and_then(Value::as_str) {
        let kind = out.get("type").and_then(Value::as_str).unwrap_or_default();
        let accepted = match kind {
            "STRING" => matches!(format, "date-time" | "enum"),
            "INTEGER" => matches!(format, "int32" | "int64"),
            "NUMBER" => matches!(format, "float" | "double"),
            _ => false,
        };
        if accepted {
            out.insert("format".into(), Value::String(format.to_string()));
        }
    }
    match (input.get("enum"), input.get("const")) {
        (Some(Value::Array(values)), _) if values.iter().all(Value::is_string) => {
            out.insert("enum".into(), Value::Array(values.clone()));
        }
        (None, Some(Value::String(only))) => {
            out.insert("enum".into(), Value::Array(vec![Value::String(only.clone())]));
        }
        _ => {}
    }

    if let Some(properties) = input.get("properties").and_then(Value::as_object) {
        let translated: Map<String, Value> = properties
            .iter()
            .map(|(name, s)| (name.clone(), Value::Object(translate(s, defs, usage, depth + 1))))
            .collect();
        let ordering = (usage == Use::Response && translated.len() > 1 && !input.contains_key("propertyOrdering"))
            .then(|| translated.keys().cloned().map(Value::String).collect::<Vec<_>>());
        let required: Vec<Value> = input
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|r| r.as_str().is_some_and(|r| translated.contains_key(r)))
            .cloned()
            .collect();
        out.insert("properties".into(), Value::Object(translated));
        if !required.is_empty() {
            out.insert("required".into(), Value::Array(required));
        }
        if let Some(order) = ordering {
            out.insert("propertyOrdering".into(), Value::Array(order));
        }
    }
    if let Some(Value::Array(order)) = input.get("propertyOrdering") {
        out.insert("propertyOrdering".into(), Value::Array(order.clone()));
    }
    if let Some(items) = input.get("items").filter(|i| i.is_object()) {
        out.insert("items".into(), Value::Object(translate(items, defs, usage, depth + 1)));
    }
    let union = input
        .get("anyOf")
        .or_else(|| input.get("oneOf"))
        .and_then(Value::as_array);
    if let Some(branches) = union {
        let translated: Vec<Value> = branches
            .iter()
            .map(|b| Value::Object(translate(b, defs, usage, depth + 1)))
            .collect();
        out.insert("anyOf".into(), Value::Array(translated));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strict_mode_schema_loses_what_gemini_refuses() {
        let schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": {
                "name": {"type": "string", "description": "Full name", "format": "email"},
                "age": {"type": ["integer", "null"], "minimum": 0, "exclusiveMaximum": 200},
                "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}, "uniqueItems": true},
                "when": {"type": "string", "format": "date-time"},
            },
            "required": ["name", "age", "tags", "ghost"],
            "additionalProperties": false,
            "strict": true,
        });
        let out = to_gemini(&schema, Use::Response);
        assert_eq!(
            out,
            json!({
                "type": "OBJECT",
                "propertyOrdering": ["name", "age", "tags", "when"],
                "required": ["name", "age", "tags"],
                "properties": {
                    "name": {"type": "STRING", "description": "Full name"},
                    "age": {"type": "INTEGER", "nullable": true, "minimum": 0},
                    "tags": {"type": "ARRAY", "items": {"type": "STRING", "enum": ["a", "b"]}},
                    "when": {"type": "STRING", "format": "date-time"},
                },
            })
        );
        // Parameters keep their order only through the map itself.
        assert!(to_gemini(&schema, Use::Parameters).get("propertyOrdering").is_none());
    }

    #[test]
    fn refs_unions_and_consts() {
        let schema = json!({
            "type": "object",
            "$defs": {"Step": {"type": "object", "properties": {"say": {"const": "hi"}}, "additionalProperties": false}},
            "properties": {
                "first": {"$ref": "#/$defs/Step", "description": "the first step"},
                "wrapped": {"allOf": [{"$ref": "#/$defs/Step"}]},
                "either": {"oneOf": [{"type": "string"}, {"type": "number"}]},
                "multi": {"type": ["string", "integer"], "maxLength": 3},
                "remote": {"$ref": "https://example.com/schema.json"},
                "mixed_enum": {"enum": [1, "a"]},
            },
        });
        let out = to_gemini(&schema, Use::Parameters);
        let p = &out["properties"];
        assert_eq!(
            p["first"],
            json!({"type": "OBJECT", "description": "the first step", "properties": {"say": {"enum": ["hi"]}}})
        );
        assert_eq!(
            p["wrapped"],
            json!({"type": "OBJECT", "properties": {"say": {"enum": ["hi"]}}})
        );
        assert_eq!(p["either"], json!({"anyOf": [{"type": "STRING"}, {"type": "NUMBER"}]}));
        assert_eq!(
            p["multi"],
            json!({"anyOf": [{"type": "STRING", "maxLength": 3}, {"type": "INTEGER", "maxLength": 3}]})
        );
        assert_eq!(p["remote"], json!({}));
        assert_eq!(p["mixed_enum"], json!({}));
        assert!(out.get("$defs").is_none());
    }

    #[test]
    fn recursive_schemas_are_cut() {
        let schema = json!({
            "$defs": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}},
            "$ref": "#/$defs/Node",
        });
        let out = to_gemini(&schema, Use::Response);
        let mut depth = 0;
        let mut node = &out;
        while let Some(next) = node.get("properties").and_then(|p| p.get("next")) {
            node = next;
            depth += 1;
        }
        assert!(depth > 2 && depth <= MAX_DEPTH, "{depth}");
    }

    #[test]
    fn empty_parameter_objects() {
        assert!(is_empty_object(&to_gemini(
            &json!({"type": "object", "properties": {}}),
            Use::Parameters
        )));
        assert!(is_empty_object(&to_gemini(&json!({"type": "object"}), Use::Parameters)));
        assert!(!is_empty_object(&to_gemini(
            &json!({"type": "object", "properties": {"a": {"type": "string"}}}),
            Use::Parameters
        )));
    }
}
