//! Networks: fork names and each network's fork versions and genesis validators root.
//!
//! Owns: [`ForkName`], [`NetworkSpec`] and the built-in specs of mainnet, sepolia, holesky and
//! hoodi. Must not: hold fork *epochs* (the fork boundary of a message comes from its
//! `fork_info`, as in `get_domain`), or read config files (callers deserialize a
//! `NetworkSpec` themselves; it implements serde).
//!
//! Sources of the constants (see also tests/vectors/eth2-signing-roots/NOTES.md):
//! - fork versions: `metadata/config.yaml` of eth-clients/{mainnet,sepolia,holesky,hoodi};
//!   mainnet's FULU from consensus-specs `configs/mainnet.yaml`, sepolia's FULU from the
//!   sepolia config that sigp/lighthouse ships (`built_in_network_configs/sepolia`);
//! - genesis validators roots: hoodi `metadata/genesis_validators_root.txt`; sepolia bytes
//!   8..40 of `metadata/genesis.ssz` (the `BeaconState` field); mainnet and holesky as listed by
//!   the deposit CLI's chain settings and the clients' built-in network tables.

use serde::{Deserialize, Serialize};

use crate::json::codec::{hex_bytes, hex_version_opt};
use crate::{Eth2Error, Root, Version};

/// A consensus fork, in activation order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ForkName {
    /// Genesis.
    Phase0,
    /// Altair.
    Altair,
    /// Bellatrix (the merge).
    Bellatrix,
    /// Capella.
    Capella,
    /// Deneb (EIP-7044 from here on).
    Deneb,
    /// Electra.
    Electra,
    /// Fulu.
    Fulu,
}

impl ForkName {
    /// All forks, oldest first.
    pub const ALL: [ForkName; 7] = [
        ForkName::Phase0,
        ForkName::Altair,
        ForkName::Bellatrix,
        ForkName::Capella,
        ForkName::Deneb,
        ForkName::Electra,
        ForkName::Fulu,
    ];

    /// The name Web3Signer uses in `version` fields (`"PHASE0"`, `"ALTAIR"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ForkName::Phase0 => "PHASE0",
            ForkName::Altair => "ALTAIR",
            ForkName::Bellatrix => "BELLATRIX",
            ForkName::Capella => "CAPELLA",
            ForkName::Deneb => "DENEB",
            ForkName::Electra => "ELECTRA",
            ForkName::Fulu => "FULU",
        }
    }

    /// Parse a Web3Signer `version` name, case-insensitively.
    pub fn parse(name: &str) -> Option<ForkName> {
        ForkName::ALL
            .into_iter()
            .find(|f| f.as_str().eq_ignore_ascii_case(name))
    }

    /// The fork's tag in the binary form (its position in [`ForkName::ALL`]).
    pub fn tag(self) -> u8 {
        self as u8
    }

    /// The fork with binary tag `tag`.
    pub fn from_tag(tag: u8) -> Option<ForkName> {
        ForkName::ALL.get(usize::from(tag)).copied()
    }
}

impl std::fmt::Display for ForkName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the signer must know about its network to compute signing roots: the genesis
/// validators root every message's `fork_info` must name, and the fork versions (the genesis
/// one for deposits and builder registrations, capella's for EIP-7044 exits, and the whole
/// schedule to tell whether a request's fork is deneb or later).
///
/// Build one with [`NetworkSpec::by_name`], [`NetworkSpec::by_genesis_validators_root`], by hand
/// for a devnet, or from JSON/TOML (hex strings; later forks may be `null`/absent).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    /// A name for logs (`mainnet`, `my-devnet`).
    pub name: String,
    /// The network's `genesis_validators_root`.
    #[serde(with = "hex_bytes")]
    pub genesis_validators_root: Root,
    /// `GENESIS_FORK_VERSION`.
    #[serde(with = "hex_bytes")]
    pub genesis_fork_version: Version,
    /// `ALTAIR_FORK_VERSION`.
    #[serde(with = "hex_bytes")]
    pub altair_fork_version: Version,
    /// `BELLATRIX_FORK_VERSION`.
    #[serde(with = "hex_bytes")]
    pub bellatrix_fork_version: Version,
    /// `CAPELLA_FORK_VERSION` (the voluntary exit version from deneb on).
    #[serde(with = "hex_bytes")]
    pub capella_fork_version: Version,
    /// `DENEB_FORK_VERSION`, if scheduled.
    #[serde(default, with = "hex_version_opt")]
    pub deneb_fork_version: Option<Version>,
    /// `ELECTRA_FORK_VERSION`, if scheduled.
    #[serde(default, with = "hex_version_opt")]
    pub electra_fork_version: Option<Version>,
    /// `FULU_FORK_VERSION`, if scheduled.
    #[serde(default, with = "hex_version_opt")]
    pub fulu_fork_version: Option<Version>,
}

