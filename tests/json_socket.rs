//! The local socket's JSON line mode: a Python client registers a record made by
//! `exo-discovery sign` and reads its peers as JSON lines; every request works; a bad or
//! oversized line closes one connection; binary clients are served as before, beside JSON ones.
//! Agents run in namespaces the tests create (the single-agent tests: holding only loopback,
//! which the agent does not use), so nothing is sent anywhere else.

// Linux only: it runs the agent in Linux network namespaces (`tests/common/network.rs`).
#![cfg(target_os = "linux")]

mod common;

use common::bin_path;
use common::network::net;
use common::tools::have_tool;
use exo_discovery::client::Client;
use exo_discovery::wire::protocol::{self, AgentMsg, ClientMsg, ErrorKind};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(15);

/// A JSON-mode connection.
struct Json {
    r: BufReader<UnixStream>,
    w: UnixStream,
}

impl Json {
    fn connect(socket: &Path) -> Json {
        let w = UnixStream::connect(socket).expect("connect");
        w.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Json {
            r: BufReader::new(w.try_clone().unwrap()),
            w,
        }
    }

    /// Connects and says hello; checks the welcome.
    fn hello(socket: &Path) -> Json {
        let mut c = Json::connect(socket);
        c.send(&json!({"hello": {"magic": "exo-discovery", "version": 1}}));
        let welcome = c.recv().expect("welcome");
        assert_eq!(welcome["welcome"]["namespace"], "exo", "{welcome}");
        assert_eq!(welcome["welcome"]["version"], 1, "{welcome}");
        c
    }

    fn send(&mut self, v: &Value) {
        self.send_raw(format!("{v}\n").as_bytes());
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        self.w.write_all(bytes).expect("write");
    }

    /// The next line as JSON; `None` at the end of the stream, or at a reset (the agent closed
    /// the connection with bytes of ours still unread: a line too long, say).
    fn recv(&mut self) -> Option<Value> {
        let mut line = String::new();
        match self.r.read_line(&mut line) {
            Ok(0) => None,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => None,
            Ok(_) => {
                assert!(line.ends_with('\n'), "a line ends in \\n: {line:?}");
                Some(serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}")))
            }
            Err(e) => panic!("read: {e}"),
        }
    }

    /// Sends `request`, returns the reply.
    fn ask(&mut self, request: Value) -> Value {
        self.send(&request);
        self.recv()
            .unwrap_or_else(|| panic!("no reply to {request}"))
    }

