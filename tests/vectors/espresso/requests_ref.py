#!/usr/bin/env python3
"""Independent reference for the bytes a HotShot (Espresso) node signs with its BLS staking key
for its non-consensus requests and network authentication, written from HotShot's source text
(not from the signer's Rust code). It writes `requests.json` (known answers: typed fields,
signed bytes, signatures of the public demo keys) and checks it.

Sources (EspressoSystems, read at the commits named; MIT-licensed crates unless stated):
- proposal fetch: espresso-network crates/hotshot/types/src/request_response.rs @ 88e99c1f
  (`impl Committable for ProposalRequestPayload`: "signed proposal request commitment",
  u64_field("view number"), var_size_bytes(key.to_bytes())); the caller signs
  `signed_proposal_request.commit().as_ref()` (task-impls helpers `fetch_proposal`,
  hotshot `SystemContextHandle::request_proposal`).
  `SignatureKey::to_bytes()` for `BLSPubKey` is `serialize_compressed`
  (crates/hotshot/types/src/signature_key.rs @ 080c7aba).
- VID request: crates/hotshot/task-impls/src/request.rs @ 12547458 (`serialize_and_sign`:
  `Sha256::digest(bincode::serialize(&RequestKind::Vid(view, public_key)))`),
  `RequestKind` in crates/hotshot/types/src/traits/network.rs @ 01939c4b (variant 0 `Vid`),
  `ViewNumber(u64)` derives Serialize; jellyfish signature/src/bls_over_bn254.rs `VerKey`
  is `#[tagged(BLS_VER_KEY)]`: serde goes through `TaggedBase64`, which in a binary format
  serializes `CanonicalSerialize::serialize_compressed(TaggedBase64{tag, value, checksum})` as
  a byte vector (tagged-base64 0.4.1 src/lib.rs); `value` is the uncompressed key (128 bytes).
  bincode 1.3 `bincode::serialize`: fixint, little endian, u32 variant index, u64 lengths.
- request-response: crates/request-response/src/message.rs @ 611791e3 (`RequestMessage::
  new_signed`: request.to_bytes() ‖ u64le(timestamp) ‖ b"espresso-request-response"); the
  sequencer's request is `bincode::serialize(&Request)` (crates/espresso/node request enum:
  Accounts=0, Leaf=1, ChainConfig=2, BlocksFrontier=3, RewardAccounts=4).
- libp2p authentication: crates/hotshot/libp2p-networking/src/network/transport.rs @ 0b6dabab
  (`construct_auth_message`: public_key.to_bytes() ‖ peer_id.to_bytes()).
- DHT lookup record: .../network/behaviours/dht/record.rs @ 88e99c1f (`RecordValue::new_signed`:
  RecordKey::to_bytes() = [namespace as u8] ‖ key, then ‖ value; Namespace::Lookup = 0, key =
  public_key.to_bytes(), value = the node's libp2p PeerId bytes).
- Push-CDN: EspressoSystems/Push-CDN cdn-proto/src/crypto/signature.rs and
  connection/auth/user.rs @ 294a48b9 ("espresso-cdn-user-marshal-auth" ‖ u64le(unix seconds));
  HotShot's `WrappedSignatureKey::sign` signs `namespace ‖ message`.
- builder API: crates/hotshot/task-impls/src/transactions.rs @ 01f79e68 (available_blocks signs
  `parent_comm.as_ref()`; claim_block / claim_block_header_input sign `block_hash.as_ref()`);
  the sequencer's block hash is `BuilderCommitment` = SHA-256(u64le(len payload) ‖
  u64le(len ns_table) ‖ u64le(len metadata) ‖ payload ‖ ns_table ‖ metadata).
- libp2p PeerId bytes: a multihash, identity (0x00, len, protobuf public key) for keys of at
  most 42 encoded bytes (ed25519: 08 01 12 20 ‖ 32 bytes), sha2-256 (0x12 0x20 ‖ digest)
  otherwise.

Usage (throwaway venv):
    python3 -m venv /tmp/rq && /tmp/rq/bin/pip install py_ecc pycryptodome
    /tmp/rq/bin/python requests_ref.py            check requests.json against this script
    /tmp/rq/bin/python requests_ref.py --write    rewrite requests.json, then check
    /tmp/rq/bin/python requests_ref.py --pairing  also pairing-verify every signature (slow)
"""

import hashlib
import json
import struct
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import jf_bls_bn254_ref as jf  # noqa: E402  (copy of the shared BN254 BLS reference)

