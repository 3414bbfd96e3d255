#!/usr/bin/env python3
"""Independent reference for what HotShot's new consensus protocol has a BLS key sign, written
from HotShot's source text (not from the signer's Rust code).

Sources, all EspressoSystems/espresso-network (MIT-licensed crates):
- crates/hotshot/types/src/simple_vote.rs @ 30f658c0572aa3687889e7f45254efd77372c384:
  `Vote2Data`, `TimeoutData3`, `LockView`, `UpgradeProposalData2`, `QuorumData2`,
  `VersionedVoteData` (the bytes every vote signs);
- crates/hotshot/new-protocol/src/message.rs (stored revision with `TimeoutVoteMessage3` and
  `ReVote`): `ReVote::commit`, `ReVoteMessage::new` (signs `revote.commit()` as is); an earlier
  revision of the same file for `CheckpointData`;
- crates/hotshot/types/src/new_protocol/proposal.rs @ f317e38e6334e4cbccdcfa2aea5951a5b5eed267:
  `From<Proposal> for QuorumProposalWrapper` (epoch always `Some`, `next_epoch_justify_qc: None`);
- crates/hotshot/types/src/data.rs @ 935a4c593bc26e67ab9988323273da1228fd44d7: `Leaf2::commit`
  with the `"timeout cert v3"` evidence clause;
- EspressoSystems/commit src/lib.rs (`RawCommitmentBuilder`).
Signatures: jf-signature BLS over BN254 via the reference implementation
jf_bls_bn254_ref.py beside this file if present, else
/work/shared/vectors/espresso/reference/ (override with $JF_BLS_REF), whose
own cross-checks are against real HotShot signatures; demo keys from vectors.json.

No value here is HotShot output: HotShot's tests build these messages but record no bytes.
Every case is `derived`: this script's computation from the source text above.

Usage (needs pycryptodome and py_ecc, e.g. in a throwaway venv):
    python3 new_protocol_ref.py           check every case of new_protocol.json
    python3 new_protocol_ref.py --write   regenerate new_protocol.json, then check
"""

import importlib.util
import json
import os
import struct
import sys
from pathlib import Path

from Crypto.Hash import keccak

HERE = Path(__file__).resolve().parent
FIXTURE = HERE / "new_protocol.json"
KEYS = HERE / "vectors.json"
_SIBLING = HERE / "jf_bls_bn254_ref.py"
BLS_REF = os.environ.get("JF_BLS_REF", str(_SIBLING) if _SIBLING.exists() else
                         "/work/shared/vectors/espresso/reference/jf_bls_bn254_ref.py")
SEP = b"\xc0\x7f"


def load_bls():
    spec = importlib.util.spec_from_file_location("jf_bls_bn254_ref", BLS_REF)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# ---- committable::RawCommitmentBuilder ---------------------------------------------------

class RCB:
    def __init__(self, tag):
        self.out = bytearray()
        self.s(tag)

    def s(self, text):          # constant_str
        self.out += text.encode() + SEP
        return self

    def raw(self, b):           # fixed_size_bytes
        self.out += b
        return self

    def u64(self, v):
        return self.raw(struct.pack("<Q", v))

    def u16(self, v):
        return self.raw(struct.pack("<H", v))

    def var(self, b):           # var_size_bytes
        return self.u64(len(b)).raw(b)

    def u64_field(self, name, v):
        return self.s(name).u64(v)

    def field(self, name, c):
        assert len(c) == 32
        return self.s(name).raw(c)

    def optional(self, name, c):
        return self.u64_field(name, 0) if c is None else self.field(name, c)

    def digest(self):
        k = keccak.new(digest_bits=256)
        k.update(bytes(self.out))
        return k.digest()


def b32(h):
    v = bytes.fromhex(h[2:] if h.startswith("0x") else h)
    assert len(v) == 32, h
    return v


def opt32(h):
    return None if h is None else b32(h)


# ---- the data each message signs -------------------------------------------------------

def versioned_vote(data_commit, view):            # VersionedVoteData::commit
    return RCB("Vote").var(data_commit).u64(view).digest()


def quorum_data2(d):                              # Vote1: QuorumData2 with epoch and block
    r = RCB("Quorum data").var(b32(d["leaf_commit"]))
    if d.get("epoch") is not None:
        r.u64_field("epoch number", d["epoch"])
    if d.get("block_number") is not None:
        r.u64_field("block number", d["block_number"])
    return r.digest()


def vote2_data(d):
    return (RCB("Vote2Data").var(b32(d["leaf_commit"])).u64(d["epoch"])
            .u64(d["block_number"]).s("Vote2").digest())


def checkpoint_data(d):
    return RCB("CheckpointData").u64(d["view"]).u64(d["epoch"]).digest()


def timeout_data3(d):
    r = RCB("Timeout data v3").u64_field("view number", d["view"]).u64_field("epoch number", d["epoch"])
    lock = d.get("lock")
    if lock is None:
        r.u64_field("lock", 0)
    else:
        r.u64_field("lock", 1).u64_field("lock epoch", lock["epoch"]).u64_field("lock view", lock["view"])
    return r.digest()


