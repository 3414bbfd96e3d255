//! The versioned binary format of what a node stores and sends to its peers: Raft log entries,
//! peer messages, state records and snapshots.
//!
//! Owns: the one encoder and decoder ([`encode`] and [`encode_into`], [`decode`]; a large
//! value's parts one at a time with [`read_header`] and [`decode_part_from`]), the
//! format version ([`VERSION`]) and the rule for a database's stored version
//! ([`check_stored_version`]).
//! Must not: be used for what clients or people read (the gRPC API is protobuf; exports and
//! status are JSON), or for what must hash the same forever (audit records have their own
//! byte-by-byte encoding in [`crate::audit`]).
//!
//! Layout of every value: the magic `QS`, the format version (u16, little endian), then the
//! value in bincode (varint integers, little endian, no trailing bytes). Byte strings travel
//! raw ([`crate::bytes::hex_or_raw`]).
//!
//! Versions: format 1; format 2, which added the revoked certificates to the admin state
//! (`AdminState::revoked`, so also to snapshots); format 3, which added the Espresso view
//! horizon to the admin state (`AdminState::espresso_view_horizon`); format 4, in which a
//! sealed key's data key may be shared by several records ([`crate::sealed::WrappedDataKey`]),
//! with the layout of format 3 unchanged. A node writes format 4. It reads stored data of
//! formats 1 to 3 too ([`decode_stored`]; the admin state and snapshot bodies of formats 1 and
//! 2 through their older layouts, [`decode_upgrading`] with [`crate::state::upgrade`]), and
//! stamps an older database 4 when it opens it, so an older binary refuses it afterwards (and
//! never reads a shared data key as a record's own). Peer messages are this version only
//! ([`decode`]): the nodes of a cluster upgrade together.
//!
//! To ensure correctness:
//! - a value or database written by a newer format is refused with an error that names both
//!   versions, never decoded by guess;
//! - the bytes of every format are pinned by databases checked into the tests
//!   (`node/tests/data/format-v1/` to `format-v4/`), which every later version must still open:
//!   a change to a stored type that is not a new format version fails that test;
//! - decoding is bounded ([`MAX_VALUE`]): a hostile peer's length prefix cannot make a node
//!   allocate more than that; encoding refuses a value past it as it writes, so nothing is
//!   written that a peer would refuse to read.

use bincode::Options;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The format this build writes and reads.
pub const VERSION: u16 = 4;

/// The oldest format whose stored data this build still reads (upgrading it as it reads).
pub const OLDEST_STORED: u16 = 1;

/// Leading bytes of every encoded value.
pub const MAGIC: [u8; 2] = *b"QS";

/// Largest value [`decode`] accepts (a snapshot is the largest value; it travels in chunks).
pub const MAX_VALUE: u64 = 1 << 31;

/// Why bytes are not a value of this format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// Shorter than the header, or without the magic.
    #[error("not in the signer's binary format (no `QS` header)")]
    NotThisFormat,
    /// Written by a newer version of the signer.
    #[error("written in format version {found}, newer than this binary's format version {supported}: run a signer that reads format {found}")]
    Newer {
        /// The version in the data.
        found: u16,
        /// The version this binary reads and writes.
        supported: u16,
    },
    /// Written in a format this binary no longer reads.
    #[error("written in format version {found}, older than this binary's format version {supported}, and there is no upgrade from it")]
    Older {
        /// The version in the data.
        found: u16,
        /// The version this binary reads and writes.
        supported: u16,
    },
    /// The value cannot be written in this format.
    #[error("value cannot be encoded: {0}")]
    Unencodable(String),
    /// The header is right but the value is not.
    #[error("malformed value: {0}")]
    Malformed(String),
}

fn options() -> impl Options {
    bincode::DefaultOptions::new()
        .with_varint_encoding()
        .with_little_endian()
        .reject_trailing_bytes()
        .with_limit(MAX_VALUE)
}

/// The encoder's options: [`options`] without bincode's limit, which walks a value twice (a
/// size pass, then the write); [`Bounded`] enforces [`MAX_VALUE`] as the bytes are written.
fn encoder() -> impl Options {
    bincode::DefaultOptions::new()
        .with_varint_encoding()
        .with_little_endian()
}

/// A writer that refuses the bytes of a value past [`MAX_VALUE`] with
/// [`FormatError::Unencodable`] (inside an `io::Error`).
struct Bounded<W> {
    out: W,
    left: u64,
}