OUT = HERE / "requests.json"
DEMO_SK = [  # espresso-network/.env ESPRESSO_DEMO_SEQUENCER_STAKING_PRIVATE_KEY_0..4
    "BLS_SIGNING_KEY~lNDh4Pn-pTAyzyprOAFdXHwhrKhEwqwtMtkD3CZF4x3o",
    "BLS_SIGNING_KEY~-DO72m_SFl6NQMYknm05FYpPEklkeqz-B3g2mFdbuS83",
    "BLS_SIGNING_KEY~LY0x6w5BheYvEI3ro3g39NU-qwoYQRKc4ObCqc1yoC4S",
    "BLS_SIGNING_KEY~w4jERAaQfBdCdmlStEgj8PfIJJOWmCvbsL2wckpTfCbo",
    "BLS_SIGNING_KEY~FTAq-zib6oUVGSOdIlgntYB1IelS0vK6icYW8Z8OUySv",
]
SKS = [jf.sk_from_bytes(jf.tb64_decode(s)[1]) for s in DEMO_SK]
PKS = [jf.pk_from_sk(s) for s in SKS]
P = jf.P


def u32(v):
    return struct.pack("<I", v)


def u64(v):
    return struct.pack("<Q", v)


# ---- arkworks encodings of a G2 public key ----
def pk_uncompressed(pt):
    return jf.g2_to_bytes(pt)


def pk_compressed(pt):
    """arkworks `serialize_compressed` of a G2 point: x.c0 ‖ x.c1 (32-byte LE each), with the
    y-sign flag (0x80: y > -y, comparing c1 first, then c0) in the top bit of the last byte."""
    x, y = jf.normalize(pt)
    c0, c1 = int(y.coeffs[0]), int(y.coeffs[1])
    neg = (c1, c0) > ((P - c1) % P, (P - c0) % P)
    out = bytearray(jf.le(x.coeffs[0]) + jf.le(x.coeffs[1]))
    if neg:
        out[-1] |= 0x80
    return bytes(out)


# ---- the kinds ----
def proposal_fetch(view, pt):
    """ProposalRequestPayload{view, key}.commit(): Keccak of the committable preimage."""
    return jf.CB("signed proposal request commitment").u64_field("view number", view) \
        .var_size_bytes(pk_compressed(pt)).finalize()


def tagged_base64_canonical(tag, value):
    """CanonicalSerialize (compressed) of tagged_base64::TaggedBase64{tag, value, checksum}:
    String and Vec<u8> are u64le(len) ‖ bytes; the checksum is one byte."""
    checksum = jf._crc8(tag.encode() + value) ^ (len(value) & 0xFF)
    return u64(len(tag)) + tag.encode() + u64(len(value)) + value + bytes([checksum])


def vid_request_preimage(view, pt):
    """bincode::serialize(&RequestKind::Vid(ViewNumber(view), BLSPubKey))."""
    key = tagged_base64_canonical("BLS_VER_KEY", pk_uncompressed(pt))
    return u32(0) + u64(view) + u64(len(key)) + key


def vid_request(view, pt):
    return hashlib.sha256(vid_request_preimage(view, pt)).digest()


def catch_up(request, timestamp):
    return request + u64(timestamp) + b"espresso-request-response"


def libp2p_auth(pt, peer_id):
    return pk_compressed(pt) + peer_id


def dht_record(pt, value):
    return bytes([0]) + pk_compressed(pt) + value


def push_cdn_auth(timestamp):
    return b"espresso-cdn-user-marshal-auth" + u64(timestamp)


def ed25519_peer_id(pub32):
    """PeerId of an ed25519 key: identity multihash of the protobuf PublicKey{Ed25519, key}."""
    proto = bytes([0x08, 0x01, 0x12, 0x20]) + pub32
    return bytes([0x00, len(proto)]) + proto


def builder_commitment(payload, ns_table, metadata):
    h = hashlib.sha256()
    for part in (payload, ns_table, metadata):
        h.update(u64(len(part)))
    for part in (payload, ns_table, metadata):
        h.update(part)
    return h.digest()


def hx(b):
    return "0x" + b.hex()


