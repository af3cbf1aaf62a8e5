#!/usr/bin/env python3
"""A client of a node's API written from proto/ alone (grpcio, code generated here with
grpcio-tools): it authenticates with a client certificate (mutual TLS), signs a certificate's
issue with an exporting authority's key exactly as the signing format says (docs/ARCHITECTURE.md),
submits it, and prints what the node answered, as JSON.

Run by tests/tests/access.rs; by hand:
  python3 tests/python/submit_event.py --proto proto --node 127.0.0.1:27001 \
      --ca DIR/ca.pem --cert DIR/BW/client.pem --cert-key DIR/BW/client.key \
      --signing-key DIR/BW/exporting.key --chain-id kp-local-... --number BW-2026-000900
"""
import argparse
import datetime
import hashlib
import json
import sys
import tempfile

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from grpc_tools import protoc

EVENT_TAG = b"kp-ledger/v1/event"


def generated(proto_dir):
    out = tempfile.mkdtemp(prefix="kp-proto-py-")
    files = ["kp/v1/events.proto", "kp/v1/ledger.proto", "kp/v1/node.proto"]
    rc = protoc.main(["protoc", f"-I{proto_dir}", f"--python_out={out}", f"--grpc_python_out={out}", *files])
    if rc != 0:
        sys.exit(f"protoc failed on {proto_dir} ({rc})")
    sys.path.insert(0, out)
    from kp.v1 import events_pb2, node_pb2, node_pb2_grpc  # noqa: E402

    return events_pb2, node_pb2, node_pb2_grpc


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--proto", required=True)
    ap.add_argument("--node", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--cert-key", required=True)
    ap.add_argument("--signing-key", required=True)
    ap.add_argument("--chain-id", required=True)
    ap.add_argument("--number", required=True)
    a = ap.parse_args()
    events_pb2, node_pb2, node_pb2_grpc = generated(a.proto)

    days = (datetime.date.today() - datetime.date(1970, 1, 1)).days
    exporter, importer = a.number[:2], "EU"
    certificate = events_pb2.Certificate(
        number=a.number,
        exporter=exporter,
        importer=importer,
        origin=exporter,
        issued_on=days,
        expires_on=days + 30,
        issuing_authority="Ministry of Minerals (Python client)",
        exporter_party=events_pb2.Trader(name="Python Exporter Ltd", identification="PY-1"),
        importer_party=events_pb2.Trader(name="Python Importer BV", identification="PY-2"),
        carats=100000,
        value_cents=5000000,
        parcels=2,
        lines=[events_pb2.HsLine(hs_code=710231, carats=100000, value_cents=5000000)],
    )
    payload = events_pb2.EventPayload(
        format_version=1, certificate_issued=events_pb2.CertificateIssued(certificate=certificate)
    ).SerializeToString(deterministic=True)

    with open(a.signing_key) as f:
        key = json.load(f)
    secret = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(key["secret_seed"]))
    public = bytes.fromhex(key["public_key"])
    chain = a.chain_id.encode()
    signature = secret.sign(EVENT_TAG + b"\x00" + bytes([len(chain)]) + chain + payload)
    envelope = events_pb2.SignedEvent(payload=payload, signer=public, signature=signature).SerializeToString()

    read = lambda p: open(p, "rb").read()  # noqa: E731
    credentials = grpc.ssl_channel_credentials(
        root_certificates=read(a.ca), private_key=read(a.cert_key), certificate_chain=read(a.cert)
    )
    with grpc.secure_channel(a.node, credentials) as channel:
        node = node_pb2_grpc.NodeStub(channel)
        status = node.GetStatus(node_pb2.GetStatusRequest(), timeout=10)
        answer = node.Submit(node_pb2.SubmitRequest(envelope=envelope), timeout=30)
    outcome = answer.WhichOneof("outcome")
    print(
        json.dumps(
            {
                "caller": status.caller,
                "chain_id": status.chain_id,
                "event_id": answer.event_id,
                "expected_id": hashlib.sha256(envelope).hexdigest(),
                "outcome": outcome,
                "reason": answer.rejected.reason if outcome == "rejected" else "",
            }
        )
    )


if __name__ == "__main__":
    main()