/// Names accepted by [`NetworkSpec::by_name`].
pub const BUILT_IN_NETWORKS: [&str; 4] = ["mainnet", "sepolia", "holesky", "hoodi"];

fn root(hex: &str) -> Root {
    let mut out = [0u8; 32];
    // The constants below are 64 hex digits; a typo fails the unit test `built_ins_are_sane`.
    if hex::decode_to_slice(hex, &mut out).is_err() {
        return [0u8; 32];
    }
    out
}

impl NetworkSpec {
    /// Ethereum mainnet.
    pub fn mainnet() -> NetworkSpec {
        NetworkSpec {
            name: "mainnet".into(),
            genesis_validators_root: root(
                "4b363db94e286120d76eb905340fdd4e54bfe9f06bf33ff6cf5ad27f511bfe95",
            ),
            genesis_fork_version: [0x00, 0x00, 0x00, 0x00],
            altair_fork_version: [0x01, 0x00, 0x00, 0x00],
            bellatrix_fork_version: [0x02, 0x00, 0x00, 0x00],
            capella_fork_version: [0x03, 0x00, 0x00, 0x00],
            deneb_fork_version: Some([0x04, 0x00, 0x00, 0x00]),
            electra_fork_version: Some([0x05, 0x00, 0x00, 0x00]),
            fulu_fork_version: Some([0x06, 0x00, 0x00, 0x00]),
        }
    }

    /// Sepolia.
    pub fn sepolia() -> NetworkSpec {
        NetworkSpec {
            name: "sepolia".into(),
            genesis_validators_root: root(
                "d8ea171f3c94aea21ebc42a1ed61052acf3f9209c00e4efbaaddac09ed9b8078",
            ),
            genesis_fork_version: [0x90, 0x00, 0x00, 0x69],
            altair_fork_version: [0x90, 0x00, 0x00, 0x70],
            bellatrix_fork_version: [0x90, 0x00, 0x00, 0x71],
            capella_fork_version: [0x90, 0x00, 0x00, 0x72],
            deneb_fork_version: Some([0x90, 0x00, 0x00, 0x73]),
            electra_fork_version: Some([0x90, 0x00, 0x00, 0x74]),
            fulu_fork_version: Some([0x90, 0x00, 0x00, 0x75]),
        }
    }

    /// Holesky.
    pub fn holesky() -> NetworkSpec {
        NetworkSpec {
            name: "holesky".into(),
            genesis_validators_root: root(
                "9143aa7c615a7f7115e2b6aac319c03529df8242ae705fba9df39b79c59fa8b1",
            ),
            genesis_fork_version: [0x01, 0x01, 0x70, 0x00],
            altair_fork_version: [0x02, 0x01, 0x70, 0x00],
            bellatrix_fork_version: [0x03, 0x01, 0x70, 0x00],
            capella_fork_version: [0x04, 0x01, 0x70, 0x00],
            deneb_fork_version: Some([0x05, 0x01, 0x70, 0x00]),
            electra_fork_version: Some([0x06, 0x01, 0x70, 0x00]),
            fulu_fork_version: Some([0x07, 0x01, 0x70, 0x00]),
        }
    }

    /// Hoodi.
    pub fn hoodi() -> NetworkSpec {
        NetworkSpec {
            name: "hoodi".into(),
            genesis_validators_root: root(
                "212f13fc4df078b6cb7db228f1c8307566dcecf900867401a92023d7ba99cb5f",
            ),
            genesis_fork_version: [0x10, 0x00, 0x09, 0x10],
            altair_fork_version: [0x20, 0x00, 0x09, 0x10],
            bellatrix_fork_version: [0x30, 0x00, 0x09, 0x10],
            capella_fork_version: [0x40, 0x00, 0x09, 0x10],
            deneb_fork_version: Some([0x50, 0x00, 0x09, 0x10]),
            electra_fork_version: Some([0x60, 0x00, 0x09, 0x10]),
            fulu_fork_version: Some([0x70, 0x00, 0x09, 0x10]),
        }
    }

