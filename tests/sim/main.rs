//! Deterministic simulations of many agents (the real engine, simulated links and clock): the
//! agent's rules under loss, at scale, with hosts that vanish or leave. A scenario reads as a
//! test-network script: links, hosts, events, checks. See `net.rs` for what is modelled.
//!
//! Add a scenario: make a `Sim`, its links (`LinkSpec` says loss, duplicates, delay) and hosts
//! (each runs an agent and a node that registers at once), run it (`run_for`, `run_until`), change
//! something (`vanish`, `node_leaves`, `node_returns`, `partition`, `register`), run again, and
//! check what the nodes were told (`view`).

mod net;
#[path = "../common/packets.rs"]
#[allow(dead_code)]
mod packets;

use exo_discovery::engine::Input;
use net::{LinkSpec, Sim, PORT};
use std::time::Duration;

const MINUTE: Duration = Duration::from_secs(60);

fn lossy(loss: f64) -> LinkSpec {
    LinkSpec {
        loss,
        ..LinkSpec::default()
    }
}

/// `SIM_HOSTS` overrides the size of the large scenario (to try other sizes by hand).
/// Threads for a large scenario's engines: `SIM_THREADS`, or 2 (this machine's cores; the
/// scenarios run at the same time share them).
fn threads() -> usize {
    std::env::var("SIM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2)
}

fn large() -> usize {
    std::env::var("SIM_HOSTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

#[test]
fn a_thousand_agents_on_one_lossy_link_all_find_each_other() {
    let n = large();
    let wall = std::time::Instant::now();
    let mut sim = Sim::new(1);
    sim.details = false;
    sim.threads = threads();
    // `SIM_PROFILE=1`: where the hosts' CPU time went, by what they did.
    sim.profile = std::env::var_os("SIM_PROFILE").is_some();
    let lan = sim.link(lossy(0.30));
    for i in 0..n {
        sim.host(&format!("h{i}"), &[lan]);
    }
    let all = sim.run_until(10 * MINUTE, Sim::everyone_sees_everyone);
    if sim.profile {
        eprint!("{}", sim.spent);
    }
    let pairs = n * (n - 1);
    eprintln!(
        "{n} agents, one link, 30 % loss, simultaneous start: {} of {pairs} directed discoveries; \
         half by {:.3} s, 99 % by {:.2} s, 99.9 % by {:.2} s, the last {:.2} s (simulated) after \
         the start; {} packets ({:?}), {} engine inputs; {:.1} s wall",
        sim.discoveries,
        sim.discovered_by(0.5).as_secs_f64(),
        sim.discovered_by(0.99).as_secs_f64(),
        sim.discovered_by(0.999).as_secs_f64(),
        sim.last_discovery.as_secs_f64(),
        sim.packets,
        sim.sent,
        sim.inputs,
        wall.elapsed().as_secs_f64()
    );
    assert!(
        all,
        "{} of {pairs} directed discoveries in 10 simulated minutes",
        sim.discoveries
    );
}

/// By hand (not in CI): `SIM_HOSTS` agents (default 10,000) on links of `SIM_PER_LINK` hosts each
/// (default 100), every link losing 30 %, all starting at once, until everyone found everyone on
/// their link. `SIM_HOSTS=10000 cargo test --test sim many_agents -- --ignored --nocapture`: about
/// 50 to 75 s and 1.2 GB here (docs/measured.md). Links of 1,000 (an engine holds at most
/// `MAX_PEERS`, 1,024, peers) need about 1 GB per 1,000 agents.
#[test]
#[ignore]
fn many_agents_on_many_lossy_links_all_find_their_neighbours() {
    let knob = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let n = knob("SIM_HOSTS", 10_000);
    let per_link = knob("SIM_PER_LINK", 100).max(2);
    let wall = std::time::Instant::now();
    let mut sim = Sim::new(11);
    sim.details = false;
    sim.threads = threads();
    let mut pairs = 0;
    let mut placed = 0;
    while placed < n {
        let m = per_link.min(n - placed);
        let lan = sim.link(lossy(0.30));
        for i in 0..m {
            sim.host(&format!("h{}", placed + i), &[lan]);
        }
        placed += m;
        pairs += m * (m - 1);
    }
    let all = sim.run_until(10 * MINUTE, |s| s.discoveries >= pairs);
    eprintln!(
        "{n} agents, {} link(s) of up to {per_link}, 30 % loss, simultaneous start: {} of {pairs} \
         directed discoveries; 99 % by {:.2} s, the last {:.2} s (simulated); {} packets, {} \
         engine inputs; {:.1} s wall",
        n.div_ceil(per_link),
        sim.discoveries,
        sim.discovered_by(0.99).as_secs_f64(),
        sim.last_discovery.as_secs_f64(),
        sim.packets,
        sim.inputs,
        wall.elapsed().as_secs_f64()
    );
    assert!(all, "{} of {pairs} directed discoveries", sim.discoveries);
}

#[test]
fn under_loss_no_peer_expires_that_did_not_leave() {
    let mut sim = Sim::new(2);
    let lan = sim.link(lossy(0.30));
    let hosts: Vec<usize> = (0..10)
        .map(|i| {
            // Hosts come up within a few seconds of each other, as a rack powered on does.
            let gap = sim.rng.between(Duration::ZERO, Duration::from_millis(500));
            sim.run_for(gap);
            sim.host(&format!("h{i}"), &[lan])
        })
        .collect();
    assert!(
        sim.run_until(MINUTE, Sim::everyone_sees_everyone),
        "not all found"
    );
    sim.run_for(10 * MINUTE);
    for &a in &hosts {
        for &b in hosts.iter().filter(|b| **b != a) {
            let v = sim.view(a, b).expect("seen");
            assert!(
                v.expired.is_empty(),
                "{} saw {} expire at {:?} though it never left",
                sim.hosts[a].name,
                sim.hosts[b].name,
                v.expired
            );
            assert!(v.visible);
        }
    }
}

#[test]
fn on_a_link_losing_half_its_multicast_no_peer_that_stayed_expires_in_ten_minutes() {
    let mut sim = Sim::new(12);
    let lan = sim.link(lossy(0.5));
    let hosts: Vec<usize> = (0..10)
        .map(|i| sim.host(&format!("h{i}"), &[lan]))
        .collect();
    assert!(
        sim.run_until(3 * MINUTE, Sim::everyone_sees_everyone),
        "{} of 90 found",
        sim.discoveries
    );
    sim.run_for(10 * MINUTE);
    let mut false_expiries = 0;
    for &a in &hosts {
        for &b in hosts.iter().filter(|b| **b != a) {
            let v = sim.view(a, b).expect("seen");
            false_expiries += v.expired.len();
            assert!(v.visible);
        }
    }
    assert_eq!(
        false_expiries, 0,
        "peers that never left expired (silence taken for departure)"
    );
}

#[test]
fn a_vanished_host_is_dropped_after_the_timeout_and_one_that_says_goodbye_at_once() {
    let mut sim = Sim::new(3);
    let lan = sim.link(LinkSpec::default());
    let hosts: Vec<usize> = (0..5).map(|i| sim.host(&format!("h{i}"), &[lan])).collect();
    assert!(sim.run_until(MINUTE, Sim::everyone_sees_everyone));
    // Let the schedules settle into their steady state first.
    sim.run_for(MINUTE);
    let (gone, leaving) = (hosts[3], hosts[4]);
    let t0 = sim.now;
    sim.vanish(gone);
    sim.node_leaves(leaving);
    let timeout = sim.config.peer_timeout();
    sim.run_for(Duration::from_secs(2));
    for &h in &hosts[..3] {
        let left = sim.view(h, leaving).unwrap();
        assert!(!left.visible, "the goodbye was not taken");
        let at = left.expired[0] - t0;
        assert!(at < Duration::from_secs(2), "goodbye took {at:?}");
        assert!(
            sim.view(h, gone).unwrap().visible,
            "dropped before the timeout"
        );
    }
    sim.run_for(timeout);
    for &h in &hosts[..3] {
        let v = sim.view(h, gone).unwrap();
        assert_eq!(v.expired.len(), 1, "{}", sim.hosts[h].name);
        let at = v.expired[0] - t0;
        // Last heard at most one query interval before it vanished (or just after: its packets
        // already on the way still arrive); dropped a timeout after that.
        let earliest = timeout - sim.config.query_interval_max();
        let latest = timeout + Duration::from_millis(200);
        assert!(
            at >= earliest && at <= latest,
            "dropped {at:?} after it vanished"
        );
    }
}

#[test]
fn a_multi_homed_agent_hands_each_side_only_that_sides_addresses() {
    let mut sim = Sim::new(4);
    let (a, b) = (sim.link(LinkSpec::default()), sim.link(LinkSpec::default()));
    let m = sim.host("m", &[a, b]);
    let x = sim.host("x", &[a]);
    let y = sim.host("y", &[b]);
    let seen = |s: &Sim, o: usize, p: usize| s.view(o, p).is_some_and(|v| v.visible);
    assert!(sim.run_until(MINUTE, |s| {
        seen(s, m, x) && seen(s, m, y) && seen(s, x, m) && seen(s, y, m)
    }));
    sim.run_for(MINUTE);
    let info = |o: usize, p: usize| sim.view(o, p).unwrap().current.clone().unwrap();
    let addr = |ip: &str, p: usize| format!("/ip4/{ip}/tcp/{PORT}/p2p/{}", sim.hosts[p].peer);
    // m is 10.0.0.1 on link a and 10.1.0.1 on link b; x is 10.0.0.2, y is 10.1.0.2.
    assert_eq!(info(x, m).addrs, vec![addr("10.0.0.1", m)]);
    assert_eq!(info(y, m).addrs, vec![addr("10.1.0.1", m)]);
    assert_eq!(info(m, x).addrs, vec![addr("10.0.0.2", x)]);
    assert_eq!(info(m, x).interfaces, vec!["eth0"]);
    assert_eq!(info(m, y).addrs, vec![addr("10.1.0.2", y)]);
    assert_eq!(info(m, y).interfaces, vec!["eth1"]);
    assert!(sim.view(x, y).is_none() && sim.view(y, x).is_none());
}

#[test]
fn a_partition_expires_peers_and_healing_brings_them_back() {
    let mut sim = Sim::new(5);
    let lan = sim.link(LinkSpec::default());
    let (a, b, c) = (
        sim.host("a", &[lan]),
        sim.host("b", &[lan]),
        sim.host("c", &[lan]),
    );
    assert!(sim.run_until(MINUTE, Sim::everyone_sees_everyone));
    let sees = |s: &Sim, o: usize, p: usize| s.view(o, p).is_some_and(|v| v.visible);
    sim.partition(lan, a, b, true);
    let timeout = sim.config.peer_timeout();
    sim.run_for(timeout + Duration::from_secs(5));
    assert!(
        !sees(&sim, a, b) && !sees(&sim, b, a),
        "still seen across the partition"
    );
    assert!(sees(&sim, a, c) && sees(&sim, b, c) && sees(&sim, c, a) && sees(&sim, c, b));
    let healed = sim.now;
    sim.partition(lan, a, b, false);
    assert!(sim.run_until(MINUTE, |s| sees(s, a, b) && sees(s, b, a)));
    // Found again by the next query or announcement that crosses.
    let after = sim.now - healed;
    assert!(
        after <= sim.config.query_interval_max() + Duration::from_secs(1),
        "{after:?}"
    );
}

#[test]
fn a_node_restarted_with_its_clock_stepped_forward_is_one_update_at_every_peer() {
    let mut sim = Sim::new(6);
    // Every packet may arrive twice: duplicates must change nothing.
    let lan = sim.link(LinkSpec {
        duplicate: 0.2,
        ..LinkSpec::default()
    });
    let hosts: Vec<usize> = (0..4).map(|i| sim.host(&format!("h{i}"), &[lan])).collect();
    assert!(sim.run_until(MINUTE, Sim::everyone_sees_everyone));
    sim.run_for(MINUTE);
    let r = hosts[0];
    let before: Vec<u32> = hosts[1..]
        .iter()
        .map(|&h| sim.view(h, r).unwrap().updates)
        .collect();
    // NTP stepped its clock an hour forward, then the node restarted.
    sim.step_clock(r, 3_600_000_000);
    sim.node_restarts(r);
    sim.run_for(MINUTE);
    let seq = sim.view(hosts[1], r).unwrap().seq;
    for (i, &h) in hosts[1..].iter().enumerate() {
        let v = sim.view(h, r).unwrap();
        assert_eq!(
            v.seq, seq,
            "{} has not taken the new record",
            sim.hosts[h].name
        );
        assert!(
            v.expired.is_empty(),
            "{} saw it expire: {:?}",
            sim.hosts[h].name,
            v.expired
        );
        assert_eq!(v.updates - before[i], 1, "{}", sim.hosts[h].name);
        for &o in hosts[1..].iter().filter(|o| **o != h) {
            assert_eq!(
                sim.view(h, o).unwrap().updates,
                0,
                "duplicates made an update"
            );
        }
    }
}

#[test]
fn a_node_restarted_with_its_clock_a_day_behind_is_taken_within_seconds() {
    let mut sim = Sim::new(7);
    let lan = sim.link(LinkSpec {
        loss: 0.1,
        ..LinkSpec::default()
    });
    let hosts: Vec<usize> = (0..5).map(|i| sim.host(&format!("h{i}"), &[lan])).collect();
    assert!(sim.run_until(MINUTE, Sim::everyone_sees_everyone));
    let r = hosts[0];
    let old = sim.view(hosts[1], r).unwrap().seq;
    // The host rebooted without a real-time clock: a day behind, then the node restarted.
    sim.step_clock(r, -86_400_000_000);
    sim.node_restarts(r);
    sim.run_for(Duration::from_secs(5));
    for &h in &hosts[1..] {
        let v = sim.view(h, r).unwrap();
        assert!(
            v.seq < old,
            "{} still holds the record from before the step",
            sim.hosts[h].name
        );
    }
    // And it stays: its new instance keeps it alive.
    sim.run_for(3 * MINUTE);
    for &h in &hosts[1..] {
        let v = sim.view(h, r).unwrap();
        assert!(
            v.expired.is_empty(),
            "{} saw it expire: {:?}",
            sim.hosts[h].name,
            v.expired
        );
    }
}

#[test]
fn a_late_joiner_on_a_lossy_link_is_found_by_everyone_within_five_seconds() {
    // Nobody else's queries help a late joiner (the others' back-off has reached its cap): its
    // own announcements, the answers to its own queries and, for those that missed them, the
    // re-queries its presence queries bring (and its agent's answers to them) carry its record.
    let mut found = Vec::new();
    let mut missed = 0;
    for seed in 0..10 {
        let mut sim = Sim::new(100 + seed);
        let lan = sim.link(lossy(0.30));
        let hosts: Vec<usize> = (0..20)
            .map(|i| sim.host(&format!("h{i}"), &[lan]))
            .collect();
        assert!(sim.run_until(2 * MINUTE, Sim::everyone_sees_everyone));
        sim.run_for(MINUTE);
        let t0 = sim.now;
        let late = sim.host("late", &[lan]);
        sim.run_for(Duration::from_secs(5));
        for &h in &hosts {
            match sim.view(h, late).and_then(|v| v.discovered_at()) {
                Some(at) => found.push(at - t0),
                None => missed += 1,
            }
        }
    }
    found.sort();
    eprintln!(
        "late joiner, 20 agents, 30 % loss, 10 runs: {} found within 5 s, {missed} not; last at {:?}",
        found.len(),
        found.last()
    );
    assert_eq!(
        missed, 0,
        "agents that had not found a late joiner after 5 s"
    );
}

/// Directed discoveries among `n` agents starting at once on a link losing `loss`, over `runs`
/// seeds: when each happened (after the start), and how many did not within `limit`.
fn simultaneous_start(n: usize, loss: f64, runs: u64, limit: Duration) -> (Vec<Duration>, usize) {
    let mut times = Vec::new();
    let mut missed = 0;
    for seed in 0..runs {
        let mut sim = Sim::new(500 + seed);
        sim.details = false;
        let lan = sim.link(lossy(loss));
        for i in 0..n {
            sim.host(&format!("h{i}"), &[lan]);
        }
        sim.run_for(limit);
        times.extend(sim.discovery_times.iter().copied());
        missed += n * (n - 1) - sim.discoveries;
    }
    times.sort();
    (times, missed)
}

#[test]
fn agents_starting_together_on_a_lossy_link_all_find_each_other_within_seconds() {
    // What the announcements alone leave to chance (a record multicast at most once a second: one
    // receiver in 37 misses the first three) the presence queries and re-queries catch up.
    for (n, limit) in [(10, Duration::from_secs(2)), (30, Duration::from_secs(5))] {
        let (times, missed) = simultaneous_start(n, 0.30, 10, limit);
        let pct = |q: f64| times[((times.len() - 1) as f64 * q) as usize].as_secs_f64();
        eprintln!(
            "{n} agents, 30 % loss, 10 runs: {} found within {limit:?}, {missed} not; median \
             {:.3} s, p99 {:.3} s, last {:.3} s",
            times.len(),
            pct(0.5),
            pct(0.99),
            pct(1.0)
        );
        assert_eq!(missed, 0, "{n} agents: not found within {limit:?}");
    }
}

/// `n` agents on a clean link, settled (everyone found, then five minutes): the packets per
/// agent per minute over the next `minutes`, what they were, and whether any peer expired
/// meanwhile.
fn settled_link(n: usize, seed: u64, minutes: u32) -> (f64, net::Sent, bool) {
    let mut sim = Sim::new(seed);
    sim.details = false;
    let lan = sim.link(LinkSpec::default());
    // The agents start one by one, at random over two minutes (started together, their
    // queries and announcements would stay in step, and answers to all would be one packet).
    for i in 0..n {
        let gap = sim.rng.between(Duration::ZERO, 4 * MINUTE / n as u32);
        sim.run_for(gap);
        sim.host(&format!("h{i}"), &[lan]);
    }
    assert!(sim.run_until(MINUTE, Sim::everyone_sees_everyone));
    sim.run_for(5 * MINUTE);
    let (before, sent) = (sim.packets, sim.sent);
    sim.run_for(minutes * MINUTE);
    let per_agent_minute = (sim.packets - before) as f64 / n as f64 / f64::from(minutes);
    let d = sim.sent;
    let delta = net::Sent {
        queries: d.queries - sent.queries,
        announcements: d.announcements - sent.announcements,
        answers: d.answers - sent.answers,
        catchup: d.catchup - sent.catchup,
        goodbyes: d.goodbyes - sent.goodbyes,
    };
    let expired = (0..n).any(|h| {
        (0..n)
            .filter(|p| *p != h)
            .any(|p| !sim.view(h, p).unwrap().expired.is_empty())
    });
    (per_agent_minute, delta, expired)
}

#[test]
fn a_settled_link_is_quiet_at_any_size() {
    // Steady state on a clean link: re-announcements, and one query per round on the whole link
    // (the others hear it and leave theirs out), listing every peer as a known answer over as
    // many packets as needed, so that nobody answers it. The simulator has one family; an agent
    // on a dual-stack link sends each packet on both.
    for n in [10, 100] {
        let (per_agent_minute, sent, expired) = settled_link(n, 21, 10);
        eprintln!(
            "a settled link of {n} agents: {per_agent_minute:.1} packets per agent per minute \
             ({sent:?})"
        );
        assert!(
            per_agent_minute <= 4.0,
            "{n} agents: {per_agent_minute:.1} packets per agent per minute (at most 4 per family)"
        );
        assert_eq!(
            sent.answers, 0,
            "{n} agents: a settled link answers no query"
        );
        assert!(!expired, "{n} agents: a peer expired");
    }
}

/// By hand: the steady state of `SIM_HOSTS` agents (default 100) over `SIM_MINUTES` (default 10;
/// an agent's own query goes every 20 to 40 minutes however many others ask: 45 shows that too)
/// (`cargo test --test sim settled_link_at -- --ignored --nocapture`).
#[test]
#[ignore]
fn settled_link_at_any_size() {
    let n = std::env::var("SIM_HOSTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let minutes = std::env::var("SIM_MINUTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let wall = std::time::Instant::now();
    let (per_agent_minute, sent, expired) = settled_link(n, 21, minutes);
    eprintln!(
        "a settled link of {n} agents over {minutes} minutes: {per_agent_minute:.1} packets per \
         agent per minute ({sent:?}); an expiry: {expired}; {:.1} s wall",
        wall.elapsed().as_secs_f64()
    );
}

/// Packets per agent in the first minute after `n` agents start together on a clean link.
fn first_minute_packets(n: usize) -> f64 {
    let mut sim = Sim::new(40 + n as u64);
    sim.details = false;
    let lan = sim.link(LinkSpec::default());
    for i in 0..n {
        sim.host(&format!("h{i}"), &[lan]);
    }
    sim.run_for(MINUTE);
    sim.packets as f64 / n as f64
}

#[test]
fn starting_together_on_a_clean_link_costs_few_packets() {
    for n in [10, 30] {
        let per_agent = first_minute_packets(n);
        eprintln!("{n} agents, clean link: {per_agent:.1} packets per agent in the first minute");
    }
}

/// By hand: in how many of `SIM_RUNS` runs (default 10) `SIM_N` agents (default 10) starting
/// together on a link losing 30 % all found each other within `SIM_LIMIT` seconds (default 1).
/// `cargo test --test sim tail -- --ignored --nocapture`.
#[test]
#[ignore]
fn tail_of_a_simultaneous_start() {
    let knob = |name: &str, default: f64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let n = knob("SIM_N", 10.0) as usize;
    let runs = knob("SIM_RUNS", 10.0) as u64;
    let limit = Duration::from_secs_f64(knob("SIM_LIMIT", 1.0));
    let mut lasts = Vec::new();
    for seed in 0..runs {
        let mut sim = Sim::new(900 + seed);
        sim.details = false;
        let lan = sim.link(lossy(0.30));
        for i in 0..n {
            sim.host(&format!("h{i}"), &[lan]);
        }
        sim.run_for(Duration::from_secs(10));
        let all = sim.discoveries == n * (n - 1);
        lasts.push(all.then_some(sim.last_discovery));
    }
    let within = lasts
        .iter()
        .filter(|l| l.is_some_and(|t| t <= limit))
        .count();
    let worst = lasts
        .iter()
        .max_by_key(|l| l.unwrap_or(Duration::MAX))
        .copied()
        .flatten();
    eprintln!(
        "{n} agents, 30 % loss: all found each other within {limit:?} in {within} of {runs} runs; \
         the worst run's last discovery: {worst:?} (None: not all within 10 s)"
    );
}

#[test]
fn a_node_that_left_and_came_back_a_day_behind_on_the_same_ports_is_taken_within_seconds() {
    let mut sim = Sim::new(8);
    let lan = sim.link(LinkSpec {
        loss: 0.1,
        ..LinkSpec::default()
    });
    let hosts: Vec<usize> = (0..5).map(|i| sim.host(&format!("h{i}"), &[lan])).collect();
    assert!(sim.run_until(MINUTE, Sim::everyone_sees_everyone));
    let r = hosts[0];
    let old = sim.view(hosts[1], r).unwrap().seq;
    // The node says goodbye, and its peers report it gone.
    sim.node_leaves(r);
    sim.run_for(Duration::from_secs(5));
    for &h in &hosts[1..] {
        let v = sim.view(h, r).unwrap();
        assert!(!v.visible, "{} still lists it", sim.hosts[h].name);
    }
    // The host rebooted without a real-time clock: a day behind, then the node started again on
    // its ports, announcing a moment before it listens there.
    sim.step_clock(r, -86_400_000_000);
    sim.node_returns(r);
    sim.run_for(Duration::from_millis(300));
    sim.node_listens(r);
    sim.run_for(Duration::from_millis(4700));
    let mut seqs = Vec::new();
    for &h in &hosts[1..] {
        let v = sim.view(h, r).unwrap();
        assert!(v.visible, "{} has not taken it back", sim.hosts[h].name);
        assert!(
            v.seq < old,
            "{} holds the record from before it left",
            sim.hosts[h].name
        );
        seqs.push(v.seq);
    }
    // Every peer holds the one new record, and it stays.
    seqs.dedup();
    assert_eq!(seqs.len(), 1, "{seqs:?}");
    let back = sim.now;
    sim.run_for(3 * MINUTE);
    for &h in &hosts[1..] {
        let v = sim.view(h, r).unwrap();
        assert!(
            v.visible && v.expired.iter().all(|t| *t < back),
            "{} saw it expire again: {:?}",
            sim.hosts[h].name,
            v.expired
        );
        assert_eq!(v.seq, seqs[0]);
    }
}

#[test]
fn a_storm_of_spoofed_goodbyes_never_expires_a_live_node_and_its_real_departure_is_still_reported()
{
    let mut sim = Sim::new(9);
    let lan = sim.link(LinkSpec::default());
    let hosts: Vec<usize> = (0..4).map(|i| sim.host(&format!("h{i}"), &[lan])).collect();
    assert!(sim.run_until(MINUTE, Sim::everyone_sees_everyone));
    let r = hosts[0];
    let seq = sim.view(hosts[1], r).unwrap().seq;
    let label = exo_discovery::wire::instance::instance_label(&sim.hosts[r].peer, seq);
    let fullname = exo_discovery::wire::instance::fullname(&label);
    // Another host replays the node's goodbye every 1.5 s for two minutes; every other agent's
    // mdns-sd reports each one (its interface is index 2 on every host).
    let spoof = |sim: &mut Sim| {
        for &h in &hosts[1..] {
            sim.input(
                h,
                Input::Removed {
                    link: 2,
                    fullname: fullname.clone(),
                },
            );
        }
    };
    let end = sim.now + 2 * MINUTE;
    while sim.now < end {
        spoof(&mut sim);
        sim.run_for(Duration::from_millis(1500));
    }
    for &h in &hosts[1..] {
        let v = sim.view(h, r).unwrap();
        assert!(
            v.visible && v.expired.is_empty(),
            "{} saw it expire: {:?}",
            sim.hosts[h].name,
            v.expired
        );
    }
    // Right after one more spoofed goodbye, the node really leaves: its goodbye is answered by
    // the confirmation before, and confirmed once more when that one's interval ends.
    spoof(&mut sim);
    sim.run_for(Duration::from_millis(500));
    let t0 = sim.now;
    sim.node_leaves(r);
    let interval = exo_discovery::engine::goodbye::GOODBYE_INTERVAL;
    sim.run_for(interval + Duration::from_secs(2));
    for &h in &hosts[1..] {
        let v = sim.view(h, r).unwrap();
        assert_eq!(v.expired.len(), 1, "{}", sim.hosts[h].name);
        let at = v.expired[0] - t0;
        assert!(
            at <= interval + Duration::from_millis(1200),
            "{}: reported gone {at:?} after it left",
            sim.hosts[h].name
        );
    }
}

#[test]
fn a_node_on_two_links_that_leaves_is_reported_gone_within_a_second_or_so() {
    let mut sim = Sim::new(10);
    let (a, b) = (sim.link(LinkSpec::default()), sim.link(LinkSpec::default()));
    let m = sim.host("m", &[a, b]);
    let z = sim.host("z", &[a, b]);
    let x = sim.host("x", &[a]);
    assert!(sim.run_until(MINUTE, Sim::everyone_sees_everyone));
    sim.run_for(MINUTE);
    assert_eq!(
        sim.view(z, m).unwrap().current.as_ref().unwrap().interfaces,
        vec!["eth0", "eth1"]
    );
    let t0 = sim.now;
    sim.node_leaves(m);
    sim.run_for(Duration::from_secs(3));
    for h in [z, x] {
        let v = sim.view(h, m).unwrap();
        assert!(!v.visible, "{} still lists it", sim.hosts[h].name);
        let at = v.expired[0] - t0;
        // mdns-sd reports a goodbye a second after it; the closed port refuses at once.
        assert!(
            at <= Duration::from_millis(1200),
            "{}: reported gone {at:?} after it left",
            sim.hosts[h].name
        );
    }
}
