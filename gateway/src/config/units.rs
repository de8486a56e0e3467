//! Human units in the YAML: durations (`500ms`, `30s`, `5m`) and sizes (`32MiB`).

use serde::{Deserialize, Deserializer};
use std::fmt;
use std::time::Duration;

/// A duration written with a unit. Plain numbers are refused (is `30` seconds or
/// milliseconds?), except `0`, which means "off" wherever a timeout may be off.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Dur(pub Duration);

impl fmt::Debug for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl Dur {
    pub const fn secs(s: u64) -> Dur {
        Dur(Duration::from_secs(s))
    }
    pub const fn millis(ms: u64) -> Dur {
        Dur(Duration::from_millis(ms))
    }
    /// `None` for a zero duration ("off").
    pub fn non_zero(self) -> Option<Duration> {
        (!self.0.is_zero()).then_some(self.0)
    }
}

/// Longest duration the config accepts. Every duration ends up added to an instant or turned
/// into milliseconds somewhere; a bound far below any overflow keeps all of that arithmetic
/// safe, and no timeout, cooldown or retention of a gateway needs more than a year.
pub const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

/// Largest size the config accepts (1 TiB), so sizes can be added and cast without wrapping.
pub const MAX_SIZE: u64 = 1 << 40;

pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    let d = humantime::parse_duration(t)
        .map_err(|e| format!("`{t}` is not a duration ({e}); write it with a unit, like 500ms, 30s or 5m"))?;
    if d > MAX_DURATION {
        return Err(format!("`{t}` is longer than the longest duration accepted (366d)"));
    }
    Ok(d)
}

fn bounded_size(n: u64) -> Result<u64, String> {
    if n > MAX_SIZE {
        return Err(format!("{n} bytes is more than the largest size accepted (1TiB)"));
    }
    Ok(n)
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration with a unit, like 500ms, 30s or 5m")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Dur, E> {
                parse_duration(v).map(Dur).map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Dur, E> {
                if v == 0 {
                    Ok(Dur(Duration::ZERO))
                } else {
                    Err(E::custom(format!("`{v}` has no unit; write it like {v}s or {v}ms")))
                }
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Dur, E> {
                match u64::try_from(v) {
                    Ok(u) => self.visit_u64(u),
                    Err(_) => Err(E::custom(format!("`{v}` is negative; a duration must be 0 or more"))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// A byte size: `32MiB`, `512KiB`, `1MB` or a plain number of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    t.parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| format!("`{t}` is not a size ({e}); write it like 32MiB or 512KiB"))
        .and_then(bounded_size)
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Size;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size, like 32MiB")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Size, E> {
                parse_size(v).map(Size).map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Size, E> {
                bounded_size(v).map(Size).map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Size, E> {
                let v = u64::try_from(v).map_err(|_| E::custom("a size cannot be negative"))?;
                self.visit_u64(v)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("30").is_err());
        assert_eq!(parse_duration("366d"), Ok(MAX_DURATION));
        assert!(parse_duration("367d").is_err());
        assert!(parse_duration("500000000y").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("32MiB"), Ok(32 * 1024 * 1024));
        assert_eq!(parse_size("1KiB"), Ok(1024));
        assert_eq!(parse_size("100"), Ok(100));
        assert!(parse_size("lots").is_err());
        assert_eq!(parse_size("1TiB"), Ok(MAX_SIZE));
        assert!(parse_size("2TiB").is_err());
    }
}
