"""Writes an ECDSA P-256 key pair in cosign's format without cosign (tests/supply_chain_e2e.rs).

usage: make_cosign_key.py PASSWORD OUT_PREFIX

OUT_PREFIX.key: `ENCRYPTED SIGSTORE PRIVATE KEY` PEM: go-securesystemslib's envelope (scrypt
N=32768 r=8 p=1, NaCl secretbox via PyNaCl) around the PKCS#8 DER; OUT_PREFIX.pub: SPKI PEM.
"""

import base64
import hashlib
import json
import os
import sys

import nacl.secret
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

password, prefix = sys.argv[1].encode(), sys.argv[2]
key = ec.generate_private_key(ec.SECP256R1())
der = key.private_bytes(
    serialization.Encoding.DER,
    serialization.PrivateFormat.PKCS8,
    serialization.NoEncryption(),
)
salt = os.urandom(32)
n, r, p = 32768, 8, 1
sym = hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, maxmem=64 * 1024 * 1024, dklen=32)
nonce = os.urandom(24)
box = nacl.secret.SecretBox(sym)
ct = box.encrypt(der, nonce).ciphertext
env = {
    "kdf": {"name": "scrypt", "params": {"N": n, "r": r, "p": p}, "salt": base64.b64encode(salt).decode()},
    "cipher": {"name": "nacl/secretbox", "nonce": base64.b64encode(nonce).decode()},
    "ciphertext": base64.b64encode(ct).decode(),
}
body = base64.b64encode(json.dumps(env).encode()).decode()
lines = [body[i : i + 64] for i in range(0, len(body), 64)]
with open(prefix + ".key", "w") as f:
    f.write("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n" + "\n".join(lines) + "\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n")
with open(prefix + ".pub", "wb") as f:
    f.write(key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
