"""Prints the tags `packaging.tags.sys_tags()` would give on a forced CPython/Linux target.

Usage: python3 sys_tags.py '[{"python": [3, 12], "libc": ["glibc", 2, 36], "arch": "x86_64"}, ...]'
Output: {"packaging": "<version>", "targets": [[tag, ...], ...]}

The running interpreter's detection is replaced by the target: glibc/musl version, sysconfig platform
and the ELF ABI check are monkeypatched, then the platform list comes from packaging's own
`platform_tags()` and the tag list is composed exactly as `sys_tags()` composes it
(`cpython_tags(...)` then `compatible_tags(interpreter="cpXY")`), with the target's Python version
instead of the running one.
"""

import json
import sys
import sysconfig

import packaging
from packaging import _manylinux, _musllinux, tags


def target_tags(python, libc, arch):
    family, major, minor = libc
    glibc = (major, minor) if family == "glibc" else (-1, -1)
    musl = _musllinux._MuslVersion(major, minor) if family == "musl" else None

    _manylinux._get_glibc_version = lambda: _manylinux._GLibCVersion(*glibc)
    _manylinux._have_compatible_abi = lambda *a, **k: True  # armhf/i686 ELF check of the target
    _musllinux._get_musl_version = lambda *a, **k: musl
    sysconfig.get_platform = lambda: "linux-" + arch
    tags.sysconfig.get_platform = sysconfig.get_platform

    platforms = list(tags.platform_tags())
    version = tuple(python)
    interp = "cp%d%d" % version
    out = list(tags.cpython_tags(python_version=version, platforms=platforms))
    out += list(tags.compatible_tags(python_version=version, interpreter=interp, platforms=platforms))
    return [str(t) for t in out]


def main():
    targets = json.loads(sys.argv[1])
    result = [target_tags(t["python"], t["libc"], t["arch"]) for t in targets]
    json.dump({"packaging": packaging.__version__, "targets": result}, sys.stdout)


main()
