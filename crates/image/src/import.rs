//! `import`: a root filesystem tarball, plain or compressed, becomes a one-layer image.
//!
//! The compression is detected from the magic bytes (gzip `1f 8b`, zstd `28 b5 2f fd`);
//! bzip2 and xz are recognized and refused. The stream is read exactly once: decompressed,
//! hashed, stored as the layer blob and unpacked at the same time (see [`crate::layer`]).

use std::io::{self, Read};

use crate::error::ImageError;

/// How an archive stream is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip (possibly several members, as `pigz` writes).
    Gzip,
    /// Zstandard.
    Zstd,
    /// bzip2 (not supported).
    Bzip2,
    /// xz (not supported).
    Xz,
}

/// Recognizes the compression from the first bytes of a stream.
pub fn detect_compression(magic: &[u8]) -> Compression {
    match magic {
        [0x1f, 0x8b, ..] => Compression::Gzip,
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd,
        [b'B', b'Z', b'h', ..] => Compression::Bzip2,
        [0xfd, b'7', b'z', b'X', b'Z', 0x00, ..] => Compression::Xz,
        _ => Compression::None,
    }
}

/// Wraps `input` in the decompressor its first bytes call for.
pub fn decompressed<'a>(mut input: impl Read + 'a) -> Result<Box<dyn Read + 'a>, ImageError> {
    let mut magic = [0u8; 6];
    let mut filled = 0;
    while filled < magic.len() {
        match input.read(&mut magic[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => return Err(ImageError::ReadArchive { source }),
        }
    }
    let head = io::Cursor::new(magic[..filled].to_vec());
    let stream = head.chain(input);
    Ok(match detect_compression(&magic[..filled]) {
        Compression::None => Box::new(stream),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(stream)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::new(stream)
                .map_err(|source| ImageError::ReadArchive { source })?,
        ),
        Compression::Bzip2 => {
            return Err(ImageError::UnsupportedCompression {
                compression: "bzip2",
            });
        }
        Compression::Xz => return Err(ImageError::UnsupportedCompression { compression: "xz" }),
    })
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn detects_and_decompresses() {
        let data = b"some tar bytes, or anything".repeat(100);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&data).expect("gzip");
        let gz = gz.finish().expect("gzip");
        let zst = zstd::encode_all(&data[..], 3).expect("zstd");
        for (name, encoded, compression) in [
            ("plain", data.clone(), Compression::None),
            ("gzip", gz, Compression::Gzip),
            ("zstd", zst, Compression::Zstd),
        ] {
            assert_eq!(detect_compression(&encoded), compression, "{name}");
            let mut input = &encoded[..];
            let mut out = Vec::new();
            decompressed(&mut input)
                .expect(name)
                .read_to_end(&mut out)
                .expect(name);
            assert_eq!(out, data, "{name}");
        }
        let mut short = &b"ab"[..];
        let mut out = Vec::new();
        decompressed(&mut short)
            .expect("short")
            .read_to_end(&mut out)
            .expect("read");
        assert_eq!(out, b"ab");
        assert!(matches!(
            decompressed(&mut &b"BZh91AY"[..]),
            Err(ImageError::UnsupportedCompression { .. })
        ));
        assert!(matches!(
            decompressed(&mut &[0xfd, b'7', b'z', b'X', b'Z', 0, 1][..]),
            Err(ImageError::UnsupportedCompression { .. })
        ));
    }
}
