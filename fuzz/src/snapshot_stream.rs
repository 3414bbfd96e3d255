//! Target `snapshot_stream`: a snapshot streamed by a peer (`Raft/InstallSnapshotChunks`), as
//! the receiving node checks it (`service::peer::SnapshotStream`, whose accepted chunks the
//! receiver appends to the body), checked against a model of the stream rules written here
//! from the check's documentation.
//!
//! Owns: the chunk framing of this target and the stream model. Must not: decode the
//! snapshot itself (the `peer_message` target installs snapshot bodies).
//!
//! Framing, repeated until the input ends: a flag byte (bit 0: the chunk carries a header,
//! bit 1: its data is one byte over the chunk limit), then, with a header, a `u16` length and
//! the header bytes, then a `u16` length and the data. The first byte picks the cap on the
//! snapshot's length (at most 16 MiB here).
//!
//! The model: chunk 0 must carry the header, and no later chunk may; a chunk carries at most
//! the limit; the header must decode and declare at most the cap; the data may not go past
//! the declared length, and the stream must end exactly there. The first broken rule is the
//! error, and the assembled bytes are the chunks' data in order.

use arbitrary::Unstructured;
use signer_node::format;
use signer_node::replica::network::{SnapshotHeader, SNAPSHOT_CHUNK};
use signer_node::service::peer::{SnapshotStream, SnapshotStreamError};

const CAPS: [u64; 4] = [0, 64, 4096, 16 << 20];

struct Chunk {
    header: Option<Vec<u8>>,
    data: Vec<u8>,
}

fn chunks(u: &mut Unstructured<'_>) -> arbitrary::Result<Vec<Chunk>> {
    let mut out = Vec::new();
    while !u.is_empty() && out.len() < 64 {
        let flags: u8 = u.arbitrary()?;
        let header = if flags & 1 == 1 {
            let len: u16 = u.arbitrary()?;
            Some(u.bytes(usize::from(len).min(u.len()))?.to_vec())
        } else {
            None
        };
        let data = if flags & 2 == 2 {
            vec![0x5a; SNAPSHOT_CHUNK + 1]
        } else {
            let len: u16 = u.arbitrary()?;
            u.bytes(usize::from(len).min(u.len()))?.to_vec()
        };
        out.push(Chunk { header, data });
    }
    Ok(out)
}

/// What the model expects: the assembled bytes, or the first error.
fn model(cap: u64, chunks: &[Chunk]) -> Result<Vec<u8>, SnapshotStreamError> {
    let mut declared: Option<u64> = None;
    let mut data = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let index = i as u64;
        if chunk.data.len() > SNAPSHOT_CHUNK {
            return Err(SnapshotStreamError::ChunkTooLarge {
                chunk: index,
                len: chunk.data.len(),
                max: SNAPSHOT_CHUNK,
            });
        }
        match (&chunk.header, declared) {
            (None, None) => return Err(SnapshotStreamError::DataBeforeHeader),
            (Some(_), Some(_)) => return Err(SnapshotStreamError::HeaderNotFirst { chunk: index }),
            (None, Some(_)) => {}
            (Some(bytes), None) => {
                let header: SnapshotHeader =
                    format::decode(bytes).map_err(SnapshotStreamError::Header)?;
                if header.len > cap {
                    return Err(SnapshotStreamError::TooLarge {
                        len: header.len,
                        cap,
                    });
                }
                declared = Some(header.len);
            }
        }
        let limit = declared.unwrap_or(0);
        if (data.len() + chunk.data.len()) as u64 > limit {
            return Err(SnapshotStreamError::Overrun {
                chunk: index,
                declared: limit,
            });
        }
        data.extend_from_slice(&chunk.data);
    }
    let Some(len) = declared else {
        return Err(SnapshotStreamError::NoHeader);
    };
    if data.len() as u64 != len {
        return Err(SnapshotStreamError::Truncated {
            received: data.len() as u64,
            declared: len,
        });
    }
    Ok(data)
}

/// One fuzz input.
pub fn check(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(pick) = u.arbitrary::<u8>() else {
        return;
    };
    let cap = CAPS[usize::from(pick) % CAPS.len()];
    let Ok(chunks) = chunks(&mut u) else {
        return;
    };
    let expected = model(cap, &chunks);
    let mut stream = SnapshotStream::new(cap);
    let mut body = Vec::new();
    let mut got = Ok(());
    for chunk in &chunks {
        got = stream.feed(chunk.header.as_deref(), &chunk.data);
        if got.is_err() {
            break;
        }
        // What the receiver does with an accepted chunk.
        body.extend_from_slice(&chunk.data);
    }
    let got = match got {
        Ok(()) => stream.finish().map(|_| body),
        Err(e) => Err(e),
    };
    assert_eq!(
        got, expected,
        "the stream check disagrees with the stream model"
    );
}
