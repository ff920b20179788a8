//! Lockfile readers (requirements.txt, uv.lock, pylock.toml, poetry.lock) that turn a lock into exact pins for one target.
