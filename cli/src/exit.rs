//! `signerctl`'s exit codes: one number per class of outcome, the same for every command, and
//! the table that every `--help` and the README print.
//!
//! Owns: the numbers, their meaning, and which class a gRPC status code falls in. Must not:
//! print anything or decide anything about the request (callers build the message; this
//! module only says which number goes with it).

use tonic::Code;

/// Other errors: files, unexpected answers, an aborted confirmation.
pub const OTHER: u8 = 1;
/// Bad arguments, or a request the cluster rejects as malformed or impossible in its state.
pub const USAGE: u8 = 2;
/// Refused: slashing protection, a key id held under another public key, or paused signing.
pub const REFUSED: u8 = 3;
/// No node answered in time.
pub const UNAVAILABLE: u8 = 4;
/// The identity may not do this (no grant, not an admin or auditor, approval does not verify).
pub const NOT_PERMITTED: u8 = 5;
/// An admin change was proposed but needs more approvals.
pub const PENDING: u8 = 6;
/// The identity's rate limit is exhausted, or too many admin challenges are open.
pub const RATE_LIMITED: u8 = 7;
/// No such key, challenge or audit record.
pub const NOT_FOUND: u8 = 8;
/// `audit verify`: a chain does not verify, or the nodes disagree.
pub const AUDIT_BROKEN: u8 = 9;

/// The exit-code table, as a literal for `concat!` (every command's `--help` ends with it).
macro_rules! exit_code_table {
    () => {
        "\
Exit codes (the same for every command):
  0  success (sign: stdout holds only the signature)
  1  other errors (files, unexpected answers, a confirmation answered no)
  2  bad arguments, or the cluster rejected the request as malformed or impossible in its
     state (already exists, already decided, deleted key, no KEK configured)
  3  refused: slashing protection, key_mismatch, or `paused` (signing is paused by the
     admins); `refused: <code>: <reason>` on stderr. Never retry a refusal.
  4  unavailable: no node answered in time (or no leader to accept the request)
  5  not permitted: the identity has no grant for this, is not an enrolled admin or an
     auditor, or its approval signature does not verify under its enrolled key
  6  pending: an admin change was proposed but needs more approvals
     (`signerctl approve <id>` by other admins; see `signerctl pending`)
  7  rate limited: the identity's rate limit is exhausted, or too many admin challenges
     are open; retry later
  8  not found: no such key (or it is disabled), challenge or audit record
  9  audit verify: a chain does not verify, or the nodes disagree at a common record"
    };
}
pub(crate) use exit_code_table;

/// The exit code of a definitive answer with status `code` (not a refusal: a refusal is
/// [`REFUSED`] whatever its status).
pub fn of_status(code: Code) -> u8 {
    match code {
        Code::InvalidArgument
        | Code::OutOfRange
        | Code::AlreadyExists
        | Code::FailedPrecondition => USAGE,
        Code::PermissionDenied | Code::Unauthenticated => NOT_PERMITTED,
        Code::ResourceExhausted => RATE_LIMITED,
        Code::NotFound => NOT_FOUND,
        Code::Unavailable | Code::DeadlineExceeded => UNAVAILABLE,
        _ => OTHER,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every code in the table is a distinct constant, and the table documents each one.
    #[test]
    fn every_class_has_its_own_documented_code() {
        let codes = [
            OTHER,
            USAGE,
            REFUSED,
            UNAVAILABLE,
            NOT_PERMITTED,
            PENDING,
            RATE_LIMITED,
            NOT_FOUND,
            AUDIT_BROKEN,
        ];
        let mut sorted = codes.to_vec();
        sorted.dedup();
        assert_eq!(sorted, vec![1, 2, 3, 4, 5, 6, 7, 8, 9]);
        let table = exit_code_table!();
        for code in codes {
            assert!(
                table.contains(&format!("\n  {code}  ")),
                "{code} undocumented"
            );
        }
    }

    #[test]
    fn statuses_map_to_their_class() {
        assert_eq!(of_status(Code::PermissionDenied), 5);
        assert_eq!(of_status(Code::Unauthenticated), 5);
        assert_eq!(of_status(Code::ResourceExhausted), 7);
        assert_eq!(of_status(Code::NotFound), 8);
        assert_eq!(of_status(Code::InvalidArgument), 2);
        assert_eq!(of_status(Code::FailedPrecondition), 2);
        assert_eq!(of_status(Code::Internal), 1);
    }
}
