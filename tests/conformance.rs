//! What the agent puts on the wire is conforming mDNS, and independent implementations understand
//! it. Captures are taken on the test's own bridges. Needs root; skips with one line where
//! namespaces, tcpdump or python-zeroconf are missing.

// Linux only: it runs the agent in Linux network namespaces (`tests/common/network.rs`).
#![cfg(target_os = "linux")]

mod common;

use common::network::{net, Host, Net};
use common::watch::is_event;
use exo_discovery::wire::{dns, stock as libp2p_mdns};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

fn have(cmd: &str, arg: &str) -> bool {
    Command::new(cmd)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// One captured UDP datagram.
struct Datagram {
    src: IpAddr,
    ttl: u8,
    ip_len: usize,
    sport: u16,
    dport: u16,
    payload: Vec<u8>,
}

/// Reads an Ethernet pcap file (as tcpdump -w writes it) into its UDP datagrams.
fn read_pcap(path: &Path) -> Vec<Datagram> {
    let b = std::fs::read(path).expect("pcap");
    assert!(b.len() >= 24, "empty capture");
    let le = b[0..4] == [0xd4, 0xc3, 0xb2, 0xa1];
    let u32_at = |i: usize| {
        let x = [b[i], b[i + 1], b[i + 2], b[i + 3]];
        if le {
            u32::from_le_bytes(x)
        } else {
            u32::from_be_bytes(x)
        }
    };
    assert_eq!(u32_at(20), 1, "Ethernet link type");
    let mut out = Vec::new();
    let mut pos = 24;
    while pos + 16 <= b.len() {
        let caplen = u32_at(pos + 8) as usize;
        let frame = &b[pos + 16..(pos + 16 + caplen).min(b.len())];
        pos += 16 + caplen;
        if frame.len() < 14 {
            continue;
        }
        let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
        let ip = &frame[14..];
        let (src, ttl, ip_len, udp) = match ethertype {
            0x0800 if ip.len() >= 20 && ip[9] == 17 => {
                let ihl = (ip[0] & 0x0f) as usize * 4;
                let src = IpAddr::V4(Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]));
                (
                    src,
                    ip[8],
                    u16::from_be_bytes([ip[2], ip[3]]) as usize,
                    &ip[ihl..],
                )
            }
            0x86dd if ip.len() >= 40 && ip[6] == 17 => {
                let mut a = [0u8; 16];
                a.copy_from_slice(&ip[8..24]);
                let len = 40 + u16::from_be_bytes([ip[4], ip[5]]) as usize;
                (IpAddr::from(a), ip[7], len, &ip[40..])
            }
            _ => continue,
        };
        if udp.len() < 8 {
            continue;
        }
        out.push(Datagram {
            src,
            ttl,
            ip_len,
            sport: u16::from_be_bytes([udp[0], udp[1]]),
            dport: u16::from_be_bytes([udp[2], udp[3]]),
            payload: udp[8..].to_vec(),
        });
    }
    out
}

/// tcpdump on a bridge of the switch namespace, writing to `file`.
fn capture(n: &Net, bridge: &str, file: &Path) -> Child {
    let child = Command::new("ip")
        .args([
            "netns",
            "exec",
            &n.switch_ns(),
            "tcpdump",
            "-i",
            bridge,
            "-U",
            "-s",
            "0",
            "-w",
        ])
        .arg(file)
        .args(["udp", "port", "5353"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tcpdump");
    std::thread::sleep(Duration::from_millis(800));
    child
}

fn stop(mut c: Child) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(c.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    );
    let _ = c.wait();
}

/// Sends one query the way stock libp2p-mdns does: from an ephemeral port, TTL 1. Returns the port.
fn stock_query(n: &Net, host: &Host, addr: Ipv4Addr) -> u16 {
    n.in_ns(host, move || {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)
            .expect("socket");
        s.bind(&SocketAddr::from((addr, 0)).into()).expect("bind");
        s.set_multicast_if_v4(&addr).expect("multicast if");
        let s: std::net::UdpSocket = s.into();
        s.set_multicast_ttl_v4(1).expect("ttl");
        let mut q = dns::ptr_query(dns::SERVICE);
        q[0] = 0x42;
        s.send_to(&q, SocketAddr::from(([224, 0, 0, 251], 5353)))
            .expect("send");
        s.local_addr().expect("addr").port()
    })
}

