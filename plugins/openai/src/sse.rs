//! Server-sent events framing, push-based: feed byte fragments split anywhere, get events.
//!
//! Follows the WHATWG "interpreting an event stream" rules: lines end with LF, CRLF or CR;
//! a blank line dispatches the event; `:` lines are comments; `data` lines accumulate joined
//! by LF; one space after the colon is dropped; a leading BOM is ignored. Two deliberate
//! departures, both for an upstream that ends badly: the end of input dispatches a pending
//! event (the spec drops it, but a completion's last chunk must not be lost), and an event
//! larger than the limit is dropped and reported instead of growing memory without bound.
//!
//! Bytes are kept as bytes: the chunk JSON is forwarded untouched and checked by the JSON
//! parser, so a UTF-8 sequence split across fragments needs no special care. Buffers are
//! reused, so a stream allocates nothing once they have grown to its event size.

/// What the parser hands its caller.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SseEvent<'a> {
    /// A dispatched event: its data lines joined by LF; `error` when its type is `error`.
    Message { data: &'a [u8], error: bool },
    /// An event over the size limit was dropped.
    Oversized,
}

/// Far above any chat chunk; a bound on what a misbehaving upstream can make us buffer.
pub(crate) const MAX_EVENT_BYTES: usize = 16 << 20;

const BOM: &[u8] = b"\xEF\xBB\xBF";

pub(crate) struct SseParser {
    /// The unterminated tail of the last fragment.
    partial_line: Vec<u8>,
    /// The last fragment ended with CR: an LF starting the next one belongs to it.
    after_cr: bool,
    /// The current line outgrew the limit; drop bytes until its end.
    skipping_line: bool,
    event: EventBuffer,
}

struct EventBuffer {
    /// Data lines, each followed by LF (as in the spec's data buffer).
    data: Vec<u8>,
    error: bool,
    oversized: bool,
    at_stream_start: bool,
    max_bytes: usize,
}

impl SseParser {
    pub(crate) fn new() -> SseParser {
        SseParser::with_limit(MAX_EVENT_BYTES)
    }

    pub(crate) fn with_limit(max_event_bytes: usize) -> SseParser {
        SseParser {
            partial_line: Vec::new(),
            after_cr: false,
            skipping_line: false,
            event: EventBuffer {
                data: Vec::new(),
                error: false,
                oversized: false,
                at_stream_start: true,
                max_bytes: max_event_bytes,
            },
        }
    }

