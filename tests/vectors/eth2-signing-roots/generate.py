#!/usr/bin/env python3
"""Independent signing-root vectors for the eth2-messages crate.

Written from the consensus-specs text (phase0..fulu beacon-chain.md / validator.md), the
builder-specs (ValidatorRegistrationV1, DOMAIN_APPLICATION_BUILDER) and Web3Signer's eth2 OpenAPI
(request body shapes), with `remerkleable` for SSZ hash_tree_root. It shares no code with the Rust
crate: containers, compute_domain, compute_signing_root, get_domain and the EIP-7044 rule are
written out again here.

    python3 -m venv /tmp/rmk && /tmp/rmk/bin/pip install remerkleable==0.1.28
    /tmp/rmk/bin/python generate.py          # (re)write the generated *.json fixtures
    /tmp/rmk/bin/python generate.py --check  # recompute every *.json fixture in this directory

Output is deterministic (seeded), so regenerating yields byte-identical files.
"""

import json
import random
import sys
from pathlib import Path

from remerkleable.basic import uint64
from remerkleable.bitfields import Bitlist, Bitvector
from remerkleable.byte_arrays import ByteVector, Bytes4, Bytes32, Bytes48, Bytes96
from remerkleable.complex import Container, List, Vector

HERE = Path(__file__).resolve().parent
FORMAT = "eth2-signing-roots/v1"

# ---------------------------------------------------------------- mainnet preset (presets/mainnet)
SLOTS_PER_EPOCH = 32
MAX_VALIDATORS_PER_COMMITTEE = 2048
MAX_COMMITTEES_PER_SLOT = 64
MAX_PROPOSER_SLASHINGS = 16
MAX_ATTESTER_SLASHINGS = 2
MAX_ATTESTATIONS = 128
MAX_DEPOSITS = 16
MAX_VOLUNTARY_EXITS = 16
DEPOSIT_CONTRACT_TREE_DEPTH = 32
SYNC_COMMITTEE_SIZE = 512
SYNC_COMMITTEE_SUBNET_COUNT = 4

# ---------------------------------------------------------------- domains (phase0, altair, builder)
DOMAIN_BEACON_PROPOSER = bytes.fromhex("00000000")
DOMAIN_BEACON_ATTESTER = bytes.fromhex("01000000")
DOMAIN_RANDAO = bytes.fromhex("02000000")
DOMAIN_DEPOSIT = bytes.fromhex("03000000")
DOMAIN_VOLUNTARY_EXIT = bytes.fromhex("04000000")
DOMAIN_SELECTION_PROOF = bytes.fromhex("05000000")
DOMAIN_AGGREGATE_AND_PROOF = bytes.fromhex("06000000")
DOMAIN_SYNC_COMMITTEE = bytes.fromhex("07000000")
DOMAIN_SYNC_COMMITTEE_SELECTION_PROOF = bytes.fromhex("08000000")
DOMAIN_CONTRIBUTION_AND_PROOF = bytes.fromhex("09000000")
DOMAIN_APPLICATION_BUILDER = bytes.fromhex("00000001")

Root = Bytes32
Version = Bytes4
BLSPubkey = Bytes48
BLSSignature = Bytes96
Bytes20 = ByteVector[20]  # ExecutionAddress


# ---------------------------------------------------------------- phase0 containers
class Fork(Container):
    previous_version: Version
    current_version: Version
    epoch: uint64


class ForkData(Container):
    current_version: Version
    genesis_validators_root: Root


class SigningData(Container):
    object_root: Root
    domain: Bytes32


class Checkpoint(Container):
    epoch: uint64
    root: Root


class AttestationData(Container):
    slot: uint64
    index: uint64
    beacon_block_root: Root
    source: Checkpoint
    target: Checkpoint


class IndexedAttestation(Container):
    attesting_indices: List[uint64, MAX_VALIDATORS_PER_COMMITTEE]
    data: AttestationData
    signature: BLSSignature


class Eth1Data(Container):
    deposit_root: Root
    deposit_count: uint64
    block_hash: Bytes32


class DepositMessage(Container):
    pubkey: BLSPubkey
    withdrawal_credentials: Bytes32
    amount: uint64


class DepositData(Container):
    pubkey: BLSPubkey
    withdrawal_credentials: Bytes32
    amount: uint64
    signature: BLSSignature


class BeaconBlockHeader(Container):
    slot: uint64
    proposer_index: uint64
    parent_root: Root
    state_root: Root
    body_root: Root


class SignedBeaconBlockHeader(Container):
    message: BeaconBlockHeader
    signature: BLSSignature


class ProposerSlashing(Container):
    signed_header_1: SignedBeaconBlockHeader
    signed_header_2: SignedBeaconBlockHeader


class AttesterSlashing(Container):
    attestation_1: IndexedAttestation
    attestation_2: IndexedAttestation


