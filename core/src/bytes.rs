//! Fixed-size byte strings that travel as `0x`-hex text in JSON (raw bytes in the binary
//! storage format, [`crate::format`]) and print as hex.
//!
//! Owns: [`FixedBytes`], the value type used for public keys and roots in replicated state and
//! interchange files. Must not: hold secrets (it is `Clone`, `Debug` and `Serialize`).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `N` bytes, ordered lexicographically, serialized as a `0x`-prefixed lower-case hex string.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FixedBytes<const N: usize>(pub [u8; N]);

/// Why a hex string is not a valid [`FixedBytes`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HexError {
    /// The text is not hex (after an optional `0x`).
    #[error("not valid hex")]
    NotHex,
    /// The decoded length is wrong.
    #[error("expected {expected} bytes, got {actual}")]
    WrongLength {
        /// Required length in bytes.
        expected: usize,
        /// Decoded length in bytes.
        actual: usize,
    },
}

impl<const N: usize> FixedBytes<N> {
    /// Parse `0x`-prefixed (or bare) hex of exactly `N` bytes.
    pub fn from_hex(text: &str) -> Result<Self, HexError> {
        let digits = text.strip_prefix("0x").unwrap_or(text);
        let bytes = hex::decode(digits).map_err(|_| HexError::NotHex)?;
        Self::from_slice(&bytes)
    }

    /// Copy exactly `N` bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, HexError> {
        <[u8; N]>::try_from(bytes)
            .map(FixedBytes)
            .map_err(|_| HexError::WrongLength {
                expected: N,
                actual: bytes.len(),
            })
    }

    /// `0x`-prefixed lower-case hex.
    pub fn to_hex(&self) -> String {
        format!("0x{}", hex::encode(self.0))
    }
}

impl<const N: usize> std::fmt::Debug for FixedBytes<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl<const N: usize> std::fmt::Display for FixedBytes<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl<const N: usize> Serialize for FixedBytes<N> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        hex_or_raw::serialize(&self.0, s)
    }
}

impl<'de, const N: usize> Deserialize<'de> for FixedBytes<N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes = hex_or_raw::deserialize(d)?;
        FixedBytes::from_slice(&bytes).map_err(serde::de::Error::custom)
    }
}

/// Serde `with` module for byte strings: `0x`-hex text in human-readable formats (JSON,
/// where the `0x` is optional on input), a length-prefixed byte string in binary ones.
pub mod hex_or_raw {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Write `bytes`.
    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&format!("0x{}", hex::encode(bytes)))
        } else {
            s.serialize_bytes(bytes)
        }
    }

    /// Read what [`serialize`] wrote.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        if d.is_human_readable() {
            let text = String::deserialize(d)?;
            let digits = text.strip_prefix("0x").unwrap_or(&text);
            hex::decode(digits).map_err(|_| serde::de::Error::custom("not valid hex"))
        } else {
            d.deserialize_byte_buf(RawBytes)
        }
    }

    struct RawBytes;

    impl<'de> serde::de::Visitor<'de> for RawBytes {
        type Value = Vec<u8>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a byte string")
        }
        fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }
        fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hex_roundtrip_and_errors() {
        let b = FixedBytes::<2>::from_hex("0xabcd").unwrap();
        assert_eq!(b.0, [0xab, 0xcd]);
        assert_eq!(b.to_hex(), "0xabcd");
        assert_eq!(FixedBytes::<2>::from_hex("abcd").unwrap(), b);
        assert_eq!(FixedBytes::<2>::from_hex("0xzz12"), Err(HexError::NotHex));
        assert_eq!(
            FixedBytes::<2>::from_hex("0xabcdef"),
            Err(HexError::WrongLength {
                expected: 2,
                actual: 3
            })
        );
        let json = serde_json::to_string(&b).unwrap();
        assert_eq!(json, "\"0xabcd\"");
        assert_eq!(serde_json::from_str::<FixedBytes<2>>(&json).unwrap(), b);
    }
}
