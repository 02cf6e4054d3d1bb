//! gzip on every core: a layer tar is cut into blocks that are compressed independently and
//! written in order as consecutive gzip members (what `pigz --independent` writes). RFC 1952
//! allows any number of members; gzip, Go's `compress/gzip` (Docker, containerd), zlib and
//! berth itself read such a stream as one. Independent blocks cost well under 1% of ratio at
//! this block size and let a 200 MB layer compress on all cores instead of one.

use std::io::{self, Read, Write};
use std::sync::mpsc;

/// Uncompressed bytes per gzip member.
const BLOCK: usize = 4 * 1024 * 1024;

/// The level layers are compressed at when a push needs a compressed form. Docker compresses
/// at gzip's default (6); with zlib-rs the fastest level compresses a 200 MB layer about three
/// times as fast for about a fifth more bytes, which on a local network or loopback is the
/// better trade, and a layer is only compressed once (the result is kept).
pub(crate) const LAYER_GZIP_LEVEL: u32 = 1;

/// Compresses `input` to `out` as gzip members of [`BLOCK`] bytes each, on up to `threads`
/// threads; returns the bytes read. An empty input still gives one (empty) member.
pub(crate) fn gzip_blocks(
    input: &mut dyn Read,
    out: &mut dyn Write,
    level: u32,
    threads: usize,
) -> io::Result<u64> {
    let threads = threads.max(1);
    std::thread::scope(|scope| {
        // Blocks go round-robin to the workers; results come back in the same order.
        let mut to_workers = Vec::with_capacity(threads);
        let mut from_workers = Vec::with_capacity(threads);
        for _ in 0..threads {
            let (block_sender, block_receiver) = mpsc::sync_channel::<Vec<u8>>(1);
            let (member_sender, member_receiver) = mpsc::sync_channel::<io::Result<Vec<u8>>>(1);
            scope.spawn(move || {
                for block in block_receiver {
                    if member_sender.send(compress_member(&block, level)).is_err() {
                        return;
                    }
                }
            });
            to_workers.push(block_sender);
            from_workers.push(member_receiver);
        }
        let mut total = 0u64;
        let mut sent = 0usize;
        let mut written = 0usize;
        let mut ended = false;
        while !ended || written < sent {
            // Keep every worker busy before waiting for the oldest block's member.
            while !ended && sent - written < threads {
                let block = read_block(input)?;
                ended = block.len() < BLOCK;
                if block.is_empty() && sent > 0 {
                    break;
                }
                total += block.len() as u64;
                to_workers[sent % threads]
                    .send(block)
                    .map_err(|_| io::Error::other("compression worker stopped"))?;
                sent += 1;
            }
            if written < sent {
                let member = from_workers[written % threads]
                    .recv()
                    .map_err(|_| io::Error::other("compression worker stopped"))??;
                out.write_all(&member)?;
                written += 1;
            }
        }
        Ok(total)
    })
}

fn read_block(input: &mut dyn Read) -> io::Result<Vec<u8>> {
    let mut block = vec![0u8; BLOCK];
    let mut filled = 0;
    while filled < BLOCK {
        match input.read(&mut block[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    block.truncate(filled);
    Ok(block)
}

fn compress_member(block: &[u8], level: u32) -> io::Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(block.len() / 2 + 64),
        flate2::Compression::new(level),
    );
    encoder.write_all(block)?;
    encoder.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(data: &[u8], threads: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let read =
            gzip_blocks(&mut &data[..], &mut out, LAYER_GZIP_LEVEL, threads).expect("compress");
        assert_eq!(read, data.len() as u64);
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(&out[..])
            .read_to_end(&mut back)
            .expect("decompress");
        assert_eq!(back, data);
        out
    }

    #[test]
    fn members_decompress_to_the_input_in_order() {
        let data: Vec<u8> = (0..(BLOCK * 5 + 12345))
            .map(|i| u8::try_from((i * 7 + i / 1000) % 251).expect("small"))
            .collect();
        let one = round_trip(&data, 1);
        let many = round_trip(&data, 3);
        assert_eq!(one, many, "the same bytes whatever the threads");
        // Six members: each starts with gzip's magic.
        assert!(one.starts_with(&[0x1f, 0x8b]));
        let empty = round_trip(b"", 2);
        assert!(!empty.is_empty(), "one empty member");
        round_trip(&data[..BLOCK], 2);
    }
}