def cases():
    ed_pub = bytes(range(0x20, 0x40))  # an arbitrary ed25519 public key (any 32 bytes)
    peer = ed25519_peer_id(ed_pub)
    peer_sha = bytes([0x12, 0x20]) + hashlib.sha256(b"some rsa key").digest()
    # sequencer catch-up requests, bincode(Request): Leaf(100); BlocksFrontier(5, 9)
    leaf_req = u32(1) + u64(100)
    frontier_req = u32(3) + u64(5) + u64(9)
    ns = u32(1) + u32(7) + u32(3)
    claim_hash = builder_commitment(b"\x01\x02\x03", ns, ns)
    out = []

    def add(kind, request, key, signed, note, extra=None):
        case = {"kind": kind, "request": request, "signer_index": key,
                "signed_bytes_hex": hx(signed), "note": note}
        case.update(extra or {})
        out.append(case)

    for view, key in ((12, 0), (0, 1), (2**64 - 1, 2)):
        add("proposal-fetch", {"proposal_fetch": {"view": view}}, key,
            proposal_fetch(view, PKS[key]), "Keccak(committable preimage)")
    for view, key in ((7, 0), (1234567, 3)):
        pre = vid_request_preimage(view, PKS[key])
        add("vid-request", {"vid": {"view": view}}, key, vid_request(view, PKS[key]),
            "SHA-256(bincode(RequestKind::Vid(view, key)))", {"preimage_hex": hx(pre)})
    add("catch-up", {"catch_up": {"request": hx(leaf_req), "timestamp": 1_700_000_000}}, 0,
        catch_up(leaf_req, 1_700_000_000), "bincode(Request::Leaf(100)) ‖ u64le(ts) ‖ suffix")
    add("catch-up", {"catch_up": {"request": hx(frontier_req), "timestamp": 1_750_000_123}}, 4,
        catch_up(frontier_req, 1_750_000_123), "bincode(Request::BlocksFrontier(5, 9))")
    add("libp2p-auth", {"libp2p_auth": {"peer_id": hx(peer)}}, 0, libp2p_auth(PKS[0], peer),
        "compressed key ‖ ed25519 identity PeerId")
    add("libp2p-auth", {"libp2p_auth": {"peer_id": hx(peer_sha)}}, 1,
        libp2p_auth(PKS[1], peer_sha), "compressed key ‖ sha2-256 PeerId")
    add("dht-record", {"dht_record": {"value": hx(peer)}}, 0, dht_record(PKS[0], peer),
        "0x00 (Namespace::Lookup) ‖ compressed key ‖ PeerId")
    add("push-cdn-auth", {"push_cdn_auth": {"timestamp": 1_700_000_000}}, 2,
        push_cdn_auth(1_700_000_000), "namespace ‖ u64le(unix seconds)")
    parent = hashlib.sha256(b"a parent payload commitment stand-in").digest()
    add("builder-available-blocks",
        {"builder_available_blocks": {"parent_commitment": hx(parent), "view": 41}}, 1, parent,
        "the parent VID commitment as is (client-chosen)")
    add("builder-claim", {"builder_claim": {"block_hash": hx(claim_hash), "view": 42}}, 1,
        claim_hash, "the builder's block hash as is (client-chosen)",
        {"block_hash_preimage": {"payload_hex": hx(b"\x01\x02\x03"), "ns_table_hex": hx(ns),
                                 "metadata_hex": hx(ns)}})
    for case in out:
        sk = SKS[case["signer_index"]]
        sig = jf.g1_to_bytes(jf.sign(sk, bytes.fromhex(case["signed_bytes_hex"][2:])))
        case["bls_sig"] = jf.tb64_encode("BLS_SIG", sig)
        case["sig_hex"] = hx(sig)
        case["provenance"] = "derived: tests/vectors/espresso/requests_ref.py from HotShot source"
    return out


def document():
    keys = [{"index": i, "bls_ver_key": jf.tb64_encode("BLS_VER_KEY", pk_uncompressed(p)),
             "pk_compressed_hex": hx(pk_compressed(p))} for i, p in enumerate(PKS)]
    return {
        "description": "Known answers for the signer's non-consensus Espresso requests "
                       "(core/src/protection/espresso/request.rs); see REQUESTS.md.",
        "keys": keys,
        "cases": cases(),
    }


def main():
    doc = document()
    if "--write" in sys.argv:
        OUT.write_text(json.dumps(doc, indent=2) + "\n")
    stored = json.loads(OUT.read_text())
    assert stored == doc, "requests.json differs from this script's output"
    assert stored["keys"][0]["bls_ver_key"].startswith("BLS_VER_KEY~bQszS-QKYvUij2g20VqS8asttG")
    for case in stored["cases"]:
        n = len(bytes.fromhex(case["signed_bytes_hex"][2:]))
        hashed = case["kind"] in ("proposal-fetch", "vid-request")
        client = case["kind"].startswith("builder-")
        assert (n == 32) == (hashed or client), case["kind"]
    if "--pairing" in sys.argv:
        for case in stored["cases"]:
            sig = jf.g1_from_bytes(bytes.fromhex(case["sig_hex"][2:]))
            msg = bytes.fromhex(case["signed_bytes_hex"][2:])
            assert jf.verify(PKS[case["signer_index"]], msg, sig), case
    print(f"{len(stored['cases'])} cases OK")


if __name__ == "__main__":
    main()
