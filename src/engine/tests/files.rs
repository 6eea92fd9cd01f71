//! What the agent writes: the cache, the peers file, and shutdown.

use super::*;

#[test]
fn the_cache_is_written_after_changes_at_most_every_five_seconds_and_a_failure_said_once() {
    let mut r = Rig::up(cfg());
    let writes = |a: &[Action]| {
        a.iter()
            .filter_map(|a| match a {
                Action::WriteCache(entries) => Some(entries.len()),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert!(writes(&r.at(10.0)).is_empty(), "nothing changed");
    let first = r.input(resolved(&Keypair::generate_ed25519(), 1));
    assert_eq!(
        writes(&first),
        vec![1],
        "the first change is written at once"
    );
    r.at(12.0);
    assert!(
        writes(&r.input(resolved(&Keypair::generate_ed25519(), 1))).is_empty(),
        "too soon"
    );
    assert!(writes(&r.at(14.9)).is_empty());
    assert_eq!(writes(&r.at(15.0)), vec![2]);
    assert_eq!(
        logs(&r.input(Input::CacheWritten(Err("disk full".into())))).len(),
        1
    );
    assert!(logs(&r.input(Input::CacheWritten(Err("disk full".into())))).is_empty());
}

#[test]
fn shutdown_writes_the_cache_says_goodbye_and_ends() {
    let mut r = Rig::up(cfg());
    r.input(resolved(&Keypair::generate_ed25519(), 1));
    r.at(1.0);
    r.input(resolved(&Keypair::generate_ed25519(), 1));
    let a = r.input(Input::Shutdown);
    assert!(
        a.iter()
            .any(|a| matches!(a, Action::WriteCache(e) if e.len() == 2)),
        "the change not yet written"
    );
    assert!(matches!(a.last(), Some(Action::Exit)));
    assert_eq!(r.e.poll_timeout(), None);
    assert!(r.at(100.0).is_empty());
}

fn peers_files(a: &[Action]) -> Vec<usize> {
    a.iter()
        .filter_map(|a| match a {
            Action::WritePeersFile(list) => Some(list.len()),
            _ => None,
        })
        .collect()
}

#[test]
fn the_peers_file_is_written_at_start_then_after_changes_at_most_every_100_ms() {
    // Without one configured, never.
    let mut r = Rig::new(cfg());
    assert!(peers_files(&r.at(0.0)).is_empty());
    let mut r = Rig::new(Config {
        peers_file: Some("/run/peers.json".into()),
        ..cfg()
    });
    let a = r.at(0.0);
    assert_eq!(peers_files(&a), vec![0], "written at start, empty");
    r.settle(a);
    let k1 = Keypair::generate_ed25519();
    let k2 = Keypair::generate_ed25519();
    r.now = r.t0 + Duration::from_millis(1000);
    assert_eq!(peers_files(&r.announced(&k1, 1)), vec![1]);
    // A second change within 100 ms waits for the interval, then both are in one write.
    r.now = r.t0 + Duration::from_millis(1050);
    assert!(peers_files(&r.announced(&k2, 1)).is_empty());
    assert!(r
        .e
        .poll_timeout()
        .is_some_and(|t| t <= r.t0 + Duration::from_millis(1100)));
    assert_eq!(peers_files(&r.at(1.1)), vec![2]);
    assert!(peers_files(&r.at(5.0)).is_empty(), "nothing changed");
    // A failed write is said once.
    let fail = || Input::PeersFileWritten(Err("/run/peers.json: Permission denied".into()));
    assert_eq!(logs(&r.input(fail())).len(), 1);
    assert!(logs(&r.input(fail())).is_empty());
    assert_eq!(logs(&r.input(Input::PeersFileWritten(Ok(())))).len(), 1);
}
