//! Order-preserving, zero-copy JSON objects: only the members the guardrail edits are re-encoded, so every
//! other field reaches the upstream (or the client) byte for byte as it came.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::value::RawValue;

/// A JSON string, borrowed when it holds no escapes.
pub(crate) struct Text<'a>(pub Cow<'a, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// A member value: as it came, or re-encoded by the guardrail.
pub(crate) enum Member<'a> {
    Raw(&'a RawValue),
    Owned(Box<RawValue>),
}

impl Member<'_> {
    pub(crate) fn raw(&self) -> &RawValue {
        match self {
            Member::Raw(r) => r,
            Member::Owned(b) => b,
        }
    }
}

/// A JSON object whose members keep their order and their original bytes.
pub(crate) struct RawObject<'a>(Vec<(Text<'a>, Member<'a>)>);

impl<'a> RawObject<'a> {
    pub(crate) fn get(&self, key: &str) -> Option<&RawValue> {
        self.0.iter().find(|(k, _)| k.0 == key).map(|(_, v)| v.raw())
    }

    /// The borrowed value of `key` (never one the guardrail re-encoded).
    pub(crate) fn get_raw(&self, key: &str) -> Option<&'a RawValue> {
        self.0.iter().find_map(|(k, v)| match v {
            Member::Raw(r) if k.0 == key => Some(*r),
            _ => None,
        })
    }

    /// Replaces `key`'s value, or appends the member when absent.
    pub(crate) fn set(&mut self, key: &'static str, value: Box<RawValue>) {
        match self.0.iter_mut().find(|(k, _)| k.0 == key) {
            Some((_, v)) => *v = Member::Owned(value),
            None => self.0.push((Text(Cow::Borrowed(key)), Member::Owned(value))),
        }
    }
}

impl<'de> Deserialize<'de> for RawObject<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawObject<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some((k, v)) = map.next_entry::<Text<'de>, &'de RawValue>()? {
                    members.push((k, Member::Raw(v)));
                }
                Ok(RawObject(members))
            }
        }
        d.deserialize_map(V)
    }
}

impl Serialize for RawObject<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k.0.as_ref(), v.raw())?;
        }
        map.end()
    }
}

/// Whether a raw value is a JSON string (the only shape the guardrail edits).
pub(crate) fn is_string(raw: &RawValue) -> bool {
    raw.get().starts_with('"')
}

pub(crate) fn is_null(raw: &RawValue) -> bool {
    raw.get() == "null"
}
