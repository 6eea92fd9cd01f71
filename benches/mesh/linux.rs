//! The mesh bench (see `benches/mesh.rs`).

#[path = "../../tests/common/mod.rs"]
mod common;

use common::network::Host;
use serde_json::Value;
use std::process::Command;
use std::time::{Duration, Instant};

pub fn main() {
    let Some(mut n) = common::network::net("bench-mesh") else {
        return;
    };
    let hosts_n: usize = common::env_or("EXO_MESH_HOSTS", 30);
    let runs: usize = common::env_or("EXO_MESH_RUNS", 5);
    let l = n.link();
    let hosts: Vec<Host> = (0..hosts_n).map(|i| n.host(&format!("h{i}"))).collect();
    for (i, h) in hosts.iter().enumerate() {
        n.attach(
            h,
            "eth0",
            &l,
            &[&format!("10.72.{}.{}/16", i / 250, i % 250 + 1)],
        );
    }
    let agents: Vec<_> = hosts
        .iter()
        .enumerate()
        .map(|(i, h)| n.agent(h, &format!("agent-{i}"), &[]))
        .collect();
    let _ports: Vec<_> = hosts.iter().map(|h| n.listen_on(h, 4001)).collect();
    let keys: Vec<_> = (0..hosts_n).map(|i| n.keygen(&format!("k{i}"))).collect();
    let _anns: Vec<_> = agents
        .iter()
        .zip(&keys)
        .map(|(a, (k, _))| n.announce(a, k, &["/ip4/0.0.0.0/tcp/4001".into()]))
        .collect();
    let start = Instant::now();
    loop {
        let held = n.peers(&agents[0]).len();
        if held + 1 >= hosts_n {
            println!(
                "h0 holds all {held} other nodes {} ms after the last registered",
                start.elapsed().as_millis()
            );
            break;
        }
        if start.elapsed() > Duration::from_secs(120) {
            println!(
                "h0 holds {held} of {} other nodes after 120 s; asking anyway",
                hosts_n - 1
            );
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let mut times = Vec::new();
    for run in 0..runs {
        if run > 0 {
            std::thread::sleep(Duration::from_millis(1100));
        }
        let t0 = Instant::now();
        let out = Command::new(common::bin_path())
            .args(["mesh", "--json", "--socket"])
            .arg(&agents[0].socket)
            .output()
            .expect("mesh");
        let took = t0.elapsed();
        let m: Value = serde_json::from_slice(&out.stdout).expect("mesh --json is JSON");
        let hosts = m["hosts"].as_array().map_or(0, Vec::len);
        let answered = m["hosts"]
            .as_array()
            .map_or(0, |h| h.iter().filter(|h| h["no_view"].is_null()).count());
        let cells = m["cells"].as_array().cloned().unwrap_or_default();
        let seen = cells
            .iter()
            .filter(|c| c["ways"].as_array().is_some_and(|w| !w.is_empty()))
            .count();
        println!(
            "run {run}: {} ms, {answered} of {hosts} hosts gave their view, {seen} of {} cells seen",
            took.as_millis(),
            cells.len()
        );
        times.push(took);
    }
    times.sort();
    if let (Some(median), Some(max)) = (times.get(times.len() / 2), times.last()) {
        println!(
            "mesh over {hosts_n} hosts: median {:.1} ms, max {:.1} ms ({runs} runs)",
            median.as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3
        );
    }
}