class Attestation(Container):
    aggregation_bits: Bitlist[MAX_VALIDATORS_PER_COMMITTEE]
    data: AttestationData
    signature: BLSSignature


class Deposit(Container):
    proof: Vector[Bytes32, DEPOSIT_CONTRACT_TREE_DEPTH + 1]
    data: DepositData


class VoluntaryExit(Container):
    epoch: uint64
    validator_index: uint64


class SignedVoluntaryExit(Container):
    message: VoluntaryExit
    signature: BLSSignature


class BeaconBlockBody(Container):
    randao_reveal: BLSSignature
    eth1_data: Eth1Data
    graffiti: Bytes32
    proposer_slashings: List[ProposerSlashing, MAX_PROPOSER_SLASHINGS]
    attester_slashings: List[AttesterSlashing, MAX_ATTESTER_SLASHINGS]
    attestations: List[Attestation, MAX_ATTESTATIONS]
    deposits: List[Deposit, MAX_DEPOSITS]
    voluntary_exits: List[SignedVoluntaryExit, MAX_VOLUNTARY_EXITS]


class BeaconBlock(Container):
    slot: uint64
    proposer_index: uint64
    parent_root: Root
    state_root: Root
    body: BeaconBlockBody


class AggregateAndProof(Container):
    aggregator_index: uint64
    aggregate: Attestation
    selection_proof: BLSSignature


# ---------------------------------------------------------------- altair containers
class SyncAggregate(Container):
    sync_committee_bits: Bitvector[SYNC_COMMITTEE_SIZE]
    sync_committee_signature: BLSSignature


class AltairBeaconBlockBody(Container):
    randao_reveal: BLSSignature
    eth1_data: Eth1Data
    graffiti: Bytes32
    proposer_slashings: List[ProposerSlashing, MAX_PROPOSER_SLASHINGS]
    attester_slashings: List[AttesterSlashing, MAX_ATTESTER_SLASHINGS]
    attestations: List[Attestation, MAX_ATTESTATIONS]
    deposits: List[Deposit, MAX_DEPOSITS]
    voluntary_exits: List[SignedVoluntaryExit, MAX_VOLUNTARY_EXITS]
    sync_aggregate: SyncAggregate


class AltairBeaconBlock(Container):
    slot: uint64
    proposer_index: uint64
    parent_root: Root
    state_root: Root
    body: AltairBeaconBlockBody


class SyncAggregatorSelectionData(Container):
    slot: uint64
    subcommittee_index: uint64


