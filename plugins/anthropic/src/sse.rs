//! Server-sent events framing, push-based: byte fragments split anywhere in, events out.
//!
//! The WHATWG event-stream rules: a line ends at LF, CRLF or CR; an empty line dispatches the
//! pending event; a line starting with `:` is a comment; `data` values accumulate, joined by
//! LF; one space after the colon is dropped; a BOM at the very start is skipped. Anthropic
//! names every event (`event: content_block_delta`) and repeats the name as the data's `type`,
//! so only the `error` name is kept, for an error event whose data lacks its type.
//!
//! Two deliberate departures, for an upstream that ends badly: the end of input dispatches the
//! pending event (its last event must not be lost to a missing blank line), and an event over
//! the size limit is dropped and reported instead of growing memory without bound.
//!
//! Data stays bytes: the JSON parser checks UTF-8, so a character split across fragments needs
//! no care here. Buffers are reused: once grown to a stream's event size nothing is allocated.

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SseEvent<'a> {
    /// An event's data lines joined by LF; `error` when the event was named `error`.
    Message { data: &'a [u8], error: bool },
    /// An event over the size limit was dropped.
    Oversized,
}

/// Far above any Messages API event; bounds what a misbehaving upstream can make us buffer.
pub(crate) const MAX_EVENT_BYTES: usize = 16 << 20;

const BOM: &[u8] = b"\xEF\xBB\xBF";

