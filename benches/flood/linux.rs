//! The body of the flood bench, Linux only: see `../flood.rs`.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::time::Duration;

pub fn main() {
    let Some(mut n) = common::network::net("bench-flood") else {
        return;
    };
    let (rate, secs) = (
        common::env_or("EXO_FLOOD_RATE", 2000),
        common::env_or("EXO_FLOOD_SECS", 8),
    );
    let f = common::forge::flood(&mut n, 60, rate, secs, Duration::from_secs(3));
    let st = &f.status;
    let verified = st["records_accepted"].as_u64().unwrap_or(0)
        + st["records_rejected"]
            .as_object()
            .map_or(0, |m| m.values().filter_map(|v| v.as_u64()).sum());
    let secs_f = f.lasted.as_secs_f64();
    let ms = |d: Option<Duration>| {
        d.map_or("never".to_owned(), |d| {
            format!("{:.0} ms", d.as_secs_f64() * 1e3)
        })
    };
    println!(
        "flood: {} records offered, {} sent in {secs_f:.1} s ({:.0}/s)",
        f.offered,
        f.sent,
        f.sent as f64 / secs_f
    );
    println!(
        "records taken in and checked by the agent: {verified} ({:.0}/s)",
        verified as f64 / secs_f
    );
    println!(
        "real peer announced during the flood found after: {}",
        ms(f.during)
    );
    println!(
        "real peer announced after the flood found after: {}",
        ms(f.after)
    );
    println!(
        "agent peak RSS: {} KiB; peers handed over at the end: {}",
        f.peak_rss_kib, f.peers
    );
    println!(
        "agent CPU from the flood's start to its end: {} ticks in {secs_f:.1} s (1 tick = 10 ms here)",
        f.cpu_ticks
    );
    println!("dropped: {}", st["dropped"]);
    println!("budget: {}", st["budget"]);
}
