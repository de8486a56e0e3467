//! Byte-level scans of JSON the gateway already holds as valid (a request it parsed, an answer
//! a codec produced): finding a span without building a tree. Shared by the `extra_fields`
//! splices and the cache key's canonical form.

/// The index of the quote that closes the string opened at `open`: the next quote not escaped
/// by an odd run of backslashes (SIMD search for the quotes).
pub fn string_end(json: &[u8], open: usize) -> Option<usize> {
    let mut from = open + 1;
    loop {
        let q = from + memchr::memchr(b'"', json.get(from..)?)?;
        let backslashes = json[from..q].iter().rev().take_while(|b| **b == b'\\').count();
        if backslashes % 2 == 0 {
            return Some(q);
        }
        from = q + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_end_at_their_first_unescaped_quote() {
        assert_eq!(string_end(br#""abc" x"#, 0), Some(4));
        assert_eq!(string_end(br#""a\"b" x"#, 0), Some(5));
        assert_eq!(string_end(br#""a\\" x"#, 0), Some(4));
        assert_eq!(string_end(br#""a\\\"b""#, 0), Some(7));
        assert_eq!(string_end(br#""unterminated"#, 0), None);
    }
}
