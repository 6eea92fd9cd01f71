//! The body of the discovery bench, Linux only: see `../discovery.rs`.

#[path = "../../tests/common/mod.rs"]
mod common;

use common::network::{Host, Net};
use std::sync::mpsc::Receiver;
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
    let mut registered = Vec::new();
    let mut departure = Vec::new();
    for i in 0..runs {
        let (key, id) = n.keygen(&format!("k{i}"));
        // The announced port answers, so the reachability check (on by default) passes; it
        // closes as the node leaves, so the goodbye's confirmation is refused.
        let listener = n.listen_on(&a, 4001);
        let start = Instant::now();
        let ann = n.announce(&aa, &key, &["/ip4/0.0.0.0/tcp/4001".into()]);
        // `announce` says `announcing` once the agent took its registration.
        let took = Instant::now();
        let (at, _) = wb
            .wait_for(Duration::from_secs(30), |v| {
                common::watch::is_event(v, "discovered", &id)
            })
            .expect("discovered");
        discovery.push(at - start);
        registered.push(at.saturating_duration_since(took));
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
        "discovery (registration taken: announce said so on a -> discovered event on b)",
        registered,
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
    n.stop_agent(&aa);
    n.stop_agent(&ab);
    stock(&mut n, &a, &b, runs);
}

/// The first line from `rx` within `wait` that `pred` accepts, with the time it was read.
fn line_where(
    rx: &Receiver<(Instant, String)>,
    wait: Duration,
    pred: impl Fn(&[&str]) -> bool,
) -> Option<Instant> {
    let end = Instant::now() + wait;
    while let Ok((at, line)) = rx.recv_timeout(end.saturating_duration_since(Instant::now())) {
        if pred(&line.split_whitespace().collect::<Vec<_>>()) {
            return Some(at);
        }
    }
    None
}

/// A stock node's line saying it discovered `id`.
fn discovered(words: &[&str], id: &str) -> bool {
    words.first() == Some(&"discovered") && words.get(1) == Some(&id)
}

/// The same pair of hosts with stock rust-libp2p nodes and libp2p's own mDNS (default
/// configuration, as Exo ran before the agent): one node runs on b, and each run starts one on
/// a, the late joiner, and stops it. libp2p-mdns has no registration: times are from the
/// joiner's process start, as `announce`'s are from its start.
fn stock(n: &mut Net, a: &Host, b: &Host, runs: usize) {
    let exe = std::env::current_exe().expect("current_exe");
    let stock = std::env::var_os("EXO_BENCH_STOCK_NODE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            exe.parent()
                .and_then(std::path::Path::parent)
                .expect("target/<profile>/deps")
                .join("examples/stock_mdns_node")
        });
    if !stock.is_file() {
        println!(
            "stock libp2p-mdns: skipped, {} missing (cargo build --release -p \
             exo-discovery-libp2p --examples, or EXO_BENCH_STOCK_NODE=FILE)",
            stock.display()
        );
        return;
    }
    let id_of = |rx: &Receiver<(Instant, String)>| {
        let end = Instant::now() + Duration::from_secs(10);
        while let Ok((_, line)) = rx.recv_timeout(end.saturating_duration_since(Instant::now())) {
            if let Some(id) = line.strip_prefix("peer-id ") {
                return id.to_owned();
            }
        }
        panic!("the stock node printed no peer-id");
    };
    let (_, rb) = n.spawn_lines_child(b, &stock, &[]);
    let idb = id_of(&rb);
    std::thread::sleep(Duration::from_secs(2));
    let mut joiner_found = Vec::new();
    let mut found_joiner = Vec::new();
    for _ in 0..runs {
        while rb.try_recv().is_ok() {}
        let start = Instant::now();
        let (child, ra) = n.spawn_lines_child(a, &stock, &[]);
        let ida = id_of(&ra);
        if let Some(at) = line_where(&ra, Duration::from_secs(5), |w| discovered(w, &idb)) {
            joiner_found.push(at - start);
        }
        if let Some(at) = line_where(&rb, Duration::from_secs(2), |w| discovered(w, &ida)) {
            found_joiner.push(at - start);
        }
        n.stop_child(child);
    }
    println!("stock libp2p-mdns (default config) on the same pair, {runs} runs");
    let report = |name: &str, v: Vec<Duration>, within: &str| {
        if v.is_empty() {
            println!("{name}: none of {runs} within {within}");
        } else {
            if v.len() < runs {
                println!("{name}: {} of {runs} within {within}; of those:", v.len());
            }
            summary(name, v);
        }
    };
    report(
        "discovery (node started on a -> a discovers b)",
        joiner_found,
        "5 s",
    );
    report(
        "discovery (node started on a -> b discovers a)",
        found_joiner,
        "2 s",
    );
    println!(
        "departure: libp2p-mdns sends no goodbye; b keeps a stopped node until its record's TTL \
         (6 min by default) runs out (not waited for)"
    );
}
