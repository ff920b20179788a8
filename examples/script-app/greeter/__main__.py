"""A command-line program: prints a greeting and the Python it runs on."""
import platform
import sys

name = sys.argv[1] if len(sys.argv) > 1 else "rbuild"
print(f"hello from {name} on Python {platform.python_version()}")