class SyncCommitteeContribution(Container):
    slot: uint64
    beacon_block_root: Root
    subcommittee_index: uint64
    aggregation_bits: Bitvector[SYNC_COMMITTEE_SIZE // SYNC_COMMITTEE_SUBNET_COUNT]
    signature: BLSSignature


class ContributionAndProof(Container):
    aggregator_index: uint64
    contribution: SyncCommitteeContribution
    selection_proof: BLSSignature


# ---------------------------------------------------------------- electra containers (EIP-7549)
class ElectraAttestation(Container):
    aggregation_bits: Bitlist[MAX_VALIDATORS_PER_COMMITTEE * MAX_COMMITTEES_PER_SLOT]
    data: AttestationData
    signature: BLSSignature
    committee_bits: Bitvector[MAX_COMMITTEES_PER_SLOT]


class ElectraAggregateAndProof(Container):
    aggregator_index: uint64
    aggregate: ElectraAttestation
    selection_proof: BLSSignature


# ---------------------------------------------------------------- builder-specs
class ValidatorRegistrationV1(Container):
    fee_recipient: Bytes20
    gas_limit: uint64
    timestamp: uint64
    pubkey: BLSPubkey


# ---------------------------------------------------------------- spec helpers
def compute_epoch_at_slot(slot):
    return int(slot) // SLOTS_PER_EPOCH


def compute_fork_data_root(current_version, genesis_validators_root):
    return ForkData(current_version=current_version,
                    genesis_validators_root=genesis_validators_root).hash_tree_root()


def compute_domain(domain_type, fork_version, genesis_validators_root):
    fork_data_root = compute_fork_data_root(fork_version, genesis_validators_root)
    return Bytes32(domain_type + bytes(fork_data_root)[:28])


def compute_signing_root(ssz_object, domain):
    return SigningData(object_root=ssz_object.hash_tree_root(), domain=domain).hash_tree_root()


def get_domain(fork, gvr, domain_type, epoch):
    version = fork.previous_version if epoch < fork.epoch else fork.current_version
    return compute_domain(domain_type, version, gvr)


# ---------------------------------------------------------------- networks (eth-clients configs)
FORKS = ["PHASE0", "ALTAIR", "BELLATRIX", "CAPELLA", "DENEB", "ELECTRA", "FULU"]
SPEC_KEYS = ["genesis", "altair", "bellatrix", "capella", "deneb", "electra", "fulu"]

NETWORKS = {
    "mainnet": dict(
        gvr="4b363db94e286120d76eb905340fdd4e54bfe9f06bf33ff6cf5ad27f511bfe95",
        versions=["00000000", "01000000", "02000000", "03000000", "04000000", "05000000",
                  "06000000"],
        epochs=[0, 74240, 144896, 194048, 269568, 364032, 411392]),
    "sepolia": dict(
        gvr="d8ea171f3c94aea21ebc42a1ed61052acf3f9209c00e4efbaaddac09ed9b8078",
        versions=["90000069", "90000070", "90000071", "90000072", "90000073", "90000074",
                  "90000075"],
        epochs=[0, 50, 100, 56832, 132608, 222464, 272640]),
    "holesky": dict(
        gvr="9143aa7c615a7f7115e2b6aac319c03529df8242ae705fba9df39b79c59fa8b1",
        versions=["01017000", "02017000", "03017000", "04017000", "05017000", "06017000",
                  "07017000"],
        epochs=[0, 0, 0, 256, 29696, 115968, 165120]),
    "hoodi": dict(
        gvr="212f13fc4df078b6cb7db228f1c8307566dcecf900867401a92023d7ba99cb5f",
        versions=["10000910", "20000910", "30000910", "40000910", "50000910", "60000910",
                  "70000910"],
        epochs=[0, 0, 0, 0, 0, 2048, 50688]),
}


class Network:
    """What the signer knows about a network: gvr and fork versions (no epochs)."""

    def __init__(self, name, gvr, versions):
        self.name = name
        self.gvr = Root(bytes.fromhex(strip0x(gvr)))
        self.versions = [None if v is None else Version(bytes.fromhex(strip0x(v)))
                         for v in versions]

    @classmethod
    def from_json(cls, j):
        if isinstance(j, str):
            n = NETWORKS[j]
            return cls(j, n["gvr"], n["versions"])
        versions = [j.get(f"{k}_fork_version") for k in SPEC_KEYS]
        return cls(j["name"], j["genesis_validators_root"], versions)

    def to_json(self):
        out = {"name": self.name, "genesis_validators_root": hx(self.gvr)}
        for key, v in zip(SPEC_KEYS, self.versions):
            out[f"{key}_fork_version"] = None if v is None else hx(v)
        return out

    def fork_of(self, version):
        """Index of the latest fork whose version is `version`, or None."""
        for i in reversed(range(len(self.versions))):
            if self.versions[i] is not None and self.versions[i] == version:
                return i
        return None


class Refused(Exception):
    """The request must be refused; args[0] is the error code the Rust crate reports."""


# ---------------------------------------------------------------- JSON <-> remerkleable
def strip0x(s):
    return s[2:] if s.startswith("0x") else s


def hx(b):
    return "0x" + bytes(b).hex()


def to_json(v):
    if isinstance(v, (Bitlist, Bitvector)):
        return hx(v.encode_bytes())
    if isinstance(v, ByteVector):
        return hx(v)
    if isinstance(v, uint64):
        return str(int(v))
    if isinstance(v, (List, Vector)):
        return [to_json(x) for x in v]
    if isinstance(v, Container):
        return {k: to_json(getattr(v, k)) for k in type(v).fields()}
    raise TypeError(type(v))


def from_json(typ, v):
    if issubclass(typ, (Bitlist, Bitvector)):
        return typ.decode_bytes(bytes.fromhex(strip0x(v)))
    if issubclass(typ, ByteVector):
        b = bytes.fromhex(strip0x(v))
        assert len(b) == typ.type_byte_length(), (typ, v)
        return typ(b)
    if issubclass(typ, uint64):
        return typ(int(v))
    if issubclass(typ, (List, Vector)):
        return typ(*[from_json(typ.element_cls(), x) for x in v])
    if issubclass(typ, Container):
        return typ(**{k: from_json(t, v[k]) for k, t in typ.fields().items()})
    raise TypeError(typ)


# ---------------------------------------------------------------- the signer's rules, in Python
def signing_root(req, net):
    """The root for a Web3Signer request `req` on `net`, or Refused(code)."""
    kind = req["type"].upper()
    if kind == "VALIDATOR_REGISTRATION":
        reg = from_json(ValidatorRegistrationV1, req["validator_registration"])
        # builder-specs: compute_domain(DOMAIN_APPLICATION_BUILDER) = genesis version, zero gvr
        return compute_signing_root(reg, compute_domain(DOMAIN_APPLICATION_BUILDER,
                                                        net.versions[0], Root()))
    if kind == "DEPOSIT":
        d = req["deposit"]
        gfv = from_json(Version, d["genesis_fork_version"])
        if gfv != net.versions[0]:
            raise Refused("genesis_fork_version_mismatch")
        msg = DepositMessage(pubkey=from_json(BLSPubkey, d["pubkey"]),
                             withdrawal_credentials=from_json(Bytes32, d["withdrawal_credentials"]),
                             amount=uint64(int(d["amount"])))
        return compute_signing_root(msg, compute_domain(DOMAIN_DEPOSIT, gfv, Root()))

    if "fork_info" not in req:
        raise Refused("missing_field")
    fi = req["fork_info"]
    fork = from_json(Fork, fi["fork"])
    gvr = from_json(Root, fi["genesis_validators_root"])
    if gvr != net.gvr:
        raise Refused("genesis_validators_root_mismatch")

    def dom(domain_type, epoch):
        return get_domain(fork, gvr, domain_type, epoch)

    if kind == "BLOCK_V2":
        bb = req["beacon_block"]
        version = bb["version"].upper()
        if version == "PHASE0":
            obj = from_json(BeaconBlock, bb["block"])
        elif version == "ALTAIR":
            obj = from_json(AltairBeaconBlock, bb["block"])
        elif version in FORKS:
            obj = from_json(BeaconBlockHeader, bb["block_header"])
        else:
            raise Refused("invalid_field")
        return compute_signing_root(obj, dom(DOMAIN_BEACON_PROPOSER,
                                             compute_epoch_at_slot(obj.slot)))
    if kind == "ATTESTATION":
        data = from_json(AttestationData, req["attestation"])
        return compute_signing_root(data, dom(DOMAIN_BEACON_ATTESTER, data.target.epoch))
    if kind == "AGGREGATION_SLOT":
        slot = uint64(int(req["aggregation_slot"]["slot"]))
        return compute_signing_root(slot, dom(DOMAIN_SELECTION_PROOF, compute_epoch_at_slot(slot)))
    if kind in ("AGGREGATE_AND_PROOF", "AGGREGATE_AND_PROOF_V2"):
        if kind == "AGGREGATE_AND_PROOF":
            obj = from_json(AggregateAndProof, req["aggregate_and_proof"])
        else:
            ap = req["aggregate_and_proof"]
            version = FORKS.index(ap["version"].upper())
            cls = ElectraAggregateAndProof if version >= FORKS.index("ELECTRA") else AggregateAndProof
            obj = from_json(cls, ap["data"])
        epoch = compute_epoch_at_slot(obj.aggregate.data.slot)
        return compute_signing_root(obj, dom(DOMAIN_AGGREGATE_AND_PROOF, epoch))
    if kind == "RANDAO_REVEAL":
        epoch = uint64(int(req["randao_reveal"]["epoch"]))
        return compute_signing_root(epoch, dom(DOMAIN_RANDAO, epoch))
    if kind == "VOLUNTARY_EXIT":
        exit_ = from_json(VoluntaryExit, req["voluntary_exit"])
        # EIP-7044 (deneb process_voluntary_exit): CAPELLA_FORK_VERSION from deneb on. Which
        # fork the request is in comes from fork_info.current_version; unknown -> refuse.
        current = net.fork_of(fork.current_version)
        if current is None:
            raise Refused("unknown_fork_version")
        if current >= FORKS.index("DENEB"):
            domain = compute_domain(DOMAIN_VOLUNTARY_EXIT, net.versions[3], gvr)
        else:
            domain = dom(DOMAIN_VOLUNTARY_EXIT, exit_.epoch)
        return compute_signing_root(exit_, domain)
    if kind == "SYNC_COMMITTEE_MESSAGE":
        m = req["sync_committee_message"]
        block_root = from_json(Root, m["beacon_block_root"])
        epoch = compute_epoch_at_slot(int(m["slot"]))
        return compute_signing_root(block_root, dom(DOMAIN_SYNC_COMMITTEE, epoch))
    if kind == "SYNC_COMMITTEE_SELECTION_PROOF":
        data = from_json(SyncAggregatorSelectionData, req["sync_aggregator_selection_data"])
        return compute_signing_root(data, dom(DOMAIN_SYNC_COMMITTEE_SELECTION_PROOF,
                                              compute_epoch_at_slot(data.slot)))
    if kind == "SYNC_COMMITTEE_CONTRIBUTION_AND_PROOF":
        cp = from_json(ContributionAndProof, req["contribution_and_proof"])
        return compute_signing_root(cp, dom(DOMAIN_CONTRIBUTION_AND_PROOF,
                                            compute_epoch_at_slot(cp.contribution.slot)))
    raise Refused("unknown_type")


# ---------------------------------------------------------------- deterministic content
class Content:
    def __init__(self, seed):
        self.rng = random.Random(seed)

    def b(self, n):
        return bytes(self.rng.getrandbits(8) for _ in range(n))

    def root(self):
        return Root(self.b(32))

    def sig(self):
        return BLSSignature(self.b(96))

    def u64(self, lo=0, hi=2**64 - 1):
        return uint64(self.rng.randint(lo, hi))

    def bits(self, n):
        return [self.rng.getrandbits(1) for _ in range(n)]

    def checkpoint(self, epoch):
        return Checkpoint(epoch=epoch, root=self.root())

    def data(self, slot, index=None):
        target = compute_epoch_at_slot(slot)
        return AttestationData(slot=slot, index=self.u64(0, 63) if index is None else index,
                               beacon_block_root=self.root(),
                               source=self.checkpoint(max(target - 1, 0)),
                               target=self.checkpoint(target))

    def header(self, slot):
        return BeaconBlockHeader(slot=slot, proposer_index=self.u64(0, 2_000_000),
                                 parent_root=self.root(), state_root=self.root(),
                                 body_root=self.root())

    def attestation(self, slot):
        bits = self.bits(self.rng.randint(1, 300))
        return Attestation(aggregation_bits=Bitlist[MAX_VALIDATORS_PER_COMMITTEE](*bits),
                           data=self.data(slot), signature=self.sig())

    def electra_attestation(self, slot):
        bits = self.bits(self.rng.randint(1, 1000))
        committees = self.bits(MAX_COMMITTEES_PER_SLOT)
        return ElectraAttestation(
            aggregation_bits=Bitlist[MAX_VALIDATORS_PER_COMMITTEE * MAX_COMMITTEES_PER_SLOT](*bits),
            data=self.data(slot, index=0), signature=self.sig(),
            committee_bits=Bitvector[MAX_COMMITTEES_PER_SLOT](*committees))

    def indexed(self, slot):
        n = self.rng.randint(1, 8)
        return IndexedAttestation(
            attesting_indices=List[uint64, MAX_VALIDATORS_PER_COMMITTEE](
                *sorted(self.u64(0, 1_000_000) for _ in range(n))),
            data=self.data(slot), signature=self.sig())

    def body_fields(self, slot):
        h = self.header(slot)
        return dict(
            randao_reveal=self.sig(),
            eth1_data=Eth1Data(deposit_root=self.root(), deposit_count=self.u64(0, 10**6),
                               block_hash=self.root()),
            graffiti=Bytes32(b"quorum-signer vectors".ljust(32, b"\0")),
            proposer_slashings=[ProposerSlashing(
                signed_header_1=SignedBeaconBlockHeader(message=h, signature=self.sig()),
                signed_header_2=SignedBeaconBlockHeader(message=self.header(slot),
                                                        signature=self.sig()))],
            attester_slashings=[AttesterSlashing(attestation_1=self.indexed(slot - 1),
                                                 attestation_2=self.indexed(slot - 1))],
            attestations=[self.attestation(slot - 1) for _ in range(self.rng.randint(1, 3))],
            deposits=[Deposit(proof=[self.root() for _ in range(DEPOSIT_CONTRACT_TREE_DEPTH + 1)],
                              data=DepositData(pubkey=BLSPubkey(self.b(48)),
                                               withdrawal_credentials=self.root(),
                                               amount=uint64(32_000_000_000),
                                               signature=self.sig()))],
            voluntary_exits=[SignedVoluntaryExit(
                message=VoluntaryExit(epoch=compute_epoch_at_slot(slot), validator_index=self.u64(0, 10**6)),
                signature=self.sig())])

    def phase0_block(self, slot):
        return BeaconBlock(slot=slot, proposer_index=self.u64(0, 500_000), parent_root=self.root(),
                           state_root=self.root(), body=BeaconBlockBody(**self.body_fields(slot)))

    def altair_block(self, slot):
        sync = SyncAggregate(sync_committee_bits=Bitvector[SYNC_COMMITTEE_SIZE](*self.bits(512)),
                             sync_committee_signature=self.sig())
        return AltairBeaconBlock(slot=slot, proposer_index=self.u64(0, 500_000),
                                 parent_root=self.root(), state_root=self.root(),
                                 body=AltairBeaconBlockBody(**self.body_fields(slot),
                                                            sync_aggregate=sync))

    def contribution_and_proof(self, slot):
        n = SYNC_COMMITTEE_SIZE // SYNC_COMMITTEE_SUBNET_COUNT
        c = SyncCommitteeContribution(slot=slot, beacon_block_root=self.root(),
                                      subcommittee_index=self.u64(0, 3),
                                      aggregation_bits=Bitvector[n](*self.bits(n)),
                                      signature=self.sig())
        return ContributionAndProof(aggregator_index=self.u64(0, 10**6), contribution=c,
                                    selection_proof=self.sig())

    def registration(self):
        return ValidatorRegistrationV1(fee_recipient=Bytes20(self.b(20)),
                                       gas_limit=uint64(36_000_000),
                                       timestamp=self.u64(1_600_000_000, 1_900_000_000),
                                       pubkey=BLSPubkey(self.b(48)))


# ---------------------------------------------------------------- request bodies
def fork_info(net, fork_index, fork_epoch=None, current=None):
    """fork_info as a beacon node reports it during fork `fork_index` of `net`."""
    n = NETWORKS[net.name]
    prev = n["versions"][max(fork_index - 1, 0)]
    cur = n["versions"][fork_index] if current is None else current
    epoch = n["epochs"][fork_index] if fork_epoch is None else fork_epoch
    return {"fork": {"previous_version": "0x" + prev, "current_version": "0x" + cur,
                     "epoch": str(epoch)},
            "genesis_validators_root": hx(net.gvr)}


def request(kind, fi, key, value, root_key=None):
    req = {"type": kind}
    if fi is not None:
        req["fork_info"] = fi
    req[key] = value
    return req


def block_request(c, fork, slot):
    if fork == "PHASE0":
        return {"version": fork, "block": to_json(c.phase0_block(slot))}
    if fork == "ALTAIR":
        return {"version": fork, "block": to_json(c.altair_block(slot))}
    return {"version": fork, "block_header": to_json(c.header(slot))}


def aggregate_v2(c, fork, slot):
    if FORKS.index(fork) >= FORKS.index("ELECTRA"):
        agg = ElectraAggregateAndProof(aggregator_index=c.u64(0, 10**6),
                                       aggregate=c.electra_attestation(slot),
                                       selection_proof=c.sig())
    else:
        agg = AggregateAndProof(aggregator_index=c.u64(0, 10**6), aggregate=c.attestation(slot),
                                selection_proof=c.sig())
    return {"version": fork, "data": to_json(agg)}


def fork_cases(net, fork):
    """Every type that exists at `fork`, in its epochs, plus fork-boundary cases."""
    i = FORKS.index(fork)
    c = Content(f"{net.name}-{fork}")
    fork_epoch = NETWORKS[net.name]["epochs"][i]
    fi = fork_info(net, i)
    epoch = fork_epoch + 1234
    slot = epoch * SLOTS_PER_EPOCH + 7
    cases = []

    def add(name, req):
        cases.append((f"{fork.lower()}/{name}", req))

    add("block", request("BLOCK_V2", fi, "beacon_block", block_request(c, fork, slot)))
    if i >= FORKS.index("BELLATRIX"):
        add("blinded block (header)", request("BLOCK_V2", fi, "beacon_block",
                                              block_request(c, fork, slot + 1)))
    add("attestation", request("ATTESTATION", fi, "attestation", to_json(c.data(slot))))
    add("aggregation slot", request("AGGREGATION_SLOT", fi, "aggregation_slot",
                                    {"slot": str(slot)}))
    if i < FORKS.index("ELECTRA"):
        agg = AggregateAndProof(aggregator_index=c.u64(0, 10**6), aggregate=c.attestation(slot),
                                selection_proof=c.sig())
        add("aggregate and proof v1", request("AGGREGATE_AND_PROOF", fi, "aggregate_and_proof",
                                              to_json(agg)))
    add("aggregate and proof v2", request("AGGREGATE_AND_PROOF_V2", fi, "aggregate_and_proof",
                                          aggregate_v2(c, fork, slot)))
    add("randao reveal", request("RANDAO_REVEAL", fi, "randao_reveal", {"epoch": str(epoch)}))
    exit_ = VoluntaryExit(epoch=epoch, validator_index=c.u64(0, 10**6))
    add("voluntary exit", request("VOLUNTARY_EXIT", fi, "voluntary_exit", to_json(exit_)))
    if i >= FORKS.index("ALTAIR"):
        add("sync committee message", request("SYNC_COMMITTEE_MESSAGE", fi,
                                              "sync_committee_message",
                                              {"beacon_block_root": hx(c.root()),
                                               "slot": str(slot)}))
        sel = SyncAggregatorSelectionData(slot=slot, subcommittee_index=c.u64(0, 3))
        add("sync committee selection proof", request("SYNC_COMMITTEE_SELECTION_PROOF", fi,
                                                      "sync_aggregator_selection_data",
                                                      to_json(sel)))
        add("sync committee contribution and proof",
            request("SYNC_COMMITTEE_CONTRIBUTION_AND_PROOF", fi, "contribution_and_proof",
                    to_json(c.contribution_and_proof(slot))))

    if i > 0 and fork_epoch > 0:
        # Fork boundary: the message's epoch is before fork.epoch -> previous_version.
        prev = FORKS[i - 1]
        b_epoch = fork_epoch - 1
        b_slot = b_epoch * SLOTS_PER_EPOCH + 31
        add("boundary: block of the last pre-fork slot",
            request("BLOCK_V2", fi, "beacon_block", block_request(c, prev, b_slot)))
        add("boundary: attestation targeting the last pre-fork epoch",
            request("ATTESTATION", fi, "attestation", to_json(c.data(b_slot))))
        add("boundary: randao reveal of the last pre-fork epoch",
            request("RANDAO_REVEAL", fi, "randao_reveal", {"epoch": str(b_epoch)}))
        add("boundary: aggregation slot", request("AGGREGATION_SLOT", fi, "aggregation_slot",
                                                  {"slot": str(b_slot)}))
        add("boundary: aggregate and proof v2", request(
            "AGGREGATE_AND_PROOF_V2", fi, "aggregate_and_proof", aggregate_v2(c, prev, b_slot)))
        if i >= FORKS.index("BELLATRIX"):
            add("boundary: sync committee message", request(
                "SYNC_COMMITTEE_MESSAGE", fi, "sync_committee_message",
                {"beacon_block_root": hx(c.root()), "slot": str(b_slot)}))
            sel = SyncAggregatorSelectionData(slot=b_slot, subcommittee_index=2)
            add("boundary: sync committee selection proof", request(
                "SYNC_COMMITTEE_SELECTION_PROOF", fi, "sync_aggregator_selection_data",
                to_json(sel)))
            add("boundary: contribution and proof", request(
                "SYNC_COMMITTEE_CONTRIBUTION_AND_PROOF", fi, "contribution_and_proof",
                to_json(c.contribution_and_proof(b_slot))))
        if i < FORKS.index("DENEB"):
            old = VoluntaryExit(epoch=b_epoch, validator_index=c.u64(0, 10**6))
            add("boundary: exit of the last pre-fork epoch (get_domain)",
                request("VOLUNTARY_EXIT", fi, "voluntary_exit", to_json(old)))
        # Some clients send the message's own epoch as fork.epoch: still current_version.
        add("fork.epoch equal to the message epoch", request(
            "ATTESTATION", fork_info(net, i, fork_epoch=epoch), "attestation",
            to_json(c.data(slot))))
    return cases


def eip7044_cases(net):
    c = Content(f"{net.name}-eip7044")
    n = NETWORKS[net.name]
    cases = []
    for i in range(FORKS.index("DENEB"), len(FORKS)):
        fi = fork_info(net, i)
        for label, epoch in [("genesis epoch", 0), ("altair era", n["epochs"][1] + 5),
                             ("capella era", n["epochs"][3] + 5),
                             ("just before this fork", n["epochs"][i] - 1),
                             ("this fork", n["epochs"][i] + 1), ("far future", 10**9)]:
            exit_ = VoluntaryExit(epoch=epoch, validator_index=c.u64(0, 10**6))
            cases.append((f"eip7044/{FORKS[i].lower()} fork_info, exit at {label}",
                          request("VOLUNTARY_EXIT", fi, "voluntary_exit", to_json(exit_))))
    for i in range(FORKS.index("ALTAIR"), FORKS.index("DENEB")):
        fi = fork_info(net, i)
        for label, epoch in [("before this fork", n["epochs"][i] - 3),
                             ("this fork", n["epochs"][i] + 3)]:
            exit_ = VoluntaryExit(epoch=epoch, validator_index=c.u64(0, 10**6))
            cases.append((f"pre-eip7044/{FORKS[i].lower()} fork_info, exit {label} (get_domain)",
                          request("VOLUNTARY_EXIT", fi, "voluntary_exit", to_json(exit_))))
    return cases


def network_cases(net):
    """Per-network: builder registration, deposit, and the current fork's main types."""
    c = Content(f"{net.name}-network")
    n = NETWORKS[net.name]
    cases = []
    reg = c.registration()
    cases.append((f"{net.name}/validator registration",
                  request("VALIDATOR_REGISTRATION", None, "validator_registration",
                          to_json(reg))))
    for amount in (32_000_000_000, 1_000_000_000):
        dep = {"pubkey": hx(c.b(48)), "withdrawal_credentials": hx(b"\x01" + bytes(11) + c.b(20)),
               "amount": str(amount), "genesis_fork_version": "0x" + n["versions"][0]}
        cases.append((f"{net.name}/deposit of {amount} gwei",
                      request("DEPOSIT", None, "deposit", dep)))
    for i in (FORKS.index("ELECTRA"), FORKS.index("FULU")):
        fi = fork_info(net, i)
        slot = (n["epochs"][i] + 10) * SLOTS_PER_EPOCH
        cases.append((f"{net.name}/{FORKS[i].lower()} attestation",
                      request("ATTESTATION", fi, "attestation", to_json(c.data(slot)))))
        cases.append((f"{net.name}/{FORKS[i].lower()} block",
                      request("BLOCK_V2", fi, "beacon_block", block_request(c, FORKS[i], slot))))
        exit_ = VoluntaryExit(epoch=n["epochs"][i] + 10, validator_index=c.u64(0, 10**6))
        cases.append((f"{net.name}/{FORKS[i].lower()} exit (eip7044: capella version)",
                      request("VOLUNTARY_EXIT", fi, "voluntary_exit", to_json(exit_))))
    return cases


def error_cases(net):
    c = Content(f"{net.name}-errors")
    n = NETWORKS[net.name]
    fi = fork_info(net, FORKS.index("FULU"))
    other = fork_info(Network.from_json("sepolia"), FORKS.index("FULU"))
    slot = (n["epochs"][-1] + 3) * SLOTS_PER_EPOCH
    exit_ = to_json(VoluntaryExit(epoch=n["epochs"][-1] + 3, validator_index=7))
    gloas = dict(fi, fork=dict(fi["fork"], previous_version="0x06000000",
                               current_version="0x07000000"))
    dep = {"pubkey": hx(c.b(48)), "withdrawal_credentials": hx(c.b(32)),
           "amount": "32000000000", "genesis_fork_version": "0x90000069"}
    return [
        ("errors/attestation for another network's genesis_validators_root",
         request("ATTESTATION", other, "attestation", to_json(c.data(slot))),
         "genesis_validators_root_mismatch"),
        ("errors/exit whose fork_info names a version outside the schedule (gloas)",
         request("VOLUNTARY_EXIT", gloas, "voluntary_exit", exit_), "unknown_fork_version"),
        ("errors/deposit for another network's genesis fork version",
         request("DEPOSIT", None, "deposit", dep), "genesis_fork_version_mismatch"),
        ("errors/randao reveal without fork_info",
         {"type": "RANDAO_REVEAL", "randao_reveal": {"epoch": "5"}}, "missing_field"),
        ("errors/deprecated BLOCK type",
         {"type": "BLOCK", "fork_info": fi, "block": to_json(c.phase0_block(slot))},
         "unknown_type"),
    ]


# ---------------------------------------------------------------- files
def case_json(name, req, net, with_root):
    root = signing_root(req, net)
    if with_root:
        req = dict(req, signingRoot=hx(root))
    return {"name": name, "request": req, "signing_root": hx(root)}


def write_fixture(filename, description, net, cases, errors=()):
    out = []
    for k, (name, req) in enumerate(cases):
        out.append(case_json(name, req, net, with_root=(k % 2 == 1)))
    for name, req, code in errors:
        try:
            signing_root(req, net)
        except Refused as e:
            assert e.args[0] == code, (name, e.args[0], code)
        except KeyError:
            assert code in ("missing_field", "unknown_type"), name
        else:
            raise AssertionError(f"{name}: expected refusal {code}")
        out.append({"name": name, "request": req, "error": code})
    doc = {"format": FORMAT, "description": description,
           "generator": "generate.py (remerkleable, written from the specs)",
           "network": net.to_json(), "cases": out}
    (HERE / filename).write_text(json.dumps(doc, indent=1) + "\n")
    return len(out)


def generate():
    mainnet = Network.from_json("mainnet")
    total = 0
    for fork in FORKS:
        total += write_fixture(f"mainnet-{fork.lower()}.json",
                               f"mainnet, {fork}: every type that exists at this fork, plus "
                               "fork-boundary cases (message epoch < fork.epoch)",
                               mainnet, fork_cases(mainnet, fork))
    total += write_fixture("mainnet-eip7044.json",
                           "voluntary exits: capella version from deneb on whatever the exit "
                           "epoch (EIP-7044); get_domain before deneb", mainnet,
                           eip7044_cases(mainnet))
    for name in NETWORKS:
        net = Network.from_json(name)
        total += write_fixture(f"network-{name}.json",
                               f"{name}: builder registration and deposits (genesis fork "
                               "version, zero genesis_validators_root) and the latest forks",
                               net, network_cases(net))
    total += write_fixture("errors.json", "requests the signer must refuse", mainnet, [],
                           error_cases(mainnet))
    print(f"wrote {total} cases")


def check():
    """Recompute every fixture file in this directory (generated or not)."""
    failures = 0
    count = 0
    for path in sorted(HERE.glob("*.json")):
        doc = json.loads(path.read_text())
        assert doc["format"] == FORMAT, path
        net = Network.from_json(doc["network"])
        for case in doc["cases"]:
            count += 1
            try:
                got = ("root", hx(signing_root(case["request"], net)))
            except Refused as e:
                got = ("error", e.args[0])
            except KeyError:
                got = ("error", "missing_field/unknown_type")
            want = ("root", case["signing_root"]) if "signing_root" in case else ("error", case["error"])
            ok = got == want or (got[1] == "missing_field/unknown_type"
                                 and want[1] in ("missing_field", "unknown_type"))
            if "signing_root" in case and "signingRoot" in case["request"]:
                ok = ok and case["request"]["signingRoot"] == case["signing_root"]
            print(("PASS" if ok else "FAIL"), f"{path.name}: {case['name']}",
                  "" if ok else f"got {got} want {want}")
            failures += not ok
    print(f"{count - failures} passed, {failures} failed")
    return failures == 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--check"]:
        sys.exit(0 if check() else 1)
    elif sys.argv[1:]:
        sys.exit(__doc__)
    generate()
