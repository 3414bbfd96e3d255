#!/usr/bin/env python3
"""Independent reference for HotShot's `Leaf2::commit()`, the bytes a leader signs for a quorum
proposal, written from HotShot's source text (not from the signer's Rust code).

Sources, all EspressoSystems (MIT-licensed crates):
- espresso-network `crates/hotshot/types/src/data.rs` @ 02fb875600a03ddbc0222741aee23ebb46a1041c:
  `impl Committable for Leaf2`, `Leaf2::from_quorum_proposal`, `serialize_signature2`,
  `impl Committable for ViewNumber`;
- the same commit's `simple_certificate.rs` (`impl Committable for SimpleCertificate`) and
  `simple_vote.rs` (`QuorumData2`, `NextEpochQuorumData2`, `UpgradeProposalData`);
- commit `src/lib.rs` @ a57ae4ae2b6a2bae0af1bf18377089fffaabffac (`RawCommitmentBuilder`);
- per-release layouts: `data.rs` @ 386be1e9e100ebece0ba2137990c97b698e0343c and
  @ 935a4c593bc26e67ab9988323273da1228fd44d7, and the first epoch-enabled `Leaf2` (see LEAF2.md);
- bincode 1.3 (fixint, little endian: HotShot's `bincode_opts`), bitvec 1.x `BitSlice` serde,
  tagged-base64 0.4 `TaggedBase64` serde and `#[tagged]` (signatures serialize uncompressed).

Usage (needs pycryptodome for Keccak-256, e.g. in a throwaway venv):
    python3 leaf2_ref.py           check every case of leaf2.json
    python3 leaf2_ref.py --write   recompute the derived parts of leaf2.json, then check

Each case also names the layout it follows (`layout`: which release's `Leaf2::commit()`; for a
recorded leaf, the one of the record's header version `protocol_version`) and the layouts that
must refuse it (`layouts_refusing`), per the rule in `layout_admits`.

For a `verified` case the file holds the leaf as HotShot's query service served it (block header
replaced by the block's hash, which is `Header::commit()`), and the commitment HotShot computed
for it (`qc.data.leaf_commit` of the same record). This script recomputes every sub-commitment
(justify QC, next-epoch QC, upgrade certificate) from the certificate's fields and then the leaf
commitment, and checks it equals HotShot's. It also derives the signer's typed request
(`message`, the form `tests/tests/espresso_vectors.rs` feeds to the Rust code) from the leaf.
A `derived` case has only a typed request: its `leaf_commit` is this script's computation.
"""

import base64
import json
import struct
import sys
from pathlib import Path

from Crypto.Hash import keccak

HERE = Path(__file__).resolve().parent
FIXTURE = HERE / "leaf2.json"
C07F = b"\xc0\x7f"


# ---- committable::RawCommitmentBuilder -----------------------------------------------------

class Builder:
    def __init__(self, tag):
        self.buf = bytearray()
        self.constant_str(tag)

    def constant_str(self, s):
        self.buf += s.encode() + C07F
        return self

    def fixed(self, b):
        self.buf += b
        return self

    def u64(self, v):
        return self.fixed(struct.pack("<Q", v))

    def u16(self, v):
        return self.fixed(struct.pack("<H", v))

    def var_size_bytes(self, b):
        return self.u64(len(b)).fixed(b)

    def field(self, name, commit32):
        assert len(commit32) == 32
        return self.constant_str(name).fixed(commit32)

    def u64_field(self, name, v):
        return self.constant_str(name).u64(v)

    def var_size_field(self, name, b):
        return self.constant_str(name).var_size_bytes(b)

    def optional(self, name, commit32_or_none):
        if commit32_or_none is None:
            return self.u64_field(name, 0)
        return self.field(name, commit32_or_none)

    def finalize(self):
        h = keccak.new(digest_bits=256)
        h.update(bytes(self.buf))
        return h.digest()


# ---- tagged-base64 ---------------------------------------------------------------------------

