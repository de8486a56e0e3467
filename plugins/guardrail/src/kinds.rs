//! The redaction kinds: what each matches, what confirms a match, and how much trailing stream text a
//! match could still need (see `Hold`).

use regex::Regex;

/// Characters an API key (or a token) is made of: a key glued to one of these is part of a longer word.
fn is_key_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

fn is_email_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-' | b'@')
}

fn is_card_char(b: u8) -> bool {
    b.is_ascii_digit() || b == b' ' || b == b'-'
}

fn is_email_start(b: u8) -> bool {
    is_email_char(b) && b != b'@'
}

fn is_digit(b: u8) -> bool {
    b.is_ascii_digit()
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'+' | b'/' | b'-' | b'=')
}

// Bounded repetitions keep every built-in match shorter than its `Hold::Run::max`.
const EMAIL: &str = r"[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.){1,8}[A-Za-z]{2,24}\b";
const EMAIL_MAX: usize = 64 + 1 + 8 * 64 + 24 + 1;
// 13 to 19 digits, single spaces or dashes between them; the Luhn check decides.
const CARD: &str = r"\b[0-9](?:[ -]?[0-9]){12,18}\b";
const CARD_MAX: usize = 19 + 18 + 1;
const API_KEY: &str = concat!(
    r"sk-ant-(?:api|admin)[0-9]{2}-[A-Za-z0-9_-]{20,200}",
    r"|sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,200}",
    r"|AIza[0-9A-Za-z_-]{35}",
    r"|AKIA[0-9A-Z]{16}",
    r"|gh[pousr]_[A-Za-z0-9]{36,251}",
    r"|github_pat_[A-Za-z0-9_]{22,251}",
    r"|xox[bp]-[A-Za-z0-9-]{10,200}",
    r"|eyJ[A-Za-z0-9_-]{10,1000}\.eyJ[A-Za-z0-9_-]{10,1000}\.[A-Za-z0-9_-]{10,1000}",
    r"|[Bb]earer[ \t]{1,4}[A-Za-z0-9._~+/-]{20,500}={0,2}",
);
const API_KEY_MAX: usize = 3 * 1000 + 10;
const BEARER: &str = "bearer";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Email,
    CreditCard,
    ApiKey,
    Regex,
}

impl Kind {
    pub(crate) fn parse(entry: &str) -> Option<(Kind, &str)> {
        match entry {
            "email" => Some((Kind::Email, EMAIL)),
            "credit_card" => Some((Kind::CreditCard, CARD)),
            "api_key" => Some((Kind::ApiKey, API_KEY)),
            _ => entry.strip_prefix("regex:").map(|p| (Kind::Regex, p)),
        }
    }

    pub(crate) fn marker(self) -> &'static str {
        match self {
            Kind::Email => "[REDACTED:email]",
            Kind::CreditCard => "[REDACTED:credit_card]",
            Kind::ApiKey => "[REDACTED:api_key]",
            Kind::Regex => "[REDACTED:regex]",
        }
    }

    /// How far back from the end of unreleased stream text a match of this kind could still start.
    pub(crate) fn hold(self, regex_max_match: usize) -> Hold {
        match self {
            Kind::Email => Hold::Run {
                is_char: is_email_char,
                is_start: is_email_start,
                max: EMAIL_MAX,
                bearer: false,
            },
            Kind::CreditCard => Hold::Run {
                is_char: is_card_char,
                is_start: is_digit,
                max: CARD_MAX,
                bearer: false,
            },
            Kind::ApiKey => Hold::Run {
                is_char: is_token_char,
                is_start: is_alnum,
                max: API_KEY_MAX,
                bearer: true,
            },
            Kind::Regex => Hold::Fixed(regex_max_match),
        }
    }
}

/// A compiled redaction rule.
pub(crate) struct Redactor {
    pub(crate) kind: Kind,
    pub(crate) re: Regex,
}

