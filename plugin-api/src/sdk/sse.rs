//! Server-sent events framing for stream decoders, push-based: feed byte fragments split
//! anywhere, get events.
//!
//! Follows the WHATWG "interpreting an event stream" rules: lines end with LF, CRLF or CR
//! (a CRLF split between two fragments is one line end); a blank line dispatches the event;
//! `:` lines are comments (keep-alives); `data` lines accumulate joined by LF; `event` names
//! the event; one space after the colon is dropped; a BOM at the very start is skipped; `id`,
//! `retry` and unknown fields are ignored (they serve reconnection, which a decoder never
//! does). An event without data lines is no event.
//!
//! Two deliberate departures, both for an upstream that ends badly: the end of input
//! dispatches a pending event (the spec drops it, but an answer's last event must not be lost
//! to a missing blank line), and an event larger than the limit is dropped and reported as
//! [`SseEvent::Oversized`] instead of growing memory without bound.
//!
//! Bytes are kept as bytes: the event data is typically JSON forwarded or checked by a JSON
//! parser, so a UTF-8 sequence split across fragments needs no special care. Buffers are
//! reused, so a stream allocates nothing once they have grown to its event size.
//!
//! ```
//! use switchyard_plugin_api::sdk::sse::{SseEvent, SseParser};
//!
//! let mut parser = SseParser::new();
//! let mut seen = Vec::new();
//! let mut on_event = |event: SseEvent<'_>| {
//!     if let SseEvent::Message { event_type, data } = event {
//!         seen.push((event_type.to_vec(), data.to_vec()));
//!     }
//! };
//! parser.feed(b"event: delta\r\ndata: {\"text\":", &mut on_event);
//! parser.feed(b"\"hi\"}\r\n\r\n: keep-alive\r\n\r\ndata: [DONE]", &mut on_event);
//! parser.finish(&mut on_event);
//! assert_eq!(
//!     seen,
//!     [
//!         (b"delta".to_vec(), b"{\"text\":\"hi\"}".to_vec()),
//!         (b"message".to_vec(), b"[DONE]".to_vec()),
//!     ]
//! );
//! ```

/// What the parser hands its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SseEvent<'a> {
    /// A dispatched event.
    Message {
        /// The value of its last `event` field; `message` when it had none (as in the spec).
        event_type: &'a [u8],
        /// Its data lines joined by LF.
        data: &'a [u8],
    },
    /// An event over the size limit was dropped.
    Oversized,
}

/// The limit [`SseParser::new`] uses: far above any chat completion event, and a bound on what
/// a misbehaving upstream can make a decoder buffer.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 16 << 20;

/// The type of an event without an `event` field.
const DEFAULT_EVENT_TYPE: &[u8] = b"message";

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// An incremental event-stream parser; see the [module documentation](self) for the rules.
#[derive(Debug)]
pub struct SseParser {
    /// The unterminated tail of the last fragment.
    partial_line: Vec<u8>,
    /// The last fragment ended with CR: an LF starting the next one belongs to it.
    after_cr: bool,
    /// The current line outgrew the limit; drop bytes until its end.
    skipping_line: bool,
    event: EventBuffer,
}

#[derive(Debug)]
struct EventBuffer {
    /// Data lines, each followed by LF (as in the spec's data buffer).
    data: Vec<u8>,
    /// The last `event` field's value (empty: none).
    event_type: Vec<u8>,
    oversized: bool,
    at_stream_start: bool,
    max_bytes: usize,
}

impl Default for SseParser {
    fn default() -> SseParser {
        SseParser::new()
    }
}

impl SseParser {
    /// A parser for one stream, with the [`DEFAULT_MAX_EVENT_BYTES`] limit.
    pub fn new() -> SseParser {
        SseParser::with_limit(DEFAULT_MAX_EVENT_BYTES)
    }