impl<W: std::io::Write> std::io::Write for Bounded<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.len() as u64 > self.left {
            return Err(std::io::Error::other(FormatError::Unencodable(format!(
                "the value is larger than the format's limit of {MAX_VALUE} bytes"
            ))));
        }
        let n = self.out.write(buf)?;
        self.left -= n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Write the header and `value` to `out`, in one pass over the value.
fn write_value<W: std::io::Write, T: Serialize + ?Sized>(
    mut out: W,
    value: &T,
) -> std::io::Result<()> {
    out.write_all(&MAGIC)?;
    out.write_all(&VERSION.to_le_bytes())?;
    let bounded = Bounded {
        out: &mut out,
        left: MAX_VALUE,
    };
    encoder()
        .serialize_into(bounded, value)
        .map_err(|e| match *e {
            bincode::ErrorKind::Io(io) => io,
            other => std::io::Error::other(FormatError::Unencodable(other.to_string())),
        })?;
    out.flush()
}

/// Encode `value` with the header. Fails only for a value larger than [`MAX_VALUE`] or a
/// type serde cannot write without a self-describing format (a bug the round-trip tests
/// catch).
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, FormatError> {
    let mut out = Vec::with_capacity(64);
    write_value(&mut out, value).map_err(|e| {
        // Writing into a `Vec` fails only with the format's own error.
        match e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<FormatError>())
        {
            Some(format) => format.clone(),
            None => FormatError::Unencodable(e.to_string()),
        }
    })?;
    Ok(out)
}

/// [`encode`] straight into `out` (a file, say), so a large value is never whole in memory.
/// A write error comes back as it was (its kind kept: a full disk stays `StorageFull`); a value
/// that cannot be encoded as [`FormatError::Unencodable`] inside an `io::Error`. What was
/// written before an error is not a value: the caller discards it.
pub fn encode_into<W: std::io::Write, T: Serialize + ?Sized>(
    out: W,
    value: &T,
) -> std::io::Result<()> {
    write_value(out, value)
}

/// The bytes `value` takes *inside* an encoded value: no header, no limit. For a value
/// assembled from parts stored apart (a snapshot body, `state::snapshot_body_head`); the
/// caller bounds the whole.
pub fn encode_part_into<W: std::io::Write, T: Serialize + ?Sized>(
    out: W,
    value: &T,
) -> std::io::Result<()> {
    encoder().serialize_into(out, value).map_err(|e| match *e {
        bincode::ErrorKind::Io(io) => io,
        other => std::io::Error::other(FormatError::Unencodable(other.to_string())),
    })
}

/// The length of [`encode`]'s output for `value` (header included), computed without
/// writing it; for a value past [`MAX_VALUE`] too.
pub fn encoded_len<T: Serialize + ?Sized>(value: &T) -> Result<u64, FormatError> {
    let body = encoder()
        .serialized_size(value)
        .map_err(|e| FormatError::Unencodable(e.to_string()))?;
    Ok(body.saturating_add((MAGIC.len() + 2) as u64))
}

/// Decode a value written by [`encode`] of this format version (a peer message: peers of
/// one cluster run one format).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, FormatError> {
    let (version, body) = split_header(bytes)?;
    check_version(version, VERSION)?;
    deserialize(body)
}

/// Decode a stored value of a type whose layout is the same in every format this build
/// reads: written by this version or by any version from [`OLDEST_STORED`] on.
pub fn decode_stored<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, FormatError> {
    let (version, body) = split_header(bytes)?;
    check_stored_version(version)?;
    deserialize(body)
}

/// Decode a stored value of a type whose layout changed since [`OLDEST_STORED`]: data of this
/// version is read as `T`; data of an older format goes to `older` with its version and the
/// value's bytes, which reads them in that format's layout ([`decode_body`]) and upgrades it.
pub fn decode_upgrading<T: DeserializeOwned>(
    bytes: &[u8],
    older: impl FnOnce(u16, &[u8]) -> Result<T, FormatError>,
) -> Result<T, FormatError> {
    let (version, body) = split_header(bytes)?;
    check_stored_version(version)?;
    if version == VERSION {
        deserialize(body)
    } else {
        older(version, body)
    }
}