def crc8(data):
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def tb64_decode(text, tag=None):
    """Value bytes and checksum byte of `TAG~base64url(value || checksum)`."""
    t, body = text.split("~", 1)
    if tag is not None and t != tag:
        raise ValueError(f"tag {t!r}, expected {tag!r}")
    raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    value, checksum = raw[:-1], raw[-1]
    if crc8(t.encode() + value) ^ (len(value) & 0xFF) != checksum:
        raise ValueError(f"bad checksum in {text}")
    return t, value, checksum


def tb64_encode(tag, value):
    checksum = crc8(tag.encode() + value) ^ (len(value) & 0xFF)
    body = base64.urlsafe_b64encode(value + bytes([checksum])).decode().rstrip("=")
    return f"{tag}~{body}"


def commit32(text):
    _, value, _ = tb64_decode(text)
    assert len(value) == 32, text
    return value


# ---- HotShot commitments ---------------------------------------------------------------------

def view_number_commit(view):
    return Builder("View Number Commitment").u64(view).finalize()


def quorum_data2_commit(d):
    """QuorumData2 / NextEpochQuorumData2 (identical bytes)."""
    b = Builder("Quorum data").var_size_bytes(commit32(d["leaf_commit"]))
    if d.get("epoch") is not None:
        b.u64_field("epoch number", d["epoch"])
    if d.get("block_number") is not None:
        b.u64_field("block number", d["block_number"])
    return b.finalize()


def upgrade_proposal_data_commit(d):
    return (Builder("Upgrade data")
            .u64(d["decide_by"])
            .u64(d["new_version_first_view"])
            .u64(d["old_version_last_view"])
            .var_size_bytes(bytes(d["new_version_hash"]))
            .u16(d["new_version"]["minor"])
            .u16(d["new_version"]["major"])
            .u16(d["old_version"]["minor"])
            .u16(d["old_version"]["major"])
            .finalize())


def bincode_str(s):
    return struct.pack("<Q", len(s)) + s.encode()


def bincode_bitslice(bv):
    """bitvec `BitSlice` serde (struct BitSeq{order, head: BitIdx{width, index}, bits, data})."""
    out = bincode_str(bv["order"])
    out += bytes([bv["head"]["width"], bv["head"]["index"]])
    out += struct.pack("<Q", bv["bits"])
    out += struct.pack("<Q", len(bv["data"]))
    elem = {64: "<Q", 32: "<I", 16: "<H", 8: "<B"}[bv["head"]["width"]]
    for word in bv["data"]:
        out += struct.pack(elem, word)
    return out


def bincode_bls_sig(text):
    """A `#[tagged]` type in a binary serde format: `TaggedBase64` as ark-serialized bytes."""
    tag, value, checksum = tb64_decode(text, "BLS_SIG")
    ark = bincode_str(tag) + struct.pack("<Q", len(value)) + value + bytes([checksum])
    return struct.pack("<Q", len(ark)) + ark


def serialize_signature2(signatures):
    sig, proof = signatures
    return (b"Yes" + b"bitvec proof" + bincode_bitslice(proof)
            + b"aggregated signature" + bincode_bls_sig(sig))


def certificate_commit(cert):
    data = cert["data"]
    if "leaf_commit" in data:
        data_commit = quorum_data2_commit(data)
    elif "decide_by" in data:
        data_commit = upgrade_proposal_data_commit(data)
    else:
        raise ValueError(f"unknown certificate data {data}")
    sigs = b"" if cert["signatures"] is None else serialize_signature2(cert["signatures"])
    return (Builder("Certificate")
            .field("data", data_commit)
            .field("vote_commitment", commit32(cert["vote_commitment"]))
            .field("view number", view_number_commit(cert["view_number"]))
            .var_size_field("signatures", sigs)
            .finalize())


# ---- the signer's typed request and the leaf commitment over it ------------------------------

def hx(b):
    return "0x" + b.hex()


def unhex(s):
    return bytes.fromhex(s[2:] if s.startswith("0x") else s)


