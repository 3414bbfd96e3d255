//! Non-consensus messages a HotShot node signs with its BLS staking key: requests to peers and
//! builders, and network authentication. The signer builds each message's bytes itself from
//! typed fields ([`Request::signed_bytes`]); the requester's or peer's key in those bytes is
//! always the signing key, never a client value.
//!
//! Owns: [`Request`], the byte layout of each kind, its bounds ([`Request::validate`]), and the
//! recogniser of a VID request's SHA-256 preimage ([`is_vid_request_preimage`]). Must not: do
//! IO, read a clock (timestamps come from the client; the service bounds them), sign, or keep
//! state: none of these kinds is protected against repetition (HotShot re-signs them freely).
//!
//! # Layouts (`C07F` = the committable separator, `var(b)` = `u64le(len b) ‖ b`)
//! `pk64` is HotShot's `SignatureKey::to_bytes()` of the key: arkworks *compressed* G2, 64
//! bytes (crates/hotshot/types/src/signature_key.rs@080c7aba); `pk128` the uncompressed form.
//! - **proposal-fetch**: `Keccak256("signed proposal request commitment" ‖ C07F ‖
//!   "view number" ‖ C07F ‖ u64le(view) ‖ var(pk64))`, the 32-byte commitment, not the preimage
//!   (`ProposalRequestPayload::commit`, crates/hotshot/types/src/request_response.rs@88e99c1f;
//!   signed as `commit().as_ref()` by `fetch_proposal` / `request_proposal`).
//! - **vid-request**: `SHA-256(u32le(0) ‖ u64le(view) ‖ u64le(156) ‖ u64le(11) ‖ "BLS_VER_KEY" ‖
//!   u64le(128) ‖ pk128 ‖ checksum)`: bincode 1.3 (fixint) of `RequestKind::Vid(view, key)`,
//!   variant index a `u32`, the key through `TaggedBase64` as a byte vector
//!   (crates/hotshot/task-impls/src/request.rs@12547458 `serialize_and_sign`;
//!   types/src/traits/network.rs@01939c4b; tagged-base64 0.4.1). The preimage is 176 bytes.
//! - **catch-up**: `request ‖ u64le(timestamp) ‖ "espresso-request-response"`, `request` the
//!   application's `to_bytes()` (the sequencer: `bincode(Request)`, variants Accounts, Leaf,
//!   ChainConfig, BlocksFrontier, RewardAccounts) (crates/request-response/src/message.rs
//!   @611791e3 `RequestMessage::new_signed`).
//! - **libp2p-auth**: `pk64 ‖ peer_id`, `peer_id` the libp2p `PeerId::to_bytes()` multihash
//!   (crates/hotshot/libp2p-networking/src/network/transport.rs@0b6dabab
//!   `construct_auth_message`).
//! - **dht-record**: `0x00 ‖ pk64 ‖ value`: `RecordKey{Lookup = 0, pk64}.to_bytes() ‖ value`;
//!   HotShot signs only Lookup records, whose value is the node's `PeerId` bytes
//!   (…/network/behaviours/dht/record.rs@88e99c1f `RecordValue::new_signed`).
//! - **push-cdn-auth**: `"espresso-cdn-user-marshal-auth" ‖ u64le(unix seconds)`, 38 bytes
//!   (Push-CDN cdn-proto/src/crypto/signature.rs, connection/auth/user.rs@294a48b9; HotShot's
//!   `WrappedSignatureKey::sign` signs `namespace ‖ message`). `espresso-cdn-broker-broker-auth`
//!   is signed with broker keys, not validator keys, and is not offered.
//! - **builder-available-blocks**: the parent's VID payload commitment, 32 bytes as is.
//! - **builder-claim** (`claim_block` and `claim_block_header_input` share one signature): the
//!   builder's `block_hash`, 32 bytes as is (crates/hotshot/task-impls/src/transactions.rs
//!   @01f79e68). Neither builder signature covers the view: HotShot sends it beside.
//!
//! # Why none can stand in for a consensus signature
//! Every protected consensus kind signs exactly 32 bytes (a Keccak committable output, SHA-256
//! of a DA payload, or a VID payload commitment). Per kind:
//! - proposal-fetch: a Keccak output whose preimage the signer writes, starting with its own
//!   tag `"signed proposal request commitment" ‖ C07F`; `C0 7F` is not UTF-8, so no other
//!   committable preimage (tags "Vote", "leaf commitment", …) equals it. Equality with a vote
//!   or leaf commitment needs a Keccak collision; with a DA digest or VID commitment, a
//!   cross-hash collision (finding a payload whose SHA-256, or VID root, is this value).
//! - vid-request: a SHA-256 output over a 176-byte preimage the signer writes. Equality with a
//!   committable or VID output needs a cross-hash collision. **Overlap**: a DA proposal signs
//!   SHA-256 of a client-chosen payload, and the preimage is a possible payload: the DA path
//!   must refuse payloads for which [`is_vid_request_preimage`] holds. The other way round is
//!   inherent to HotShot: a VID request signature *is* this key's DA proposal signature for
//!   that 176-byte payload, valid in every view (DA proposals do not sign their view).
//! - catch-up: never 32 bytes: at least 1 + 8 + 25 = 34.
//! - libp2p-auth: never 32 bytes: 64 + 3 = 67 to 64 + 44 = 108.
//! - dht-record: never 32 bytes: 1 + 64 + 3 = 68 to 109.
//! - push-cdn-auth: never 32 bytes: always 38.
//! - builder-available-blocks and builder-claim: **client-chosen 32 bytes.** The signer cannot
//!   check a builder's block hash (SHA-256 over the block payload, namespace table and
//!   metadata, which the node receives only after claiming), nor that a VID commitment is the
//!   parent's (the parent was dispersed by another leader). Any vote commitment could be
//!   passed off as either: these kinds must be refused unless the client is explicitly trusted
//!   ([`Request::requires_trusted_client`]). Even an honest parent commitment signs exactly
//!   the bytes of a VID disperse of that payload (inherent to HotShot).

