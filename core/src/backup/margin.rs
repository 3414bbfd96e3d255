//! The floors a restored cluster starts above: every protection record of a backup raised to
//! the backup's highest eth2 epoch (or Espresso view) plus a safety margin, so that nothing
//! the backed-up cluster may have signed after the backup can be signed again.
//!
//! Owns: [`Margin`], [`Floors`], [`floors`] (the highest epoch and view in a backup, plus the
//! margin) and [`raise`] (every record raised to the floors). Must not: lower anything, read a
//! clock, or touch the registry, admin state or audit chain.
//!
//! What a restored cluster refuses, for every eth2 key with a record or in the registry:
//! blocks at any slot up to the last slot of epoch `E + eth2_epochs`, and attestations whose
//! target epoch is at most `E + eth2_epochs` or whose source epoch is below it, where `E` is
//! the highest epoch any eth2 record of the backup holds (attestation source or target, or a
//! block's slot's epoch). For every Espresso key with a record or in the registry, and every
//! message kind: anything at a view up to `V + espresso_views`, where `V` is the highest view
//! any Espresso record of the backup holds. One floor for all keys: the keys of a cluster
//! follow one chain's clock, so the highest mark of any key bounds the others.
//!
//! To ensure correctness:
//! - [`raise`] only raises: every mark after it is at least the mark before it
//!   (`raise_lowers_nothing_and_allows_nothing_new`);
//! - an eth2 mark set to a floor carries no signing root and an Espresso watermark set to a
//!   floor carries [`FLOOR_DIGEST`], which no message hashes to: nothing at a floor re-signs.

use crate::protection::espresso::{Kind, Position, Rule, Watermark, Window};
use crate::protection::ethereum::BlsPubkey;
use crate::protection::{Profile, ProtectionState};
use crate::registry::Registry;

/// Slots per eth2 epoch (the mainnet preset, as `eth2::SLOTS_PER_EPOCH`; every public network
/// uses it).
pub const SLOTS_PER_EPOCH: u64 = 32;

/// The message digest of an Espresso watermark raised to a floor: all zero bytes, which no
/// HotShot commitment or payload hash is, so a request at the floor's view is an
/// equivocation, never a re-sign.
pub const FLOOR_DIGEST: [u8; 32] = [0; 32];

/// How far above a backup's maxima a restored cluster starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Margin {
    /// eth2 epochs above the highest epoch of the backup.
    pub eth2_epochs: u64,
    /// Espresso views above the highest view of the backup.
    pub espresso_views: u64,
}

/// The marks every record is raised to; `None` where the backup holds no record of that
/// profile (nothing to extrapolate from, nothing raised).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Floors {
    /// The eth2 epoch at and below which attestation targets are refused.
    pub eth2_epoch: Option<u64>,
    /// The last slot of that epoch: blocks at and below it are refused.
    pub eth2_slot: Option<u64>,
    /// The Espresso view at and below which every kind is refused.
    pub espresso_view: Option<u64>,
}

/// The highest epoch and view in `state`, plus `margin`.
pub fn floors(state: &ProtectionState, margin: Margin) -> Floors {
    let eth2_max = state
        .eth2
        .validators
        .values()
        .flat_map(|r| {
            let block = r.block.map(|b| b.slot / SLOTS_PER_EPOCH);
            let attestation = r.attestation.map(|a| a.target_epoch.max(a.source_epoch));
            block.into_iter().chain(attestation)
        })
        .max();
    let espresso_max = state
        .espresso
        .keys
        .values()
        .flat_map(|r| {
            let watermarks = r.watermarks.values().map(|w| w.view);
            let windows = r.windows.values().map(|w| {
                let floor = w.floor.map_or(0, |f| f.view);
                let signed = w.signed.keys().next_back().map_or(0, |p| p.view);
                w.newest_view.max(floor).max(signed)
            });
            watermarks.chain(windows).collect::<Vec<_>>()
        })
        .max();
    let eth2_epoch = eth2_max.map(|e| e.saturating_add(margin.eth2_epochs));
    Floors {
        eth2_epoch,
        // The epoch's last slot; past u64, every slot.
        eth2_slot: eth2_epoch.map(|e| {
            e.checked_add(1)
                .and_then(|next| next.checked_mul(SLOTS_PER_EPOCH))
                .map_or(u64::MAX, |first_of_next| first_of_next - 1)
        }),
        espresso_view: espresso_max.map(|v| v.saturating_add(margin.espresso_views)),
    }
}

/// Raise every record of `state`, and a record for every registry key of each profile, to
/// `floors`. Marks already above a floor stay as they are.
pub fn raise(state: &mut ProtectionState, registry: &Registry, floors: &Floors) {
    if let (Some(epoch), Some(slot)) = (floors.eth2_epoch, floors.eth2_slot) {
        let mut keys: Vec<BlsPubkey> = state.eth2.validators.keys().copied().collect();
        keys.extend(registry_keys(registry, Profile::Eth2));
        for pubkey in keys {
            state.eth2.raise_block_watermark(pubkey, slot);
            state
                .eth2
                .raise_attestation_watermarks(pubkey, epoch, epoch);
        }
    }
    if let Some(view) = floors.espresso_view {
        let mut keys: Vec<_> = state.espresso.keys.keys().copied().collect();
        keys.extend(registry_keys(registry, Profile::Espresso));
        for key in keys {
            let record = state.espresso.keys.entry(key).or_default();
            for kind in Kind::ALL {
                match kind.rule() {
                    Rule::Watermark => {
                        let raised = Watermark {
                            view,
                            message: crate::bytes::FixedBytes(FLOOR_DIGEST),
                        };
                        let slot = record.watermarks.entry(kind).or_insert(raised);
                        if slot.view <= view {
                            *slot = raised;
                        }
                    }
                    Rule::Window => {
                        let floor = Position {
                            view,
                            relay: u64::MAX,
                        };
                        let window = record.windows.entry(kind).or_insert(Window {
                            newest_view: view,
                            floor: None,
                            signed: Default::default(),
                        });
                        window.newest_view = window.newest_view.max(view);
                        window.floor = Some(window.floor.map_or(floor, |f| f.max(floor)));
                        window.signed.retain(|p, _| *p > floor);
                    }
                    // Requests and network messages keep no record to raise.
                    Rule::Unprotected => {}
                }
            }
        }
    }
}

/// The public keys of the registry's keys of `profile` that have the length of that profile's
/// keys (any other record is not a key the rules could ever check).
fn registry_keys<const N: usize>(
    registry: &Registry,
    profile: Profile,
) -> Vec<crate::bytes::FixedBytes<N>> {
    registry
        .keys
        .values()
        .filter(|r| r.profile == profile)
        .filter_map(|r| crate::bytes::FixedBytes::from_slice(&r.public_key).ok())
        .collect()
}
