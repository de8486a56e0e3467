//! HTTP/1.1 wire helpers shared by the mock upstream servers (OpenAI, Anthropic, Gemini).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::upstream::RecordedRequest;

/// A 200 whose `content-length` promises `body` but only its first third is sent before
/// the connection closes (a truncated upstream answer). Returns `false`: the connection ends.
pub async fn write_truncated(sock: &mut TcpStream, content_type: &str, body: &[u8]) -> bool {
    let mut out = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body[..body.len() / 3]);
    let _ = sock.write_all(&out).await;
    let _ = sock.flush().await;
    false
}

/// Position of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Reason phrase for the statuses the mocks send.
pub fn status_text(status: u16) -> &'static str {
    match status {
        200 => "OK",
        302 => "Found",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        529 => "Overloaded",
        _ => "Unknown",
    }
}

/// Fragment sizes streamed bodies are cut into (cycled): small and odd, so cuts land mid-line,
/// mid-`data:`, between `\r` and `\n`, and inside multi-byte UTF-8 characters.
pub const FRAGMENTS: [usize; 9] = [1, 7, 2, 31, 3, 64, 5, 13, 120];

/// One chunk of a chunked transfer-encoded body.
pub async fn write_chunk(sock: &mut TcpStream, data: &[u8]) -> bool {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    sock.write_all(&out).await.is_ok() && sock.flush().await.is_ok()
}

/// Writes `bytes` as many small chunks of [`FRAGMENTS`] sizes, pausing now and then so the
/// reader sees them as separate reads.
pub async fn write_fragments(sock: &mut TcpStream, bytes: &[u8]) -> bool {
    let mut pos = 0;
    let mut k = 0;
    while pos < bytes.len() {
        let len = FRAGMENTS[k % FRAGMENTS.len()].min(bytes.len() - pos);
        if !write_chunk(sock, &bytes[pos..pos + len]).await {
            return false;
        }
        pos += len;
        k += 1;
        if k % 8 == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        } else {
            tokio::task::yield_now().await;
        }
    }
    true
}

/// Reads the next request of a keep-alive connection (`buf` carries bytes read past the
/// previous one). `None` when the peer closed, or sent something that is not HTTP/1.1.
pub async fn read_request(sock: &mut TcpStream, buf: &mut Vec<u8>) -> Option<RecordedRequest> {
    let head_end = loop {
        if let Some(p) = find(buf, b"\r\n\r\n") {
            break p;
        }
        if buf.len() > 1 << 20 || !fill(sock, buf).await {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let method = request_line.next().unwrap_or_default().to_owned();
    let path = request_line.next().unwrap_or_default().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        })
        .collect();
    let header = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let start = head_end + 4;
    let chunked = header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let (body, consumed) = if chunked {
        loop {
            match dechunk(&buf[start..]) {
                Ok(Some((body, used))) => break (body, start + used),
                Ok(None) if fill(sock, buf).await => {}
                _ => return None,
            }
        }
    } else {
        let len: usize = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        while buf.len() < start + len {
            if !fill(sock, buf).await {
                return None;
            }
        }
        (buf[start..start + len].to_vec(), start + len)
    };
    buf.drain(..consumed);
    Some(RecordedRequest {
        method,
        path,
        headers,
        body,
    })
}

/// Reads more bytes into `buf`; false when the peer is gone.
async fn fill(sock: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    matches!(sock.read_buf(buf).await, Ok(n) if n > 0)
}

/// A chunked body at the start of `buf`: `Some((body, consumed))` once complete, `None` while
/// incomplete, `Err` if invalid.
fn dechunk(buf: &[u8]) -> Result<Option<(Vec<u8>, usize)>, ()> {
    let mut pos = 0;
    let mut body = Vec::new();
    loop {
        let Some(end) = find(&buf[pos..], b"\r\n") else {
            return Ok(None);
        };
        let size_line = String::from_utf8_lossy(&buf[pos..pos + end]).into_owned();
        let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16).map_err(|_| ())?;
        pos += end + 2;
        if size == 0 {
            // Trailers, then the empty line.
            loop {
                let Some(end) = find(&buf[pos..], b"\r\n") else {
                    return Ok(None);
                };
                pos += end + 2;
                if end == 0 {
                    return Ok(Some((body, pos)));
                }
            }
        }
        if buf.len() < pos + size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&buf[pos..pos + size]);
        pos += size + 2;
    }
}

#[cfg(test)]
mod tests {
    use super::dechunk;

    #[test]
    fn chunked_bodies_decode() {
        let wire = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nx-trailer: y\r\n\r\nNEXT";
        assert_eq!(dechunk(wire), Ok(Some((b"Wikipedia".to_vec(), wire.len() - 4))));
        assert_eq!(dechunk(&wire[..10]), Ok(None));
        assert_eq!(dechunk(b"4\r\nWi"), Ok(None));
        let plain = b"4\r\nWiki\r\n5;x=1\r\npedia\r\n0\r\n\r\nNEXT";
        let (body, used) = dechunk(plain).expect("valid").expect("complete");
        assert_eq!((body.as_slice(), &plain[used..]), (&b"Wikipedia"[..], &b"NEXT"[..]));
        assert_eq!(dechunk(b"zz\r\n"), Err(()));
    }
}
