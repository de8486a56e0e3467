//! The thread that owns the log file: every write and flush happens here, never on a request's path.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub(crate) fn spawn(
    file: File,
    lines: Receiver<Vec<u8>>,
    flush_every: Duration,
    failed: Arc<AtomicU64>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("request-log".into())
        .spawn(move || run(BufWriter::new(file), &lines, flush_every, &failed))
}

/// Writes until the queue is closed and empty. Flushes whenever the queue runs empty (so a quiet
/// gateway's lines reach the file at once) and every `flush_every` while it does not.
fn run(mut out: BufWriter<File>, lines: &Receiver<Vec<u8>>, flush_every: Duration, failed: &AtomicU64) {
    let fail = |n: u64| {
        failed.fetch_add(n, Ordering::Relaxed);
    };
    let mut last_flush = Instant::now();
    // Lines written to the buffer but not yet flushed (all lost if the flush fails).
    let mut pending = 0u64;
    while let Ok(first) = lines.recv() {
        let mut next = Some(first);
        while let Some(line) = next {
            match out.write_all(&line) {
                Ok(()) => pending += 1,
                Err(_) => fail(1),
            }
            if last_flush.elapsed() >= flush_every {
                flush(&mut out, &mut pending, fail);
                last_flush = Instant::now();
            }
            next = lines.try_recv().ok();
        }
        flush(&mut out, &mut pending, fail);
        last_flush = Instant::now();
    }
    flush(&mut out, &mut pending, fail);
}

fn flush(out: &mut BufWriter<File>, pending: &mut u64, fail: impl Fn(u64)) {
    if *pending > 0 && out.flush().is_err() {
        fail(*pending);
    }
    *pending = 0;
}