#[test]
fn every_packet_the_agents_send_conforms_on_every_link() {
    let test = "every_packet_the_agents_send_conforms_on_every_link";
    if !have("tcpdump", "--version") {
        eprintln!("SKIPPED {test}: tcpdump is not installed");
        return;
    }
    let Some(mut n) = net(test) else {
        return;
    };
    let (l1, l2) = (n.link(), n.link());
    let m = n.host("m");
    let p1 = n.host("p1");
    let p2 = n.host("p2");
    n.attach(&m, "eth0", &l1, &["10.90.1.1/24", "fd90:1::1/64"]);
    n.attach(&m, "eth1", &l2, &["10.90.2.1/24", "fd90:2::1/64"]);
    n.attach(&p1, "eth0", &l1, &["10.90.1.2/24"]);
    n.attach(&p2, "eth0", &l2, &["10.90.2.2/24"]);
    let cap1 = n.dir.join("l1.pcap");
    let cap2 = n.dir.join("l2.pcap");
    let t1 = capture(&n, &l1, &cap1);
    let t2 = capture(&n, &l2, &cap2);
    // Nothing listens on the announced ports: this test is about packets, not dialling.
    let no_probe = ["--no-verify-reachability"];
    let am = n.agent(&m, "agent-m", &no_probe);
    let a1 = n.agent(&p1, "agent-p1", &no_probe);
    let _a2 = n.agent(&p2, "agent-p2", &no_probe);
    // The largest record a node may register: many addresses, both families.
    let mut many: Vec<String> = (0..20)
        .map(|i| format!("/ip4/0.0.0.0/tcp/{}", 4000 + i))
        .collect();
    many.extend((0..4).map(|i| format!("/ip6/::/tcp/{}", 5000 + i)));
    let (km, idm) = n.keygen("m");
    let mut w1 = n.watch(&a1);
    let ann = n.announce(&am, &km, &many);
    w1.wait_for(WAIT, |v| is_event(v, "discovered", &idm))
        .unwrap_or_else(|| panic!("p1 never got m: {:?}", w1.seen));
    // Make the agent answer stock libp2p-mdns queries on both links, then say goodbye.
    let q1 = stock_query(&n, &p1, Ipv4Addr::new(10, 90, 1, 2));
    let q2 = stock_query(&n, &p2, Ipv4Addr::new(10, 90, 2, 2));
    std::thread::sleep(Duration::from_millis(1500));
    n.stop(ann);
    w1.wait_for(WAIT, |v| is_event(v, "expired", &idm))
        .expect("goodbye heard");
    std::thread::sleep(Duration::from_millis(500));
    stop(t1);
    stop(t2);

    let lla0: IpAddr = n.link_local(&m, "eth0").parse().unwrap();
    let lla1: IpAddr = n.link_local(&m, "eth1").parse().unwrap();
    let m_on = |link: usize| -> Vec<IpAddr> {
        match link {
            1 => vec![
                "10.90.1.1".parse().unwrap(),
                "fd90:1::1".parse().unwrap(),
                lla0,
            ],
            _ => vec![
                "10.90.2.1".parse().unwrap(),
                "fd90:2::1".parse().unwrap(),
                lla1,
            ],
        }
    };
    for (link, file, query_port) in [(1, &cap1, q1), (2, &cap2, q2)] {
        let grams = read_pcap(file);
        let mut from_m = 0;
        let mut libp2p_answers = 0;
        for g in grams.iter().filter(|g| g.sport != query_port) {
            let what = format!("link {link}: packet from {} port {}", g.src, g.sport);
            assert_eq!(g.sport, 5353, "{what}: source port");
            // To the group, or a legacy unicast reply to the stock query's port (RFC 6762 §6.7).
            // Nothing else: agents catch up by multicast, never by unicast.
            assert!(
                g.dport == 5353 || g.dport == query_port,
                "{what}: destination port {}",
                g.dport
            );
            assert_eq!(g.ttl, 255, "{what}: TTL / hop limit");
            assert!(g.ip_len <= 1500, "{what}: {} bytes", g.ip_len);
            let rrs = dns::records(&g.payload).unwrap_or_else(|e| panic!("{what}: {e:?}"));
            if !m_on(link).contains(&g.src) {
                continue;
            }
            from_m += 1;
            for r in &rrs {
                if let Some(ip) = r.ip {
                    assert!(
                        m_on(link).contains(&ip),
                        "{what}: announces {ip}, which is not on this link"
                    );
                }
                for t in &r.txt {
                    let t = String::from_utf8_lossy(t);
                    if let Some(a) = t.strip_prefix("dnsaddr=") {
                        assert!(
                            m_on(link).iter().any(|ip| a.contains(&format!("/{ip}/"))),
                            "{what}: libp2p answer offers {a}, not an address of this link"
                        );
                    }
                }
            }
            if !libp2p_mdns::libp2p_peers(&rrs).is_empty() {
                libp2p_answers += 1;
            }
        }
        assert!(
            from_m >= 3,
            "link {link}: only {from_m} packets from m captured"
        );
        assert!(
            libp2p_answers >= 1,
            "link {link}: the stock libp2p-mdns query got no answer in its form"
        );
    }
}

