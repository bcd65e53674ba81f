"""Checks cto-ledger's signed output with code cto-ledger did not write.

    verify.py dsse FILE PUBKEY.pem         DSSE envelopes (securesystemslib), statements and
                                           predicates parsed by in-toto-attestation's protobufs
    verify.py note NOTE PUBKEY.pem         a C2SP signed note (cryptography's Ed25519)
    verify.py proof PROOF.json PUBKEY.pem  an inclusion or consistency proof, by RFC 9162's
                                           algorithms written out below, against its signed note
    verify.py tlog-proof FILE PUBKEY.pem   a C2SP tlog-proof (c2sp.org/tlog-proof@v1), parsed
                                           from the spec's text; cto-ledger's record (the leaf's
                                           data) is the journal entry's hash, carried as `extra`

    verify.py cosig NOTE VKEY              a C2SP tlog-cosignature/v1 (Ed25519) on the note, by
                                           the witness VKEY names (NAME+KEYID+base64(0x04||key))

Prints one JSON line; exits 0 when everything verifies, 1 when something does not.
"""

import base64
import hashlib
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import load_pem_public_key, Encoding, PublicFormat


def fail(why):
    print(json.dumps({"ok": False, "error": why}))
    sys.exit(1)


def public_key(path):
    with open(path, "rb") as f:
        return load_pem_public_key(f.read())


def check_dsse(path, pem):
    from google.protobuf import json_format
    from in_toto_attestation.v1 import statement_pb2
    from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
    from in_toto_attestation.predicates.test_result.v0 import test_result_pb2
    from in_toto_attestation.predicates.vsa.v1 import vsa_pb2
    from securesystemslib.dsse import Envelope
    from securesystemslib.signer import SSlibKey

    predicates = {
        "https://slsa.dev/provenance/v1": provenance_pb2.Provenance,
        "https://in-toto.io/attestation/test-result/v0.1": test_result_pb2.TestResult,
        "https://slsa.dev/verification_summary/v1": vsa_pb2.VerificationSummary,
    }
    crypto_key = public_key(pem)
    der = crypto_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    keyid = hashlib.sha256(der).hexdigest()
    key = SSlibKey.from_crypto(crypto_key, keyid=keyid, scheme="ed25519")
    seen = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            env = Envelope.from_dict(json.loads(line))
            try:
                env.verify([key], 1)
            except Exception as e:  # securesystemslib raises VerificationError
                fail(f"line {n}: {type(e).__name__}: {e}")
            statement = json.loads(env.payload)
            st = statement_pb2.Statement()
            json_format.ParseDict(statement, st)  # unknown fields are errors
            cls = predicates.get(statement["predicateType"])
            if cls is None:
                fail(f"line {n}: unexpected predicateType {statement['predicateType']}")
            predicate = dict(statement["predicate"])
            if cls is vsa_pb2.VerificationSummary:
                # The VSA v1 spec makes verifiedLevels an array of strings; the protobuf in
                # in-toto-attestation 0.9.3 still declares one string (in-toto/attestation#425,
                # fix in #429). Check the spec's form here and the rest with the protobuf.
                levels = predicate.pop("verifiedLevels")
                if not isinstance(levels, list) or not all(isinstance(x, str) for x in levels):
                    fail(f"line {n}: verifiedLevels is not an array of strings")
            json_format.ParseDict(predicate, cls())
            for s in statement["subject"]:
                if len(s["digest"].get("sha256", "")) != 64:
                    fail(f"line {n}: subject {s.get('name')} has no sha256")
            seen.append({"line": n, "predicateType": statement["predicateType"],
                         "subjects": [s["digest"]["sha256"] for s in statement["subject"]],
                         "predicate": statement["predicate"]})
    print(json.dumps({"ok": True, "keyid": keyid, "envelopes": seen}))


def parse_note(text):
    body, _, sigs = text.rpartition("\n\n")
    body += "\n"
    lines = body.split("\n")
    origin, size, root = lines[0], int(lines[1]), base64.b64decode(lines[2])
    out = []
    for line in sigs.splitlines():
        assert line.startswith("\u2014 "), line
        name, b64 = line[2:].split(" ")
        blob = base64.b64decode(b64)
        out.append((name, blob[:4], blob[4:]))
    return body, origin, size, root, out


def verify_note(text, key):
    # As Go's sumdb/note: every signature line by a known key (name and key hash) must
    # verify; a bad one is an error, not something to read past.
    body, origin, size, root, sigs = parse_note(text)
    raw = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    verified = False
    for name, key_hash, sig in sigs:
        want = hashlib.sha256(name.encode() + b"\n" + b"\x01" + raw).digest()[:4]
        if key_hash != want:
            continue
        try:
            key.verify(sig, body.encode())
            verified = True
        except InvalidSignature:
            fail("note signature does not verify")
    if not verified:
        fail("no signature line by this key")
    return origin, size, root


def node(l, r):
    return hashlib.sha256(b"\x01" + l + r).digest()


def verify_inclusion(index, size, leaf, path, root):
    # RFC 9162 section 2.1.3.2
    if index >= size:
        fail("index out of range")
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            fail("proof too long")
        if fn % 2 == 1 or fn == sn:
            r = node(p, r)
            if fn % 2 == 0:
                while fn % 2 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0 or r != root:
        fail("inclusion proof does not lead to the checkpoint's root")