    /// A parser for one stream that drops (and reports) events over `max_event_bytes`.
    pub fn with_limit(max_event_bytes: usize) -> SseParser {
        SseParser {
            partial_line: Vec::new(),
            after_cr: false,
            skipping_line: false,
            event: EventBuffer {
                data: Vec::new(),
                event_type: Vec::new(),
                oversized: false,
                at_stream_start: true,
                max_bytes: max_event_bytes,
            },
        }
    }

    /// The size over which an event is dropped and reported as [`SseEvent::Oversized`].
    pub fn max_event_bytes(&self) -> usize {
        self.event.max_bytes
    }

    /// Consumes one fragment, calling `on_event` for every event it completes.
    pub fn feed(&mut self, mut bytes: &[u8], on_event: &mut impl FnMut(SseEvent<'_>)) {
        // Only a non-empty fragment can tell whether a CR at the end of the last one was half
        // of a CRLF.
        if self.after_cr && !bytes.is_empty() {
            self.after_cr = false;
            if bytes[0] == b'\n' {
                bytes = &bytes[1..];
            }
        }
        // memchr scans a word (or a vector) at a time: line search is most of the parser's work.
        while let Some(end) = memchr::memchr2(b'\n', b'\r', bytes) {
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
            let verdict = self.event.unfinished_line(&self.partial_line);
            if !matches!(verdict, Unfinished::Keep) {
                // This line is the stream's first no longer: a BOM on a later line is data.
                self.event.at_stream_start = false;
                self.partial_line.clear();
                self.skipping_line = true;
            }
            if matches!(verdict, Unfinished::Oversized) {
                self.event.overflow();
            }
        }
    }

    /// The input ended: a pending line and event count as terminated.
    pub fn finish(&mut self, on_event: &mut impl FnMut(SseEvent<'_>)) {
        self.after_cr = false;
        if !self.skipping_line && !self.partial_line.is_empty() {
            self.event.line(&self.partial_line, on_event);
        }
        self.skipping_line = false;
        self.partial_line.clear();
        self.event.dispatch(on_event);
    }
}

/// What to do with a line whose end has not arrived yet.
enum Unfinished {
    /// Buffer it: it may still be a data or event line within the limit.
    Keep,
    /// A comment or a field the parser ignores: drop its bytes as they come, no buffering.
    Ignore,
    /// A data or event line already past the limit: the event is dropped.
    Oversized,
}

impl EventBuffer {
    /// Judges an unfinished line by the same rules [`EventBuffer::line`] applies to a whole
    /// one (only a data or event value counts against the limit), so whether an event is
    /// dropped never depends on where the stream was split; and only a line that may still
    /// matter is buffered.
    fn unfinished_line(&self, partial: &[u8]) -> Unfinished {
        let line = if self.at_stream_start {
            partial.strip_prefix(BOM).unwrap_or(partial)
        } else {
            partial
        };
        if line.first() == Some(&b':') {
            return Unfinished::Ignore;
        }
        let Some(colon) = memchr::memchr(b':', line) else {
            // No colon yet: a name longer than `event` can only be an ignored field.
            return if line.len() > b"event".len() {
                Unfinished::Ignore
            } else {
                Unfinished::Keep
            };
        };
        let value = &line[colon + 1..];
        let value_len = value.len() - usize::from(value.starts_with(b" "));
        match &line[..colon] {
            b"data" if self.oversized || self.data.len() + value_len + 1 > self.max_bytes => Unfinished::Oversized,
            b"event" if value_len > self.max_bytes => Unfinished::Oversized,
            b"data" | b"event" => Unfinished::Keep,
            _ => Unfinished::Ignore,
        }
    }

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
            // A comment: servers send these as keep-alives.
            return;
        }
        let (name, value) = match memchr::memchr(b':', line) {
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
            b"event" => {
                // The name is buffered too, so it is bounded like the data.
                if value.len() > self.max_bytes {
                    return self.overflow();
                }
                self.event_type.clear();
                self.event_type.extend_from_slice(value);
            }
            // `id` and `retry` serve reconnection, which a decoder never does; unknown fields
            // are ignored by the spec.
            _ => {}
        }
    }