/// Decode the value bytes after the header in the layout `T` (for [`decode_upgrading`]'s
/// `older`).
pub fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, FormatError> {
    deserialize(body)
}

/// The format version of a value read from `reader`: its header, checked to be of a format
/// this build reads (as [`decode_stored`] does). The value's parts follow, for
/// [`decode_part_from`].
pub fn read_header<R: std::io::Read>(mut reader: R) -> Result<u16, FormatError> {
    let mut header = [0u8; 4];
    reader.read_exact(&mut header).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => FormatError::NotThisFormat,
        _ => FormatError::Malformed(format!("reading the header: {e}")),
    })?;
    let (version, _) = split_header(&header)?;
    check_stored_version(version)?;
    Ok(version)
}

/// The next part of a value from `reader` (after [`read_header`]): a value of the layout `T`,
/// taking at most `limit` bytes, so a length prefix cannot claim more than the value holds.
/// Reads exactly the part's bytes (wrap a file in a buffer first); what follows is the
/// caller's to read.
pub fn decode_part_from<R: std::io::Read, T: DeserializeOwned>(
    reader: R,
    limit: u64,
) -> Result<T, FormatError> {
    options()
        .allow_trailing_bytes()
        .with_limit(limit.min(MAX_VALUE))
        .deserialize_from(reader)
        .map_err(|e| FormatError::Malformed(e.to_string()))
}

fn deserialize<T: DeserializeOwned>(body: &[u8]) -> Result<T, FormatError> {
    options()
        .deserialize(body)
        .map_err(|e| FormatError::Malformed(e.to_string()))
}

/// The format version and the value bytes after the magic.
fn split_header(bytes: &[u8]) -> Result<(u16, &[u8]), FormatError> {
    if bytes.len() < 4 || bytes[..2] != MAGIC {
        return Err(FormatError::NotThisFormat);
    }
    Ok((u16::from_le_bytes([bytes[2], bytes[3]]), &bytes[4..]))
}

/// Whether format `found` is `oldest` or newer, and not newer than this binary's.
fn check_version(found: u16, oldest: u16) -> Result<(), FormatError> {
    if found > VERSION {
        Err(FormatError::Newer {
            found,
            supported: VERSION,
        })
    } else if found < oldest {
        Err(FormatError::Older {
            found,
            supported: VERSION,
        })
    } else {
        Ok(())
    }
}

/// Whether stored data of format `found` can be read by this binary.
pub fn check_stored_version(found: u16) -> Result<(), FormatError> {
    check_version(found, OLDEST_STORED)
}

/// The stored form of [`VERSION`] in a database's metadata table.
pub fn version_bytes() -> [u8; 2] {
    VERSION.to_le_bytes()
}

