# rbuild bytecode worker: runs inside the target interpreter as `python -S -s -B -c <this>`.
#
# Protocol (stdin/stdout, every frame is a 4-byte big-endian length then the payload):
#   worker -> rbuild, once:   b"H" b"RBPYC1\0" cache_tag \0 magic-hex \0 version \0 sys.version
#   rbuild -> worker:         4-byte big-endian length of the image path, the image path (UTF-8),
#                             then the source bytes
#   worker -> rbuild:         b"O" + the complete .pyc (16-byte PEP 552 header + marshal data)
#                             b"S" + reason (UTF-8): the source does not compile, skip it
#                             b"E" + message (UTF-8): an internal error, stop
# EOF on stdin ends the worker with status 0. Anything printed to stdout by the compiler goes to
# stderr (fd 1 is redirected), so stdout carries frames only.
import sys

# One-character (Latin-1) strings and "" are singletons shared by the whole process, and CPython
# before 3.12 leaves whether they are interned to the process's history: the same `from x import
# *` was written with "*" interned (marshal `Z`) by one worker and not (`z`) by another, depending
# on which files each had compiled before. Interned first, they are written the same way by every
# worker; 3.12 and later intern them at start-up anyway.
for _c in range(256):
    sys.intern(chr(_c))
sys.intern("")
del _c

if sys.path and sys.path[0] in ("", "."):
    # `-c` puts the working directory (the scratch dir) first: never import from it.
    del sys.path[0]

# Only what the interpreter has loaded already, or builtin: a worker's start-up is the fixed cost
# of a warm rebuild that compiles one changed file (no `os`, no `importlib.util`, which pulls in
# contextlib, collections, functools, operator, ...).
import io
import marshal
import posix
import warnings

try:
    # What importlib.util computes, from the frozen module every interpreter has loaded and the
    # builtin `_imp`: importlib.util.source_hash(b) is _imp.source_hash(<magic as a little-endian
    # int>, b) in CPython 3.8 to 3.14.
    import _frozen_importlib_external
    import _imp

    MAGIC_NUMBER = _frozen_importlib_external.MAGIC_NUMBER
    _MAGIC_KEY = int.from_bytes(MAGIC_NUMBER, "little")

    def source_hash(source):
        return _imp.source_hash(_MAGIC_KEY, source)

except (ImportError, AttributeError):
    import importlib.util

    MAGIC_NUMBER = importlib.util.MAGIC_NUMBER
    source_hash = importlib.util.source_hash

# SyntaxWarning / DeprecationWarning while compiling are not our business.
warnings.simplefilter("ignore")


def main():
    out_fd = posix.dup(1)
    posix.dup2(2, 1)
    out = io.open(out_fd, "wb", buffering=0)
    inp = io.open(0, "rb", buffering=0, closefd=False)

    def send(kind, payload):
        data = kind + payload
        out.write(len(data).to_bytes(4, "big") + data)

    def read_exact(n):
        chunks = []
        while n:
            chunk = inp.read(n)
            if not chunk:
                return None
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    if sys.flags.hash_randomization:
        sys.stderr.write(
            "rbuild bytecode worker: hash randomization is on; the interpreter must run with "
            "PYTHONHASHSEED=0 (and without -E/-I) so that set constants are written in a stable order\n"
        )
        sys.exit(3)
    tag = sys.implementation.cache_tag
    if not tag:
        sys.stderr.write("rbuild bytecode worker: this interpreter has no bytecode cache tag\n")
        sys.exit(3)
    magic = MAGIC_NUMBER
    version = "%d.%d" % sys.version_info[:2]
    send(
        b"H",
        b"\0".join(
            [b"RBPYC1", tag.encode(), magic.hex().encode(), version.encode(), sys.version.encode("utf-8", "replace")]
        ),
    )
    # Flags word of PEP 552: bit 0 = hash-based, bit 1 = check_source (off: unchecked).
    flags = (0b01).to_bytes(4, "little")
    prelude = posix.environ.get(b"RBUILD_BYTECODE_TEST_PRELUDE")
    if prelude:
        exec(compile(prelude.decode("utf-8"), "<rbuild test prelude>", "exec"), {})
    while True:
        header = read_exact(4)
        if header is None:
            # Done: leave without the interpreter's finalisation (module teardown, GC), which
            # only costs time; every frame is already written (unbuffered).
            sys.stderr.flush()
            sys.stdout.flush()
            posix._exit(0)
        n = int.from_bytes(header, "big")
        payload = read_exact(n)
        if payload is None or n < 4:
            sys.stderr.write("rbuild bytecode worker: truncated request\n")
            sys.exit(4)
        plen = int.from_bytes(payload[:4], "big")
        image_path = payload[4 : 4 + plen].decode("utf-8")
        source = payload[4 + plen :]
        try:
            code = compile(source, image_path, "exec", dont_inherit=True, optimize=0)
        except Exception as exc:  # what py_compile/compileall/pip/uv skip
            send(b"S", ("%s: %s" % (type(exc).__name__, exc)).encode("utf-8", "replace"))
            continue
        try:
            data = magic + flags + source_hash(source) + marshal.dumps(code)
        except Exception as exc:
            send(b"E", ("%s: %s" % (type(exc).__name__, exc)).encode("utf-8", "replace"))
            continue
        del code
        send(b"O", data)


main()
