//! `GET`/`HEAD`/`DELETE /v2/<name>/blobs/<digest>`, with single-range `Range` requests.
//!
//! Blob bytes go out in 2 MiB reads straight from the file (each read on a blocking thread,
//! the buffer handed to hyper without another copy), with an exact `Content-Length`.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::sync::Arc;

use axum::body::Body;
use axum::http::StatusCode;
use axum::http::header::{self, HeaderMap};
use axum::response::Response;
use bytes::Bytes;

use super::{AppState, blocking, empty, header_value};
use crate::protocol::{CONTENT_DIGEST_HEADER, Digest, RepositoryName};
use crate::server::error::RegistryError;

/// Bytes per read of a blob being served.
const CHUNK: u64 = 2 * 1024 * 1024;

pub(super) async fn get(
    state: &Arc<AppState>,
    name: RepositoryName,
    digest: Digest,
    headers: &HeaderMap,
    head: bool,
) -> Result<Response, RegistryError> {
    let store = state.store.clone();
    let lookup = digest.clone();
    let blob = blocking("open blob", move || store.open_blob(&name, &lookup)).await?;
    let size = blob.size;
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(value) => parse_range(value, size)?,
        None => None,
    };
    let (status, start, length) = match range {
        Some((start, end)) => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
        None => (StatusCode::OK, 0, size),
    };
    let body = if head || length == 0 {
        Body::empty()
    } else {
        file_body(blob.file, start, length)
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let out = response.headers_mut();
    out.insert(header::CONTENT_LENGTH, header_value(length.to_string()));
    out.insert(
        header::CONTENT_TYPE,
        header_value("application/octet-stream"),
    );
    out.insert(CONTENT_DIGEST_HEADER, header_value(digest.as_str()));
    out.insert(header::ETAG, header_value(format!("\"{digest}\"")));
    out.insert(header::ACCEPT_RANGES, header_value("bytes"));
    out.insert(header::CACHE_CONTROL, header_value("max-age=31536000"));
    if range.is_some() {
        out.insert(
            header::CONTENT_RANGE,
            header_value(format!("bytes {}-{}/{size}", start, start + length - 1)),
        );
    }
    Ok(response)
}

pub(super) async fn delete(
    state: &Arc<AppState>,
    name: RepositoryName,
    digest: Digest,
) -> Result<Response, RegistryError> {
    let store = state.store.clone();
    blocking("delete blob", move || store.unlink_blob(&name, &digest)).await?;
    Ok(empty(StatusCode::ACCEPTED))
}

/// `bytes=a-b`, `bytes=a-` or `bytes=-n` of a blob of `size` bytes: the first and last byte.
/// `None` for a form this server ignores (several ranges: the whole blob is sent).
fn parse_range(value: &str, size: u64) -> Result<Option<(u64, u64)>, RegistryError> {
    let unsatisfiable = || RegistryError::RangeNotSatisfiable {
        value: value.to_owned(),
        size,
    };
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Err(unsatisfiable());
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let (first, last) = spec.split_once('-').ok_or_else(unsatisfiable)?;
    let number = |s: &str| s.trim().parse::<u64>().map_err(|_| unsatisfiable());
    let (start, end) = match (first.trim().is_empty(), last.trim().is_empty()) {
        (false, true) => (number(first)?, size.saturating_sub(1)),
        (false, false) => (number(first)?, number(last)?.min(size.saturating_sub(1))),
        (true, false) => {
            let suffix = number(last)?;
            if suffix == 0 {
                return Err(unsatisfiable());
            }
            (size.saturating_sub(suffix), size.saturating_sub(1))
        }
        (true, true) => return Err(unsatisfiable()),
    };
    if size == 0 || start >= size || start > end {
        return Err(unsatisfiable());
    }
    Ok(Some((start, end)))
}

/// `length` bytes of `file` from `start`, read in [`CHUNK`]s on blocking threads. The next
/// chunk is read while hyper writes the current one (one read in flight per response, and no
/// thread held while a slow client drains the socket).
fn file_body(file: File, start: u64, length: u64) -> Body {
    type Read = tokio::task::JoinHandle<io::Result<(File, Bytes)>>;
    fn read(file: File, offset: u64, want: u64) -> Read {
        tokio::task::spawn_blocking(move || {
            let mut file = file;
            file.seek(SeekFrom::Start(offset))?;
            let mut buf = Vec::with_capacity(want as usize);
            (&mut file).take(want).read_to_end(&mut buf)?;
            if (buf.len() as u64) < want {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "blob shorter than its size",
                ));
            }
            Ok((file, Bytes::from(buf)))
        })
    }
    let first = (length > 0).then(|| read(file, start, length.min(CHUNK)));
    // (the read in flight, where the one after it starts, bytes left after it)
    let state = (first, start + length.min(CHUNK), length - length.min(CHUNK));
    let stream = futures_util::stream::unfold(state, |(pending, offset, remaining)| async move {
        let read_result = pending?.await.unwrap_or_else(|e| Err(io::Error::other(e)));
        Some(match read_result {
            Ok((file, bytes)) => {
                let want = remaining.min(CHUNK);
                let next = (want > 0).then(|| read(file, offset, want));
                (Ok(bytes), (next, offset + want, remaining - want))
            }
            Err(e) => (Err(e), (None, offset, 0)),
        })
    });
    Body::from_stream(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100).expect("ok"), Some((0, 9)));
        assert_eq!(parse_range("bytes=90-", 100).expect("ok"), Some((90, 99)));
        assert_eq!(parse_range("bytes=-10", 100).expect("ok"), Some((90, 99)));
        assert_eq!(parse_range("bytes=-200", 100).expect("ok"), Some((0, 99)));
        assert_eq!(
            parse_range("bytes=50-500", 100).expect("ok"),
            Some((50, 99))
        );
        assert_eq!(parse_range("bytes=0-1,5-6", 100).expect("ok"), None);
        for bad in [
            "bytes=100-",
            "bytes=5-4",
            "bytes=-0",
            "bytes=x-1",
            "items=0-1",
            "bytes=-",
        ] {
            assert!(
                matches!(
                    parse_range(bad, 100),
                    Err(RegistryError::RangeNotSatisfiable { .. })
                ),
                "{bad}"
            );
        }
        assert!(parse_range("bytes=0-", 0).is_err());
    }
}