    /// The next line is an error of `kind`, then the connection is closed; returns the message.
    #[track_caller]
    fn closed_with(&mut self, kind: &str) -> String {
        let e = self.recv().expect("an error line");
        assert_eq!(e["error"]["kind"], kind, "{e}");
        let at = Instant::now();
        assert!(self.recv().is_none(), "the connection is closed after {e}");
        assert!(
            at.elapsed() < Duration::from_secs(1),
            "closed {:?} after the error",
            at.elapsed()
        );
        e["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

/// `exo-discovery sign` for `key`, listening on `port` (all addresses).
fn sign(key: &Path, port: u16, namespace: &str) -> String {
    let out = Command::new(bin_path())
        .args(["sign", "--key"])
        .arg(key)
        .args(["--addr", &format!("/ip4/0.0.0.0/tcp/{port}")])
        .args(["--addr", &format!("/ip6/::/tcp/{port}")])
        .args(["--namespace", namespace])
        .output()
        .expect("sign");
    assert!(out.status.success(), "sign: {out:?}");
    let text = String::from_utf8(out.stdout).expect("sign prints text");
    assert_eq!(text.lines().count(), 1, "one line: {text:?}");
    text.trim_end().to_owned()
}

/// A child process stopped when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_python_client_registers_subscribes_and_reads_json_lines() {
    let test = "a_python_client_registers_subscribes_and_reads_json_lines";
    if !have_tool(test, "python3", "python3") {
        return;
    }
    let Some(mut n) = net(test) else {
        return;
    };
    let link = n.link();
    let a = n.host("a");
    let b = n.host("b");
    n.attach(&a, "eth0", &link, &["10.31.0.1/24"]);
    n.attach(&b, "eth0", &link, &["10.31.0.2/24"]);
    let agent_a = n.agent(&a, "agent-a", &[]);
    let agent_b = n.agent(&b, "agent-b", &[]);
    let listen_a = n.listen(&a);
    let listen_b = n.listen(&b);
    let (key_a, id_a) = n.keygen("a");
    let (key_b, id_b) = n.keygen("b");
    let mut watch_a = n.watch(&agent_a);
    let mut watch_b = n.watch(&agent_b);

    // The Python client of the README, beside agent a, registers a's node.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/json_client.py");
    let record = sign(&key_a, listen_a.local_addr().unwrap().port(), "exo");
    let stderr = n.dir.join("python.err");
    let mut child = Command::new("ip")
        .args(["netns", "exec", &a.ns, "python3"])
        .arg(&script)
        .arg(&agent_a.socket)
        .arg(&record)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .expect("python3");
    let stdout = child.stdout.take().expect("stdout");
    let python = Running(child);
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // What the client prints, for `--nocapture`.
            eprintln!("python: {line}");
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let err = || std::fs::read_to_string(&stderr).unwrap_or_default();
    let next = |what: &str| -> Value {
        let line = rx
            .recv_timeout(WAIT)
            .unwrap_or_else(|_| panic!("python printed no {what}; stderr: {}", err()));
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    };
    let welcome = next("welcome");
    assert_eq!(
        welcome,
        json!({"welcome": {"version": 1, "namespace": "exo"}})
    );
    let registered = next("registered");
    assert_eq!(registered, json!({"registered": {"peer_id": id_a}}));
    let snapshot = next("snapshot");
    assert!(snapshot["snapshot"].is_array(), "{snapshot}");

    // b's node comes up: the Python client is told, as `watch --json` on the same agent is.
    let _announce_b = n.announce(
        &agent_b,
        &key_b,
        &[format!(
            "/ip4/0.0.0.0/tcp/{}",
            listen_b.local_addr().unwrap().port()
        )],
    );
    let deadline = Instant::now() + WAIT;
    let mut seen = vec![snapshot.clone()];
    let peer_b = loop {
        let found = seen.iter().find_map(|m| {
            let in_snapshot = m["snapshot"]
                .as_array()
                .and_then(|s| s.iter().find(|p| p["peer_id"] == id_b.as_str()));
            let in_event = Some(&m["event"])
                .filter(|e| e["peer_id"] == id_b.as_str() && e["event"] != "expired");
            in_snapshot.or(in_event).cloned()
        });
        if let Some(p) = found {
            break p;
        }
        let left = deadline
            .checked_duration_since(Instant::now())
            .unwrap_or_else(|| panic!("python never saw b: {seen:?}; stderr: {}", err()));
        match rx.recv_timeout(left) {
            Ok(line) => seen.push(serde_json::from_str(&line).expect("a JSON line")),
            Err(_) => panic!("python never saw b: {seen:?}; stderr: {}", err()),
        }
    };
    assert!(
        peer_b["addrs"]
            .as_array()
            .is_some_and(|a| a.contains(&json!(format!(
                "/ip4/10.31.0.2/tcp/{}/p2p/{id_b}",
                listen_b.local_addr().unwrap().port()
            )))),
        "{peer_b}"
    );
    assert_eq!(peer_b["source"], "mdns");
    assert_eq!(peer_b["interfaces"], json!(["eth0"]));
    // The socket and the command line agree on what b is.
    watch_a
        .wait_for(WAIT, |v| {
            let mut v = v.clone();
            if let Value::Object(m) = &mut v {
                if peer_b.get("event").is_none() {
                    m.remove("event");
                }
            }
            v == peer_b
        })
        .unwrap_or_else(|| panic!("watch --json never printed {peer_b}: {:?}", watch_a.seen));

    // The registration made in JSON is announced, and lives as long as the Python connection.
    watch_b
        .wait_for(WAIT, |v| {
            v["peer_id"] == id_a.as_str() && v["event"] == "discovered"
        })
        .unwrap_or_else(|| panic!("b never heard a's node: {:?}", watch_b.seen));
    // Its node goes as its connection does (the listener first: a goodbye is believed only
    // once the addresses stop answering).
    drop(listen_a);
    drop(python);
    watch_b
        .wait_for(WAIT, |v| {
            v["peer_id"] == id_a.as_str() && v["event"] == "expired"
        })
        .unwrap_or_else(|| panic!("a's node outlived its connection: {:?}", watch_b.seen));
}

#[test]
fn every_request_works_in_json_mode_beside_a_binary_client() {
    let Some(mut n) = net("every_request_works_in_json_mode_beside_a_binary_client") else {
        return;
    };
    let h = n.host("solo");
    let agent = n.agent(&h, "agent", &[]);
    let (key, id) = n.keygen("k");

    // A binary client, connected first, stays served throughout.
    let mut binary = Client::connect(&agent.socket).expect("binary client");
    let mut bin_sub = Client::connect(&agent.socket).expect("binary subscriber");
    assert!(bin_sub.subscribe().unwrap().is_empty());

    // Requests may come in the same write as the hello.
    let mut c = Json::connect(&agent.socket);
    c.send_raw(
        b"{\"hello\":{\"magic\":\"exo-discovery\",\"version\":1}}\n\"list\"\r\n\n{\"status\":null}\n",
    );
    assert_eq!(
        c.recv().unwrap(),
        json!({"welcome": {"version": 1, "namespace": "exo"}})
    );
    assert_eq!(c.recv().unwrap(), json!({"snapshot": []}));
    let status = c.recv().unwrap();
    assert_eq!(status["status"]["namespace"], "exo", "{status}");
    // `status` holds what `status --json` prints.
    let cli = n.status(&agent);
    for key in cli.as_object().unwrap().keys() {
        assert!(
            status["status"].get(key).is_some(),
            "{key} missing: {status}"
        );
    }

    let record = sign(&key, 4001, "exo");
    assert_eq!(
        c.ask(json!({"register": {"signed_record": record}})),
        json!({"registered": {"peer_id": id}})
    );
    // The same record again, in upper case and with the newline `sign` printed.
    let upper = format!("{}\n", record.to_uppercase());
    assert_eq!(
        c.ask(json!({"register": {"signed_record": upper}})),
        json!({"registered": {"peer_id": id}})
    );
    let (other, _) = n.keygen("other");
    let e = c.ask(json!({"register": {"signed_record": sign(&other, 4001, "lab")}}));
    assert_eq!(e["error"]["kind"], "rejected", "{e}");
    assert_eq!(e["error"]["reason"], "namespace", "{e}");
    // Not hex: this request fails, the connection stays.
    let e = c.ask(json!({"register": {"signed_record": "not hex"}}));
    assert_eq!(e["error"]["kind"], "bad-request", "{e}");

    let done = c.ask(json!({"add_host": {"host": "10.99.0.1"}}));
    assert_eq!(
        done["done"]["message"], "asking 10.99.0.1 for its agent's records",
        "{done}"
    );
    let done = c.ask(json!({"remove_host": {"host": "10.99.0.1"}}));
    assert!(done["done"]["message"].is_string(), "{done}");
    let e = c.ask(json!({"remove_host": {"host": "10.99.0.1"}}));
    assert_eq!(e["error"]["kind"], "bad-request", "{e}");
    // A manual peer on a closed loopback port: taken, and never handed over (it does not answer).
    let stranger = libp2p_identity::Keypair::generate_ed25519()
        .public()
        .to_peer_id();
    let manual = format!("/ip4/127.0.0.1/tcp/9/p2p/{stranger}");
    let done = c.ask(json!({"add_peer": {"multiaddr": manual}}));
    assert!(done["done"]["message"].is_string(), "{done}");
    let e = c.ask(json!({"add_peer": {"multiaddr": "/ip4/127.0.0.1/tcp/9"}}));
    assert_eq!(e["error"]["kind"], "bad-request", "{e}");
    assert_eq!(c.ask(json!("subscribe")), json!({"snapshot": []}));

    // The binary clients were served all along.
    assert!(binary.list().unwrap().is_empty());
    let st = binary.status().unwrap();
    assert_eq!(st.registrations, 1);
    assert_eq!(st.clients, 3);
    let k2 = libp2p_identity::Keypair::generate_ed25519();
    binary
        .register(&k2, &["/ip4/0.0.0.0/tcp/2".parse().unwrap()])
        .expect("binary register");
    drop(bin_sub);

    // A second hello is malformed, as in binary.
    c.send(&json!({"hello": {"magic": "exo-discovery", "version": 1}}));
    c.closed_with("malformed");
}

#[test]
fn bad_json_lines_close_one_connection_and_the_agent_keeps_serving() {
    let Some(mut n) = net("bad_json_lines_close_one_connection_and_the_agent_keeps_serving") else {
        return;
    };
    let h = n.host("solo");
    let agent = n.agent(&h, "agent", &[]);
    let sock = agent.socket.clone();

    // Not JSON, as the first line.
    let mut c = Json::connect(&sock);
    c.send_raw(b"{hello}\n");
    let m = c.closed_with("malformed");
    assert!(m.contains("hello"), "{m}");

    // Another request before the hello.
    let mut c = Json::connect(&sock);
    c.send(&json!({"list": null}));
    c.closed_with("malformed");

    // The wrong magic, the wrong version.
    let mut c = Json::connect(&sock);
    c.send(&json!({"hello": {"magic": "nope", "version": 1}}));
    assert!(c.closed_with("handshake").contains("magic"));
    let mut c = Json::connect(&sock);
    c.send(&json!({"hello": {"magic": "exo-discovery", "version": 999}}));
    assert!(c.closed_with("handshake").contains("999"));

    // Malformed after the hello: unknown request, wrong shape, not UTF-8.
    for bad in [
        &b"{\"unsubscribe\":null}\n"[..],
        b"[\"list\"]\n",
        b"\"\xff\xfe\"\n",
        b"{\"list\":null}{\"status\":null}\n",
    ] {
        let mut c = Json::hello(&sock);
        c.send_raw(bad);
        c.closed_with("malformed");
    }

    // A line longer than MAX_FRAME, with no newline in sight: refused once it passes the bound.
    let mut c = Json::hello(&sock);
    let mut w = c.w.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let mut big = b"{\"add_host\":{\"host\":\"".to_vec();
        big.resize(protocol::MAX_FRAME + 4096, b'a');
        // The agent may close before it all went: a broken pipe is expected then.
        let _ = w.write_all(&big);
    });
    let m = c.closed_with("malformed");
    assert!(m.contains("longer than"), "{m}");
    writer.join().unwrap();
    // A line of exactly MAX_FRAME bytes is read (and answered: it is no request).
    let mut c = Json::hello(&sock);
    let mut line = b"{\"add_host\":{\"host\":\"".to_vec();
    line.resize(protocol::MAX_FRAME - 3, b'a');
    line.extend_from_slice(b"\"}}\n");
    assert_eq!(line.len(), protocol::MAX_FRAME + 1);
    c.send_raw(&line);
    let e = c.recv().expect("an answer");
    assert_eq!(e["error"]["kind"], "bad-request", "{e}");

