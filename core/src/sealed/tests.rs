#![allow(clippy::unwrap_used, clippy::panic)]

use super::*;
use proptest::prelude::*;

/// The magic, spelled out here rather than taken from the constant under test.
const MAGIC: &[u8] = b"qs/shared-dek/v1";

#[test]
fn a_shared_key_is_the_magic_its_id_and_the_kek_bytes() {
    let id = [7u8; DATA_KEY_ID_LEN];
    let mut bytes = MAGIC.to_vec();
    bytes.extend_from_slice(&id);
    bytes.extend_from_slice(b"kms blob");
    assert_eq!(
        WrappedDataKey::parse(&bytes),
        Ok(WrappedDataKey::Shared {
            id,
            wrapped: b"kms blob"
        })
    );
    assert_eq!(
        WrappedDataKey::Shared {
            id,
            wrapped: b"kms blob"
        }
        .to_bytes(),
        bytes
    );
}

#[test]
fn a_shared_key_without_wrapped_bytes_is_refused_with_its_length() {
    for len in [MAGIC.len(), MAGIC.len() + 1, MAGIC.len() + DATA_KEY_ID_LEN] {
        let mut bytes = MAGIC.to_vec();
        bytes.resize(len, 1);
        let err = WrappedDataKey::parse(&bytes).unwrap_err();
        assert_eq!(err, TruncatedSharedDataKey(len));
        assert_eq!(
            err.to_string(),
            format!(
                "wrapped data key of {len} bytes starts as a shared data key but is shorter \
                 than its 33-byte header, id and wrapped key"
            )
        );
    }
}

#[test]
fn a_record_of_formats_1_to_3_reads_as_its_own_key() {
    // A locally wrapped key (60 bytes) and the empty and one-byte-short-of-magic cases.
    for bytes in [vec![0u8; 60], Vec::new(), MAGIC[..15].to_vec()] {
        assert_eq!(
            WrappedDataKey::parse(&bytes),
            Ok(WrappedDataKey::Own(&bytes))
        );
    }
}

proptest! {
    #[test]
    fn every_form_reads_back_from_its_bytes(
        id in any::<[u8; DATA_KEY_ID_LEN]>(),
        wrapped in proptest::collection::vec(any::<u8>(), 1..300),
        own in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let shared = WrappedDataKey::Shared { id, wrapped: &wrapped };
        let bytes = shared.to_bytes();
        prop_assert_eq!(bytes.len(), 16 + DATA_KEY_ID_LEN + wrapped.len());
        prop_assert_eq!(WrappedDataKey::parse(&bytes), Ok(shared));
        let parsed = WrappedDataKey::parse(&own);
        if own.starts_with(MAGIC) {
            prop_assert!(!matches!(parsed, Ok(WrappedDataKey::Own(_))));
        } else {
            prop_assert_eq!(parsed, Ok(WrappedDataKey::Own(&own)));
            prop_assert_eq!(WrappedDataKey::Own(&own).to_bytes(), own.clone());
        }
    }
}