/// What opening a database must do about its format version, given its stored `format`
/// value and whether it holds data: `Ok(true)` when it is new, or of an older format this
/// binary upgrades as it reads, and must be stamped with [`version_bytes`] (values written
/// from then on are of this version); `Ok(false)` when it is of this version; an error naming
/// both versions otherwise. Data without a stored version was written before formats had
/// versions (JSON values): format 0.
pub fn check_database(stored: Option<&[u8]>, holds_data: bool) -> Result<bool, FormatError> {
    match stored {
        Some(bytes) => {
            let found = <[u8; 2]>::try_from(bytes)
                .map(u16::from_le_bytes)
                .map_err(|_| {
                    FormatError::Malformed(format!("format version of {} bytes", bytes.len()))
                })?;
            check_stored_version(found).map(|()| found != VERSION)
        }
        None if holds_data => check_stored_version(0).map(|()| false),
        None => Ok(true),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn a_value_round_trips_and_its_header_is_the_magic_and_version() {
        let value = (7u64, String::from("key-1"), vec![1u8, 2, 3]);
        let bytes = encode(&value).unwrap();
        assert_eq!(&bytes[..4], &[b'Q', b'S', 4, 0]);
        // varint 7, length-prefixed "key-1", length-prefixed seq of three u8
        assert_eq!(
            &bytes[4..],
            &[7, 5, b'k', b'e', b'y', b'-', b'1', 3, 1, 2, 3]
        );
        assert_eq!(decode::<(u64, String, Vec<u8>)>(&bytes).unwrap(), value);
    }

    #[test]
    fn a_value_read_part_by_part_is_the_value_and_a_bad_header_or_reader_is_named() {
        let value = (7u64, String::from("key-1"), vec![1u8, 2, 3]);
        let bytes = encode(&value).unwrap();
        let mut reader = &bytes[..];
        assert_eq!(read_header(&mut reader).unwrap(), VERSION);
        let left = reader.len() as u64;
        assert_eq!(decode_part_from::<_, u64>(&mut reader, left).unwrap(), 7);
        let left = reader.len() as u64;
        let rest: (String, Vec<u8>) = decode_part_from(&mut reader, left).unwrap();
        assert_eq!(rest, (value.1, value.2));
        assert!(reader.is_empty());

        assert_eq!(read_header(&b"QS"[..]), Err(FormatError::NotThisFormat));
        assert_eq!(
            read_header(&b"JS\x04\x00"[..]),
            Err(FormatError::NotThisFormat)
        );
        assert_eq!(
            read_header(&b"QS\x05\x00"[..]),
            Err(FormatError::Newer {
                found: 5,
                supported: VERSION
            })
        );
        struct Broken;
        impl std::io::Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("disk read failed"))
            }
        }
        assert_eq!(
            read_header(Broken),
            Err(FormatError::Malformed(
                "reading the header: disk read failed".into()
            ))
        );
        // A byte string's length prefix past the limit is refused before anything is
        // allocated for it.
        #[derive(Debug, PartialEq, serde::Deserialize)]
        struct Raw(#[serde(with = "crate::bytes::hex_or_raw")] Vec<u8>);
        let mut claims = Vec::new();
        encode_part_into(&mut claims, &(1u64 << 30)).unwrap();
        claims.extend_from_slice(&[0; 10]);
        assert_eq!(
            decode_part_from::<_, Raw>(&claims[..], 100),
            Err(FormatError::Malformed(
                "the size limit has been reached".into()
            ))
        );
    }

    #[test]
    fn encode_into_writes_the_bytes_of_encode_and_returns_a_write_error_as_it_was() {
        let value = (7u64, String::from("key-1"), vec![1u8, 2, 3]);
        let mut out = Vec::new();
        encode_into(&mut out, &value).unwrap();
        assert_eq!(
            out,
            [b'Q', b'S', 4, 0, 7, 5, b'k', b'e', b'y', b'-', b'1', 3, 1, 2, 3]
        );

        /// A disk that fills after `room` bytes.
        struct Full {
            room: usize,
        }
        impl std::io::Write for Full {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                if self.room == 0 {
                    return Err(std::io::ErrorKind::StorageFull.into());
                }
                let n = buf.len().min(self.room);
                self.room -= n;
                Ok(n)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        for room in [0, 3, 6] {
            let e = encode_into(Full { room }, &value).unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::StorageFull, "room {room}");
        }
        // A value this format cannot write (a sequence of unknown length): the format's
        // error, not a write error.
        struct UnknownLength;
        impl Serialize for UnknownLength {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq((0u8..3).filter(|n| n % 2 == 0))
            }
        }
        let e = encode_into(std::io::sink(), &UnknownLength).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::Other);
        assert!(matches!(
            e.get_ref()
                .and_then(|inner| inner.downcast_ref::<FormatError>()),
            Some(FormatError::Unencodable(_))
        ));
    }

    #[test]
    fn the_size_bound_refuses_the_first_byte_past_it_and_passes_the_rest() {
        let value = vec![9u8; 10]; // 11 bytes: a length, then ten elements
        let mut out = Vec::new();
        encoder()
            .serialize_into(
                Bounded {
                    out: &mut out,
                    left: 11,
                },
                &value,
            )
            .unwrap();
        assert_eq!(out.len(), 11);
        let e = encoder()
            .serialize_into(
                Bounded {
                    out: Vec::new(),
                    left: 10,
                },
                &value,
            )
            .unwrap_err();
        let bincode::ErrorKind::Io(io) = *e else {
            panic!("expected the writer's error, got {e:?}")
        };
        assert_eq!(
            io.get_ref()
                .and_then(|inner| inner.downcast_ref::<FormatError>()),
            Some(&FormatError::Unencodable(format!(
                "the value is larger than the format's limit of {MAX_VALUE} bytes"
            )))
        );
    }

    #[test]
    fn encoded_len_is_the_length_encode_writes() {
        for value in [vec![], vec![0u8; 1], vec![200u8; 300], vec![1u8; 70_000]] {
            let value = (u64::MAX, value, String::from("key"));
            assert_eq!(
                encoded_len(&value).unwrap(),
                encode(&value).unwrap().len() as u64
            );
        }
    }

    #[test]
    fn newer_older_foreign_and_trailing_bytes_are_refused_by_name() {
        let mut bytes = encode(&1u64).unwrap();
        bytes[2] = 5;
        let newer = FormatError::Newer {
            found: 5,
            supported: 4,
        };
        assert_eq!(decode::<u64>(&bytes), Err(newer.clone()));
        assert_eq!(decode_stored::<u64>(&bytes), Err(newer));
        assert_eq!(
            decode::<u64>(&bytes).unwrap_err().to_string(),
            "written in format version 5, newer than this binary's format version 4: run a \
             signer that reads format 5"
        );
        // Formats 1 to 3: stored data is read, a peer message is refused.
        for old in [1u8, 2, 3] {
            bytes[2] = old;
            assert_eq!(decode_stored::<u64>(&bytes), Ok(1));
            assert_eq!(
                decode::<u64>(&bytes),
                Err(FormatError::Older {
                    found: u16::from(old),
                    supported: 4
                })
            );
        }
        bytes[2] = 0;
        let older = FormatError::Older {
            found: 0,
            supported: 4,
        };
        assert_eq!(decode_stored::<u64>(&bytes), Err(older.clone()));
        assert_eq!(decode::<u64>(&bytes), Err(older));
        assert_eq!(decode::<u64>(b"{\"a\":1}"), Err(FormatError::NotThisFormat));
        assert_eq!(decode::<u64>(b"QS"), Err(FormatError::NotThisFormat));
        let mut trailing = encode(&1u64).unwrap();
        trailing.push(0);
        assert!(matches!(
            decode::<u64>(&trailing),
            Err(FormatError::Malformed(_))
        ));
    }

    /// A value whose layout gained a field in this format, and its older layout.
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Now {
        a: u64,
        added: u64,
    }
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Then {
        a: u64,
    }
    impl From<Then> for Now {
        fn from(t: Then) -> Now {
            Now { a: t.a, added: 0 }
        }
    }

    #[test]
    fn an_older_layout_is_upgraded_and_this_one_read_as_is() {
        let upgrade = |version: u16, body: &[u8]| {
            assert_eq!(version, 2);
            decode_body::<Then>(body).map(Now::from)
        };
        let mut old = encode(&Then { a: 7 }).unwrap();
        old[2] = 2;
        assert_eq!(decode_upgrading(&old, upgrade), Ok(Now { a: 7, added: 0 }));
        // Read in this version's layout, the format-1 bytes are too short.
        assert!(matches!(
            decode_stored::<Now>(&old),
            Err(FormatError::Malformed(_))
        ));
        let now = encode(&Now { a: 7, added: 9 }).unwrap();
        assert_eq!(decode_upgrading(&now, upgrade), Ok(Now { a: 7, added: 9 }));
    }

    #[test]
    fn a_database_is_stamped_when_new_or_older_and_refused_when_unreadable() {
        assert_eq!(check_database(None, false), Ok(true));
        assert_eq!(check_database(Some(&[4, 0]), true), Ok(false));
        assert_eq!(check_database(Some(&[3, 0]), true), Ok(true));
        assert_eq!(check_database(Some(&[2, 0]), true), Ok(true));
        assert_eq!(check_database(Some(&[1, 0]), true), Ok(true));
        assert_eq!(
            check_database(Some(&[5, 0]), true),
            Err(FormatError::Newer {
                found: 5,
                supported: 4
            })
        );
        assert_eq!(
            check_database(None, true),
            Err(FormatError::Older {
                found: 0,
                supported: 4
            })
        );
        assert_eq!(
            check_database(Some(&[1]), true),
            Err(FormatError::Malformed("format version of 1 bytes".into()))
        );
    }

    #[test]
    fn a_hostile_length_prefix_is_refused_without_allocating_it() {
        // A Vec<u64> claiming 2^62 elements in 11 bytes.
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&VERSION.to_le_bytes());
        bytes.push(0xfd); // varint: u64 follows
        bytes.extend_from_slice(&(1u64 << 62).to_le_bytes());
        assert!(matches!(
            decode::<Vec<u64>>(&bytes),
            Err(FormatError::Malformed(_))
        ));
    }
}
