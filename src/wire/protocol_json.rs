//! The local socket protocol's JSON line mode: the same conversation as [`crate::wire::protocol`],
//! one JSON object per line, for clients in any language. Pure, no I/O.
//!
//! A connection is in JSON mode when its first byte is `{` (a binary frame's first byte is the
//! high byte of a length of at most [`MAX_FRAME`], so always 0). Then every message, both ways,
//! is one line of UTF-8 JSON ending in `\n` (a `\r` before it is ignored, blank lines are
//! skipped). A line from a client longer than [`MAX_FRAME`] bytes, or one that is not a request
//! of the shapes below, is answered with an `error` line of kind `malformed`, and the connection
//! is closed, as a malformed frame is.
//!
//! Requests are one object with one key naming the request, its value the arguments; a request
//! without arguments may also be its name as a string (`"list"`) or the object with `null` or
//! `{}` (`{"list":null}`). Keys the agent does not know inside the arguments are ignored:
//!
//! ```text
//! {"hello":{"magic":"exo-discovery","version":1}}
//! {"register":{"signed_record":"<hex, as `exo-discovery sign` prints it>"}}
//! "list"  "status"  "subscribe"
//! {"add_host":{"host":"192.168.0.134"}}  {"remove_host":{"host":"…"}}
//! {"add_peer":{"multiaddr":"/ip4/10.0.0.5/tcp/4001/p2p/12D3…"}}
//! ```
//!
//! The agent's messages are one object with one key naming the message, whose value is what the
//! command line prints for the same thing: `snapshot` holds the array `peers --json` prints,
//! `event` one line of `watch --json`, `status` the object of `status --json`:
//!
//! ```text
//! {"welcome":{"version":1,"namespace":"exo"}}
//! {"registered":{"peer_id":"12D3…"}}
//! {"done":{"message":"…"}}
//! {"snapshot":[{"peer_id":"12D3…","addrs":[…],"interfaces":[…],"source":"mdns","verified":[…],"seq":…}]}
//! {"event":{"event":"discovered","peer_id":"12D3…",…}}
//! {"status":{…}}
//! {"error":{"kind":"rejected","reason":"namespace","message":"wrong namespace: …"}}
//! ```
//!
//! A snapshot is always one line, whatever its size (no `SnapshotPart` in this mode).

use crate::wire::protocol::{AgentMsg, ClientMsg, ErrorKind, MAX_FRAME};
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// The first byte of a connection in JSON mode.
pub const FIRST_BYTE: u8 = b'{';

/// Why a client's line was not taken.
#[derive(Debug, PartialEq, Eq)]
pub enum LineError {
    /// Not a request of a known shape: answered with an error of kind `malformed`, and the
    /// connection is closed.
    Malformed(String),
    /// A request of a known shape with an argument that is not valid (a signed record that is
    /// not hex): answered with an error of kind `bad-request`; the connection stays open.
    BadRequest(String),
}

#[derive(Deserialize)]
struct Hello {
    magic: String,
    version: u16,
}

#[derive(Deserialize)]
struct Register {
    signed_record: String,
}

#[derive(Deserialize)]
struct Host {
    host: String,
}

#[derive(Deserialize)]
struct Peer {
    multiaddr: String,
}

