//! A JSON object split into its top-level members, each value kept as the original text
//! (`RawValue`): what the request parse and the usage move need, without building a value tree.

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::fmt;

/// A member name as it appeared: borrowed when it had no escapes.
#[derive(Debug, Clone)]
pub enum Key<'a> {
    Borrowed(&'a str),
    Owned(String),
}

impl Key<'_> {
    pub fn as_str(&self) -> &str {
        match self {
            Key::Borrowed(s) => s,
            Key::Owned(s) => s,
        }
    }
}

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key::Borrowed(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key::Owned(v.to_string()))
            }
        }
        d.deserialize_str(V)
    }
}

/// The top-level members of a JSON object, in order (duplicates kept), values unparsed.
pub struct Members<'a>(pub Vec<(Key<'a>, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(entry) = map.next_entry::<Key<'de>, &'de RawValue>()? {
                    members.push(entry);
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(V)
    }
}

impl<'a> Members<'a> {
    pub fn parse(json: &'a [u8]) -> serde_json::Result<Members<'a>> {
        switchyard_plugin_api::json::from_bytes(json)
    }

    /// The last member named `name` (later duplicates win, as in every JSON object model the
    /// upstreams use).
    pub fn get(&self, name: &str) -> Option<&'a RawValue> {
        self.0.iter().rev().find(|(k, _)| k.as_str() == name).map(|(_, v)| *v)
    }

    /// Writes the object back, compact, with every member named `name` given `value`, or
    /// `name: value` appended when there is none.
    pub fn write_with(&self, out: &mut Vec<u8>, name: &str, value: &[u8]) {
        out.push(b'{');
        let mut replaced = false;
        for (i, (key, raw)) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            // Writing a &str into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut *out, key.as_str());
            out.push(b':');
            if key.as_str() == name {
                out.extend_from_slice(value);
                replaced = true;
            } else {
                out.extend_from_slice(raw.get().as_bytes());
            }
        }
        if !replaced {
            if !self.0.is_empty() {
                out.push(b',');
            }
            let _ = serde_json::to_writer(&mut *out, name);
            out.push(b':');
            out.extend_from_slice(value);
        }
        out.push(b'}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_keep_order_duplicates_and_raw_text() {
        let m = Members::parse(br#"{"a" : [1, 2], "b\u0041":null,"a":"x"}"#).expect("object");
        let keys: Vec<&str> = m.0.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["a", "bA", "a"]);
        assert_eq!(m.get("a").map(RawValue::get), Some(r#""x""#));
        assert!(m.get("c").is_none());
        assert!(Members::parse(b"[1]").is_err());
        assert!(Members::parse(b"{\"a\":\"\xff\"}").is_err());
    }

    #[test]
    fn write_with_replaces_in_place_or_appends() {
        let m = Members::parse(br#"{"a":1,"u":null,"b":{"c":[]}}"#).expect("object");
        let mut out = Vec::new();
        m.write_with(&mut out, "u", b"{\"t\":3}");
        assert_eq!(out, br#"{"a":1,"u":{"t":3},"b":{"c":[]}}"#);
        let m = Members::parse(b"{}").expect("object");
        let mut out = Vec::new();
        m.write_with(&mut out, "u", b"2");
        assert_eq!(out, br#"{"u":2}"#);
    }
}
