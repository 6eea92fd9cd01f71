//! The local socket and the command line: who may connect, what a bad frame does, what idle and
//! half-sent requests cost, and the one-line errors users see. Agents run in a namespace holding
//! only loopback (which they do not use), so nothing is sent anywhere.

// Linux only: it runs the agent in Linux network namespaces (`tests/common/network.rs`).
#![cfg(target_os = "linux")]

mod common;

use common::bin_path;
use common::network::net;
use common::proc::peak_rss_kib;
#[path = "old/protocol_v1.rs"]
#[allow(dead_code)]
mod v1;
use exo_discovery::agent::server::{IDLE_TIMEOUT, MAX_CONNECTIONS};
use exo_discovery::client::{Client, ClientError};
use exo_discovery::wire::protocol::{self, AgentMsg, ClientMsg, ErrorKind};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const NOBODY: [&str; 4] = [
    "setpriv",
    "--reuid=65534",
    "--regid=65534",
    "--clear-groups",
];

fn read_msg(s: &mut UnixStream) -> Option<AgentMsg> {
    let mut prefix = [0u8; 4];
    s.read_exact(&mut prefix).ok()?;
    let mut body = vec![0u8; protocol::body_len(prefix).ok()?];
    s.read_exact(&mut body).ok()?;
    protocol::decode(&body).ok()
}

fn closed(s: &mut UnixStream) -> bool {
    let mut b = [0u8; 1];
    matches!(s.read(&mut b), Ok(0))
}

/// Runs an agent that must refuse to start (`cmd`, from [`common::network::Net::run_command`]) to
/// its exit; one still running after 20 s fails the test.
fn refused_agent(mut cmd: Command) -> Output {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the agent");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the agent started instead of refusing");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("agent output")
}

/// A fake `XDG_RUNTIME_DIR` for one agent: a fresh directory in the test's own.
fn runtime_dir(base: &Path, name: &str) -> std::path::PathBuf {
    let dir = base.join(name);
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    dir
}

fn one_line_failure(out: &std::process::Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "should fail: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err:?}");
    assert!(err.contains(needle), "{needle:?} not in {err:?}");
}

#[test]
fn socket_is_owner_only_and_other_uids_are_refused() {
    let Some(mut n) = net("socket_is_owner_only_and_other_uids_are_refused") else {
        return;
    };
    let h = n.host("solo");
    let a = n.agent(&h, "root-agent", &[]);
    let mode = std::fs::metadata(&a.socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "socket mode {mode:o}");
    // A user other than the agent's cannot use it.
    let out = Command::new(NOBODY[0])
        .args(&NOBODY[1..])
        .args([bin_path(), "peers", "--socket"])
        .arg(&a.socket)
        .output()
        .unwrap();
    one_line_failure(&out, "refused");

    // An agent running as nobody refuses root, whom file permissions do not stop: peer
    // credentials are checked.
    let dir = n.dir.join("nobody");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let b = n.agent_via(&h, "nobody-agent", &[], &NOBODY, &dir);
    match Client::connect(&b.socket) {
        Err(ClientError::Refused(_, why)) => assert!(why.contains("uid 0"), "{why}"),
        Err(e) => panic!("expected a refusal, got {e}"),
        Ok(_) => panic!("root was let in to nobody's agent"),
    }
}