pub(crate) struct SseParser {
    /// The unterminated end of the input so far.
    line: Vec<u8>,
    /// The input so far ended with CR: an LF opening the next fragment completes that line end.
    pending_cr: bool,
    /// The current line is over the limit: its bytes are dropped up to its end.
    discarding: bool,
    at_start: bool,
    data: Vec<u8>,
    error: bool,
    oversized: bool,
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
            at_start: true,
            data: Vec::new(),
            error: false,
            oversized: false,
            limit,
        }
    }

    /// Consumes one fragment, calling `on_event` for every event it completes.
    pub(crate) fn feed(&mut self, mut bytes: &[u8], on_event: &mut impl FnMut(SseEvent<'_>)) {
        if self.pending_cr && !bytes.is_empty() {
            self.pending_cr = false;
            if let Some(rest) = bytes.strip_prefix(b"\n") {
                bytes = rest;
            }
        }
        while let Some(end) = bytes.iter().position(|&b| b == b'\n' || b == b'\r') {
            let (line, rest) = bytes.split_at(end);
            bytes = match rest {
                [b'\r', b'\n', tail @ ..] => tail,
                [b'\r'] => {
                    self.pending_cr = true;
                    &[]
                }
                [_, tail @ ..] => tail,
                [] => &[],
            };
            if std::mem::take(&mut self.discarding) {
                self.line.clear();
            } else if self.line.is_empty() {
                // The usual case: the whole line is in this fragment, nothing is copied.
                self.on_line(line, on_event);
            } else {
                let mut joined = std::mem::take(&mut self.line);
                joined.extend_from_slice(line);
                self.on_line(&joined, on_event);
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

    /// The input ended: a pending line and a pending event count as complete.
    pub(crate) fn finish(&mut self, on_event: &mut impl FnMut(SseEvent<'_>)) {
        self.pending_cr = false;
        let line = std::mem::take(&mut self.line);
        if !std::mem::take(&mut self.discarding) && !line.is_empty() {
            self.on_line(&line, on_event);
        }
        self.line = line;
        self.line.clear();
        self.dispatch(on_event);
    }

    fn on_line(&mut self, line: &[u8], on_event: &mut impl FnMut(SseEvent<'_>)) {
        let line = if std::mem::take(&mut self.at_start) {
            line.strip_prefix(BOM).unwrap_or(line)
        } else {
            line
        };
        let Some(&first) = line.first() else {
            return self.dispatch(on_event);
        };
        if first == b':' {
            return;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        match field {
            b"data" if !self.oversized => {
                if self.data.len() + value.len() + 1 > self.limit {
                    return self.overflow();
                }
                self.data.extend_from_slice(value);
                self.data.push(b'\n');
            }
            b"event" => self.error = value == b"error",
            // `id` and `retry` serve reconnection, which a message stream never does; other
            // fields are ignored by the rules.
            _ => {}
        }
    }

    fn overflow(&mut self) {
        self.data.clear();
        self.oversized = true;
    }

    fn dispatch(&mut self, on_event: &mut impl FnMut(SseEvent<'_>)) {
        let error = std::mem::take(&mut self.error);
        if std::mem::take(&mut self.oversized) {
            self.data.clear();
            return on_event(SseEvent::Oversized);
        }
        // A block without data (a lone `event:` line) is no event.
        if self.data.is_empty() {
            return;
        }
        self.data.pop(); // the LF after the last data line
        on_event(SseEvent::Message {
            data: &self.data,
            error,
        });
        self.data.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Eq, Clone)]
    enum Seen {
        Data(String),
        Error(String),
        Oversized,
    }

    fn run(parser: &mut SseParser, fragments: &[&[u8]]) -> Vec<Seen> {
        let mut seen = Vec::new();
        let mut on_event = |e: SseEvent<'_>| {
            seen.push(match e {
                SseEvent::Message { data, error: false } => Seen::Data(String::from_utf8_lossy(data).into()),
                SseEvent::Message { data, error: true } => Seen::Error(String::from_utf8_lossy(data).into()),
                SseEvent::Oversized => Seen::Oversized,
            })
        };
        for fragment in fragments {
            parser.feed(fragment, &mut on_event);
        }
        parser.finish(&mut on_event);
        seen
    }

    fn parse(fragments: &[&[u8]]) -> Vec<Seen> {
        run(&mut SseParser::new(), fragments)
    }

    fn data(s: &str) -> Seen {
        Seen::Data(s.into())
    }

    const STREAM: &[u8] = b"\xEF\xBB\xBFevent: message_start\r\ndata: {\"a\":\"\xE2\x9C\x93\"}\r\n\r\n\
        event: ping\rdata: {\"type\": \"ping\"}\r\r: comment\n\
        event: error\ndata: {\"type\":\"error\"}\n\nid: 1\nretry: 5\ndata:x\ndata\ndata:  y\n\nevent: message_stop\ndata: end";

    fn expected() -> Vec<Seen> {
        vec![
            data("{\"a\":\"\u{2713}\"}"),
            data("{\"type\": \"ping\"}"),
            Seen::Error("{\"type\":\"error\"}".into()),
            data("x\n\n y"),
            data("end"),
        ]
    }

    #[test]
    fn event_stream_rules() {
        assert_eq!(parse(&[STREAM]), expected());
    }

    #[test]
    fn every_split_gives_the_same_events() {
        for split in 0..=STREAM.len() {
            let (a, b) = STREAM.split_at(split);
            assert_eq!(parse(&[a, b]), expected(), "split at {split}");
            assert_eq!(
                parse(&[a, b"", b]),
                expected(),
                "split at {split}, empty fragment between"
            );
        }
        let bytes: Vec<&[u8]> = STREAM.chunks(1).collect();
        assert_eq!(parse(&bytes), expected());
    }

    #[test]
    fn a_cr_ending_one_fragment_and_an_lf_starting_the_next_are_one_line_end() {
        assert_eq!(parse(&[b"data: a\r", b"\ndata: b\n\n"]), [data("a\nb")]);
        assert_eq!(parse(&[b"data: a\r", b"\rdata: b\n\n"]), [data("a"), data("b")]);
    }

    #[test]
    fn the_error_name_holds_for_one_event() {
        assert_eq!(
            parse(&[b"event: error\ndata: x\n\ndata: y\n\nevent: error\nevent: other\ndata: z\n\n"]),
            [Seen::Error("x".into()), data("y"), data("z")]
        );
        assert_eq!(parse(&[b"Data: x\nevent:error\n\n"]), []);
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
                b"\ndata: tail\n\n",
            ],
        );
        assert_eq!(seen, [Seen::Oversized, data("ok"), Seen::Oversized, Seen::Oversized]);
        assert_eq!(run(&mut parser, &[b"data: fine\n\n"]), [data("fine")]);
    }
}
