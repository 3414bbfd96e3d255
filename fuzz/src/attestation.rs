//! Target `attestation`: YubiKey attestation certificates, as an `enroll_admin` action carries
//! them (slot certificate, device certificate) and every replica verifies them against the
//! replicated trusted roots (`admin::attestation::{verify_attestation, inspect_slot,
//! check_root}`).
//!
//! Owns: the input framing (a `u16` big-endian length and the slot certificate, the same for
//! the device certificate, then the rest as an extra trusted root beside Yubico's) and the
//! properties. Must not: decide whether an attested key may be an admin (the admin policy does).
//!
//! Properties: verification depends only on the bytes (two runs agree); a verified slot
//! certificate reads the same facts without verification (`inspect_slot`, what approvers are
//! shown); a verified chain's device certificate is signed by one of the roots given, so
//! verifying against Yubico's roots alone succeeds only if one of them signed it.

use signer_node::admin::attestation::{check_root, inspect_slot, verify_attestation, yubico_roots};

fn take<'a>(data: &mut &'a [u8]) -> Option<&'a [u8]> {
    let (len, rest) = data.split_first_chunk::<2>()?;
    let len = usize::from(u16::from_be_bytes(*len)).min(rest.len());
    let (head, tail) = rest.split_at(len);
    *data = tail;
    Some(head)
}

/// One fuzz input.
pub fn check(data: &[u8]) {
    let mut rest = data;
    let (Some(slot), Some(device)) = (take(&mut rest), take(&mut rest)) else {
        return;
    };
    let mut roots = yubico_roots();
    roots.push(rest.to_vec());
    let _ = check_root(rest);
    let first = verify_attestation(slot, device, &roots);
    let again = verify_attestation(slot, device, &roots);
    assert_eq!(
        first, again,
        "attestation verification is not deterministic"
    );
    let inspected = inspect_slot(slot);
    match first {
        Ok(attested) => {
            let shown = inspected.expect("a verified slot certificate reads without verifying");
            assert_eq!(
                shown, attested,
                "inspect_slot shows other facts than verification"
            );
            let _ = attested.facts();
            let yubico_only = verify_attestation(slot, device, &yubico_roots());
            if yubico_only.is_ok() {
                assert_eq!(yubico_only, Ok(attested));
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}
