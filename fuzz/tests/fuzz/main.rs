//! The fuzz targets (see the crate documentation): one test each, all in one binary so the
//! gateway and the host are linked once.

mod decoders;
mod harness;
mod json_text;
mod known;
mod mutate;
mod request_parser;
mod sse_parser;
