//! Results on stdout: human text or JSON (`--json`).

use std::io::Write;

/// Prints a JSON value (pretty, with a trailing newline).
pub fn json(value: &serde_json::Value) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// Prints exact bytes, as they are.
pub fn raw(bytes: &[u8]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)?;
    out.flush()?;
    Ok(())
}

/// Prints text lines.
pub fn lines(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    if !text.ends_with('\n') {
        writeln!(out)?;
    }
    Ok(())
}

/// The version of the JSON documents rbuild prints (`"schema"`); raised when a key changes meaning
/// or goes away (new keys may appear without a change).
pub const JSON_SCHEMA: u32 = 1;

/// Prints a JSON document with `schema` and `warnings` (the warnings reported so far) added.
pub fn json_doc(mut value: serde_json::Value) -> anyhow::Result<()> {
    if let Some(obj) = value.as_object_mut() {
        obj.insert("schema".into(), serde_json::json!(JSON_SCHEMA));
        obj.insert(
            "warnings".into(),
            serde_json::json!(crate::bars::renderer().warnings()),
        );
    }
    json(&value)
}

/// `3.4 MiB`-style sizes: the one unit style rbuild uses.
pub fn human_size(bytes: u64) -> String {
    rbuild::progress::human_size(bytes)
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes() {
        assert_eq!(super::human_size(999), "999 B");
        assert_eq!(super::human_size(42_123_456), "40.2 MiB");
    }
}