#[test]
fn garbage_closes_one_connection_and_the_agent_keeps_serving() {
    let Some(mut n) = net("garbage_closes_one_connection_and_the_agent_keeps_serving") else {
        return;
    };
    let h = n.host("solo");
    let a = n.agent(&h, "agent", &[]);

    // Garbage before the handshake.
    let mut s = UnixStream::connect(&a.socket).unwrap();
    s.write_all(&[0, 0, 0, 3, 0xff, 0xff, 0xff]).unwrap();
    assert!(matches!(
        read_msg(&mut s),
        Some(AgentMsg::Error {
            kind: ErrorKind::Malformed,
            ..
        })
    ));
    assert!(closed(&mut s));

    // Garbage after a good handshake, from a client that also holds a subscription.
    let mut s = UnixStream::connect(&a.socket).unwrap();
    s.write_all(&protocol::encode(&ClientMsg::Hello {
        magic: protocol::MAGIC.into(),
        version: protocol::PROTOCOL_VERSION,
    }))
    .unwrap();
    assert!(matches!(read_msg(&mut s), Some(AgentMsg::Welcome { .. })));
    s.write_all(&[0, 0, 0, 2, 0x07, 0x07]).unwrap();
    assert!(matches!(
        read_msg(&mut s),
        Some(AgentMsg::Error {
            kind: ErrorKind::Malformed,
            ..
        })
    ));
    assert!(closed(&mut s));

    // A length prefix far over the cap.
    let mut s = UnixStream::connect(&a.socket).unwrap();
    s.write_all(&[0xff, 0xff, 0xff, 0xff]).unwrap();
    assert!(matches!(read_msg(&mut s), Some(AgentMsg::Error { .. })));
    assert!(closed(&mut s));

    // A wrong protocol version is told so.
    let mut s = UnixStream::connect(&a.socket).unwrap();
    s.write_all(&protocol::encode(&ClientMsg::Hello {
        magic: protocol::MAGIC.into(),
        version: 999,
    }))
    .unwrap();
    match read_msg(&mut s) {
        Some(AgentMsg::Error { kind, message }) => {
            assert_eq!(kind, ErrorKind::Handshake);
            assert!(message.contains("999"), "{message}");
            assert!(message.contains("speaks 1 to 2"), "{message}");
        }
        other => panic!("{other:?}"),
    }

    // A client of the older version 1 is welcomed in its version, and its decoder reads the
    // replies.
    let mut s = UnixStream::connect(&a.socket).unwrap();
    s.write_all(&v1::frame(&v1::ClientMsg::Hello {
        magic: protocol::MAGIC.into(),
        version: 1,
    }))
    .unwrap();
    assert_eq!(
        v1::read(&mut s),
        Ok(v1::AgentMsg::Welcome {
            version: 1,
            namespace: "exo".into()
        })
    );
    s.write_all(&v1::frame(&v1::ClientMsg::Status)).unwrap();
    assert!(matches!(v1::read(&mut s), Ok(v1::AgentMsg::Status(_))));

    // The agent still serves everyone else.
    let mut c = Client::connect(&a.socket).expect("agent still up");
    assert_eq!(c.namespace(), "exo");
    assert!(c.list().unwrap().is_empty());
    let key = libp2p_identity::Keypair::generate_ed25519();
    c.register(&key, &["/ip4/0.0.0.0/tcp/1".parse().unwrap()])
        .expect("register works");
}

