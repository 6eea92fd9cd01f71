//! The body of the lossy bench, Linux only: see `../lossy.rs`.

#[path = "../../tests/common/mod.rs"]
mod common;

use common::network::{Host, Net};
use std::collections::HashMap;
use std::time::{Duration, Instant};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[(((sorted.len() - 1) as f64) * p).round() as usize]
}

/// mDNS datagrams (and bytes) `host` has sent since its counters were set up (both rules).
fn sent(n: &Net, host: &Host) -> (u64, u64) {
    let out = n.exec(host, &["nft", "list", "chain", "inet", "bench", "count"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let mut words = text.split_whitespace();
    let mut got = (0, 0);
    while let Some(w) = words.next() {
        match w {
            "packets" => got.0 += words.next().and_then(|v| v.parse().ok()).unwrap_or(0),
            "bytes" => got.1 += words.next().and_then(|v| v.parse().ok()).unwrap_or(0),
            _ => {}
        }
    }
    got
}

fn line(
    name: &str,
    n: usize,
    secs: u64,
    mut times: Vec<Duration>,
    expired: Option<usize>,
    pkts: (u64, u64),
) {
    times.sort();
    let pairs = n * (n - 1);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let per_min = |x: u64| x as f64 / n as f64 / (secs as f64 / 60.0);
    println!(
        "{name}: {}/{pairs} directed discoveries within {secs} s; median {:.0} ms, p99 {:.0} ms, last {:.0} ms; \
         false expired {}; {:.1} mDNS packets ({:.0} bytes) per host per minute",
        times.len(),
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.99)),
        ms(times.last().copied().unwrap_or_default()),
        expired.map_or("n/a".to_owned(), |e| e.to_string()),
        per_min(pkts.0),
        per_min(pkts.1),
    );
}