mod encode;

pub use encode::{
    check_peer_id, compressed_key, is_vid_request_preimage, vid_request_preimage,
    COMPRESSED_KEY_LEN, MAX_INLINE_KEY_LEN, VID_REQUEST_PREIMAGE_LEN,
};

use super::committable::Builder;
use super::message::{Commitment, HexBytes};
use crate::scheme::bn254::PublicKey;
use serde::{Deserialize, Serialize};

/// The committable tag of HotShot's `ProposalRequestPayload`.
pub const PROPOSAL_REQUEST_TAG: &str = "signed proposal request commitment";
/// The namespace the request-response protocol appends to every signed request.
pub const CATCH_UP_SUFFIX: &[u8] = b"espresso-request-response";
/// The Push-CDN namespace of a user's (validator's) authentication to a marshal.
pub const PUSH_CDN_USER_NAMESPACE: &str = "espresso-cdn-user-marshal-auth";
/// The DHT record namespace HotShot signs (`Namespace::Lookup`).
pub const DHT_LOOKUP_NAMESPACE: u8 = 0;
/// Largest catch-up request accepted. HotShot's request-response crate sets no limit; the
/// sequencer's requests are a `u32` variant and a few integers, a 32-byte commitment, or a
/// list of 20-byte accounts — far below this.
pub const MAX_CATCH_UP_REQUEST_BYTES: usize = 64 * 1024;

/// How far ahead of the signer's clock a catch-up request's or Push-CDN authentication's
/// timestamp may be, in seconds. HotShot's peers refuse a catch-up request only once it is
/// older than their TTL (40 s in the sequencer) and never one from the future, and a Push-CDN
/// marshal accepts an authentication up to 5 s old: a signature over a future time could be
/// replayed until then. Honest nodes stamp their own clock's time; this leaves room for their
/// clocks to differ.
pub const MAX_TIMESTAMP_AHEAD_SECS: u64 = 30;

