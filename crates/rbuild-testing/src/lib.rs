//! Test harness: the real registry (plain, htpasswd, TLS, token), the Debian-built base fixture and a fault-injecting proxy.