#[test]
fn python_zeroconf_sees_the_agents_instance_and_txt() {
    let test = "python_zeroconf_sees_the_agents_instance_and_txt";
    let ok = Command::new("python3")
        .args(["-c", "import zeroconf"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("SKIPPED {test}: python3 with the zeroconf package is not installed");
        return;
    }
    let Some(mut n) = net(test) else {
        return;
    };
    let l = n.link();
    let a = n.host("a");
    let b = n.host("b");
    n.attach(&a, "eth0", &l, &["10.91.0.1/24"]);
    n.attach(&b, "eth0", &l, &["10.91.0.2/24"]);
    let aa = n.agent(&a, "agent-a", &[]);
    let (ka, ida) = n.keygen("a");
    let _ann = n.announce(&aa, &ka, &["/ip4/0.0.0.0/tcp/4001".into()]);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/tools/zeroconf_browse.py"
    );
    let out = n.exec(&b, &["python3", script, "10.91.0.2", "6"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let found: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let mine = found
        .iter()
        .find(|v| {
            v["name"]
                .as_str()
                .is_some_and(|s| s.starts_with(&format!("{ida}-")))
        })
        .unwrap_or_else(|| panic!("zeroconf did not list the agent's instance: {text}"));
    assert_eq!(mine["port"], 4001);
    let keys = mine["txt_keys"].to_string();
    assert!(keys.contains("\"r0\"") && keys.contains("\"v\""), "{keys}");
    assert!(
        mine["addresses"].to_string().contains("10.91.0.1"),
        "{mine}"
    );
}

/// Kills a child process when dropped.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.0.wait();
    }
}

/// A system D-Bus in the root namespace (a local Unix socket, nothing on any network), as
/// avahi-daemon needs one; started if none answers.
fn system_bus() -> Result<(), String> {
    let sock = Path::new("/run/dbus/system_bus_socket");
    if std::os::unix::net::UnixStream::connect(sock).is_ok() {
        return Ok(());
    }
    let _ = std::fs::create_dir_all("/run/dbus");
    let _ = std::fs::remove_file(sock);
    let _ = Command::new("dbus-uuidgen").arg("--ensure").status();
    let ok = Command::new("dbus-daemon")
        .args(["--system", "--fork"])
        .status()
        .map_err(|e| e.to_string())?
        .success();
    if ok {
        Ok(())
    } else {
        Err("dbus-daemon --system did not start".into())
    }
}

#[test]
fn avahi_browse_lists_the_agents_instance_and_txt() {
    let test = "avahi_browse_lists_the_agents_instance_and_txt";
    if !(have("avahi-daemon", "--version") && have("avahi-browse", "--version")) {
        eprintln!("SKIPPED {test}: avahi-daemon and avahi-utils are not installed");
        return;
    }
    if let Err(e) = system_bus() {
        eprintln!("SKIPPED {test}: no system D-Bus for avahi-daemon: {e}");
        return;
    }
    let Some(mut n) = net(test) else {
        return;
    };
    let l = n.link();
    let a = n.host("a");
    let b = n.host("b");
    n.attach(&a, "eth0", &l, &["10.92.0.1/24"]);
    n.attach(&b, "eth0", &l, &["10.92.0.2/24"]);
    let conf = n.dir.join("avahi.conf");
    std::fs::write(
        &conf,
        "[server]\nallow-interfaces=eth0\nuse-ipv4=yes\nuse-ipv6=yes\nenable-dbus=yes\n\
         [publish]\ndisable-publishing=yes\n[wide-area]\nenable-wide-area=no\n",
    )
    .unwrap();
    let log = std::fs::File::create(n.dir.join("avahi.log")).unwrap();
    let avahi = Command::new("ip")
        .args([
            "netns",
            "exec",
            &b.ns,
            "avahi-daemon",
            "--no-drop-root",
            "--no-chroot",
        ])
        .args(["--no-rlimits", "-f"])
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("avahi-daemon");
    let _avahi = Reaper(avahi);
    let aa = n.agent(&a, "agent-a", &[]);
    let (ka, ida) = n.keygen("a");
    let _ann = n.announce(&aa, &ka, &["/ip4/0.0.0.0/tcp/4001".into()]);
    let prefix = format!("{ida}-");
    let mut last = String::new();
    for _ in 0..10 {
        std::thread::sleep(Duration::from_secs(1));
        let out = Command::new("timeout")
            .args(["10", "avahi-browse", "-rpt", "_p2p._udp"])
            .output()
            .expect("avahi-browse");
        last = String::from_utf8_lossy(&out.stdout).into_owned();
        // =;iface;IPv4;instance;_p2p._udp;local;host;address;port;"txt" "txt"
        let hit = last.lines().find(|l| {
            let f: Vec<&str> = l.split(';').collect();
            f.first() == Some(&"=")
                && f.get(2) == Some(&"IPv4")
                && f.get(3).is_some_and(|i| i.starts_with(&prefix))
        });
        if let Some(line) = hit {
            let f: Vec<&str> = line.split(';').collect();
            assert_eq!(f[7], "10.92.0.1", "{line}");
            assert_eq!(f[8], "4001", "{line}");
            // The TXT strings (binary values may hold ';').
            let txt = f[9..].join(";");
            assert!(txt.contains("\"r0=") && txt.contains("\"v=1\""), "{line}");
            return;
        }
    }
    let avahi_log = std::fs::read_to_string(n.dir.join("avahi.log")).unwrap_or_default();
    panic!("avahi-browse never listed the instance:\n{last}\navahi-daemon:\n{avahi_log}");
}
