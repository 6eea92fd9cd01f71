//! The body of the discovery bench, Linux only: see `../discovery.rs`.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn summary(name: &str, mut v: Vec<Duration>) {
    v.sort();
    println!(
        "{name}: n={} median={:.1} ms p99={:.1} ms min={:.1} ms max={:.1} ms",
        v.len(),
        percentile(&v, 0.5).as_secs_f64() * 1e3,
        percentile(&v, 0.99).as_secs_f64() * 1e3,
        v[0].as_secs_f64() * 1e3,
        v[v.len() - 1].as_secs_f64() * 1e3,
    );
}

pub fn main() {
    let runs: usize = common::env_or("EXO_BENCH_RUNS", 25);
    let Some(mut n) = common::network::net("bench discovery") else {
        return;
    };
    let l = n.link();
    let a = n.host("a");
    let b = n.host("b");
    n.attach(&a, "eth0", &l, &["10.40.0.1/24"]);
    n.attach(&b, "eth0", &l, &["10.40.0.2/24"]);
    let aa = n.agent(&a, "agent-a", &[]);
    let ab = n.agent(&b, "agent-b", &[]);
    std::thread::sleep(Duration::from_secs(2));
    let idle_rss = common::proc::status_field(n.pid(&ab), "VmRSS:");
    let t0 = common::proc::cpu_ticks(n.pid(&ab));
    std::thread::sleep(Duration::from_secs(10));
    let idle_ticks = common::proc::cpu_ticks(n.pid(&ab)) - t0;

    let mut wb = n.watch(&ab);
    let mut discovery = Vec::new();
    let mut departure = Vec::new();
    for i in 0..runs {
        let (key, id) = n.keygen(&format!("k{i}"));
        // The announced port answers, so the reachability check (on by default) passes; it
        // closes as the node leaves, so the goodbye's confirmation is refused.
        let listener = n.listen_on(&a, 4001);
        let start = Instant::now();
        let ann = n.announce(&aa, &key, &["/ip4/0.0.0.0/tcp/4001".into()]);
        let (at, _) = wb
            .wait_for(Duration::from_secs(30), |v| {
                common::watch::is_event(v, "discovered", &id)
            })
            .expect("discovered");
        discovery.push(at - start);
        drop(listener);
        let stopped = n.stop(ann);
        let (at, _) = wb
            .wait_for(Duration::from_secs(30), |v| {
                common::watch::is_event(v, "expired", &id)
            })
            .expect("expired");
        departure.push(at - stopped);
    }
    println!("exo-discovery on a namespace pair, {runs} runs");
    summary(
        "discovery (announce started on a -> discovered event on b)",
        discovery,
    );
    summary(
        "departure (announce stopped on a -> expired event on b)",
        departure,
    );
    println!(
        "agent RSS idle: {idle_rss}; after {runs} peers came and went: {}; threads: {}",
        common::proc::status_field(n.pid(&ab), "VmRSS:"),
        common::proc::status_field(n.pid(&ab), "Threads:")
    );
    println!("agent CPU while idle: {idle_ticks} ticks in 10 s (1 tick = 10 ms on this kernel)");
}