def upgrade_proposal_data2(d):
    return (RCB("Upgrade data v2").u64(d["decide_by"]).u64(d["new_version_first_view"])
            .u64(d["old_version_last_view"]).var(bytes.fromhex(d["new_version_hash"][2:]))
            .u16(d["new_version"]["minor"]).u16(d["new_version"]["major"])
            .u16(d["old_version"]["minor"]).u16(d["old_version"]["major"])
            .u64_field("epoch number", d["epoch"]).digest())


def revote(d):                                    # ReVote::commit, signed as is
    return (RCB("Re-vote request").u64_field("view number", d["view"])
            .u64_field("epoch number", d["epoch"]).field("certificate1", b32(d["cert1_commit"]))
            .optional("timeout certificate", opt32(d.get("timeout_cert_commit"))).digest())


def proposal_leaf(d):
    """Leaf2::from(Proposal).commit(): with_epoch always, next_epoch_justify_qc always None."""
    r = (RCB("leaf commitment").u64_field("view number", d["view"])
         .field("parent leaf commitment", b32(d["parent_leaf"]))
         .field("block header", b32(d["block_header_commit"]))
         .field("justify qc", b32(d["justify_qc_commit"]))
         .optional("upgrade certificate", opt32(d.get("upgrade_certificate_commit"))))
    r.s("with_epoch").optional("next_epoch_justify_qc", None)
    if d.get("next_drb_result") is not None:
        r.s("next_drb_result").raw(b32(d["next_drb_result"]))
    ev = d.get("view_change_evidence")
    if ev is not None:
        ((kind, value),) = ev.items()
        r.field({"timeout_cert": "timeout cert", "timeout_cert_v3": "timeout cert v3"}[kind], b32(value))
    return r.digest()


# kind -> (data commitment or None, signed bytes)
def signed(case):
    kind, d = case["kind"], case["data"]
    if kind == "proposal":
        return None, proposal_leaf(d)
    if kind == "revote_request":
        return None, revote(d)
    data_commit = {
        "vote1": quorum_data2, "vote2": vote2_data, "checkpoint": checkpoint_data,
        "timeout3": timeout_data3, "upgrade_vote2": upgrade_proposal_data2,
    }[kind](d)
    view = d["view"] if kind == "timeout3" else case["view"]
    return data_commit, versioned_vote(data_commit, view)


# ---- the cases ---------------------------------------------------------------------------

def pat(start):
    return "0x" + bytes((start + i) & 0xFF for i in range(32)).hex()


UPGRADE_HASH = "0x" + bytes([1, 0, 1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0,
                             0, 0, 0, 1, 0, 0, 0, 0, 0, 0]).hex()
DERIVED = "derived: new_protocol_ref.py's computation from HotShot's source text (no HotShot output exists)"


def build_cases():
    leaf_a = {"view": 1, "parent_leaf": pat(0x00), "block_header_commit": pat(0x20),
              "justify_qc_commit": pat(0x40)}
    # The rival: same leader, view and parent; another payload, so another header.
    leaf_b = dict(leaf_a, block_header_commit=pat(0x60))
    a_commit = "0x" + proposal_leaf(leaf_a).hex()
    b_commit = "0x" + proposal_leaf(leaf_b).hex()
    cases = [
        {"name": "proposal A (decided) at view 1", "kind": "proposal", "data": leaf_a, "sign": 2},
        {"name": "proposal B (rival) at view 1", "kind": "proposal", "data": leaf_b, "sign": 2},
        {"name": "vote1 for the rival B at view 1", "kind": "vote1", "view": 1, "group": "same-view-rival",
         "data": {"leaf_commit": b_commit, "epoch": 1, "block_number": 1}, "sign": 0},
        {"name": "vote2 for the decided A at view 1", "kind": "vote2", "view": 1, "group": "same-view-rival",
         "data": {"leaf_commit": a_commit, "epoch": 1, "block_number": 1}, "sign": 0},
        {"name": "vote2, large fields", "kind": "vote2", "view": 0x0102030405060708,
         "data": {"leaf_commit": pat(0x80), "epoch": 0xFFFFFFFFFFFFFFFF, "block_number": 12345}},
        {"name": "proposal with DRB, upgrade certificate and TimeoutCertificate3 evidence",
         "kind": "proposal",
         "data": dict(leaf_a, view=7, upgrade_certificate_commit=pat(0xA0), next_drb_result=pat(0xC0),
                      view_change_evidence={"timeout_cert_v3": pat(0xE0)})},
        {"name": "proposal with TimeoutCertificate2 evidence", "kind": "proposal",
         "data": dict(leaf_a, view=7, view_change_evidence={"timeout_cert": pat(0xE0)})},
        {"name": "timeout3 without a lock", "kind": "timeout3",
         "data": {"view": 101, "epoch": 3, "lock": None}, "sign": 1},
        {"name": "timeout3 with a lock", "kind": "timeout3",
         "data": {"view": 101, "epoch": 3, "lock": {"epoch": 3, "view": 99}}, "sign": 1},
        {"name": "timeout3, same view, next epoch (epoch-change relabel)", "kind": "timeout3",
         "data": {"view": 101, "epoch": 4, "lock": {"epoch": 3, "view": 99}}},
        {"name": "re-vote request without a timeout certificate", "kind": "revote_request",
         "data": {"view": 120, "epoch": 3, "cert1_commit": pat(0x10), "timeout_cert_commit": None}, "sign": 3},
        {"name": "re-vote request with a timeout certificate", "kind": "revote_request",
         "data": {"view": 121, "epoch": 3, "cert1_commit": pat(0x10), "timeout_cert_commit": pat(0x30)}},
        {"name": "upgrade vote over UpgradeProposalData2", "kind": "upgrade_vote2", "view": 150,
         "data": {"old_version": {"major": 0, "minor": 6}, "new_version": {"major": 0, "minor": 7},
                  "decide_by": 160, "new_version_hash": UPGRADE_HASH, "old_version_last_view": 165,
                  "new_version_first_view": 170, "epoch": 3}, "sign": 4},
        {"name": "checkpoint vote (early revision)", "kind": "checkpoint", "view": 100,
         "data": {"view": 100, "epoch": 3}},
    ]
    return cases


