//! Tests of the SDK's helpers: an [`Out`] whose host records what is written, as lines.

use super::Out;
use crate::abi::{ByteSlice, Output, slot};
use std::ffi::c_void;

/// Runs `f` with an `Out` and returns what it wrote: `CHUNK <json> flags=<bits>`, `DONE`,
/// `ERROR <status> <message>`, `WARN <text>` (numbers other than chunk flags are left out).
pub(crate) fn record(f: impl FnOnce(&mut Out<'_>)) -> Vec<String> {
    #[derive(Default)]
    struct Host {
        lines: Vec<String>,
        flags: u64,
        status: u64,
    }
    unsafe extern "C" fn put_bytes(host: *mut c_void, slot: u32, a: ByteSlice, _b: ByteSlice) {
        // SAFETY: `host` is the `Host` below, alive for the call; the slices live for the call.
        let (host, a) = unsafe { (&mut *host.cast::<Host>(), a.as_slice()) };
        let a = String::from_utf8_lossy(a);
        let line = match slot {
            slot::CHUNK => format!("CHUNK {a} flags={}", std::mem::take(&mut host.flags)),
            slot::DONE => "DONE".to_string(),
            slot::ERROR => format!("ERROR {} {a}", host.status),
            slot::WARN => format!("WARN {a}"),
            other => format!("SLOT{other} {a}"),
        };
        host.lines.push(line);
    }
    unsafe extern "C" fn put_u64(host: *mut c_void, slot: u32, value: u64) {
        // SAFETY: as in `put_bytes`.
        let host = unsafe { &mut *host.cast::<Host>() };
        match slot {
            slot::CHUNK_FLAGS => host.flags = value,
            slot::ERROR_STATUS => host.status = value,
            _ => {}
        }
    }
    let mut host = Host::default();
    let raw = Output {
        struct_size: std::mem::size_of::<Output>() as u32,
        host: (&raw mut host).cast::<c_void>(),
        put_bytes,
        put_u64,
    };
    // SAFETY: `raw` is a complete Output that outlives the writer.
    let mut out: Out<'_> = unsafe { super::__private::writer(&raw) };
    f(&mut out);
    host.lines
}
