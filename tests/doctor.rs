//! `exo-discovery doctor` on namespace hosts where each failure is real: a healthy link, an output
//! firewall, a link without IPv4, a link that drops multicast, port 5353 held without
//! SO_REUSEPORT, and strict reverse-path filtering on a multi-homed host. Needs root and nft.

// Linux only: it runs the agent in Linux network namespaces (`tests/common/network.rs`).
#![cfg(target_os = "linux")]

mod common;

use common::bin_path;
use common::network::{net, Host, Net};
use common::tools::have_tool;
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

fn doctor(n: &Net, host: &Host) -> (bool, Value, String) {
    let out = n.exec(host, &[bin_path(), "doctor", "--json", "--wait", "4"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let human = n.exec(host, &[bin_path(), "doctor", "--wait", "1"]);
    (
        out.status.success(),
        v,
        String::from_utf8_lossy(&human.stdout).into_owned(),
    )
}

fn row<'a>(v: &'a Value, iface: &str, family: &str) -> &'a Value {
    v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["interface"] == iface && r["family"] == family)
        .unwrap_or_else(|| panic!("no row {iface} {family} in {v}"))
}

#[test]
fn doctor_tells_a_healthy_link_from_blocked_ones() {
    let test = "doctor_tells_a_healthy_link_from_blocked_ones";
    if !have_tool(test, "nft", "nft (nftables)") {
        return;
    }
    let Some(mut n) = net(test) else {
        return;
    };
    let (l1, l2, l3, l4) = (n.link(), n.link(), n.link(), n.link());
    let m = n.host("m");
    n.attach(&m, "eth0", &l1, &["10.110.1.1/24"]);
    n.attach(&m, "eth1", &l2, &["10.110.2.1/24"]);
    n.attach(&m, "eth2", &l3, &[]);
    n.attach(&m, "eth3", &l4, &["10.110.4.1/24"]);
    // A peer with an agent on the healthy link and on the one whose switch drops multicast.
    let p1 = n.host("p1");
    n.attach(&p1, "eth0", &l1, &["10.110.1.2/24"]);
    let p4 = n.host("p4");
    n.attach(&p4, "eth0", &l4, &["10.110.4.2/24"]);
    // Each announces a node, so it answers doctor's query.
    let a1 = n.agent(&p1, "agent-p1", &[]);
    let a4 = n.agent(&p4, "agent-p4", &[]);
    let (k1, _) = n.keygen("p1");
    let (k4, _) = n.keygen("p4");
    let _n1 = n.announce(&a1, &k1, &["/ip4/0.0.0.0/tcp/4001".into()]);
    let _n4 = n.announce(&a4, &k4, &["/ip4/0.0.0.0/tcp/4001".into()]);
    // eth1: an output firewall on m. eth3: nothing comes in (an inbound firewall here; client
    // isolation or IGMP snooping look the same from this host).
    n.nft(
        &m.ns,
        &[
            "add table inet fw",
            "add chain inet fw o { type filter hook output priority 0 ; }",
            "add rule inet fw o oifname \"eth1\" udp dport 5353 drop",
            "add chain inet fw i { type filter hook input priority 0 ; }",
            "add rule inet fw i iifname \"eth3\" udp dport 5353 drop",
        ],
    );
    std::thread::sleep(Duration::from_millis(500));
    let (ok, v, human) = doctor(&n, &m);
    println!("{human}");
    assert!(ok, "eth0 is usable, so doctor exits 0: {v}");
    assert_eq!(row(&v, "eth0", "IPv4")["cause"], "ok", "{v}");
    assert!(row(&v, "eth0", "IPv4")["speakers"].as_u64().unwrap() >= 1);
    let fw = row(&v, "eth1", "IPv4");
    assert_eq!(fw["cause"], "output-firewall", "{fw}");
    assert_eq!(fw["join"], "ok");
    assert!(fw["send"].as_str().unwrap().contains("os error 1"), "{fw}");
    assert_eq!(row(&v, "eth1", "IPv6")["cause"], "output-firewall");
    let no4 = row(&v, "eth2", "IPv4");
    assert_eq!(no4["cause"], "no-address", "{no4}");
    assert!(no4["verdict"].as_str().unwrap().contains("no IPv4 address"));
    let iso = row(&v, "eth3", "IPv4");
    assert_eq!(iso["cause"], "nothing-heard", "{iso}");
    assert_eq!(iso["send"], "ok");
    assert!(human.contains("=> usable"), "{human}");
}

#[test]
fn doctor_names_the_program_holding_the_port_and_fails_when_nothing_works() {
    let test = "doctor_names_the_program_holding_the_port_and_fails_when_nothing_works";
    let Some(mut n) = net(test) else {
        return;
    };
    let l = n.link();
    let h = n.host("h");
    n.attach(&h, "eth0", &l, &["10.111.0.1/24"]);
    // A program binding 5353 without SO_REUSEADDR / SO_REUSEPORT.
    let mut holder = Command::new("ip")
        .args(["netns", "exec", &h.ns, "python3", "-c"])
        .arg(
            "import socket,time\n\
             s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
             s.bind(('0.0.0.0',5353))\n\
             print('bound',flush=True)\n\
             time.sleep(60)",
        )
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "bound");
    let (ok, v, _) = doctor(&n, &h);
    let _ = holder.kill();
    let _ = holder.wait();
    let r = row(&v, "eth0", "IPv4");
    assert_eq!(r["cause"], "port-held", "{r}");
    assert!(r["verdict"].as_str().unwrap().contains("python3"), "{r}");
    assert!(!ok, "nothing usable: doctor exits non-zero");
}

#[test]
fn doctor_spots_strict_reverse_path_filtering() {
    let test = "doctor_spots_strict_reverse_path_filtering";
    let Some(mut n) = net(test) else {
        return;
    };
    let (l1, l2) = (n.link(), n.link());
    let r = n.host("r");
    n.attach(&r, "eth0", &l1, &["10.112.1.1/24"]);
    n.attach(&r, "eth1", &l2, &["10.112.2.1/24"]);
    n.ip_in(
        &r,
        &[
            "route",
            "add",
            "default",
            "via",
            "10.112.1.254",
            "dev",
            "eth0",
        ],
    );
    for key in ["all", "eth1"] {
        let out = n.exec(
            &r,
            &["sysctl", "-qw", &format!("net.ipv4.conf.{key}.rp_filter=1")],
        );
        assert!(out.status.success());
    }
    // A speaker on eth1's link whose address r routes via eth0: strict mode drops it.
    let q = n.host("q");
    n.attach(&q, "eth0", &l2, &["10.112.1.7/24"]);
    let _aq = n.agent(&q, "agent-q", &[]);
    std::thread::sleep(Duration::from_millis(500));
    let (_, v, _) = doctor(&n, &r);
    let row1 = row(&v, "eth1", "IPv4");
    assert_eq!(row1["cause"], "rp-filter", "{row1}");
    assert!(row1["verdict"].as_str().unwrap().contains("rp_filter=2"));
    // IPv6 is not subject to it: q is heard there.
    assert_eq!(row(&v, "eth1", "IPv6")["cause"], "ok", "{v}");
}