/// A typed non-consensus request for the BLS staking key to sign.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// `ProposalRequestPayload{view, key}`: ask peers for the quorum proposal of `view`.
    ProposalFetch {
        /// View whose proposal is requested.
        view: u64,
    },
    /// `RequestKind::Vid(view, key)`: ask DA members for this key's VID share of `view`.
    Vid {
        /// View whose VID share is requested.
        view: u64,
    },
    /// A request-response (catch-up) request.
    CatchUp {
        /// The application's request bytes (the sequencer: `bincode(Request)`).
        request: HexBytes,
        /// When the request is signed, in seconds since the Unix epoch.
        timestamp: u64,
    },
    /// libp2p connection authentication binding the key to a peer.
    Libp2pAuth {
        /// The node's libp2p `PeerId` bytes.
        peer_id: HexBytes,
    },
    /// A DHT lookup record mapping the key to its peer.
    DhtRecord {
        /// The record's value: the node's libp2p `PeerId` bytes.
        value: HexBytes,
    },
    /// Push-CDN authentication to a marshal.
    PushCdnAuth {
        /// When the message is signed, in seconds since the Unix epoch.
        timestamp: u64,
    },
    /// A builder `available_blocks` query; signs the parent commitment as is.
    BuilderAvailableBlocks {
        /// VID payload commitment of the parent block.
        parent_commitment: Commitment,
        /// View the block is for (sent beside the signature, not signed).
        view: u64,
    },
    /// A builder `claim_block` / `claim_block_header_input`; signs the block hash as is.
    BuilderClaim {
        /// The builder's block hash (`BuilderCommitment`).
        block_hash: Commitment,
        /// View the block is for (sent beside the signature, not signed).
        view: u64,
    },
}

/// Why a [`Request`] is malformed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// A byte field is empty where HotShot never sends an empty one.
    #[error("{kind}: {field} is empty")]
    Empty {
        /// Kind name.
        kind: &'static str,
        /// Field name.
        field: &'static str,
    },
    /// A byte field exceeds its bound.
    #[error("{kind}: {field} has {len} bytes, at most {max} accepted")]
    TooLong {
        /// Kind name.
        kind: &'static str,
        /// Field name.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// A field that must be a libp2p `PeerId` is not one.
    #[error("{kind}: {field} is not a libp2p PeerId: {reason}")]
    NotPeerId {
        /// Kind name.
        kind: &'static str,
        /// Field name.
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// A timestamp too far ahead of the signer's clock ([`MAX_TIMESTAMP_AHEAD_SECS`]).
    #[error(
        "{kind}: timestamp {timestamp} is {ahead} s ahead of this signer's clock (at most \
         {MAX_TIMESTAMP_AHEAD_SECS} s): a signature for a future time could be replayed until \
         then"
    )]
    TimestampAhead {
        /// Kind name.
        kind: &'static str,
        /// The request's timestamp (seconds since the Unix epoch).
        timestamp: u64,
        /// Seconds ahead of the clock.
        ahead: u64,
    },
}

