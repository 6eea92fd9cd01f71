//! The crowd bench (see `benches/crowd.rs`).

#[path = "../../tests/common/mod.rs"]
mod common;

use common::forge::{fresh_announcement_of, sender};
use common::proc::status_field;
use std::net::{Ipv4Addr, UdpSocket};
use std::time::{Duration, Instant};

/// The agent's memory now, KiB: VmRSS, RssAnon, VmHWM, Pss.
fn memory(pid: u32) -> [u64; 4] {
    let kib = |v: String| -> u64 { v.trim_end_matches("kB").trim().parse().unwrap_or(0) };
    let pss = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Pss:").map(|v| kib(v.to_owned())))
        .unwrap_or(0);
    [
        kib(status_field(pid, "VmRSS:")),
        kib(status_field(pid, "RssAnon:")),
        kib(status_field(pid, "VmHWM:")),
        pss,
    ]
}

fn show(what: &str, m: [u64; 4]) {
    println!(
        "{what}: VmRSS {} KiB, RssAnon {} KiB, VmHWM {} KiB, Pss {} KiB",
        m[0], m[1], m[2], m[3]
    );
}

pub fn main() {
    let Some(mut n) = common::network::net("bench-crowd") else {
        return;
    };
    let hosts_n: usize = common::env_or("EXO_CROWD_HOSTS", 80);
    let peers_n: usize = common::env_or("EXO_CROWD_PEERS", 1000);
    let settle = Duration::from_secs(common::env_or("EXO_CROWD_SETTLE_SECS", 20));
    let min_rounds: usize = common::env_or("EXO_CROWD_ROUNDS", 1);
    let l = n.link();
    let a = n.host("a");
    n.attach(&a, "eth0", &l, &["10.73.0.1/16"]);
    let agent = n.agent(&a, "agent-a", &[]);
    let pid = n.pid(&agent);
    std::thread::sleep(Duration::from_secs(2));
    let idle = memory(pid);
    show("idle", idle);

    // The crowd: each host's records, its open port and a socket multicasting from its mDNS port
    // (5353, as a responder does).
    let mut crowd: Vec<(UdpSocket, Vec<Vec<u8>>)> = Vec::new();
    let mut _ports = Vec::new();
    for i in 0..hosts_n {
        let h = n.host(&format!("h{i}"));
        let ip = Ipv4Addr::new(10, 73, 1 + (i / 250) as u8, (i % 250 + 1) as u8);
        n.attach(&h, "eth0", &l, &[&format!("{ip}/16")]);
        _ports.push(n.listen_on(&h, 4001));
        let mine = peers_n / hosts_n + usize::from(i < peers_n % hosts_n);
        let host = format!("crowd{i}.local.");
        let packets = (0..mine)
            .map(|_| fresh_announcement_of(&host, ip, 4001))
            .collect();
        crowd.push((n.in_ns(&h, move || sender(ip)), packets));
    }
    println!("{hosts_n} hosts, {peers_n} signed records, each host announcing its own");

    // Round after round, every record once, spread over a second, until all are held (and at
    // least `EXO_CROWD_ROUNDS` rounds: a crowd that keeps announcing, as its nodes' agents do).
    let start = Instant::now();
    let mut rounds = 0;
    let held = loop {
        rounds += 1;
        let round = Instant::now();
        let total: usize = crowd.iter().map(|(_, p)| p.len()).sum();
        let mut i = 0;
        for (sock, packets) in &crowd {
            for p in packets {
                let due = round + Duration::from_secs_f64(i as f64 / total as f64);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let _ = sock.send_to(p, common::packets::GROUP);
                i += 1;
            }
        }
        std::thread::sleep(Duration::from_secs(2));
        let held = n.peers(&agent).len();
        if std::env::var_os("EXO_CROWD_VERBOSE").is_some() {
            println!(
                "round {rounds}: {held} held at {:.1} s",
                start.elapsed().as_secs_f64()
            );
        }
        if (held >= peers_n && rounds >= min_rounds) || start.elapsed() > Duration::from_secs(180) {
            break held;
        }
    };
    println!(
        "the agent held {held} of {peers_n} peers after {:.1} s ({rounds} rounds)",
        start.elapsed().as_secs_f64()
    );
    show("all held", memory(pid));
    std::thread::sleep(settle);
    let after = memory(pid);
    show(&format!("{} s later", settle.as_secs()), after);
    let per = |i: usize| (after[i].saturating_sub(idle[i])) as f64 * 1024.0 / held.max(1) as f64;
    println!(
        "growth per peer held: VmRSS {:.0} bytes, RssAnon {:.0} bytes",
        per(0),
        per(1)
    );
    let st = n.status(&agent);
    println!(
        "status: records_accepted {}, records_rejected {}, dropped {}, budget {}",
        st["records_accepted"], st["records_rejected"], st["dropped"], st["budget"]
    );
}