/// Parses one line from a client (without its `\n`; a trailing `\r` is allowed) as a request.
pub fn parse_request(line: &[u8]) -> Result<ClientMsg, LineError> {
    if line.len() > MAX_FRAME {
        return Err(LineError::Malformed(format!(
            "line longer than {MAX_FRAME} bytes"
        )));
    }
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let value: Value =
        serde_json::from_slice(line).map_err(|e| LineError::Malformed(format!("not JSON: {e}")))?;
    let (name, args) = match value {
        Value::String(name) => (name, Value::Null),
        Value::Object(map) if map.len() == 1 => match map.into_iter().next() {
            Some(pair) => pair,
            None => return Err(shape()),
        },
        _ => return Err(shape()),
    };
    let no_args = |msg: ClientMsg| match &args {
        // Keys it does not know are ignored, as in any request's arguments.
        Value::Null | Value::Object(_) => Ok(msg),
        _ => Err(LineError::Malformed(format!(
            "{name:?} takes no arguments (null or {{}})"
        ))),
    };
    match name.as_str() {
        "hello" => {
            let h: Hello = arguments(&name, args)?;
            Ok(ClientMsg::Hello {
                magic: h.magic,
                version: h.version,
            })
        }
        "register" => {
            let r: Register = arguments(&name, args)?;
            let signed_record = from_hex(r.signed_record.trim()).ok_or_else(|| {
                LineError::BadRequest(
                    "signed_record must be hex, as `exo-discovery sign` prints it".into(),
                )
            })?;
            Ok(ClientMsg::Register { signed_record })
        }
        "list" => no_args(ClientMsg::List),
        "status" => no_args(ClientMsg::Status),
        "subscribe" => no_args(ClientMsg::Subscribe),
        "mesh" => no_args(ClientMsg::Mesh),
        "add_host" => {
            let h: Host = arguments(&name, args)?;
            Ok(ClientMsg::AddHost { host: h.host })
        }
        "remove_host" => {
            let h: Host = arguments(&name, args)?;
            Ok(ClientMsg::RemoveHost { host: h.host })
        }
        "add_peer" => {
            let p: Peer = arguments(&name, args)?;
            Ok(ClientMsg::AddPeer {
                multiaddr: p.multiaddr,
            })
        }
        _ => Err(LineError::Malformed(format!(
            "unknown request {name:?} (hello, register, list, status, subscribe, add_host, \
             remove_host, add_peer, mesh)"
        ))),
    }
}

fn shape() -> LineError {
    LineError::Malformed(
        "expected an object with one key naming the request, or the request's name as a string"
            .into(),
    )
}

fn arguments<T: for<'de> Deserialize<'de>>(name: &str, args: Value) -> Result<T, LineError> {
    serde_json::from_value(args)
        .map_err(|e| LineError::Malformed(format!("bad arguments for {name:?}: {e}")))
}

/// The JSON form of one of the agent's messages (see the module docs).
pub fn agent_json(msg: &AgentMsg) -> Value {
    let to = |v: Result<Value, serde_json::Error>| v.unwrap_or_default();
    match msg {
        AgentMsg::Welcome { version, namespace } => {
            json!({"welcome": {"version": version, "namespace": namespace}})
        }
        AgentMsg::Status(st) => json!({ "status": to(serde_json::to_value(st)) }),
        AgentMsg::Done { message } => json!({"done": {"message": message}}),
        AgentMsg::Registered { peer_id } => json!({"registered": {"peer_id": peer_id}}),
        AgentMsg::Snapshot(peers) => json!({ "snapshot": to(serde_json::to_value(peers)) }),
        AgentMsg::SnapshotPart(peers) => {
            json!({ "snapshot_part": to(serde_json::to_value(peers)) })
        }
        AgentMsg::Event(ev) => json!({ "event": ev.to_json() }),
        AgentMsg::Mesh(hosts) => json!({ "mesh": to(serde_json::to_value(hosts)) }),
        AgentMsg::Error { kind, message } => {
            let mut body = Map::new();
            body.insert("kind".into(), error_kind(*kind).into());
            if let ErrorKind::Rejected(why) = kind {
                body.insert("reason".into(), why.as_str().into());
            }
            body.insert("message".into(), message.as_str().into());
            json!({ "error": body })
        }
    }
}

/// One of the agent's messages as one line, `\n` included.
pub fn agent_line(msg: &AgentMsg) -> Vec<u8> {
    let mut line = agent_json(msg).to_string().into_bytes();
    line.push(b'\n');
    line
}