impl Request {
    /// The kebab-case kind name used in configs, metrics and audit records.
    pub fn name(&self) -> &'static str {
        match self {
            Request::ProposalFetch { .. } => "proposal-fetch",
            Request::Vid { .. } => "vid-request",
            Request::CatchUp { .. } => "catch-up",
            Request::Libp2pAuth { .. } => "libp2p-auth",
            Request::DhtRecord { .. } => "dht-record",
            Request::PushCdnAuth { .. } => "push-cdn-auth",
            Request::BuilderAvailableBlocks { .. } => "builder-available-blocks",
            Request::BuilderClaim { .. } => "builder-claim",
        }
    }

    /// The view the request concerns, for the kinds that have one.
    pub fn view(&self) -> Option<u64> {
        match *self {
            Request::ProposalFetch { view }
            | Request::Vid { view }
            | Request::BuilderAvailableBlocks { view, .. }
            | Request::BuilderClaim { view, .. } => Some(view),
            Request::CatchUp { .. }
            | Request::Libp2pAuth { .. }
            | Request::DhtRecord { .. }
            | Request::PushCdnAuth { .. } => None,
        }
    }

    /// Kinds whose signed bytes are 32 bytes the client chose and the signer cannot check:
    /// sign them only for an explicitly trusted client (see the module docs).
    pub fn requires_trusted_client(&self) -> bool {
        matches!(
            self,
            Request::BuilderAvailableBlocks { .. } | Request::BuilderClaim { .. }
        )
    }

    /// Kinds whose signed bytes are a hash output over a preimage the signer writes (32 bytes).
    pub fn is_hash_output(&self) -> bool {
        matches!(self, Request::ProposalFetch { .. } | Request::Vid { .. })
    }

    /// Check a timestamped request (catch-up, Push-CDN authentication) against the signer's
    /// clock, `now_unix_secs`: its timestamp may be at most [`MAX_TIMESTAMP_AHEAD_SECS`] ahead.
    /// Past timestamps are signed (the peers refuse stale ones themselves).
    pub fn check_timestamp(&self, now_unix_secs: u64) -> Result<(), RequestError> {
        let timestamp = match self {
            Request::CatchUp { timestamp, .. } | Request::PushCdnAuth { timestamp } => *timestamp,
            _ => return Ok(()),
        };
        let ahead = timestamp.saturating_sub(now_unix_secs);
        if ahead > MAX_TIMESTAMP_AHEAD_SECS {
            return Err(RequestError::TimestampAhead {
                kind: self.name(),
                timestamp,
                ahead,
            });
        }
        Ok(())
    }

    /// Check the bounds: a catch-up request is 1 to [`MAX_CATCH_UP_REQUEST_BYTES`] bytes; a
    /// peer id and a DHT record value are libp2p `PeerId`s ([`check_peer_id`]: 3 to 44 bytes,
    /// which keeps the authentication message far below HotShot's `MAX_AUTH_MESSAGE_SIZE` of
    /// 1024 bytes). The other kinds have only fixed-size fields.
    pub fn validate(&self) -> Result<(), RequestError> {
        let kind = self.name();
        match self {
            Request::CatchUp { request, .. } => {
                let len = request.0.len();
                if len == 0 {
                    return Err(RequestError::Empty {
                        kind,
                        field: "request",
                    });
                }
                if len > MAX_CATCH_UP_REQUEST_BYTES {
                    return Err(RequestError::TooLong {
                        kind,
                        field: "request",
                        len,
                        max: MAX_CATCH_UP_REQUEST_BYTES,
                    });
                }
                Ok(())
            }
            Request::Libp2pAuth { peer_id: bytes } | Request::DhtRecord { value: bytes } => {
                let field = match self {
                    Request::Libp2pAuth { .. } => "peer_id",
                    _ => "value",
                };
                check_peer_id(&bytes.0).map_err(|reason| RequestError::NotPeerId {
                    kind,
                    field,
                    reason,
                })
            }
            Request::ProposalFetch { .. }
            | Request::Vid { .. }
            | Request::PushCdnAuth { .. }
            | Request::BuilderAvailableBlocks { .. }
            | Request::BuilderClaim { .. } => Ok(()),
        }
    }

    /// The exact bytes HotShot signs for this request by `key` (the requester's and peer's key
    /// in every layout is `key`). Call [`Request::validate`] first; for the kinds
    /// [`Request::requires_trusted_client`] names, check the client too.
    pub fn signed_bytes(&self, key: &PublicKey) -> Vec<u8> {
        match self {
            Request::ProposalFetch { view } => Builder::new(PROPOSAL_REQUEST_TAG)
                .u64_field("view number", *view)
                .var_size_bytes(&compressed_key(key))
                .finalize()
                .to_vec(),
            Request::Vid { view } => {
                use sha2::Digest as _;
                sha2::Sha256::digest(vid_request_preimage(*view, key)).to_vec()
            }
            Request::CatchUp { request, timestamp } => {
                let mut out = Vec::with_capacity(request.0.len() + 8 + CATCH_UP_SUFFIX.len());
                out.extend_from_slice(&request.0);
                out.extend_from_slice(&timestamp.to_le_bytes());
                out.extend_from_slice(CATCH_UP_SUFFIX);
                out
            }
            Request::Libp2pAuth { peer_id } => {
                let mut out = Vec::with_capacity(COMPRESSED_KEY_LEN + peer_id.0.len());
                out.extend_from_slice(&compressed_key(key));
                out.extend_from_slice(&peer_id.0);
                out
            }
            Request::DhtRecord { value } => {
                let mut out = Vec::with_capacity(1 + COMPRESSED_KEY_LEN + value.0.len());
                out.push(DHT_LOOKUP_NAMESPACE);
                out.extend_from_slice(&compressed_key(key));
                out.extend_from_slice(&value.0);
                out
            }
            Request::PushCdnAuth { timestamp } => {
                let mut out = Vec::with_capacity(PUSH_CDN_USER_NAMESPACE.len() + 8);
                out.extend_from_slice(PUSH_CDN_USER_NAMESPACE.as_bytes());
                out.extend_from_slice(&timestamp.to_le_bytes());
                out
            }
            Request::BuilderAvailableBlocks {
                parent_commitment, ..
            } => parent_commitment.0.to_vec(),
            Request::BuilderClaim { block_hash, .. } => block_hash.0.to_vec(),
        }
    }
}

#[cfg(test)]
mod tests;