def message_from_hotshot_leaf(leaf):
    """`Leaf2::from_quorum_proposal` as the signer's typed request (sub-commitments as values)."""
    assert leaf["parent_commitment"] == leaf["justify_qc"]["data"]["leaf_commit"]
    upgrade = leaf["upgrade_certificate"]
    p = {
        "view": leaf["view_number"],
        "parent_leaf": hx(commit32(leaf["parent_commitment"])),
        "block_header_commit": hx(commit32(leaf["block_header_commit"])),
        "justify_qc_commit": hx(certificate_commit(leaf["justify_qc"])),
        "upgrade_certificate_commit": None if upgrade is None else hx(certificate_commit(upgrade)),
        "with_epoch": None,
    }
    if leaf["with_epoch"]:
        nqc = leaf["next_epoch_justify_qc"]
        drb = leaf["next_drb_result"]
        assert leaf["view_change_evidence"] is None, "no recorded leaf carries evidence"
        p["with_epoch"] = {
            "next_epoch_justify_qc_commit": None if nqc is None else hx(certificate_commit(nqc)),
            "next_drb_result": None if drb is None else hx(bytes(drb)),
            "view_change_evidence": None,
        }
    return {"quorum_proposal": p}


def opt(value):
    return None if value is None else unhex(value)


def leaf2_commit(message):
    """`impl Committable for Leaf2`, over the typed request."""
    p = message["quorum_proposal"]
    b = (Builder("leaf commitment")
         .u64_field("view number", p["view"])
         .field("parent leaf commitment", unhex(p["parent_leaf"]))
         .field("block header", unhex(p["block_header_commit"]))
         .field("justify qc", unhex(p["justify_qc_commit"]))
         .optional("upgrade certificate", opt(p["upgrade_certificate_commit"])))
    e = p["with_epoch"]
    if e is not None:
        b.constant_str("with_epoch")
        b.optional("next_epoch_justify_qc", opt(e["next_epoch_justify_qc_commit"]))
        if e["next_drb_result"] is not None:
            b.constant_str("next_drb_result").fixed(unhex(e["next_drb_result"]))
        ev = e["view_change_evidence"]
        if ev is not None:
            ((kind, value),) = ev.items()
            name = {"timeout_cert": "timeout cert", "view_sync_cert": "viewsync cert"}[kind]
            b.field(name, unhex(value))
    return b.finalize()


# ---- per-release layouts ----------------------------------------------------------------------
# `Leaf2::commit()` takes no version; what it hashes depends on the view's protocol version
# (`with_epoch` from 0.3 = EPOCH_VERSION) and on the HotShot source (the evidence clause was added
# after the first epoch-enabled Leaf2, see LEAF2.md). A layout refuses a request carrying a field
# it does not hash, or lacking one it always hashes.
LAYOUTS = ["unversioned", "v0.1-v0.2", "epochs-without-evidence", "v0.3-v0.6"]


def layout_admits(layout, message):
    p = message["quorum_proposal"]
    e = p["with_epoch"]
    if layout == "unversioned":
        return True
    if layout == "v0.1-v0.2":
        return e is None
    if e is None:
        return False
    if layout == "epochs-without-evidence":
        return e["view_change_evidence"] is None
    return layout == "v0.3-v0.6"


def layout_of_version(version):
    minor = int(version.split(".")[1])
    return "v0.1-v0.2" if minor < 3 else "v0.3-v0.6"


def set_layouts(case, layout):
    case["layout"] = layout
    case["layouts_refusing"] = [l for l in LAYOUTS if not layout_admits(l, case["message"])]


# ---- derived cases: layouts no recorded leaf exercises ---------------------------------------

def pattern(start):
    return hx(bytes((start + i) & 0xFF for i in range(32)))