    // A hello that never ends is cut at the handshake timeout, as a silent binary client is.
    let mut c = Json::connect(&sock);
    c.send_raw(b"{\"hello\":");
    let started = Instant::now();
    assert!(c.recv().is_none());
    let waited = started.elapsed();
    assert!(
        waited + Duration::from_millis(500) >= exo_discovery::agent::server::HANDSHAKE_TIMEOUT,
        "closed after {waited:?}"
    );

    // The agent still serves both kinds of client.
    let mut c = Json::hello(&sock);
    assert_eq!(c.ask(json!("list")), json!({"snapshot": []}));
    let mut b = Client::connect(&sock).expect("binary client");
    assert!(b.list().unwrap().is_empty());
    // And a binary Hello still gets a binary Welcome.
    let mut s = UnixStream::connect(&sock).unwrap();
    s.write_all(&protocol::encode(&ClientMsg::Hello {
        magic: protocol::MAGIC.into(),
        version: protocol::PROTOCOL_VERSION,
    }))
    .unwrap();
    let mut prefix = [0u8; 4];
    s.read_exact(&mut prefix).unwrap();
    let mut body = vec![0u8; protocol::body_len(prefix).unwrap()];
    s.read_exact(&mut body).unwrap();
    assert!(matches!(
        protocol::decode::<AgentMsg>(&body),
        Ok(AgentMsg::Welcome { .. })
    ));
}

