//! Builds a Python project into an image with the rbuild library and pushes it.
//!
//! ```text
//! cargo run -p rbuild --example build_and_push -- CONTEXT BASE_REF TARGET_REF
//! cargo run -p rbuild --example build_and_push -- examples/fastapi-app \
//!     127.0.0.1:5000/library/python:3.11-slim 127.0.0.1:5000/demo/fastapi:lib
//! ```
//!
//! Progress goes to stderr through a [`rbuild::BuildProgress`] implementation; the pushed
//! reference and digest go to stdout.

use std::sync::Arc;

use rbuild::BuildProgress;

struct Print;

impl BuildProgress for Print {
    fn step(&self, platform: &str, step: &str, detail: &str, seconds: f64) {
        eprintln!("[{platform}] {step}: {detail} ({seconds:.2} s)");
    }
    fn warning(&self, message: &str) {
        eprintln!("warning: {message}");
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [context, base, target] = args.as_slice() else {
        eprintln!("usage: build_and_push CONTEXT BASE_REF TARGET_REF");
        std::process::exit(2);
    };
    let built = rbuild::Build::new(base)
        .context(context)
        .progress(Arc::new(Print))
        .build()
        .await?;
    let report = built.push(target).await?;
    for r in &report.references {
        println!("{r}");
    }
    Ok(())
}