/// The JSON name of an error kind: `malformed`, `handshake`, `rejected`, `limit`,
/// `bad-request`.
pub fn error_kind(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Malformed => "malformed",
        ErrorKind::Handshake => "handshake",
        ErrorKind::Rejected(_) => "rejected",
        ErrorKind::Limit => "limit",
        ErrorKind::BadRequest => "bad-request",
    }
}

/// Bytes as lower-case hex: the text form of a signed record (`exo-discovery sign`, and
/// `register` in JSON mode).
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Hex (either case, an even number of digits, nothing else) as bytes.
pub fn from_hex(text: &str) -> Option<Vec<u8>> {
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let text = text.as_bytes();
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.chunks_exact(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::protocol::{EventKind, PeerEvent, PeerInfo, Source, Verification};
    use crate::wire::record::Reject;

    fn info() -> PeerInfo {
        PeerInfo {
            peer_id: "12D3KooW".into(),
            addrs: vec!["/ip4/10.0.0.1/tcp/1/p2p/12D3KooW".into()],
            interfaces: vec!["eth0".into()],
            source: Source::Exchange,
            verified: vec![Verification::Signature, Verification::Reachable],
            seq: 3,
        }
    }

    #[test]
    fn every_request_parses_in_its_friendly_forms() {
        let ok = |line: &str| parse_request(line.as_bytes()).unwrap();
        assert_eq!(
            ok(r#"{"hello":{"magic":"exo-discovery","version":1}}"#),
            ClientMsg::Hello {
                magic: "exo-discovery".into(),
                version: 1
            }
        );
        // Unknown keys beside the known ones are ignored (a client may say `"mode":"json"`).
        assert_eq!(
            ok(r#"{"hello":{"magic":"exo-discovery","version":1,"mode":"json"}}"#),
            ok(r#"{"hello":{"magic":"exo-discovery","version":1}}"#)
        );
        assert_eq!(
            ok(r#"{"register":{"signed_record":"00ff10Ab"}}"#),
            ClientMsg::Register {
                signed_record: vec![0, 0xff, 0x10, 0xab]
            }
        );
        for form in [
            r#""list""#,
            r#"{"list":null}"#,
            r#"{"list":{}}"#,
            r#"{"list":{"since":0}}"#,
            "\"list\"\r",
        ] {
            assert_eq!(ok(form), ClientMsg::List, "{form}");
        }
        assert_eq!(ok(r#""status""#), ClientMsg::Status);
        assert_eq!(ok(r#"{"subscribe":null}"#), ClientMsg::Subscribe);
        assert_eq!(
            ok(r#"{"add_host":{"host":"10.0.0.2"}}"#),
            ClientMsg::AddHost {
                host: "10.0.0.2".into()
            }
        );
        assert_eq!(
            ok(r#"{"remove_host":{"host":"10.0.0.2"}}"#),
            ClientMsg::RemoveHost {
                host: "10.0.0.2".into()
            }
        );
        assert_eq!(
            ok(r#"{"add_peer":{"multiaddr":"/ip4/10.0.0.5/tcp/1/p2p/12D3"}}"#),
            ClientMsg::AddPeer {
                multiaddr: "/ip4/10.0.0.5/tcp/1/p2p/12D3".into()
            }
        );
    }

    #[test]
    fn bad_lines_are_malformed_and_a_bad_record_is_a_bad_request() {
        for line in [
            "",
            "{",
            "[]",
            "1",
            "null",
            "{}",
            r#"{"list":null,"status":null}"#,
            r#""hello""#,
            r#"{"hello":{"magic":"exo-discovery"}}"#,
            r#"{"hello":{"magic":"exo-discovery","version":70000}}"#,
            r#"{"list":[1]}"#,
            r#""unsubscribe""#,
            r#"{"register":{"signed_record":5}}"#,
            r#"{"add_host":"10.0.0.2"}"#,
        ] {
            assert!(
                matches!(parse_request(line.as_bytes()), Err(LineError::Malformed(_))),
                "{line}"
            );
        }
        assert!(matches!(
            parse_request(&[b'"', 0xff, 0xfe, b'"']),
            Err(LineError::Malformed(_))
        ));
        for hex in ["0", "zz", "00 11", "\u{e9}\u{e9}"] {
            let line = json!({"register": {"signed_record": hex}}).to_string();
            assert!(
                matches!(
                    parse_request(line.as_bytes()),
                    Err(LineError::BadRequest(_))
                ),
                "{hex}"
            );
        }
        let long = vec![b' '; MAX_FRAME + 1];
        assert!(matches!(
            parse_request(&long),
            Err(LineError::Malformed(m)) if m.contains("longer than")
        ));
    }

    #[test]
    fn nothing_a_client_sends_makes_it_panic() {
        // Every prefix and every one-byte change of valid lines, with a small deterministic
        // generator: the parser answers each with a value.
        let seeds = [
            r#"{"hello":{"magic":"exo-discovery","version":1}}"#,
            r#"{"register":{"signed_record":"0a0b"}}"#,
            r#"{"add_peer":{"multiaddr":"/ip4/1.2.3.4/tcp/1"}}"#,
            r#""subscribe""#,
        ];
        let mut x: u32 = 0x9e37_79b9;
        for seed in seeds {
            let seed = seed.as_bytes();
            for n in 0..=seed.len() {
                let _ = parse_request(&seed[..n]);
            }
            for i in 0..seed.len() {
                for _ in 0..16 {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    let mut line = seed.to_vec();
                    line[i] = x as u8;
                    let _ = parse_request(&line);
                }
            }
        }
        let deep = "[".repeat(100_000);
        assert!(parse_request(deep.as_bytes()).is_err());
    }

    #[test]
    fn agent_messages_are_what_the_command_line_prints() {
        let ev = PeerEvent {
            event: EventKind::Discovered,
            peer: info(),
        };
        assert_eq!(
            agent_json(&AgentMsg::Event(ev.clone())),
            json!({ "event": ev.to_json() })
        );
        let snap = agent_json(&AgentMsg::Snapshot(vec![info()]));
        assert_eq!(snap["snapshot"][0]["source"], "exchange");
        assert_eq!(snap["snapshot"][0]["verified"][1], "reachable");
        assert_eq!(
            snap["snapshot"],
            serde_json::to_value(vec![info()]).unwrap()
        );
        assert_eq!(
            String::from_utf8(agent_line(&AgentMsg::Welcome {
                version: 1,
                namespace: "exo".into()
            }))
            .unwrap(),
            "{\"welcome\":{\"namespace\":\"exo\",\"version\":1}}\n"
        );
        assert_eq!(
            agent_json(&AgentMsg::Error {
                kind: ErrorKind::Rejected(Reject::PeerIdMismatch),
                message: "m".into()
            }),
            json!({"error": {"kind": "rejected", "reason": "peer-id-mismatch", "message": "m"}})
        );
        assert_eq!(
            agent_json(&AgentMsg::Error {
                kind: ErrorKind::BadRequest,
                message: "m".into()
            }),
            json!({"error": {"kind": "bad-request", "message": "m"}})
        );
        assert_eq!(
            agent_json(&AgentMsg::Registered {
                peer_id: "12D3".into()
            }),
            json!({"registered": {"peer_id": "12D3"}})
        );
        assert_eq!(
            agent_json(&AgentMsg::Done {
                message: "ok".into()
            }),
            json!({"done": {"message": "ok"}})
        );
        // One line each, however the strings inside look.
        let line = agent_line(&AgentMsg::Done {
            message: "a\nb".into(),
        });
        assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1);
    }

    #[test]
    fn hex_round_trips() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(from_hex(&to_hex(&bytes)).unwrap(), bytes);
        assert_eq!(to_hex(&[0, 0xab]), "00ab");
        assert_eq!(from_hex("ABcd").unwrap(), vec![0xab, 0xcd]);
        assert_eq!(from_hex(""), Some(vec![]));
        assert_eq!(from_hex("+1"), None);
    }
}