    fn overflow(&mut self) {
        self.data.clear();
        self.oversized = true;
    }

    fn dispatch(&mut self, on_event: &mut impl FnMut(SseEvent<'_>)) {
        if std::mem::take(&mut self.oversized) {
            self.data.clear();
            self.event_type.clear();
            return on_event(SseEvent::Oversized);
        }
        // An event without data lines is no event (e.g. a lone `event:` or `id:` block).
        if self.data.is_empty() {
            self.event_type.clear();
            return;
        }
        self.data.pop(); // the LF after the last data line
        let event_type = if self.event_type.is_empty() {
            DEFAULT_EVENT_TYPE
        } else {
            &self.event_type
        };
        on_event(SseEvent::Message {
            event_type,
            data: &self.data,
        });
        self.data.clear();
        self.event_type.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Eq, Clone)]
    enum Seen {
        /// Event type, data.
        Message(String, String),
        Oversized,
    }

    fn collect(parser: &mut SseParser, fragments: &[&[u8]]) -> Vec<Seen> {
        let mut seen = Vec::new();
        let mut on_event = |e: SseEvent<'_>| {
            seen.push(match e {
                SseEvent::Message { event_type, data } => Seen::Message(
                    String::from_utf8_lossy(event_type).into(),
                    String::from_utf8_lossy(data).into(),
                ),
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

    /// An event without an `event` field.
    fn data(s: &str) -> Seen {
        typed("message", s)
    }

    fn typed(event_type: &str, data: &str) -> Seen {
        Seen::Message(event_type.into(), data.into())
    }

    /// Every rule at once: a BOM, comments (one right after it), LF / CRLF / CR line ends,
    /// named events, an `error` event, ignored `id` and `retry` fields, multi-line data with a
    /// bare `data` line and a second space kept, a lone `event:` block whose name must not
    /// leak into the next event, multi-byte UTF-8 and an unterminated last event.
    const MIXED: &[u8] = b"\xEF\xBB\xBF: hello\r\n\r\n\
        event: message_start\r\ndata: {\"a\":\"\xC3\xA9\xE2\x9C\x93\"}\r\n\r\n\
        event: error\rdata: boom\r\r: comment\n\
        id: 7\nretry: 10\ndata:first\ndata\ndata:  spaced\n\n\
        event: lonely\n\n:keep-alive\n:\n\ndata: after\n\n\
        event: ping\rdata: {\"type\": \"ping\"}\r\n\r\n\
        data: [DONE]\n\nevent: message_stop\ndata: tail";

    fn mixed_expected() -> Vec<Seen> {
        vec![
            typed("message_start", "{\"a\":\"é✓\"}"),
            typed("error", "boom"),
            data("first\n\n spaced"),
            data("after"),
            typed("ping", "{\"type\": \"ping\"}"),
            data("[DONE]"),
            typed("message_stop", "tail"),
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
        assert_eq!(parse(&[b"data: a\r", b"\ndata: b\r\n\r\n"]), [data("a\nb")]);
        // A CR, then another CR: two line endings.
        assert_eq!(parse(&[b"data: a\r", b"\rdata: b\n\n"]), [data("a"), data("b")]);
        assert_eq!(parse(&[b"data: a\r", b"\r"]), [data("a")]);
    }

    #[test]
    fn event_type_applies_to_one_event_only() {
        assert_eq!(
            parse(&[b"event: error\ndata: x\n\ndata: y\n\nevent: error\nevent: other\ndata: z\n\n"]),
            [typed("error", "x"), data("y"), typed("other", "z")]
        );
        // `event:` with nothing after it, or without a colon, names no type.
        assert_eq!(
            parse(&[b"event:\ndata: x\n\nevent\ndata: y\n\n"]),
            [data("x"), data("y")]
        );
        // Field names are case-sensitive and exact.
        assert_eq!(parse(&[b"Data: x\ndatum: y\nevent:error\n\n"]), []);
    }

    #[test]
    fn bom_is_skipped_at_the_start_only() {
        assert_eq!(parse(&[b"\xEF\xBB", b"\xBFdata: a\n\n"]), [data("a")]);
        assert_eq!(parse(&[b"data: a\n\n\xEF\xBB\xBFdata: b\n\n"]), [data("a")]);
    }

    #[test]
    fn end_of_input_completes_the_last_event() {
        assert_eq!(parse(&[b"data: a\n"]), [data("a")]);
        assert_eq!(parse(&[b"data: a\r"]), [data("a")]);
        assert_eq!(parse(&[b"data: a\r\n"]), [data("a")]);
        assert_eq!(parse(&[b"data: a"]), [data("a")]);
        assert_eq!(parse(&[b"data: a\n\n"]), [data("a")]);
        assert_eq!(parse(&[b"event: error\ndata: a"]), [typed("error", "a")]);
        assert_eq!(parse(&[b": only a comment"]), []);
        assert_eq!(parse(&[b"event: no data"]), []);
        assert_eq!(parse(&[]), []);
    }

    #[test]
    fn oversized_events_are_dropped_and_reported() {
        let mut parser = SseParser::with_limit(16);
        assert_eq!(parser.max_event_bytes(), 16);
        let seen = collect(
            &mut parser,
            &[
                // One long line arriving in pieces…
                b"data: 0123456789",
                b"abcdefghij\ndata: more\n\ndata: ok\n\n",
                // …many short lines adding up…
                b"data: 0123456789\ndata: 0123456789\n\n",
                // …a line that never ends within the limit…
                b"data: 0123456789abcdefghij",
                b"klmnopqrst",
                b"\ndata: more\n\n",
                // …and an event name over the limit.
                b"event: 0123456789abcdefghij\ndata: x\n\n",
            ],
        );
        assert_eq!(
            seen,
            [
                Seen::Oversized,
                data("ok"),
                Seen::Oversized,
                Seen::Oversized,
                Seen::Oversized
            ]
        );
        // The parser is usable afterwards, and no type leaks from the dropped events.
        assert_eq!(collect(&mut parser, &[b"data: fine\n\n"]), [data("fine")]);
        let mut parser = SseParser::with_limit(16);
        assert_eq!(
            collect(&mut parser, &[b"event: error\ndata: 0123456789abcdef\n\ndata: x\n\n"]),
            [Seen::Oversized, data("x")]
        );
    }

    #[test]
    fn buffers_are_reused_once_warm() {
        const EVENT: &[u8] = b"event: content_block_delta\r\ndata: {\"text\":\"0123456789\"}\r\n\r\n";
        type Buffers = [(*const u8, usize); 3];
        fn buffers(p: &SseParser) -> Buffers {
            [&p.partial_line, &p.event.data, &p.event.event_type].map(|b| (b.as_ptr(), b.capacity()))
        }
        /// The event split at every point, then a stream's end; `check` after every call.
        fn run(parser: &mut SseParser, check: &mut impl FnMut(&SseParser)) {
            let mut count = 0;
            let mut on_event = |_: SseEvent<'_>| count += 1;
            for split in 0..=EVENT.len() {
                let (a, b) = EVENT.split_at(split);
                parser.feed(a, &mut on_event);
                check(parser);
                parser.feed(b, &mut on_event);
                check(parser);
            }
            parser.feed(&EVENT[..EVENT.len() - 2], &mut on_event);
            check(parser);
            parser.finish(&mut on_event);
            check(parser);
            assert_eq!(count, EVENT.len() + 2);
        }
        let mut parser = SseParser::new();
        run(&mut parser, &mut |_| {});
        let warm = buffers(&parser);
        run(&mut parser, &mut |p| assert_eq!(buffers(p), warm));
    }
}