#[test]
fn a_json_client_of_another_uid_is_refused_before_a_byte_is_read() {
    let test = "a_json_client_of_another_uid_is_refused_before_a_byte_is_read";
    if !have_tool(test, "setpriv", "setpriv (util-linux)") {
        return;
    }
    let Some(mut n) = net(test) else {
        return;
    };
    let h = n.host("solo");
    let dir = n.dir.join("nobody");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let nobody = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
    ];
    let agent = n.agent_via(&h, "nobody-agent", &[], &nobody, &dir);
    // Root connects to nobody's agent: refused with a binary frame, whatever it would say.
    let mut s = UnixStream::connect(&agent.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut prefix = [0u8; 4];
    s.read_exact(&mut prefix).unwrap();
    assert_eq!(prefix[0], 0, "a binary frame, not a line");
    let mut body = vec![0u8; protocol::body_len(prefix).unwrap()];
    s.read_exact(&mut body).unwrap();
    match protocol::decode::<AgentMsg>(&body) {
        Ok(AgentMsg::Error { kind, message }) => {
            assert_eq!(kind, ErrorKind::Handshake);
            assert!(message.contains("uid 0"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let _ = s.write_all(b"{\"hello\":{\"magic\":\"exo-discovery\",\"version\":1}}\n");
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(rest.is_empty(), "nothing more: {rest:?}");
}

/// Voluntary context switches of the agent's main thread so far.
fn wakeups(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("voluntary_ctxt_switches")
}

#[test]
fn a_subscriber_that_went_away_costs_the_agent_nothing() {
    let Some(mut n) = net("a_subscriber_that_went_away_costs_the_agent_nothing") else {
        return;
    };
    let h = n.host("solo");
    let agent = n.agent(&h, "agent", &[]);
    let pid = n.pid(&agent);
    // A subscriber comes and goes; then a peer is handed over (an event for every subscriber).
    let mut c = Json::hello(&agent.socket);
    assert_eq!(c.ask(json!("subscribe")), json!({"snapshot": []}));
    drop(c);
    let listener = n.in_ns(&h, || std::net::TcpListener::bind("127.0.0.1:0").unwrap());
    let port = listener.local_addr().unwrap().port();
    let peer = libp2p_identity::Keypair::generate_ed25519()
        .public()
        .to_peer_id();
    let mut c = Json::hello(&agent.socket);
    let manual = format!("/ip4/127.0.0.1/tcp/{port}/p2p/{peer}");
    let done = c.ask(json!({"add_peer": {"multiaddr": manual}}));
    assert!(done["done"]["message"].is_string(), "{done}");
    let deadline = Instant::now() + WAIT;
    while c.ask(json!("list"))["snapshot"] == json!([]) {
        assert!(
            Instant::now() < deadline,
            "the manual peer was never handed over"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(c);
    // The agent is idle again: it does not wake up for the subscriber that is gone.
    std::thread::sleep(Duration::from_millis(500));
    let before = wakeups(pid);
    std::thread::sleep(Duration::from_secs(5));
    let woke = wakeups(pid) - before;
    eprintln!("agent main thread: {woke} wake-ups in 5 s");
    assert!(woke < 15, "{woke} wake-ups in 5 s of idling");
    drop(listener);
}