def derived_cases():
    base = {
        "view": 1000,
        "parent_leaf": pattern(0x00),
        "block_header_commit": pattern(0x20),
        "justify_qc_commit": pattern(0x40),
        "upgrade_certificate_commit": None,
        "with_epoch": None,
    }
    epoch = {"next_epoch_justify_qc_commit": None, "next_drb_result": None,
             "view_change_evidence": None}
    variants = [
        ("no epoch, no upgrade certificate", {}),
        ("no epoch, upgrade certificate", {"upgrade_certificate_commit": pattern(0x60)}),
        ("epoch, nothing optional", {"with_epoch": dict(epoch)}),
        ("epoch, timeout certificate evidence",
         {"with_epoch": dict(epoch, view_change_evidence={"timeout_cert": pattern(0x80)})}),
        ("epoch, view-sync certificate evidence",
         {"with_epoch": dict(epoch, view_change_evidence={"view_sync_cert": pattern(0x80)})}),
        ("epoch, every optional field",
         {"upgrade_certificate_commit": pattern(0x60),
          "with_epoch": {"next_epoch_justify_qc_commit": pattern(0xA0),
                         "next_drb_result": pattern(0xC0),
                         "view_change_evidence": {"view_sync_cert": pattern(0x80)}}}),
    ]
    cases = []
    for name, change in variants:
        message = {"quorum_proposal": dict(base, **change)}
        commit = leaf2_commit(message)
        case = {
            "name": f"derived: {name}",
            "provenance": "derived: leaf2_ref.py's own computation from HotShot's source text "
                          "(no recorded leaf has this shape)",
            "message": message,
            "leaf_commit": tb64_encode("COMMIT", commit),
            "leaf_commit_hex": commit.hex(),
        }
        e = message["quorum_proposal"]["with_epoch"]
        if e is None:
            layout = "v0.1-v0.2"
        elif e["view_change_evidence"] is None:
            # The first epoch-enabled Leaf2::commit() hashed exactly these clauses too.
            layout = "epochs-without-evidence"
        else:
            layout = "v0.3-v0.6"
        set_layouts(case, layout)
        cases.append(case)
    return cases


# ---- driver ----------------------------------------------------------------------------------

def main():
    doc = json.loads(FIXTURE.read_text())
    if "--write" in sys.argv[1:]:
        for case in doc["cases"]:
            if "hotshot_leaf" in case:
                case["message"] = message_from_hotshot_leaf(case["hotshot_leaf"])
                case["leaf_commit_hex"] = commit32(case["leaf_commit"]).hex()
                set_layouts(case, layout_of_version(case["protocol_version"]))
        doc["cases"] = [c for c in doc["cases"] if "hotshot_leaf" in c] + derived_cases()
        FIXTURE.write_text(json.dumps(doc, indent=1) + "\n")
    failed = 0
    for case in doc["cases"]:
        problems = []
        want = commit32(case["leaf_commit"])
        if want.hex() != case["leaf_commit_hex"]:
            problems.append("leaf_commit and leaf_commit_hex differ")
        if "hotshot_leaf" in case:
            derived = message_from_hotshot_leaf(case["hotshot_leaf"])
            if derived != case["message"]:
                problems.append(f"message differs from the leaf's: {derived}")
            got = leaf2_commit(derived)
        else:
            got = leaf2_commit(case["message"])
        if got != want:
            problems.append(f"leaf commitment {tb64_encode('COMMIT', got)}")
        layout = case.get("layout")
        if layout not in LAYOUTS or not layout_admits(layout, case["message"]):
            problems.append(f"layout {layout!r} does not admit the case")
        if "protocol_version" in case and layout != layout_of_version(case["protocol_version"]):
            problems.append(f"layout {layout!r} is not protocol {case['protocol_version']}'s")
        refusing = [l for l in LAYOUTS if not layout_admits(l, case["message"])]
        if case.get("layouts_refusing") != refusing:
            problems.append(f"layouts_refusing should be {refusing}")
        failed += bool(problems)
        print(("FAIL " if problems else "PASS ") + case["name"] + "".join("\n  " + p for p in problems))
    print(f"{len(doc['cases']) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
