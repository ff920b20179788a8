"""An independent check of a cosign signature (run by tests/supply_chain_e2e.rs).

usage: verify_cosign.py PUBLIC_KEY_PEM PAYLOAD_FILE SIGNATURE_BASE64 EXPECTED_DIGEST

Verifies the ECDSA-SHA256 signature over the exact payload bytes with Python `cryptography`, and
that the simple-signing payload names EXPECTED_DIGEST, as `cosign verify --key` does. Exit 0 when
both hold, 1 otherwise (printing why).
"""

import base64
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

key_path, payload_path, sig_b64, expected = sys.argv[1:5]
key = serialization.load_pem_public_key(open(key_path, "rb").read())
payload = open(payload_path, "rb").read()
try:
    key.verify(base64.b64decode(sig_b64), payload, ec.ECDSA(hashes.SHA256()))
except InvalidSignature:
    print("signature does not verify")
    sys.exit(1)
doc = json.loads(payload)
if doc["critical"]["type"] != "cosign container image signature":
    print("not a cosign payload")
    sys.exit(1)
got = doc["critical"]["image"]["docker-manifest-digest"]
if got != expected:
    print(f"payload names {got}, not {expected}")
    sys.exit(1)
print("verified")