def verify_consistency(m, n, old_root, new_root, path):
    # RFC 9162 section 2.1.4.2
    if m == n:
        if path or old_root != new_root:
            fail("bad proof between equal sizes")
        return
    if m == 0 or not path:
        fail("empty proof")
    if m & (m - 1) == 0:
        path = [old_root] + path
    fn, sn = m - 1, n - 1
    while fn % 2 == 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            fail("proof too long")
        if fn % 2 == 1 or fn == sn:
            fr, sr = node(c, fr), node(c, sr)
            if fn % 2 == 0:
                while fn % 2 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0 or fr != old_root or sr != new_root:
        fail("consistency proof does not connect the two roots")


def check_proof(path, pem):
    key = public_key(pem)
    with open(path) as f:
        p = json.load(f)
    origin, size, root = verify_note(p["checkpoint"], key)
    hashes = [base64.b64decode(h) for h in p["hashes"]]
    if p["type"] == "inclusion":
        e = p["entry"]
        entry_hash = hashlib.sha256(bytes.fromhex(e["prev_hash"]) + e["event"].encode()).digest()
        if entry_hash.hex() != e["hash"]:
            fail("entry bytes do not hash to the entry hash")
        leaf = hashlib.sha256(b"\x00" + entry_hash).digest()
        if p["tree_size"] != size:
            fail("proof and checkpoint sizes differ")
        verify_inclusion(p["leaf_index"], size, leaf, hashes, root)
        print(json.dumps({"ok": True, "origin": origin, "size": size, "event": json.loads(e["event"])}))
    else:
        old_root = base64.b64decode(p["old_root"])
        if p.get("old_checkpoint"):
            _, old_size, signed_old_root = verify_note(p["old_checkpoint"], key)
            if old_size != p["old_size"] or signed_old_root != old_root:
                fail("old checkpoint differs from the proof's old tree")
        verify_consistency(p["old_size"], size, old_root, root, hashes)
        print(json.dumps({"ok": True, "origin": origin, "old_size": p["old_size"], "size": size}))


def check_tlog_proof(path, pem):
    with open(path) as f:
        text = f.read()
    head, sep, checkpoint = text.partition("\n\n")
    if not sep:
        fail("no empty line before the checkpoint")
    lines = head.split("\n")
    if lines[0] != "c2sp.org/tlog-proof@v1":
        fail("not a c2sp.org/tlog-proof@v1")
    i, extra = 1, None
    if i < len(lines) and lines[i].startswith("extra "):
        extra = base64.b64decode(lines[i][len("extra "):], validate=True)
        i += 1
    if i >= len(lines) or not lines[i].startswith("index "):
        fail("no index line")
    digits = lines[i][len("index "):]
    if not digits.isdigit() or (digits != "0" and digits.startswith("0")):
        fail("index is not a decimal without leading zeroes")
    hashes = [base64.b64decode(l, validate=True) for l in lines[i + 1:]]
    if any(len(h) != 32 for h in hashes):
        fail("a proof line is not a SHA-256 hash")
    if extra is None or len(extra) != 32:
        fail("no 32-byte record hash as extra data")
    origin, size, root = verify_note(checkpoint, public_key(pem))
    leaf = hashlib.sha256(b"\x00" + extra).digest()
    verify_inclusion(int(digits), size, leaf, hashes, root)
    print(json.dumps({"ok": True, "origin": origin, "size": size, "index": int(digits), "record": extra.hex()}))


def check_cosig(path, vkey):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    name, keyid, b64 = vkey.split("+", 2)
    raw = base64.b64decode(b64)
    if raw[0] != 0x04 or len(raw) != 33:
        fail("not an Ed25519 cosignature key")
    want = hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4]
    if want.hex() != keyid:
        fail("the vkey's key id is not its name's and key's")
    key = Ed25519PublicKey.from_public_bytes(raw[1:])
    with open(path) as f:
        text = f.read()
    body, origin, size, root, sigs = parse_note(text)
    seen = 0
    for sig_name, key_hash, blob in sigs:
        if sig_name != name or key_hash != want:
            continue
        if len(blob) != 72:
            fail("a cosignature is not 8 + 64 bytes")
        t = int.from_bytes(blob[:8], "big")
        msg = b"cosignature/v1\ntime " + str(t).encode() + b"\n" + body.encode()
        try:
            key.verify(blob[8:], msg)
        except InvalidSignature:
            fail("cosignature does not verify")
        seen += 1
    if not seen:
        fail("no cosignature by this witness")
    print(json.dumps({"ok": True, "witness": name, "origin": origin, "size": size}))


def main():
    verb, file, pem = sys.argv[1:4]
    if verb == "dsse":
        check_dsse(file, pem)
    elif verb == "note":
        with open(file) as f:
            origin, size, root = verify_note(f.read(), public_key(pem))
        print(json.dumps({"ok": True, "origin": origin, "size": size, "root": base64.b64encode(root).decode()}))
    elif verb == "proof":
        check_proof(file, pem)
    elif verb == "cosig":
        check_cosig(file, pem)
    elif verb == "tlog-proof":
        check_tlog_proof(file, pem)
    else:
        fail(f"unknown verb {verb}")


if __name__ == "__main__":
    try:
        main()
    except SystemExit:
        raise
    except Exception as e:  # a parse error is a verification failure, reported as one
        fail(f"{type(e).__name__}: {e}")