    /// Consumes one fragment, calling `on_event` for every event it completes.
    pub(crate) fn feed(&mut self, mut bytes: &[u8], on_event: &mut impl FnMut(SseEvent<'_>)) {
        // Only a non-empty fragment can tell whether a CR at the end of the last one was half
        // of a CRLF.
        if self.after_cr && !bytes.is_empty() {
            self.after_cr = false;
            if bytes[0] == b'\n' {
                bytes = &bytes[1..];
            }
        }
        while let Some(end) = bytes.iter().position(|&b| b == b'\n' || b == b'\r') {
            let line = &bytes[..end];
            let crlf = bytes[end] == b'\r' && bytes.get(end + 1) == Some(&b'\n');
            self.after_cr = bytes[end] == b'\r' && end + 1 == bytes.len();
            bytes = &bytes[end + if crlf { 2 } else { 1 }..];

            if self.skipping_line {
                self.skipping_line = false;
                self.partial_line.clear();
            } else if self.partial_line.is_empty() {
                // The common case: the whole line is in this fragment, no copy needed.
                self.event.line(line, on_event);
            } else {
                self.partial_line.extend_from_slice(line);
                self.event.line(&self.partial_line, on_event);
                self.partial_line.clear();
            }
        }
        if !bytes.is_empty() && !self.skipping_line {
            self.partial_line.extend_from_slice(bytes);
            if self.partial_line.len() + self.event.data.len() > self.event.max_bytes {
                self.partial_line.clear();
                self.skipping_line = true;
                self.event.overflow();
            }
        }
    }

    /// The input ended: a pending line and event count as terminated.
    pub(crate) fn finish(&mut self, on_event: &mut impl FnMut(SseEvent<'_>)) {
        self.after_cr = false;
        if !self.skipping_line && !self.partial_line.is_empty() {
            self.event.line(&self.partial_line, on_event);
        }
        self.skipping_line = false;
        self.partial_line.clear();
        self.event.dispatch(on_event);
    }
}

impl EventBuffer {
    fn line(&mut self, line: &[u8], on_event: &mut impl FnMut(SseEvent<'_>)) {
        let line = if std::mem::take(&mut self.at_stream_start) {
            line.strip_prefix(BOM).unwrap_or(line)
        } else {
            line
        };
        if line.is_empty() {
            return self.dispatch(on_event);
        }
        if line[0] == b':' {
            // A comment: OpenAI-compatible servers send these as keep-alives.
            return;
        }
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        match name {
            b"data" => {
                if self.oversized {
                    return;
                }
                if self.data.len() + value.len() + 1 > self.max_bytes {
                    return self.overflow();
                }
                self.data.extend_from_slice(value);
                self.data.push(b'\n');
            }
            b"event" => self.error = value == b"error",
            // `id` and `retry` serve reconnection, which a completion stream never does;
            // unknown fields are ignored by the spec.
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
        // An event without data lines is no event (e.g. a lone `event:` or `id:` block).
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

    fn collect(parser: &mut SseParser, fragments: &[&[u8]]) -> Vec<Seen> {
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
        collect(&mut SseParser::new(), fragments)
    }

    fn data(s: &str) -> Seen {
        Seen::Data(s.into())
    }

    const MIXED: &[u8] = b"\xEF\xBB\xBF: hello\r\n\r\ndata: {\"a\":\"\xC3\xA9\"}\r\n\r\n\
        event: error\rdata: boom\r\rid: 7\nretry: 10\ndata:first\ndata\ndata:  spaced\n\n:keep-alive\n\n\
        data: [DONE]\n\ndata: tail";

    fn mixed_expected() -> Vec<Seen> {
        vec![
            data("{\"a\":\"é\"}"),
            Seen::Error("boom".into()),
            data("first\n\n spaced"),
            data("[DONE]"),
            data("tail"),
        ]
    }

    #[test]
    fn whatwg_rules() {
        assert_eq!(parse(&[MIXED]), mixed_expected());
    }

    #[test]
    fn every_split_point_gives_the_same_events() {
        for split in 0..=MIXED.len() {
            let (a, b) = MIXED.split_at(split);
            assert_eq!(parse(&[a, b]), mixed_expected(), "split at {split}");
            assert_eq!(
                parse(&[a, b"", b]),
                mixed_expected(),
                "split at {split} with an empty fragment"
            );
        }
        let bytes: Vec<&[u8]> = MIXED.chunks(1).collect();
        assert_eq!(parse(&bytes), mixed_expected());
    }

    #[test]
    fn line_endings() {
        assert_eq!(
            parse(&[b"data: a\r\n\r\ndata: b\r\rdata: c\n\n"]),
            [data("a"), data("b"), data("c")]
        );
        // A CR that ends a fragment, then an LF: one line ending, not a blank line.
        assert_eq!(parse(&[b"data: a\r", b"\ndata: b\n\n"]), [data("a\nb")]);
    }

    #[test]
    fn event_type_applies_to_one_event_only() {
        assert_eq!(
            parse(&[b"event: error\ndata: x\n\ndata: y\n\nevent: error\nevent: message\ndata: z\n\n"]),
            [Seen::Error("x".into()), data("y"), data("z")]
        );
        // Field names are case-sensitive and exact.
        assert_eq!(parse(&[b"Data: x\ndatum: y\nevent:error\n\n"]), []);
    }

    #[test]
    fn end_of_input_completes_the_last_event() {
        assert_eq!(parse(&[b"data: a\n"]), [data("a")]);
        assert_eq!(parse(&[b"data: a\r"]), [data("a")]);
        assert_eq!(parse(&[b"data: a\n\n"]), [data("a")]);
        assert_eq!(parse(&[b": only a comment"]), []);
        assert_eq!(parse(&[]), []);
    }

    #[test]
    fn oversized_events_are_dropped_and_reported() {
        let mut parser = SseParser::with_limit(16);
        let seen = collect(
            &mut parser,
            &[
                // One long line arriving in pieces…
                b"data: 0123456789",
                b"abcdefghij\ndata: more\n\ndata: ok\n\n",
                // …many short lines adding up…
                b"data: 0123456789\ndata: 0123456789\n\n",
                // …and a line that never ends within the limit.
                b"data: 0123456789abcdefghij",
                b"klmnopqrst",
                b"\ndata: more\n\n",
            ],
        );
        assert_eq!(seen, [Seen::Oversized, data("ok"), Seen::Oversized, Seen::Oversized]);
        // The parser is usable afterwards.
        assert_eq!(collect(&mut parser, &[b"data: fine\n\n"]), [data("fine")]);
    }
}
