//! The engine every target shares: the corpus, the time budget, the seeded proptest runner,
//! tolerated known bugs, and how a failure is reported and kept.

use crate::known::{self, KnownFailure};
use proptest::strategy::Strategy;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::{self, Debug, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// A broken invariant: which check, and what was seen.
#[derive(Debug, Clone)]
pub struct Violation {
    pub check: &'static str,
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.check, self.detail)
    }
}

pub type Outcome = Result<(), Violation>;

/// `Err(Violation)` for `check`.
pub fn fail(check: &'static str, detail: impl Into<String>) -> Outcome {
    Err(Violation {
        check,
        detail: detail.into(),
    })
}

/// One generated or replayed input of a target.
pub trait FuzzCase: Debug + Clone {
    /// The bytes that belong in the corpus to replay this case.
    fn corpus_bytes(&self) -> Vec<u8>;

    /// The same case with other bytes (what the failure reducer tries).
    fn with_bytes(&self, bytes: Vec<u8>) -> Self;

    /// What else a failure report needs besides the bytes.
    fn describe(&self) -> String {
        String::new()
    }
}

impl FuzzCase for Vec<u8> {
    fn corpus_bytes(&self) -> Vec<u8> {
        self.clone()
    }

    fn with_bytes(&self, bytes: Vec<u8>) -> Self {
        bytes
    }
}

/// A target: its name (the corpus folder), its share of the time budget, how corpus files
/// become cases, what to generate, and the invariants.
pub struct Target<C, S, F, K> {
    name: &'static str,
    /// Fraction of `SWITCHYARD_FUZZ_SECONDS` this target runs for.
    weight: f64,
    from_file: F,
    strategy: S,
    check: K,
    _case: std::marker::PhantomData<C>,
}

impl<C, S, F, K> Target<C, S, F, K>
where
    C: FuzzCase,
    S: Strategy<Value = C>,
    F: Fn(&str, &[u8]) -> Vec<C>,
    K: Fn(&C) -> Outcome,
{
    pub fn new(name: &'static str, weight: f64, from_file: F, strategy: S, check: K) -> Self {
        Target {
            name,
            weight,
            from_file,
            strategy,
            check,
            _case: std::marker::PhantomData,
        }
    }

    /// The invariants, with a panic in the code under test reported as a violation too.
    fn verdict(&self, case: &C) -> Outcome {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (self.check)(case))).unwrap_or_else(|panic| {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".into());
            fail("panic", message)
        })
    }

    /// Cuts bytes out of a failing case for as long as it keeps failing the same check
    /// (proptest's shrinking only undoes mutations; this also shortens the corpus file).
    fn reduce(&self, case: C, known: &[&KnownFailure], deadline: Instant) -> C {
        let Err(first) = self.verdict(&case) else { return case };
        let same = |c: &C| match self.verdict(c) {
            Err(v) => v.check == first.check && !known.iter().any(|k| k.matches(&v)),
            Ok(()) => false,
        };
        let mut best = case;
        let mut bytes = best.corpus_bytes();
        let mut width = bytes.len().div_ceil(2);
        while width > 0 && Instant::now() < deadline {
            let mut cut_any = false;
            let mut at = 0;
            while at < bytes.len() && Instant::now() < deadline {
                let mut shorter = bytes[..at].to_vec();
                shorter.extend_from_slice(&bytes[(at + width).min(bytes.len())..]);
                let candidate = best.with_bytes(shorter.clone());
                if same(&candidate) {
                    (best, bytes, cut_any) = (candidate, shorter, true);
                } else {
                    at += width;
                }
            }
            if !cut_any {
                width /= 2;
            }
        }
        best
    }

    /// Replays the corpus, then fuzzes until the budget is spent; panics on the first
    /// violation that is not a known bug.
    pub fn run(self, corpus: &Corpus) {
        let known = known::for_target(self.name);
        let mut failures = Vec::new();
        let mut reproduced = vec![false; known.len()];
        for entry in &corpus.entries {
            for case in (self.from_file)(&entry.name, &entry.bytes) {
                let Err(v) = self.verdict(&case) else { continue };
                let mut is_known = false;
                for (k, done) in known.iter().zip(reproduced.iter_mut()) {
                    if k.matches(&v) {
                        is_known = true;
                        *done |= k.reproducer == entry.name;
                    }
                }
                if !is_known {
                    failures.push(format!("corpus file {}: {v}", entry.name));
                }
            }
        }
        for (k, done) in known.iter().zip(&reproduced) {
            if !done {
                failures.push(format!(
                    "known bug `{}` ({}) no longer reproduces with corpus file {}: if it is fixed, remove it \
                     from fuzz/tests/fuzz/known.rs",
                    k.check, k.bug, k.reproducer
                ));
            }
        }
        assert!(
            failures.is_empty(),
            "fuzz target `{}`, corpus replay:\n  {}",
            self.name,
            failures.join("\n  ")
        );

        let budget = budget(self.weight);
        let seed = seed();
        let mut runner = TestRunner::new_with_rng(
            Config {
                failure_persistence: None,
                // Shrinking stops when it has had as long as the run itself (at least 10 s).
                max_shrink_time: u32::try_from(budget.as_millis().max(10_000)).unwrap_or(u32::MAX),
                max_shrink_iters: 100_000,
                ..Config::default()
            },
            TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes(seed)),
        );
        let tolerated = RefCell::new(BTreeMap::<&'static str, u64>::new());
        let check = |case: C| -> Result<(), TestCaseError> {
            match self.verdict(&case) {
                Ok(()) => Ok(()),
                Err(v) if known.iter().any(|k| k.matches(&v)) => {
                    *tolerated.borrow_mut().entry(v.check).or_default() += 1;
                    Ok(())
                }
                Err(v) => Err(TestCaseError::fail(v.to_string())),
            }
        };
        let started = Instant::now();
        let mut cases = 0u64;
        while started.elapsed() < budget {
            let tree = match self.strategy.new_tree(&mut runner) {
                Ok(tree) => tree,
                Err(reason) => panic!("fuzz target `{}`: cannot generate a case: {reason}", self.name),
            };
            cases += 1;
            match runner.run_one(tree, check) {
                Ok(_) => {}
                Err(TestError::Fail(_, shrunk)) => {
                    let minimal = self.reduce(shrunk, &known, Instant::now() + REDUCE_TIME);
                    let reason = match self.verdict(&minimal) {
                        Err(v) => v.to_string(),
                        Ok(()) => "(the failure did not repeat)".into(),
                    };
                    let bytes = minimal.corpus_bytes();
                    let saved = save_failure(self.name, &bytes);
                    panic!(
                        "fuzz target `{}` failed after {cases} cases (SWITCHYARD_FUZZ_SEED={seed}):\n{reason}\n\
                         minimal input ({} bytes, saved to {}){}:\n{}",
                        self.name,
                        bytes.len(),
                        saved.display(),
                        minimal.describe(),
                        escape(&bytes, 4096),
                    );
                }
                Err(TestError::Abort(reason)) => panic!("fuzz target `{}` aborted: {reason}", self.name),
            }
        }
        let tolerated = tolerated.into_inner();
        eprintln!(
            "fuzz target `{}`: {} corpus files, {cases} generated cases in {:.1} s (seed {seed}){}",
            self.name,
            corpus.entries.len(),
            started.elapsed().as_secs_f64(),
            if tolerated.is_empty() {
                String::new()
            } else {
                format!("; known bugs hit: {tolerated:?}")
            }
        );
    }
}

