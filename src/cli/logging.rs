//! A minimal stderr logger (does I/O). Level from `EXO_DISCOVERY_LOG` (`error`, `warn`, `info`,
//! `debug`, `trace`; default `info`). The mdns-sd engine is built without its logging (its
//! messages were all debug and trace detail, and cost 70 KiB of the binary): every line here is
//! the agent's own.

use log::{LevelFilter, Log, Metadata, Record};

struct Stderr {
    level: LevelFilter,
}

impl Log for Stderr {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        m.level() <= self.level
    }

    fn log(&self, r: &Record<'_>) {
        if self.enabled(r.metadata()) {
            eprintln!(
                "exo-discovery {}: {}",
                r.level().as_str().to_lowercase(),
                r.args()
            );
        }
    }

    fn flush(&self) {}
}

/// Installs the logger once; later calls do nothing.
pub fn init() {
    let level = std::env::var("EXO_DISCOVERY_LOG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(LevelFilter::Info);
    if log::set_boxed_logger(Box::new(Stderr { level })).is_ok() {
        log::set_max_level(level);
    }
}
