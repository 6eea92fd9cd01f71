//! The peers file (`run --peers-file`): equal to `peers --json` once peers settle, and never torn
//! for a reader, while peers come and go. Runs in network namespaces (root; see
//! `common::network`).

// Linux only: it runs the agent in Linux network namespaces (`tests/common/network.rs`).
#![cfg(target_os = "linux")]

mod common;

use common::network::net;
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[test]
fn the_peers_file_follows_the_peers_and_a_reader_never_sees_it_torn() {
    let Some(mut n) = net("the_peers_file_follows_the_peers_and_a_reader_never_sees_it_torn")
    else {
        return;
    };
    let l = n.link();
    let a = n.host("a");
    let b = n.host("b");
    n.attach(&a, "eth0", &l, &["10.93.0.1/24"]);
    n.attach(&b, "eth0", &l, &["10.93.0.2/24"]);
    let file = n.dir.join("peers.json");
    let file_arg = file.to_string_lossy().into_owned();
    let ab = n.agent(&b, "agent-b", &["--peers-file", &file_arg]);
    let aa = n.agent(&a, "agent-a", &[]);

    // A reader that parses every read, as a program polling the file would.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (file, stop) = (file.clone(), stop.clone());
        std::thread::spawn(move || {
            let (mut reads, mut lengths) = (0usize, std::collections::BTreeSet::new());
            while !stop.load(Ordering::Relaxed) {
                let Ok(text) = std::fs::read_to_string(&file) else {
                    continue; // not written yet
                };
                let list: Vec<Value> = serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("read {reads}: torn or bad ({e}): {text:?}"));
                lengths.insert(list.len());
                reads += 1;
            }
            (reads, lengths)
        })
    };
    // A churn: nodes on a come and go, a few at once, each on its own port (a node that leaves
    // closes its port, which is what confirms its goodbye).
    let keys: Vec<_> = (0..4).map(|i| n.keygen(&format!("k{i}"))).collect();
    let node = |n: &mut common::network::Net, key: &std::path::Path| {
        let port = n.listen(&a);
        let addr = format!("/ip4/0.0.0.0/tcp/{}", port.local_addr().unwrap().port());
        (n.announce(&aa, key, &[addr]), port)
    };
    for round in 0..3 {
        let nodes: Vec<_> = keys.iter().map(|(k, _)| node(&mut n, k)).collect();
        std::thread::sleep(Duration::from_millis(700 + 100 * round));
        for (ann, port) in nodes {
            drop(port);
            n.stop(ann);
        }
        std::thread::sleep(Duration::from_millis(1500));
    }
    let last: Vec<_> = keys[..2].iter().map(|(k, _)| node(&mut n, k)).collect();
    // Settled: the file says what `peers --json` says.
    let deadline = Instant::now() + Duration::from_secs(10);
    let settled = loop {
        let peers = n.peers(&ab);
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let in_file: Vec<Value> = serde_json::from_str(&text).unwrap_or_default();
        if peers.len() == 2 && in_file == peers {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    stop.store(true, Ordering::Relaxed);
    let (reads, lengths) = reader.join().expect("reader");
    assert!(settled, "the file never matched peers --json");
    assert!(reads > 100, "only {reads} reads");
    assert!(
        lengths.len() >= 3,
        "the reader saw too little change to mean anything: {lengths:?}"
    );
    println!("{reads} reads, all whole; peer counts seen: {lengths:?}");
    drop(last);
}