pub fn main() {
    let Some(mut n) = common::network::net("bench-lossy") else {
        return;
    };
    let hosts_n: usize = common::env_or("EXO_LOSSY_HOSTS", 10);
    let loss: u64 = common::env_or("EXO_LOSSY_LOSS", 30);
    let secs = common::env_or("EXO_LOSSY_SECS", 30);
    let l = n.link();
    let hosts: Vec<Host> = (0..hosts_n).map(|i| n.host(&format!("h{i}"))).collect();
    for (i, h) in hosts.iter().enumerate() {
        n.attach(
            h,
            "eth0",
            &l,
            &[&format!("10.70.{}.{}/16", i / 250, i % 250 + 1)],
        );
        // Every mDNS datagram: multicast and unicast to port 5353, and unicast answers from it
        // to other ports (one rule each, so no datagram is judged twice).
        let drop =
            format!("add rule inet bench in udp dport 5353 numgen random mod 100 < {loss} drop");
        let drop_answers = format!(
            "add rule inet bench in udp sport 5353 udp dport != 5353 numgen random mod 100 < {loss} drop"
        );
        n.nft(
            &h.ns,
            &[
                "add table inet bench",
                "add chain inet bench in { type filter hook input priority 0 ; }",
                "add chain inet bench count { type filter hook output priority 0 ; }",
                &drop,
                &drop_answers,
                // Every mDNS datagram it sends: to port 5353 (multicast, or a unicast query),
                // and unicast answers from it to other ports.
                "add rule inet bench count udp dport 5353 counter",
                "add rule inet bench count udp sport 5353 udp dport != 5353 counter",
            ],
        );
    }
    let agents: Vec<_> = hosts
        .iter()
        .enumerate()
        .map(|(i, h)| n.agent(h, &format!("agent-{i}"), &[]))
        .collect();
    let _ports: Vec<_> = hosts.iter().map(|h| n.listen_on(h, 4001)).collect();
    let keys: Vec<_> = (0..hosts_n).map(|i| n.keygen(&format!("k{i}"))).collect();
    let mut watches: Vec<_> = agents.iter().map(|a| n.watch(a)).collect();
    let before: Vec<(u64, u64)> = hosts.iter().map(|h| sent(&n, h)).collect();
    let mut started = HashMap::new();
    let mut anns = Vec::new();
    for (a, (k, id)) in agents.iter().zip(&keys) {
        started.insert(id.clone(), Instant::now());
        anns.push(n.announce(a, k, &["/ip4/0.0.0.0/tcp/4001".into()]));
    }
    std::thread::sleep(Duration::from_secs(secs));
    let mut times = Vec::new();
    let mut late = Vec::new();
    let index: HashMap<&str, usize> = keys
        .iter()
        .enumerate()
        .map(|(i, (_, id))| (id.as_str(), i))
        .collect();
    for (wi, w) in watches.iter_mut().enumerate() {
        w.drain(Duration::from_millis(100));
        let mut seen = HashMap::new();
        for (at, v) in &w.seen {
            if v["event"] == "discovered" {
                let id = v["peer_id"].as_str().unwrap_or_default().to_owned();
                seen.entry(id).or_insert(*at);
            }
        }
        for (id, at) in seen {
            if let Some(t0) = started.get(&id) {
                let t = at.saturating_duration_since(*t0);
                times.push(t);
                late.push((t, wi, index.get(id.as_str()).copied().unwrap_or(usize::MAX)));
            }
        }
    }
    late.sort();
    for (t, wi, ai) in late.iter().rev().take(5) {
        println!(
            "  slow: agent-{wi} learned h{ai}'s node after {} ms",
            t.as_millis()
        );
    }
    let pkts = hosts.iter().zip(&before).fold((0, 0), |acc, (h, b)| {
        let s = sent(&n, h);
        (acc.0 + s.0 - b.0, acc.1 + s.1 - b.1)
    });
    // Then a quiet minute: nothing changes on the link; what the agents send is idle traffic
    // (after `EXO_LOSSY_SETTLE_SECS` more, for the steady state once start-up back-offs end).
    std::thread::sleep(Duration::from_secs(common::env_or(
        "EXO_LOSSY_SETTLE_SECS",
        0,
    )));
    let idle_secs = common::env_or("EXO_LOSSY_IDLE_SECS", 60);
    let quiet_from: Vec<(u64, u64)> = hosts.iter().map(|h| sent(&n, h)).collect();
    // `EXO_LOSSY_PCAP=FILE`: what h0 sends in the quiet window, for tcpdump -r.
    let pcap = std::env::var("EXO_LOSSY_PCAP").ok().map(|file| {
        std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &hosts[0].ns,
                "tcpdump",
                "-i",
                "eth0",
                "-U",
                "-w",
            ])
            .arg(&file)
            .args(["-Q", "out", "udp", "port", "5353"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("tcpdump")
    });
    std::thread::sleep(Duration::from_secs(idle_secs));
    if let Some(mut p) = pcap {
        let _ = p.kill();
        let _ = p.wait();
    }
    let idle = hosts.iter().zip(&quiet_from).fold((0, 0), |acc, (h, b)| {
        let s = sent(&n, h);
        (acc.0 + s.0 - b.0, acc.1 + s.1 - b.1)
    });
    // False departures over the whole run, the quiet minute included.
    let expired: usize = watches
        .iter_mut()
        .map(|w| {
            w.drain(Duration::from_millis(100));
            w.seen
                .iter()
                .filter(|(_, v)| v["event"] == "expired")
                .count()
        })
        .sum();
    let rss: Vec<u64> = agents
        .iter()
        .map(|a| common::proc::peak_rss_kib(n.pid(a)))
        .collect();
    println!("{hosts_n} hosts on one link, {loss} % of mDNS datagrams lost on input at each host");
    line(
        "exo-discovery agents",
        hosts_n,
        secs,
        times,
        Some(expired),
        pkts,
    );
    let per_min = |x: u64| x as f64 / hosts_n as f64 / (idle_secs.max(1) as f64 / 60.0);
    println!(
        "agents idle (the next {idle_secs} s, nothing changing): {:.1} mDNS packets ({:.0} bytes) per host per minute",
        per_min(idle.0),
        per_min(idle.1)
    );
    println!(
        "agents' peak RSS: max {} KiB, mean {} KiB",
        rss.iter().max().unwrap_or(&0),
        rss.iter().sum::<u64>() / rss.len().max(1) as u64
    );
    for a in &agents {
        n.stop_agent(a);
    }
    drop(anns);

    if common::env_or::<u64>("EXO_LOSSY_STOCK", 1) == 0 {
        return;
    }
    let exe = std::env::current_exe().expect("current_exe");
    let stock = exe
        .parent()
        .and_then(std::path::Path::parent)
        .expect("target/<profile>/deps")
        .join("examples/stock_mdns_node");
    if !stock.is_file() {
        println!(
            "stock libp2p-mdns: skipped, {} missing (cargo build --release -p exo-discovery-libp2p \
             --examples)",
            stock.display()
        );
        return;
    }
    let before: Vec<(u64, u64)> = hosts.iter().map(|h| sent(&n, h)).collect();
    let t0 = Instant::now();
    let outs: Vec<_> = hosts
        .iter()
        .map(|h| n.spawn_lines(h, &stock, &[]))
        .collect();
    std::thread::sleep(Duration::from_secs(secs));
    let mut ids = HashMap::new();
    let mut found: Vec<HashMap<String, Instant>> = Vec::new();
    for (i, rx) in outs.iter().enumerate() {
        let mut mine = HashMap::new();
        while let Ok((at, line)) = rx.try_recv() {
            let mut w = line.split_whitespace();
            match (w.next(), w.next()) {
                (Some("peer-id"), Some(id)) => {
                    ids.insert(id.to_owned(), i);
                }
                (Some("discovered"), Some(id)) => {
                    mine.entry(id.to_owned()).or_insert(at);
                }
                _ => {}
            }
        }
        found.push(mine);
    }
    let times: Vec<Duration> = found
        .iter()
        .enumerate()
        .flat_map(|(i, m)| {
            m.iter()
                .filter(|(id, _)| ids.get(*id).is_some_and(|j| *j != i))
                .map(|(_, at)| at.saturating_duration_since(t0))
                .collect::<Vec<_>>()
        })
        .collect();
    let pkts = hosts.iter().zip(&before).fold((0, 0), |acc, (h, b)| {
        let s = sent(&n, h);
        (acc.0 + s.0 - b.0, acc.1 + s.1 - b.1)
    });
    line(
        "stock libp2p-mdns (default config)",
        hosts_n,
        secs,
        times,
        None,
        pkts,
    );
}
