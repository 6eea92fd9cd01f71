//! A minimal stderr logger (does I/O). Level from `EXO_DISCOVERY_LOG` (`error`, `warn`, `info`,
//! `debug`, `trace`; default `info`). The mdns-sd engine's own messages show from `warn` up
//! unless `EXO_DISCOVERY_LOG=trace`.

use log::{Level, LevelFilter, Log, Metadata, Record};

struct Stderr {
    level: LevelFilter,
}

impl Log for Stderr {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        if m.target().starts_with("mdns_sd") && self.level < LevelFilter::Trace {
            return m.level() <= Level::Warn;
        }
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