/// How long a failure is reduced before it is reported.
const REDUCE_TIME: Duration = Duration::from_secs(10);

/// The files of `fuzz/corpus/<target>/`, sorted by name.
pub struct Corpus {
    pub entries: Vec<CorpusEntry>,
}

pub struct CorpusEntry {
    pub name: String,
    pub bytes: Vec<u8>,
}

impl Corpus {
    pub fn load(target: &str) -> Corpus {
        let dir = corpus_dir().join(target);
        let mut entries: Vec<CorpusEntry> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("corpus folder {}: {e}", dir.display()))
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| CorpusEntry {
                name: e.file_name().to_string_lossy().into_owned(),
                bytes: std::fs::read(e.path()).unwrap_or_else(|err| panic!("{}: {err}", e.path().display())),
            })
            .collect();
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        assert!(!entries.is_empty(), "corpus folder {} is empty", dir.display());
        Corpus { entries }
    }

    /// The contents, for strategies that mutate them.
    pub fn seeds(&self) -> Vec<Vec<u8>> {
        self.entries.iter().map(|e| e.bytes.clone()).collect()
    }
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

/// How long a target of `weight` fuzzes.
fn budget(weight: f64) -> Duration {
    let seconds = match std::env::var("SWITCHYARD_FUZZ_SECONDS") {
        Ok(s) => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .unwrap_or_else(|| panic!("SWITCHYARD_FUZZ_SECONDS must be a number of seconds, not `{s}`")),
        Err(_) if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) => 20.0,
        Err(_) => 3.0,
    };
    Duration::from_secs_f64(seconds * weight)
}

/// `SWITCHYARD_FUZZ_SEED`, else a fresh one: every run explores new cases, and prints its seed.
fn seed() -> u64 {
    if let Ok(s) = std::env::var("SWITCHYARD_FUZZ_SEED") {
        return s
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("SWITCHYARD_FUZZ_SEED must be an unsigned integer, not `{s}`"));
    }
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32)
}

/// ChaCha's 32-byte seed from a u64 (splitmix64 steps, so nearby seeds differ everywhere).
fn seed_bytes(seed: u64) -> [u8; 32] {
    let mut state = seed;
    let mut out = [0u8; 32];
    for word in out.chunks_mut(8) {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        word.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out
}

/// Writes a failing input where a developer can pick it up for the corpus.
fn save_failure(target: &str, bytes: &[u8]) -> PathBuf {
    let dir = switchyard_e2e::paths::target_dir().join("fuzz-failures").join(target);
    // FNV-1a: a stable name, so the same failure found twice is one file.
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    });
    let path = dir.join(format!("failure-{hash:016x}"));
    if let Err(e) = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, bytes)) {
        eprintln!("could not save the failing input to {}: {e}", path.display());
    }
    path
}

/// Bytes as a readable Rust byte-string body, cut after `max` bytes.
pub fn escape(bytes: &[u8], max: usize) -> String {
    let mut s = String::new();
    for &b in bytes.iter().take(max) {
        match b {
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b'\t' => s.push_str("\\t"),
            b'\\' => s.push_str("\\\\"),
            b'"' => s.push_str("\\\""),
            0x20..=0x7e => s.push(char::from(b)),
            _ => {
                let _ = write!(s, "\\x{b:02x}");
            }
        }
    }
    if bytes.len() > max {
        let _ = write!(s, "… ({} more bytes)", bytes.len() - max);
    }
    s
}
