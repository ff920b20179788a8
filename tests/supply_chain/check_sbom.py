"""Independent checks of an SBOM rbuild attached (run by tests/supply_chain_e2e.rs).

usage: check_sbom.py FORMAT SBOM LOCKFILE [DPKG_STATUS]

- validates the document with spdx-tools (SPDX) or cyclonedx-python-lib's strict JSON schema
  validator (CycloneDX);
- every package the lockfile (uv.lock or a hashed requirements.txt) pins for the image appears
  with its version and the sha256 of one of the files the lock allows;
- every installed package of DPKG_STATUS (the image's own /var/lib/dpkg/status) appears with its
  version.
Prints one line per failure and exits 1 on any.
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib


def norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_pins(path):
    """name -> (version, set of sha256 hex)."""
    pins = {}
    if path.endswith(".lock"):
        doc = tomllib.load(open(path, "rb"))
        for p in doc.get("package", []):
            src = p.get("source", {})
            if "editable" in src or "virtual" in src:
                continue
            hashes = set()
            for f in p.get("wheels", []) + ([p["sdist"]] if "sdist" in p else []):
                if "hash" in f:
                    hashes.add(f["hash"].split(":", 1)[1])
            pins[norm(p["name"])] = (p["version"], hashes)
    else:
        text = open(path).read().replace("\\\n", " ")
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            m = re.match(r"^([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==([^\s;]+)", line)
            if not m:
                continue
            hashes = set(re.findall(r"--hash=sha256:([0-9a-f]{64})", line))
            pins[norm(m.group(1))] = (m.group(3), hashes)
    return pins


def dpkg_installed(path):
    out = {}
    for para in open(path, encoding="utf-8", errors="replace").read().split("\n\n"):
        f = {}
        for line in para.splitlines():
            if line[:1] in (" ", "\t") or ":" not in line:
                continue
            k, v = line.split(":", 1)
            f[k.strip()] = v.strip()
        if "Package" in f and f.get("Status", "").endswith(" installed"):
            out.setdefault(f["Package"], set()).add(f["Version"])
    return out


def main():
    fmt, sbom_path, lock = sys.argv[1:4]
    dpkg = sys.argv[4] if len(sys.argv) > 4 else None
    failures = []
    raw = open(sbom_path).read()
    doc = json.loads(raw)
    python = {}  # name -> list of (version, sha256 or None)
    os_pkgs = {}  # name -> set of versions
    if fmt == "spdx":
        tool = os.path.join(os.path.dirname(sys.executable), "pyspdxtools")
        # spdx-tools picks the parser by file name: give it a .spdx.json copy.
        with tempfile.NamedTemporaryFile("w", suffix=".spdx.json", delete=False) as f:
            f.write(raw)
        r = subprocess.run([tool, "-i", f.name], capture_output=True, text=True)
        os.unlink(f.name)
        if r.returncode != 0 or r.stdout.strip() or "rror" in r.stderr:
            failures.append(f"spdx-tools rejects the document: {r.stdout} {r.stderr}")
        for p in doc["packages"]:
            purls = [
                e["referenceLocator"]
                for e in p.get("externalRefs", [])
                if e.get("referenceType") == "purl"
            ]
            sha = next(
                (c["checksumValue"] for c in p.get("checksums", []) if c["algorithm"] == "SHA256"),
                None,
            )
            if any(u.startswith("pkg:pypi/") for u in purls) and p.get("primaryPackagePurpose") != "SOURCE":
                python.setdefault(norm(p["name"]), []).append((p["versionInfo"], sha))
            if any(u.startswith("pkg:deb/") for u in purls):
                os_pkgs.setdefault(p["name"], set()).add(p["versionInfo"])
    else:
        from cyclonedx.schema import SchemaVersion
        from cyclonedx.validation.json import JsonStrictValidator

        err = JsonStrictValidator(SchemaVersion.V1_6).validate_str(raw)
        if err is not None:
            failures.append(f"cyclonedx-python-lib rejects the document: {err}")
        for c in doc.get("components", []):
            purl = c.get("purl", "")
            sha = next((h["content"] for h in c.get("hashes", []) if h["alg"] == "SHA-256"), None)
            if purl.startswith("pkg:pypi/"):
                python.setdefault(norm(c["name"]), []).append((c["version"], sha))
            if purl.startswith("pkg:deb/"):
                os_pkgs.setdefault(c["name"], set()).add(c["version"])
    pins = lock_pins(lock)
    if not pins:
        failures.append(f"no pins read from {lock}")
    for name, (version, hashes) in sorted(pins.items()):
        found = python.get(name, [])
        if not any(v == version for v, _ in found):
            failures.append(f"{name}=={version} is missing (found {found})")
        elif not any(v == version and s in hashes for v, s in found):
            failures.append(f"{name}=={version}: no sha256 the lock allows (found {found})")
    if dpkg:
        installed = dpkg_installed(dpkg)
        if not installed:
            failures.append(f"no installed package read from {dpkg}")
        for name, versions in sorted(installed.items()):
            if not versions <= os_pkgs.get(name, set()):
                failures.append(f"OS package {name} {versions} is missing (found {os_pkgs.get(name)})")
    for f in failures:
        print(f)
    print(f"{len(pins)} Python pins, {len(os_pkgs)} OS packages checked")
    sys.exit(1 if failures else 0)


main()
