//! HTTP/1.1 wire helpers shared by the mock upstream servers (OpenAI, Anthropic, Gemini).

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

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