#[test]
fn command_line_failures_are_one_clear_line() {
    let Some(mut n) = net("command_line_failures_are_one_clear_line") else {
        return;
    };
    let h = n.host("solo");
    let a = n.agent(&h, "agent", &[]);
    let (key, _) = n.keygen("k");
    let run = |args: &[&str]| Command::new(bin_path()).args(args).output().unwrap();
    let sock = a.socket.to_str().unwrap();
    let keyp = key.to_str().unwrap();

    // keygen never overwrites.
    one_line_failure(&run(&["keygen", "--out", keyp]), "already exists");
    // No agent at that path.
    let missing = n.dir.join("none.sock");
    one_line_failure(
        &run(&["peers", "--socket", missing.to_str().unwrap()]),
        "agent not running",
    );
    // A key file that is not a key.
    let junk = n.dir.join("junk.key");
    std::fs::write(&junk, b"not a key").unwrap();
    one_line_failure(
        &run(&[
            "announce",
            "--socket",
            sock,
            "--key",
            junk.to_str().unwrap(),
            "--addr",
            "/ip4/0.0.0.0/tcp/1",
        ]),
        "bad key file",
    );
    // A bad multiaddr.
    let out = run(&[
        "announce",
        "--socket",
        sock,
        "--key",
        keyp,
        "--addr",
        "/ip4/999/tcp/1",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/ip4/999/tcp/1"));
    // The wrong namespace.
    one_line_failure(
        &run(&[
            "announce",
            "--socket",
            sock,
            "--key",
            keyp,
            "--addr",
            "/ip4/0.0.0.0/tcp/1",
            "--namespace",
            "other",
        ]),
        "wrong namespace",
    );
    // A bad config file is named in the error.
    let cfg = n.dir.join("bad.toml");
    std::fs::write(&cfg, "peer_timeout_secs = \"soon\"\n").unwrap();
    one_line_failure(
        &run(&[
            "run",
            "--config",
            cfg.to_str().unwrap(),
            "--socket",
            "/nonexistent/x.sock",
        ]),
        "bad.toml",
    );
    // A second agent on the same socket is refused, the first keeps it.
    one_line_failure(&run(&["run", "--socket", sock]), "already listening");
    assert!(Client::connect(&a.socket).is_ok());
}

#[test]
fn idle_connections_are_closed_and_cannot_lock_the_node_out() {
    let Some(mut n) = net("idle_connections_are_closed_and_cannot_lock_the_node_out") else {
        return;
    };
    let h = n.host("solo");
    let a = n.agent(&h, "agent", &[]);
    // As many silent connections as the agent serves at once.
    let mut idle: Vec<UnixStream> = (0..exo_discovery::agent::server::MAX_CONNECTIONS)
        .map(|_| UnixStream::connect(&a.socket).unwrap())
        .collect();
    std::thread::sleep(
        exo_discovery::agent::server::HANDSHAKE_TIMEOUT + std::time::Duration::from_secs(1),
    );
    for s in &mut idle {
        s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        assert!(
            closed(s),
            "a silent connection was kept past the handshake timeout"
        );
    }
    let mut c = Client::connect(&a.socket).expect("the node gets in");
    assert!(c.list().expect("and is served").is_empty());
}

/// The binary hello.
fn hello_frame() -> Vec<u8> {
    protocol::encode(&ClientMsg::Hello {
        magic: protocol::MAGIC.into(),
        version: protocol::PROTOCOL_VERSION,
    })
}

/// The JSON hello line.
const HELLO_LINE: &[u8] = b"{\"hello\":{\"magic\":\"exo-discovery\",\"version\":1}}\n";

/// The next JSON line, read a byte at a time (nothing is read past it); `None` at the end of the
/// stream, a reset or the read timeout.
fn read_line(s: &mut UnixStream) -> Option<serde_json::Value> {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while b[0] != b'\n' {
        match s.read(&mut b) {
            Ok(1) => line.push(b[0]),
            _ => return None,
        }
    }
    serde_json::from_slice(&line).ok()
}

/// A connection that said hello (a JSON line if `json`, else a frame) and was welcomed.
fn welcomed(socket: &Path, json: bool) -> UnixStream {
    let mut s = UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    if json {
        s.write_all(HELLO_LINE).unwrap();
        let welcome = read_line(&mut s).expect("a welcome line");
        assert!(welcome.get("welcome").is_some(), "{welcome}");
    } else {
        s.write_all(&hello_frame()).unwrap();
        assert!(matches!(read_msg(&mut s), Some(AgentMsg::Welcome { .. })));
    }
    s
}

/// The next message is an error: its kind as the JSON mode names it, and its message.
fn next_error(s: &mut UnixStream, json: bool) -> Option<(String, String)> {
    if json {
        let v = read_line(s)?;
        let e = v.get("error")?;
        Some((
            e["kind"].as_str()?.to_owned(),
            e["message"].as_str()?.to_owned(),
        ))
    } else {
        match read_msg(s)? {
            AgentMsg::Error { kind, message } => Some((
                exo_discovery::wire::protocol_json::error_kind(kind).to_owned(),
                message,
            )),
            _ => None,
        }
    }
}

/// 127 connections say hello, then send all but the last 4 KiB of a request of 1 MiB
/// (`unfinished`: a line or a frame) and hold it. The agent's peak memory stays bounded, the
/// connections that found no room were told so, and everyone else is served.
fn unfinished_requests_hold_bounded_memory(test: &str, json: bool, unfinished: &[u8]) {
    let Some(mut n) = net(test) else {
        return;
    };
    let h = n.host("solo");
    let a = n.agent(&h, "agent", &[]);
    let pid = n.pid(&a);
    let before = peak_rss_kib(pid);
    let mut held = Vec::new();
    for _ in 0..MAX_CONNECTIONS - 1 {
        let mut s = welcomed(&a.socket, json);
        // A connection refused half-way is closed under the write: a broken pipe or a reset.
        let _ = s.write_all(unfinished);
        held.push(s);
    }
    // The agent has read (or refused) what was sent: a write returns once all but the socket's
    // buffer is taken; give it a moment for the rest.
    std::thread::sleep(Duration::from_secs(1));
    let peak = peak_rss_kib(pid);
    eprintln!(
        "agent peak RSS: {before} KiB before, {peak} KiB with {} unfinished requests of 1 MiB",
        held.len()
    );
    assert!(
        peak < 64 * 1024,
        "peak RSS {peak} KiB with {} unfinished requests",
        held.len()
    );
    let mut c = Client::connect(&a.socket).expect("a fresh client gets in");
    c.status().expect("and gets the status");
    let mut node = Client::connect(&a.socket).expect("a node gets in");
    let key = libp2p_identity::Keypair::generate_ed25519();
    node.register(&key, &["/ip4/0.0.0.0/tcp/1".parse().unwrap()])
        .expect("and registers");
    assert!(
        peak_rss_kib(pid) < 64 * 1024,
        "peak RSS {} KiB",
        peak_rss_kib(pid)
    );
    // The last connection found no room: it was told, with a `Limit` error.
    let last = held.last_mut().expect("connections");
    let (kind, message) = next_error(last, json).expect("an error for the last connection");
    assert_eq!(kind, "limit", "{message}");
    assert!(message.contains("no room"), "{message}");
}

#[test]
fn unfinished_lines_of_many_connections_hold_bounded_memory() {
    let mut line = b"{\"add_host\":{\"host\":\"".to_vec();
    line.resize(protocol::MAX_FRAME - 4096, b'a');
    unfinished_requests_hold_bounded_memory(
        "unfinished_lines_of_many_connections_hold_bounded_memory",
        true,
        &line,
    );
}

#[test]
fn unfinished_frames_of_many_connections_hold_bounded_memory() {
    let mut frame = (protocol::MAX_FRAME as u32).to_be_bytes().to_vec();
    frame.resize(4 + protocol::MAX_FRAME - 4096, 0x07);
    unfinished_requests_hold_bounded_memory(
        "unfinished_frames_of_many_connections_hold_bounded_memory",
        false,
        &frame,
    );
}

#[test]
fn a_node_gets_in_past_as_many_idle_connections_as_the_agent_serves() {
    let Some(mut n) = net("a_node_gets_in_past_as_many_idle_connections_as_the_agent_serves")
    else {
        return;
    };
    let h = n.host("solo");
    let a = n.agent(&h, "agent", &[]);
    // Every place taken by a connection that said hello, half of them in JSON, and nothing else.
    let mut idle: Vec<UnixStream> = (0..MAX_CONNECTIONS)
        .map(|i| welcomed(&a.socket, i % 2 == 1))
        .collect();
    let mut node = Client::connect(&a.socket).expect("the node gets in");
    let key = libp2p_identity::Keypair::generate_ed25519();
    node.register(&key, &["/ip4/0.0.0.0/tcp/1".parse().unwrap()])
        .expect("and its Register is answered Registered");
    // The connection idle longest made room: it was told why, and closed.
    let (kind, message) = next_error(&mut idle[0], false).expect("an error for the oldest");
    assert_eq!(kind, "limit", "{message}");
    assert!(message.contains("make room"), "{message}");
    assert!(closed(&mut idle[0]));
    // The others are still served.
    let newest = idle.last_mut().expect("connections");
    newest.write_all(b"\"list\"\n").unwrap();
    let list = read_line(newest).expect("a snapshot line");
    assert_eq!(list, serde_json::json!({"snapshot": []}));
    // A node that registered keeps its place: the next newcomer takes another idle one's.
    let mut c = Client::connect(&a.socket).expect("another client gets in");
    c.status().expect("and is served");
    assert_eq!(
        node.status()
            .expect("the node is still served")
            .registrations,
        1
    );
}

#[test]
fn an_idle_connection_is_closed_but_a_subscribed_or_registered_one_is_not() {
    let Some(mut n) = net("an_idle_connection_is_closed_but_a_subscribed_or_registered_one_is_not")
    else {
        return;
    };
    let h = n.host("solo");
    let a = n.agent(&h, "agent", &[]);
    let started = Instant::now();
    let mut idle = welcomed(&a.socket, false);
    let mut subscriber = Client::connect(&a.socket).expect("subscriber");
    assert!(subscriber.subscribe().expect("subscribed").is_empty());
    let mut node = Client::connect(&a.socket).expect("node");
    let key = libp2p_identity::Keypair::generate_ed25519();
    node.register(&key, &["/ip4/0.0.0.0/tcp/1".parse().unwrap()])
        .expect("registered");
    // The connection that asked nothing is told why, then closed, once the deadline passed.
    idle.set_read_timeout(Some(IDLE_TIMEOUT + Duration::from_secs(30)))
        .unwrap();
    let (kind, message) = next_error(&mut idle, false).expect("an error for the idle connection");
    let waited = started.elapsed();
    assert_eq!(kind, "limit", "{message}");
    assert!(message.contains("no request for"), "{message}");
    assert!(closed(&mut idle));
    assert!(waited >= IDLE_TIMEOUT, "closed after {waited:?}");
    // The subscriber and the node, as quiet, outlive it.
    std::thread::sleep(Duration::from_secs(5));
    let st = subscriber.status().expect("the subscriber is still served");
    assert_eq!(st.registrations, 1);
    assert!(node.list().expect("the node is still served").is_empty());
}

#[test]
fn a_socket_served_by_another_user_is_not_trusted() {
    let test = "a_socket_served_by_another_user_is_not_trusted";
    // Debian's Python: one another user can run (a per-user Python may not be).
    if !common::tools::have_tool(test, "setpriv", "setpriv (util-linux)")
        || !common::tools::have_tool(test, "/usr/bin/python3", "python3")
    {
        return;
    }
    let Some(n) = net(test) else {
        return;
    };
    let dir = n.dir.join("shared");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let path = dir.join("agent.sock");
    // Another user (nobody) got to the path first.
    let mut squatter = Command::new(NOBODY[0])
        .args(&NOBODY[1..])
        .args([
            "/usr/bin/python3",
            "-c",
            "import socket, sys, time\n\
             s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen()\n\
             c, _ = s.accept(); c.sendall(b'x' * 64); time.sleep(5)",
        ])
        .arg(&path)
        .spawn()
        .expect("/usr/bin/python3");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !path.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = Command::new(bin_path())
        .args(["peers", "--socket"])
        .arg(&path)
        .output()
        .unwrap();
    let _ = squatter.kill();
    let _ = squatter.wait();
    one_line_failure(&out, "served by uid 65534");
    assert!(String::from_utf8_lossy(&out.stderr).contains(&path.display().to_string()));
}

#[test]
fn the_default_socket_directory_is_created_owner_only() {
    let Some(mut n) = net("the_default_socket_directory_is_created_owner_only") else {
        return;
    };
    let h = n.host("solo");
    let runtime = runtime_dir(&n.dir, "runtime");
    let a = n.agent_default_socket(&h, "agent", &runtime);
    let dir = runtime.join("exo-discovery");
    assert_eq!(a.socket, dir.join("agent.sock"));
    let meta = std::fs::symlink_metadata(&dir).unwrap();
    assert!(meta.file_type().is_dir());
    assert_eq!(meta.mode() & 0o7777, 0o700, "mode {:o}", meta.mode());
    assert_eq!(meta.uid(), nix::unistd::geteuid().as_raw());
    // The commands find it at the same default path.
    let out = Command::new(bin_path())
        .arg("peers")
        .env("XDG_RUNTIME_DIR", &runtime)
        .output()
        .unwrap();
    assert!(out.status.success(), "peers: {out:?}");

    // A directory the agent made earlier is used again; one opened to others since is not.
    n.stop_agent(&a);
    let again = n.agent_default_socket(&h, "again", &runtime);
    assert!(Client::connect(&again.socket).is_ok());
    n.stop_agent(&again);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = n.run_command(&h, "opened", &[], &[], &n.dir.clone());
    cmd.env("XDG_RUNTIME_DIR", &runtime);
    let out = refused_agent(cmd);
    one_line_failure(&out, "has mode 0755, open to group or others");
    assert!(String::from_utf8_lossy(&out.stderr).contains(&dir.display().to_string()));
}

#[test]
fn a_socket_directory_of_another_user_is_refused() {
    let Some(mut n) = net("a_socket_directory_of_another_user_is_refused") else {
        return;
    };
    let h = n.host("solo");
    let runtime = runtime_dir(&n.dir, "runtime");
    let dir = runtime.join("exo-discovery");
    // Another user (nobody) made the directory first, owner-only as the agent would.
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let nobody = Some(nix::unistd::Uid::from_raw(65534));
    nix::unistd::chown(&dir, nobody, Some(nix::unistd::Gid::from_raw(65534))).unwrap();
    let mut cmd = n.run_command(&h, "agent", &[], &[], &n.dir.clone());
    cmd.env("XDG_RUNTIME_DIR", &runtime);
    let out = refused_agent(cmd);
    let me = nix::unistd::geteuid().as_raw();
    one_line_failure(
        &out,
        &format!(
            "socket directory {} is owned by uid 65534, not {me}: remove it",
            dir.display()
        ),
    );
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "nothing made in it"
    );
}

#[test]
fn a_symbolic_link_for_the_socket_directory_is_refused() {
    let Some(mut n) = net("a_symbolic_link_for_the_socket_directory_is_refused") else {
        return;
    };
    let h = n.host("solo");
    let runtime = runtime_dir(&n.dir, "runtime");
    // It points at a directory that would pass every check itself.
    let target = runtime_dir(&n.dir, "elsewhere");
    let dir = runtime.join("exo-discovery");
    std::os::unix::fs::symlink(&target, &dir).unwrap();
    let mut cmd = n.run_command(&h, "agent", &[], &[], &n.dir.clone());
    cmd.env("XDG_RUNTIME_DIR", &runtime);
    let out = refused_agent(cmd);
    one_line_failure(
        &out,
        &format!(
            "socket directory {} is a symbolic link, not a directory",
            dir.display()
        ),
    );
    assert_eq!(
        std::fs::read_dir(&target).unwrap().count(),
        0,
        "nothing made there"
    );
}
