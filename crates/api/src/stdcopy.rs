//! Docker's multiplexed stream framing (`application/vnd.docker.multiplexed-stream`).
//!
//! Each frame is an 8-byte header `[stream, 0, 0, 0, len as u32 big-endian]` followed by `len`
//! bytes of payload. Stream 0 is stdin, 1 stdout, 2 stderr, 3 a system error message.

/// Which stream a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamType {
    /// Standard input (echoed back on output).
    Stdin = 0,
    /// Standard output.
    Stdout = 1,
    /// Standard error.
    Stderr = 2,
    /// An error from the daemon itself.
    System = 3,
}

impl StreamType {
    /// The stream for a header's first byte, if it is a valid one.
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            0 => Some(Self::Stdin),
            1 => Some(Self::Stdout),
            2 => Some(Self::Stderr),
            3 => Some(Self::System),
            _ => None,
        }
    }
}

/// Length of a frame header.
pub const HEADER_LEN: usize = 8;

/// The 8-byte header for a frame of `len` bytes on `stream`.
pub fn header(stream: StreamType, len: usize) -> [u8; HEADER_LEN] {
    let n = u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes();
    [stream as u8, 0, 0, 0, n[0], n[1], n[2], n[3]]
}

/// A whole frame: header then payload.
pub fn frame(stream: StreamType, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(HEADER_LEN + payload.len());
    v.extend_from_slice(&header(stream, payload.len()));
    v.extend_from_slice(payload);
    v
}

/// Parses a header into its stream and payload length; `None` for an unknown stream byte.
pub fn parse_header(h: &[u8; HEADER_LEN]) -> Option<(StreamType, usize)> {
    let stream = StreamType::from_byte(h[0])?;
    let len = u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize;
    Some((stream, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips() {
        let f = frame(StreamType::Stderr, b"hello");
        assert_eq!(&f[..8], &[2, 0, 0, 0, 0, 0, 0, 5]);
        let h: [u8; 8] = f[..8].try_into().unwrap();
        assert_eq!(parse_header(&h), Some((StreamType::Stderr, 5)));
        assert_eq!(parse_header(&[9, 0, 0, 0, 0, 0, 0, 0]), None);
    }
}
