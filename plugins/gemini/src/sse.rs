//! Server-sent events framing, push-based: byte fragments split anywhere in, `data` payloads out.
//!
//! `streamGenerateContent?alt=sse` sends one `data:` line per `GenerateContentResponse`, events
//! separated by a blank line (Google's servers end lines with CRLF). The parser follows the
//! WHATWG event-stream rules — LF, CRLF or CR line ends, `:` comments, multi-line `data` joined
//! by LF, one space after the colon dropped, a leading BOM ignored — with two departures for an
//! upstream that ends badly: the end of input dispatches a pending event, and an event over the
//! size limit is dropped and reported instead of growing memory without bound.
//!
//! Gemini sends no event types, so `event`, `id` and `retry` fields are ignored. Bytes stay
//! bytes (the JSON parser checks UTF-8), so a character split across fragments needs no care,
//! and the buffers are reused: a stream allocates nothing once they fit its largest event.

/// What the parser hands its caller.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SseEvent<'a> {
    /// A dispatched event's data lines, joined by LF.
    Data(&'a [u8]),
    /// An event over the size limit was dropped.
    Oversized,
}

/// Far above any `GenerateContentResponse` fragment; bounds what a broken upstream can make us hold.
pub(crate) const MAX_EVENT_BYTES: usize = 16 << 20;

const BOM: &[u8] = b"\xEF\xBB\xBF";

pub(crate) struct SseParser {
    /// The unterminated tail of the previous fragment.
    line: Vec<u8>,
    /// The previous fragment ended with CR, so an LF opening the next one completes that line end.
    pending_cr: bool,
    /// The current line went over the limit: its bytes are dropped until it ends.
    discarding: bool,
    /// Data lines of the current event, each followed by LF.
    data: Vec<u8>,
    /// The current event went over the limit.
    oversized: bool,
    /// Nothing has been read yet (a BOM may come first).
    at_start: bool,
    limit: usize,
}

impl SseParser {
    pub(crate) fn new() -> SseParser {
        SseParser::with_limit(MAX_EVENT_BYTES)
    }

    pub(crate) fn with_limit(limit: usize) -> SseParser {
        SseParser {
            line: Vec::new(),
            pending_cr: false,
            discarding: false,
            data: Vec::new(),
            oversized: false,
            at_start: true,
            limit,
        }
    }

