//! The semantic cache's lookup cost: one search of a partition holding 10k and 100k stored
//! conversations, at the mock's 256 dimensions and OpenAI `text-embedding-3-small`'s 1536.
//! Prints one line per case (`entries dims µs_per_lookup`); `bench/run.sh` turns them into
//! report rows. `cargo bench -p switchyard --bench semantic_index`.

use std::hint::black_box;
use std::time::Instant;
use switchyard::cache::CacheId;
use switchyard::cache::semantic::{SemanticIndex, now_ms};

/// A deterministic pseudo-random vector (xorshift), so runs compare.
fn vector(seed: u64, dims: usize) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..dims)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

// The rows are this program's output.
#[allow(clippy::print_stdout)]
fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let partition = CacheId([7; 16]);
    let expires = now_ms() + 3_600_000;
    for dims in [256usize, 1536] {
        for entries in [10_000u64, 100_000] {
            let index = SemanticIndex::new(entries + 1);
            for i in 0..entries {
                let mut id = [0u8; 16];
                id[..8].copy_from_slice(&i.to_le_bytes());
                index.insert(partition, CacheId(id), &vector(i, dims), expires);
            }
            let queries: Vec<Vec<f32>> = (0..16).map(|q| vector(1_000_000 + q, dims)).collect();
            // Warm up, then time: at least 20 lookups and 0.5 s (2 lookups in --quick).
            black_box(index.search(partition, &queries[0], 0.8));
            let (min_n, min_s) = if quick { (2, 0.0) } else { (20, 0.5) };
            let started = Instant::now();
            let mut n = 0usize;
            while n < min_n || started.elapsed().as_secs_f64() < min_s {
                black_box(index.search(partition, black_box(&queries[n % queries.len()]), 0.8));
                n += 1;
            }
            let us = started.elapsed().as_secs_f64() * 1e6 / n as f64;
            println!("{entries} {dims} {us:.1}");
        }
    }
}
