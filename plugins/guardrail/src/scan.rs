//! Finding the spans to redact, and writing text with those spans replaced.

use crate::kinds::{Kind, Redactor};

/// One span to replace, with the kind whose marker replaces it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hit {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) kind: Kind,
}

/// Fills `hits` with the non-overlapping spans of `hay[from..]` to redact, in text order. Where kinds
/// overlap, the span that starts first wins (the longer one on a tie). `hay[..from]` is context only
/// (the character before a key decides whether it is glued to a word).
pub(crate) fn scan(redactors: &[Redactor], hay: &str, from: usize, hits: &mut Vec<Hit>) {
    hits.clear();
    for r in redactors.iter().filter(|r| r.may_match(&hay[from..])) {
        let mut at = from;
        while at <= hay.len() {
            let Some(m) = r.re.find_at(hay, at) else { break };
            if let Some((start, end)) = r.confirm(hay, m.start(), m.end()) {
                hits.push(Hit {
                    start,
                    end,
                    kind: r.kind,
                });
            }
            at = if m.end() > m.start() {
                m.end()
            } else {
                // An empty match (custom regexes are checked at load, but stay safe): step one char.
                m.end() + hay[m.end()..].chars().next().map_or(1, char::len_utf8)
            };
        }
    }
    if hits.len() > 1 {
        hits.sort_unstable_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
        let mut last_end = 0;
        hits.retain(|h| {
            let keep = h.start >= last_end && h.end > h.start;
            if keep {
                last_end = h.end;
            }
            keep
        });
    }
}

/// Appends `text[from..to]` to `out` with every hit starting before `to` replaced by its marker.
/// Hits must not straddle `to` (callers move `to` past any that would).
pub(crate) fn write_redacted(text: &str, from: usize, to: usize, hits: &[Hit], out: &mut String) {
    let mut pos = from;
    for h in hits.iter().take_while(|h| h.start < to) {
        out.push_str(&text[pos..h.start]);
        out.push_str(h.kind.marker());
        pos = h.end;
    }
    if pos < to {
        out.push_str(&text[pos..to]);
    }
}
