//! The Python target of an image: interpreter, install scheme, libc and CPU detection, platform tags and PEP 508 markers.
