//! Progress on stderr: one [`Renderer`] receives rbuild's single progress [`Event`] type from the
//! registry client, the index client and the build.
//!
//! On a terminal (and not `-q`/`--json`) every running piece of work has a line drawn with
//! indicatif: a byte bar for transfers (blob and wheel downloads, uploads), a spinner with the time
//! so far for steps (install, compress, bytecode, sdist build). Anywhere else (CI logs, pipes)
//! only finished steps and warnings are printed, as plain lines, so no escape codes end up there.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use rbuild::progress::{Activity, BuildProgress, Event, Reporter};

use crate::style;

/// Draws progress and prints step lines and warnings on stderr; keeps the warnings for `--json`.
pub struct Renderer {
    bars: Option<Bars>,
    /// Step lines and warnings are printed (not with `-q`; steps not with `--json`).
    steps: bool,
    warnings_shown: bool,
    warnings: Mutex<Vec<String>>,
}

struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

static RENDERER: OnceLock<Arc<Renderer>> = OnceLock::new();

/// Sets up the process's renderer from the global flags. Call once at start.
pub fn init(quiet: bool, json: bool) {
    let _ = RENDERER.set(Arc::new(Renderer::new(
        !quiet && !json && std::io::stderr().is_terminal(),
        !quiet && !json,
        !quiet,
    )));
}

/// The process's renderer (a quiet one before [`init`]).
pub fn renderer() -> Arc<Renderer> {
    RENDERER
        .get_or_init(|| Arc::new(Renderer::new(false, false, false)))
        .clone()
}

/// Prints a line above the bars (or plainly when there are none).
pub fn println(line: &str) {
    renderer().println(line);
}

/// Prints a coloured `warning:` line (not with `-q`) and keeps it for `--json`.
pub fn warn(message: &str) {
    renderer().report(&Event::Warning {
        message: message.to_string(),
    });
}

impl Renderer {
    /// A renderer drawing bars or not, printing step lines or not, printing warnings or not.
    pub fn new(bars: bool, steps: bool, warnings: bool) -> Renderer {
        Renderer {
            bars: bars.then(|| Bars {
                multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
                bars: Mutex::new(HashMap::new()),
            }),
            steps,
            warnings_shown: warnings,
            warnings: Mutex::new(Vec::new()),
        }
    }

    /// The warnings reported so far, in order.
    pub fn warnings(&self) -> Vec<String> {
        self.warnings.lock().map(|w| w.clone()).unwrap_or_default()
    }

    /// Prints a line above the bars (or plainly when there are none).
    pub fn println(&self, line: &str) {
        match &self.bars {
            Some(b) => {
                let _ = b.multi.println(line);
            }
            None => eprintln!("{line}"),
        }
    }

    fn start(&self, activity: Activity, id: &str, total: Option<u64>) {
        let Some(b) = &self.bars else { return };
        let (bar, template) = if activity.counts_bytes() {
            (
                match total {
                    Some(n) => ProgressBar::new(n),
                    None => ProgressBar::no_length(),
                },
                "{prefix:>9} {wide_msg} {binary_bytes:>10}/{binary_total_bytes:<10} {bar:24}",
            )
        } else {
            (
                ProgressBar::new_spinner(),
                "{prefix:>9} {spinner} {wide_msg} {elapsed:>4}",
            )
        };
        let style =
            ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar());
        let bar = b.multi.add(
            bar.with_style(style)
                .with_prefix(activity.label())
                .with_message(id.to_string()),
        );
        if !activity.counts_bytes() {
            bar.enable_steady_tick(Duration::from_millis(120));
        }
        if let Ok(mut m) = b.bars.lock()
            && let Some(old) = m.insert(id.to_string(), bar)
        {
            old.finish_and_clear();
        }
    }

    fn with_bar(&self, id: &str, f: impl FnOnce(&ProgressBar)) {
        if let Some(b) = &self.bars
            && let Ok(m) = b.bars.lock()
            && let Some(bar) = m.get(id)
        {
            f(bar);
        }
    }

    fn finish(&self, id: &str) {
        if let Some(b) = &self.bars
            && let Ok(mut m) = b.bars.lock()
            && let Some(bar) = m.remove(id)
        {
            bar.finish_and_clear();
        }
    }
}

impl Reporter for Renderer {
    fn report(&self, event: &Event) {
        match event {
            Event::Started {
                activity,
                id,
                total,
                ..
            } => {
                self.start(*activity, id, *total);
                if activity.counts_bytes() {
                    tracing::trace!("{} {id} started", activity.label());
                } else {
                    tracing::debug!("{} {id} started", activity.label());
                }
            }
            Event::Advanced { id, n, .. } => self.with_bar(id, |b| b.inc(*n)),
            Event::Restarted { id, from, .. } => {
                self.with_bar(id, |b| b.set_position(*from));
                tracing::debug!("{id}: again from byte {from}");
            }
            Event::Finished { id, .. } => self.finish(id),
            Event::Step {
                platform,
                step,
                detail,
                elapsed,
            } if self.steps => {
                self.println(&format!(
                    "{} {detail} ({:.2} s)",
                    style::bold(&format!("[{platform}] {step:<8}")),
                    elapsed.as_secs_f64()
                ));
            }
            Event::Warning { message } => {
                if let Ok(mut w) = self.warnings.lock() {
                    w.push(message.clone());
                }
                if self.warnings_shown {
                    self.println(&format!("{} {message}", style::warning()));
                }
            }
            // Retries and long waits: shown at default verbosity (not with -q), not warnings.
            Event::Notice { message } => {
                if self.warnings_shown {
                    self.println(&format!("{} {message}", style::note()));
                } else {
                    tracing::info!("{message}");
                }
            }
            Event::Info { message } => tracing::debug!("{message}"),
            _ => {}
        }
    }
}

/// The renderer as the build's progress (the build reports through [`BuildProgress::event`]).
pub struct BuildRenderer(pub Arc<Renderer>);

impl BuildProgress for BuildRenderer {
    fn event(&self, event: &Event) {
        self.0.report(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_are_kept_for_json_even_when_quiet() {
        let r = Renderer::new(false, false, false);
        BuildRenderer(Arc::new(r)).warning("a .env file is copied");
        let r = Renderer::new(false, false, false);
        r.report(&Event::Warning {
            message: "one".into(),
        });
        r.report(&Event::Info {
            message: "not a warning".into(),
        });
        assert_eq!(r.warnings(), ["one"]);
    }
}