def fill(case, bls, keys):
    data_commit, msg = signed(case)
    out = {"name": case["name"], "provenance": DERIVED, "kind": case["kind"]}
    for k in ("group", "view"):
        if k in case:
            out[k] = case[k]
    out["data"] = case["data"]
    if data_commit is not None:
        out["data_commitment_hex"] = data_commit.hex()
    out["signing_message_hex"] = msg.hex()
    if "sign" in case:
        i = case["sign"]
        _, skb = bls.tb64_decode(keys[i])
        sig = bls.sign(bls.sk_from_bytes(skb), msg)
        raw = bls.g1_to_bytes(sig)
        out["signature"] = {"signer_index": i, "bls_sig": bls.tb64_encode("BLS_SIG", raw),
                            "sig_uncompressed_hex": raw.hex()}
    return out


def demo_keys():
    doc = json.loads(KEYS.read_text())
    return {k["index"]: k["bls_signing_key"] for k in doc["demo_keys"]}


def check(doc, bls, keys):
    failed = 0
    for case in doc["cases"]:
        problems = []
        data_commit, msg = signed(case)
        if data_commit is not None and data_commit.hex() != case.get("data_commitment_hex"):
            problems.append(f"data commitment {data_commit.hex()}")
        if msg.hex() != case["signing_message_hex"]:
            problems.append(f"signed bytes {msg.hex()}")
        sig = case.get("signature")
        if sig is not None:
            _, skb = bls.tb64_decode(keys[sig["signer_index"]])
            sk = bls.sk_from_bytes(skb)
            want = bls.g1_to_bytes(bls.sign(sk, msg))
            if want.hex() != sig["sig_uncompressed_hex"] or bls.tb64_encode("BLS_SIG", want) != sig["bls_sig"]:
                problems.append("signature differs")
            if not bls.verify(bls.pk_from_sk(sk), msg, bls.g1_from_bytes(want)):
                problems.append("signature does not verify")
        failed += bool(problems)
        print(("FAIL " if problems else "PASS ") + case["name"] + "".join("\n  " + p for p in problems))
    # The pair the brief asks for: one key, one view, a Vote1 and a Vote2 over different leaves.
    pair = [c for c in doc["cases"] if c.get("group") == "same-view-rival"]
    ok = (len(pair) == 2 and {c["kind"] for c in pair} == {"vote1", "vote2"}
          and len({c["view"] for c in pair}) == 1
          and len({c["signature"]["signer_index"] for c in pair}) == 1
          and pair[0]["data"]["leaf_commit"] != pair[1]["data"]["leaf_commit"])
    print(("PASS" if ok else "FAIL") + " same-view-rival pair: one key, one view, vote1 and vote2, two leaves")
    failed += not ok
    print(f"{len(doc['cases']) + 1 - failed} passed, {failed} failed")
    return failed


def main():
    bls = load_bls()
    keys = demo_keys()
    if "--write" in sys.argv[1:]:
        doc = {
            "description": "Known answers for what HotShot's new consensus protocol has a BLS key sign: "
                           "each case's typed data (serde form of the signer's new_protocol types; vote1 "
                           "data is the legacy QuorumData), its data commitment (votes), the exact bytes "
                           "signed and, for some, a demo key's signature. See NEW_PROTOCOL.md.",
            "generated_by": "new_protocol_ref.py --write",
            "cases": [fill(c, bls, keys) for c in build_cases()],
        }
        FIXTURE.write_text(json.dumps(doc, indent=1) + "\n")
    sys.exit(1 if check(json.loads(FIXTURE.read_text()), bls, keys) else 0)


if __name__ == "__main__":
    main()