    /// Consumes one fragment, calling `emit` for each event it completes.
    pub(crate) fn feed(&mut self, mut bytes: &[u8], emit: &mut impl FnMut(SseEvent<'_>)) {
        if self.pending_cr && !bytes.is_empty() {
            self.pending_cr = false;
            if bytes[0] == b'\n' {
                bytes = &bytes[1..];
            }
        }
        while let Some(at) = bytes.iter().position(|&b| b == b'\n' || b == b'\r') {
            let ending = bytes[at];
            let line = &bytes[..at];
            let width = if ending == b'\r' && bytes.get(at + 1) == Some(&b'\n') {
                2
            } else {
                1
            };
            self.pending_cr = ending == b'\r' && at + 1 == bytes.len();
            bytes = &bytes[at + width..];

            if std::mem::take(&mut self.discarding) {
                self.line.clear();
            } else if self.line.is_empty() {
                // Usual case: the line lies whole in this fragment and is read in place.
                self.on_line(line, emit);
            } else {
                let mut joined = std::mem::take(&mut self.line);
                joined.extend_from_slice(line);
                self.on_line(&joined, emit);
                joined.clear();
                self.line = joined;
            }
        }
        if !bytes.is_empty() && !self.discarding {
            self.line.extend_from_slice(bytes);
            if self.line.len() + self.data.len() > self.limit {
                self.line.clear();
                self.discarding = true;
                self.overflow();
            }
        }
    }

    /// The input ended: a pending line and a pending event count as terminated.
    pub(crate) fn finish(&mut self, emit: &mut impl FnMut(SseEvent<'_>)) {
        self.pending_cr = false;
        if !std::mem::take(&mut self.discarding) && !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.on_line(&line, emit);
        }
        self.line.clear();
        self.dispatch(emit);
    }

    fn on_line(&mut self, line: &[u8], emit: &mut impl FnMut(SseEvent<'_>)) {
        let line = if std::mem::take(&mut self.at_start) {
            line.strip_prefix(BOM).unwrap_or(line)
        } else {
            line
        };
        if line.is_empty() {
            return self.dispatch(emit);
        }
        if line[0] == b':' {
            return; // a comment (keep-alive)
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        if field != b"data" || self.oversized {
            return;
        }
        if self.data.len() + value.len() + 1 > self.limit {
            return self.overflow();
        }
        self.data.extend_from_slice(value);
        self.data.push(b'\n');
    }

    fn overflow(&mut self) {
        self.data.clear();
        self.oversized = true;
    }

    fn dispatch(&mut self, emit: &mut impl FnMut(SseEvent<'_>)) {
        if std::mem::take(&mut self.oversized) {
            self.data.clear();
            return emit(SseEvent::Oversized);
        }
        if self.data.is_empty() {
            return; // no data lines: no event
        }
        self.data.pop(); // the LF after the last data line
        emit(SseEvent::Data(&self.data));
        self.data.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Eq)]
    enum Seen {
        Data(String),
        Oversized,
    }

    fn run(parser: &mut SseParser, fragments: &[&[u8]]) -> Vec<Seen> {
        let mut seen = Vec::new();
        let mut emit = |e: SseEvent<'_>| {
            seen.push(match e {
                SseEvent::Data(d) => Seen::Data(String::from_utf8_lossy(d).into_owned()),
                SseEvent::Oversized => Seen::Oversized,
            })
        };
        for fragment in fragments {
            parser.feed(fragment, &mut emit);
        }
        parser.finish(&mut emit);
        seen
    }

    fn parse(fragments: &[&[u8]]) -> Vec<Seen> {
        run(&mut SseParser::new(), fragments)
    }

    fn data(s: &str) -> Seen {
        Seen::Data(s.to_string())
    }

    /// BOM, comments, CRLF/CR/LF line ends, multi-line data, ignored fields, multi-byte UTF-8
    /// and an unterminated last event.
    const SAMPLE: &[u8] = b"\xEF\xBB\xBF: ping\r\n\r\ndata: {\"text\":\"\xE2\x82\xAC\"}\r\n\r\n\
        event: message\rdata: two\r\rid: 9\nretry: 5\ndata:a\ndata\ndata:  b\n\n:\n\ndata: last";

    fn sample_events() -> Vec<Seen> {
        vec![data("{\"text\":\"€\"}"), data("two"), data("a\n\n b"), data("last")]
    }

    #[test]
    fn event_stream_rules() {
        assert_eq!(parse(&[SAMPLE]), sample_events());
    }

    #[test]
    fn any_split_gives_the_same_events() {
        for at in 0..=SAMPLE.len() {
            let (a, b) = SAMPLE.split_at(at);
            assert_eq!(parse(&[a, b]), sample_events(), "split at {at}");
            assert_eq!(
                parse(&[a, b"", b]),
                sample_events(),
                "split at {at}, empty fragment between"
            );
        }
        let bytes: Vec<&[u8]> = SAMPLE.chunks(1).collect();
        assert_eq!(parse(&bytes), sample_events());
    }

    #[test]
    fn cr_then_lf_across_fragments_is_one_line_end() {
        assert_eq!(parse(&[b"data: a\r", b"\ndata: b\r\n\r\n"]), [data("a\nb")]);
        assert_eq!(parse(&[b"data: a\r", b"\r"]), [data("a")]);
    }

    #[test]
    fn end_of_input_completes_the_last_event() {
        assert_eq!(parse(&[b"data: x\r\n"]), [data("x")]);
        assert_eq!(parse(&[b"data: x"]), [data("x")]);
        assert_eq!(parse(&[b": only a comment"]), []);
        assert_eq!(parse(&[]), []);
    }

    #[test]
    fn oversized_events_are_dropped_and_the_parser_recovers() {
        let mut parser = SseParser::with_limit(16);
        let seen = run(
            &mut parser,
            &[
                b"data: 0123456789",
                b"abcdefghij\ndata: more\n\ndata: ok\n\n",
                b"data: 0123456789\ndata: 0123456789\n\n",
                b"data: 0123456789abcdefghij",
                b"klmnop",
                b"\n\n",
            ],
        );
        assert_eq!(seen, [Seen::Oversized, data("ok"), Seen::Oversized, Seen::Oversized]);
        assert_eq!(run(&mut parser, &[b"data: fine\n\n"]), [data("fine")]);
    }
}
