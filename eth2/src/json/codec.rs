//! Serde field codecs for the Ethereum JSON conventions that validator clients and Web3Signer
//! use: unsigned integers as quoted decimal strings, byte strings as `0x` hex.
//!
//! Owns: `#[serde(with = ...)]` modules for `u64`, `[u8; N]`, `List[uint64, N]`,
//! `Vector[Bytes32, N]` and optional fork versions. Must not: know about message types.
//!
//! Leniency, on purpose and no more: a `u64` may also be a bare JSON integer (Web3Signer's
//! parser accepts both); hex may omit the `0x` prefix and use either case. Lengths are exact.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, Serializer};
use ssz_types::typenum::Unsigned;
use ssz_types::{FixedVector, VariableList};

/// `0x`-prefixed lower-case hex.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    format!("0x{}", hex::encode(bytes))
}

/// Decode hex with an optional `0x` prefix into exactly `N` bytes.
pub(crate) fn from_hex<const N: usize>(s: &str) -> Result<[u8; N], String> {
    let digits = s.strip_prefix("0x").unwrap_or(s);
    if digits.len() != 2 * N {
        return Err(format!(
            "expected {N} bytes ({} hex digits), got {} hex digits",
            2 * N,
            digits.len()
        ));
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(digits, &mut out).map_err(|e| format!("invalid hex: {e}"))?;
    Ok(out)
}

/// Parse a decimal `u64` written the way the beacon API writes it: digits only.
fn parse_decimal(s: &str) -> Result<u64, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("expected a decimal uint64, got {s:?}"));
    }
    s.parse::<u64>()
        .map_err(|_| format!("{s:?} does not fit in a uint64"))
}

struct U64Visitor;

impl<'de> Visitor<'de> for U64Visitor {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a uint64 as a quoted decimal string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
        parse_decimal(v).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }
}

struct HexVisitor<const N: usize>;

impl<'de, const N: usize> Visitor<'de> for HexVisitor<N> {
    type Value = [u8; N];

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{N} bytes as a 0x-prefixed hex string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<[u8; N], E> {
        from_hex::<N>(v).map_err(E::custom)
    }
}

/// A `u64` as a quoted decimal string.
pub mod quoted_u64 {
    use super::*;

    /// Write `"123"`.
    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    /// Read `"123"` (or `123`).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        d.deserialize_any(U64Visitor)
    }
}

/// A fixed-size byte string `[u8; N]` as `0x` hex.
pub mod hex_bytes {
    use super::*;

    /// Write `"0x…"`.
    pub fn serialize<S: Serializer, const N: usize>(v: &[u8; N], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&to_hex(v))
    }

    /// Read `"0x…"` of exactly `N` bytes.
    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<[u8; N], D::Error> {
        d.deserialize_str(HexVisitor::<N>)
    }
}

/// An optional fork version: `null`/absent, or `0x` hex.
pub mod hex_version_opt {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Wrapped(#[serde(with = "super::hex_bytes")] [u8; 4]);

    /// Write `null` or `"0x…"`.
    pub fn serialize<S: Serializer>(v: &Option<[u8; 4]>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_str(&to_hex(v)),
            None => s.serialize_none(),
        }
    }

    /// Read `null` or `"0x…"`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<[u8; 4]>, D::Error> {
        Ok(Option::<Wrapped>::deserialize(d)?.map(|w| w.0))
    }
}

/// `List[uint64, N]` as an array of quoted decimals.
pub mod quoted_u64_list {
    use super::*;

    struct ListVisitor<N>(PhantomData<N>);

    impl<'de, N: Unsigned> Visitor<'de> for ListVisitor<N> {
        type Value = VariableList<u64, N>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            write!(f, "an array of at most {} quoted uint64", N::to_usize())
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(v) = seq.next_element::<Quoted>()? {
                if out.len() == N::to_usize() {
                    return Err(de::Error::custom(format!(
                        "more than {} items",
                        N::to_usize()
                    )));
                }
                out.push(v.0);
            }
            VariableList::new(out).map_err(|e| de::Error::custom(format!("{e:?}")))
        }
    }

    struct Quoted(u64);

    impl<'de> serde::Deserialize<'de> for Quoted {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(U64Visitor).map(Quoted)
        }
    }

    /// Write `["1","2"]`.
    pub fn serialize<S: Serializer, N: Unsigned>(
        v: &VariableList<u64, N>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(v.len()))?;
        for item in v.iter() {
            seq.serialize_element(&item.to_string())?;
        }
        seq.end()
    }

    /// Read `["1","2"]`, at most `N` items.
    pub fn deserialize<'de, D: Deserializer<'de>, N: Unsigned>(
        d: D,
    ) -> Result<VariableList<u64, N>, D::Error> {
        d.deserialize_seq(ListVisitor(PhantomData))
    }
}

/// `Vector[Bytes32, N]` as an array of exactly `N` hex strings.
pub mod hex_root_vector {
    use super::*;

    struct Root32(Root);
    type Root = [u8; 32];

    impl<'de> serde::Deserialize<'de> for Root32 {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_str(HexVisitor::<32>).map(Root32)
        }
    }

    struct VectorVisitor<N>(PhantomData<N>);

    impl<'de, N: Unsigned> Visitor<'de> for VectorVisitor<N> {
        type Value = FixedVector<Root, N>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            write!(
                f,
                "an array of exactly {} 32-byte hex strings",
                N::to_usize()
            )
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(v) = seq.next_element::<Root32>()? {
                if out.len() == N::to_usize() {
                    return Err(de::Error::custom(format!(
                        "more than {} items",
                        N::to_usize()
                    )));
                }
                out.push(v.0);
            }
            if out.len() != N::to_usize() {
                return Err(de::Error::custom(format!(
                    "expected {} items, got {}",
                    N::to_usize(),
                    out.len()
                )));
            }
            FixedVector::new(out).map_err(|e| de::Error::custom(format!("{e:?}")))
        }
    }

    /// Write `["0x…", …]`.
    pub fn serialize<S: Serializer, N: Unsigned>(
        v: &FixedVector<Root, N>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(v.len()))?;
        for item in v.iter() {
            seq.serialize_element(&to_hex(item))?;
        }
        seq.end()
    }

    /// Read exactly `N` roots.
    pub fn deserialize<'de, D: Deserializer<'de>, N: Unsigned>(
        d: D,
    ) -> Result<FixedVector<Root, N>, D::Error> {
        d.deserialize_seq(VectorVisitor(PhantomData))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn decimal_rejects_signs_spaces_and_overflow() {
        assert_eq!(parse_decimal("18446744073709551615").unwrap(), u64::MAX);
        for bad in ["", "-1", "+1", " 1", "1.0", "0x10", "18446744073709551616"] {
            assert!(parse_decimal(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn hex_is_exact_length_and_prefix_optional() {
        assert_eq!(from_hex::<2>("0xabCD").unwrap(), [0xab, 0xcd]);
        assert_eq!(from_hex::<2>("abcd").unwrap(), [0xab, 0xcd]);
        assert!(from_hex::<2>("0xabc").is_err());
        assert!(from_hex::<2>("0xabcdef").is_err());
        assert!(from_hex::<2>("0xzzzz").is_err());
    }
}