    /// A built-in network by name (case-insensitive): mainnet, sepolia, holesky, hoodi.
    pub fn by_name(name: &str) -> Result<NetworkSpec, Eth2Error> {
        Self::built_ins()
            .into_iter()
            .find(|n| n.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| Eth2Error::UnknownNetwork(name.to_string()))
    }

    /// The built-in network whose genesis validators root is `gvr`, if any: lets a config that
    /// holds only the root keep working.
    pub fn by_genesis_validators_root(gvr: &Root) -> Option<NetworkSpec> {
        Self::built_ins()
            .into_iter()
            .find(|n| &n.genesis_validators_root == gvr)
    }

    fn built_ins() -> [NetworkSpec; 4] {
        [
            Self::mainnet(),
            Self::sepolia(),
            Self::holesky(),
            Self::hoodi(),
        ]
    }

    /// The version of `fork`, if the network schedules it.
    pub fn fork_version(&self, fork: ForkName) -> Option<Version> {
        match fork {
            ForkName::Phase0 => Some(self.genesis_fork_version),
            ForkName::Altair => Some(self.altair_fork_version),
            ForkName::Bellatrix => Some(self.bellatrix_fork_version),
            ForkName::Capella => Some(self.capella_fork_version),
            ForkName::Deneb => self.deneb_fork_version,
            ForkName::Electra => self.electra_fork_version,
            ForkName::Fulu => self.fulu_fork_version,
        }
    }

    /// The fork whose version is `version` (the latest one, should a devnet reuse a version),
    /// or `None` when the version is not in this network's schedule.
    pub fn fork_of(&self, version: Version) -> Option<ForkName> {
        ForkName::ALL
            .into_iter()
            .rev()
            .find(|f| self.fork_version(*f) == Some(version))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn built_ins_are_sane() {
        for name in BUILT_IN_NETWORKS {
            let spec = NetworkSpec::by_name(name).unwrap();
            assert_eq!(spec.name, name);
            assert_ne!(spec.genesis_validators_root, [0u8; 32], "{name}");
            let versions: Vec<_> = ForkName::ALL
                .into_iter()
                .filter_map(|f| spec.fork_version(f))
                .collect();
            let mut unique = versions.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(unique.len(), 7, "{name}: seven distinct fork versions");
            for f in ForkName::ALL {
                assert_eq!(spec.fork_of(spec.fork_version(f).unwrap()), Some(f));
            }
            assert_eq!(
                NetworkSpec::by_genesis_validators_root(&spec.genesis_validators_root),
                Some(spec)
            );
        }
        assert_eq!(
            NetworkSpec::by_name("goerli"),
            Err(Eth2Error::UnknownNetwork("goerli".into()))
        );
    }

    #[test]
    fn fork_names_round_trip() {
        for f in ForkName::ALL {
            assert_eq!(ForkName::parse(f.as_str()), Some(f));
            assert_eq!(ForkName::parse(&f.as_str().to_lowercase()), Some(f));
            assert_eq!(ForkName::from_tag(f.tag()), Some(f));
        }
        assert_eq!(ForkName::parse("GLOAS"), None);
        assert_eq!(ForkName::from_tag(7), None);
    }

    #[test]
    fn spec_deserializes_from_json_with_optional_later_forks() {
        let json = r#"{"name":"dev","genesis_validators_root":"0x0101010101010101010101010101010101010101010101010101010101010101",
            "genesis_fork_version":"0x00000001","altair_fork_version":"0x01000001",
            "bellatrix_fork_version":"0x02000001","capella_fork_version":"0x03000001"}"#;
        let spec: NetworkSpec = serde_json::from_str(json).unwrap();
        assert_eq!(spec.deneb_fork_version, None);
        assert_eq!(spec.fork_of([3, 0, 0, 1]), Some(ForkName::Capella));
        assert_eq!(spec.fork_of([4, 0, 0, 1]), None);
    }
}
