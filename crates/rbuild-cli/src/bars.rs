//! Progress bars for downloads and uploads, drawn with indicatif on stderr, only when stderr is a
//! terminal (never in CI logs or pipes, so no escape codes end up there) and not with `-q`/`--json`.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Mutex, OnceLock};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The bars of this process.
pub struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

static BARS: OnceLock<Option<Bars>> = OnceLock::new();

/// Turns bars on when stderr is a terminal and output is not quiet or JSON. Call once at start.
pub fn init(enabled: bool) {
    let _ = BARS.set((enabled && std::io::stderr().is_terminal()).then(|| Bars {
        multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
        bars: Mutex::new(HashMap::new()),
    }));
}

fn get() -> Option<&'static Bars> {
    BARS.get().and_then(Option::as_ref)
}

/// A transfer started (`what` is shown before the name).
pub fn start(id: &str, what: &str, size: Option<u64>) {
    let Some(b) = get() else { return };
    let bar = match size {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::no_length(),
    };
    let style = ProgressStyle::with_template(
        "{prefix:>9} {wide_msg} {bytes:>10}/{total_bytes:<10} {bar:24}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    let bar = b.multi.add(
        bar.with_style(style)
            .with_prefix(what.to_string())
            .with_message(id.to_string()),
    );
    if let Ok(mut m) = b.bars.lock()
        && let Some(old) = m.insert(id.to_string(), bar)
    {
        old.finish_and_clear();
    }
}

/// More bytes of a transfer.
pub fn advance(id: &str, n: u64) {
    let Some(b) = get() else { return };
    if let Ok(m) = b.bars.lock()
        && let Some(bar) = m.get(id)
    {
        bar.inc(n);
    }
}

/// A transfer finished.
pub fn finish(id: &str) {
    let Some(b) = get() else { return };
    if let Ok(mut m) = b.bars.lock()
        && let Some(bar) = m.remove(id)
    {
        bar.finish_and_clear();
    }
}

/// Prints a line above the bars (or plainly when there are none).
pub fn println(line: &str) {
    match get() {
        Some(b) => {
            let _ = b.multi.println(line);
        }
        None => eprintln!("{line}"),
    }
}