impl Redactor {
    /// Whether `text` could hold a match at all: the email regex has no literal prefix for the regex
    /// crate to skip ahead with, so text without an `@` (nearly every stream chunk) skips it here.
    pub(crate) fn may_match(&self, text: &str) -> bool {
        match self.kind {
            Kind::Email => text.as_bytes().contains(&b'@'),
            _ => true,
        }
    }

    /// The span to replace for a regex match at `start..end` of `hay`, or `None` when the match is not
    /// really of this kind (Luhn failure, a key glued to a longer word, a key-shaped word without digits).
    pub(crate) fn confirm(&self, hay: &str, start: usize, end: usize) -> Option<(usize, usize)> {
        let bytes = hay.as_bytes();
        let text = &bytes[start..end];
        match self.kind {
            Kind::Email | Kind::Regex => Some((start, end)),
            Kind::CreditCard => luhn(text).then_some((start, end)),
            Kind::ApiKey => {
                let glued_before = start > 0 && is_key_char(bytes[start - 1]);
                let glued_after = bytes.get(end).is_some_and(|&b| is_key_char(b));
                if glued_before || glued_after || !text.iter().any(u8::is_ascii_digit) {
                    return None;
                }
                // "Bearer <token>": only the token is the secret.
                if text.len() > BEARER.len() && text[..BEARER.len()].eq_ignore_ascii_case(BEARER.as_bytes()) {
                    let token = BEARER.len()
                        + text[BEARER.len()..]
                            .iter()
                            .take_while(|b| b.is_ascii_whitespace())
                            .count();
                    return Some((start + token, end));
                }
                Some((start, end))
            }
        }
    }
}

/// The Luhn checksum over the digits of `text` (separators skipped).
pub(crate) fn luhn(text: &[u8]) -> bool {
    let mut sum = 0u32;
    let mut double = false;
    for d in text
        .iter()
        .rev()
        .filter(|b| b.is_ascii_digit())
        .map(|b| u32::from(b - b'0'))
    {
        sum += if double {
            if d * 2 > 9 { d * 2 - 9 } else { d * 2 }
        } else {
            d
        };
        double = !double;
    }
    sum.is_multiple_of(10)
}

/// How much trailing text a stream must hold back for one kind.
#[derive(Clone, Copy)]
pub(crate) enum Hold {
    /// Matches are made only of `is_char` bytes (all ASCII) and are at most `max` bytes long, so only
    /// the trailing run of such bytes (at most `max` of them) can still grow into a match.
    /// `bearer`: a run right after "Bearer " is held together with that word.
    /// `is_start`: the bytes a match can begin with (a run's leading separators are released).
    Run {
        is_char: fn(u8) -> bool,
        is_start: fn(u8) -> bool,
        max: usize,
        bearer: bool,
    },
    /// Custom regexes: any text may belong to a match; hold the last N bytes.
    Fixed(usize),
}

impl Hold {
    /// The earliest byte of `buf[from..]` that a match still growing at the end could start at.
    pub(crate) fn start(self, buf: &str, from: usize) -> usize {
        let bytes = buf.as_bytes();
        let len = bytes.len();
        match self {
            Hold::Run {
                is_char,
                is_start,
                max,
                bearer,
            } => {
                let floor = len.saturating_sub(max).max(from);
                let mut r = len;
                while r > floor && is_char(bytes[r - 1]) {
                    r -= 1;
                }
                while r < len && !is_start(bytes[r]) {
                    r += 1;
                }
                if bearer && r > floor {
                    let ws = bytes[floor..r]
                        .iter()
                        .rev()
                        .take_while(|b| matches!(b, b' ' | b'\t'))
                        .count();
                    let word = r - ws;
                    if ws > 0
                        && word >= floor + BEARER.len()
                        && bytes[word - BEARER.len()..word].eq_ignore_ascii_case(BEARER.as_bytes())
                    {
                        r = word - BEARER.len();
                    }
                }
                r
            }
            Hold::Fixed(n) => {
                let mut r = len.saturating_sub(n).max(from);
                while !buf.is_char_boundary(r) {
                    r -= 1;
                }
                r.max(from)
            }
        }
    }
}
