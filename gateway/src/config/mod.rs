//! The YAML config: schema, units, loading with layering, validation, and errors that name
//! file, line, field and fix.

mod error;
mod load;
mod schema;
mod units;
mod validate;

pub use error::{ConfigError, InvalidConfig, nearest, yaml_line_of};
pub use load::{ConfigSource, EMBEDDED_DEFAULT, Overrides, load};
pub use schema::*;
pub use units::{Dur, Size, parse_duration, parse_size};
