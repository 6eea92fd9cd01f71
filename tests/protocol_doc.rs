//! `docs/protocol.md`, checked against the code: every hex example is what the encoder writes,
//! every JSON example is what the JSON mode reads or writes, every table of variant indexes
//! matches the decoder (a variant inserted, moved or appended without the document fails here),
//! and every table of fields lists them in the encoder's order.
//!
//! The document marks what is checked with HTML comments (invisible when rendered):
//! `<!-- hex: NAME -->`, `<!-- json-request: NAME -->`, `<!-- json-reply: NAME -->`,
//! `<!-- enum: TYPE -->` and `<!-- struct: TYPE -->`, each followed by its code block or table.

mod common;

use exo_discovery::wire::mesh;
use exo_discovery::wire::protocol::{
    self, AgentMsg, BudgetUse, ClientMsg, ErrorKind, EventKind, FamilyStatus, IfaceStatus,
    PeerEvent, PeerInfo, Source, StaticHostStatus, Status, UnusedIface, Verification,
};
use exo_discovery::wire::protocol_json::{self, LineError};
use exo_discovery::wire::record::{self, Record, Reject};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

fn doc() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/protocol.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The blocks the document marks with `<!-- KIND: NAME -->`, by name: the lines of the fenced
/// code block, or the rows of the table, that follow the marker.
fn marked(doc: &str, kind: &str) -> BTreeMap<String, Vec<String>> {
    let open = format!("<!-- {kind}: ");
    let mut out = BTreeMap::new();
    let mut lines = doc.lines();
    while let Some(line) = lines.next() {
        let Some(name) = line
            .strip_prefix(&open)
            .and_then(|rest| rest.strip_suffix(" -->"))
        else {
            continue;
        };
        let mut block = Vec::new();
        let first = lines
            .next()
            .unwrap_or_else(|| panic!("nothing after the marker of {name}"));
        if first.starts_with('|') {
            block.push(first.to_owned());
            for line in lines.by_ref() {
                if !line.starts_with('|') {
                    break;
                }
                block.push(line.to_owned());
            }
            // The header and its separator.
            block.drain(..2);
        } else {
            assert!(first.starts_with("```"), "{name}: a code block or a table");
            for line in lines.by_ref() {
                if line.starts_with("```") {
                    break;
                }
                block.push(line.to_owned());
            }
        }
        assert!(
            out.insert(name.to_owned(), block).is_none(),
            "{kind} {name} twice"
        );
    }
    out
}

/// The cells of a table row, trimmed.
fn cells(row: &str) -> Vec<String> {
    row.trim_matches('|')
        .split('|')
        .map(|c| c.trim().to_owned())
        .collect()
}

fn unquote(cell: &str) -> &str {
    cell.trim_matches('`')
}

/// The bytes of an annotated hex block: on each line, the hex bytes before the first double
/// space; the rest is commentary.
fn hex_bytes(lines: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in lines {
        let hex = line.split("  ").next().unwrap_or_default();
        for token in hex.split_whitespace() {
            assert!(
                token.len() == 2,
                "not a hex byte: {token:?} in {line:?} (commentary goes after two spaces)"
            );
            out.push(u8::from_str_radix(token, 16).unwrap_or_else(|_| panic!("{token:?}")));
        }
    }
    out
}

/// A value of `T` read from its variant index (or nothing) followed by zeros: empty strings and
/// lists, zero numbers, the first variant of every enum inside.
fn from_zeros<T: DeserializeOwned>(head: &[u8]) -> Result<T, postcard::Error> {
    let mut bytes = head.to_vec();
    bytes.extend([0u8; 256]);
    postcard::take_from_bytes::<T>(&bytes).map(|(v, _)| v)
}

/// The name of the variant a value's `Debug` starts with.
fn variant_name<T: std::fmt::Debug>(v: &T) -> String {
    format!("{v:?}")
        .chars()
        .take_while(|c| c.is_alphanumeric())
        .collect()
}

/// Where a table keeps a JSON name (its column), and how the code names a value in JSON.
type JsonColumn<T> = (usize, fn(&T) -> String);

/// Checks a marked enum table: indexes 0, 1, … in order, each naming the variant the decoder
/// reads for that index, which the encoder writes with that index; no variant after the last;
/// and, if `json` is given, the column `json.0` holds the JSON name `json.1` gives.
fn check_enum<T: DeserializeOwned + Serialize + std::fmt::Debug>(
    tables: &BTreeMap<String, Vec<String>>,
    name: &str,
    json: Option<JsonColumn<T>>,
) {
    let rows = tables
        .get(name)
        .unwrap_or_else(|| panic!("no table of {name} in the document"));
    for (i, row) in rows.iter().enumerate() {
        let c = cells(row);
        assert_eq!(c[0], i.to_string(), "{name}: indexes go 0, 1, …: {row}");
        let v: T = from_zeros(&[i as u8])
            .unwrap_or_else(|e| panic!("{name}: index {i} does not decode ({e}): {row}"));
        assert_eq!(
            variant_name(&v),
            unquote(&c[1]),
            "{name}: index {i} is not the variant the document says"
        );
        assert_eq!(
            postcard::to_stdvec(&v).unwrap()[0],
            i as u8,
            "{name}: {v:?} encodes with another index"
        );
        if let Some((col, json_name)) = json {
            assert_eq!(
                json_name(&v),
                unquote(&c[col]),
                "{name}: JSON name of {v:?}"
            );
        }
    }
    assert!(
        from_zeros::<T>(&[rows.len() as u8]).is_err(),
        "{name} has a variant at index {} that the document does not list",
        rows.len()
    );
}

/// The keys of the outermost JSON object in `text`, in the order they appear.
fn top_level_keys(text: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let (mut depth, mut in_str, mut escaped) = (0, false, false);
    let mut current = String::new();
    let mut last_string: Option<String> = None;
    for ch in text.chars() {
        if in_str {
            if escaped {
                escaped = false;
                current.push(ch);
            } else if ch == '\\' {
                escaped = true;
            } else if ch == '"' {
                in_str = false;
                last_string = Some(std::mem::take(&mut current));
            } else {
                current.push(ch);
            }
            continue;
        }
        match ch {
            '"' => in_str = true,
            '{' | '[' => depth += 1,
            '}' | ']' => depth -= 1,
            ':' if depth == 1 => keys.extend(last_string.take()),
            _ => {}
        }
        if ch != '"' && !ch.is_whitespace() && ch != ':' {
            last_string = None;
        }
    }
    keys
}

/// Checks a marked struct table: its fields, in order, are the encoder's (serde writes a
/// struct's fields in declaration order, as postcard does).
fn check_struct<T: DeserializeOwned + Serialize>(
    tables: &BTreeMap<String, Vec<String>>,
    name: &str,
) {
    let rows = tables
        .get(name)
        .unwrap_or_else(|| panic!("no table of {name} in the document"));
    let doc_fields: Vec<String> = rows
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let c = cells(row);
            assert_eq!(
                c[0],
                (i + 1).to_string(),
                "{name}: fields are numbered 1, 2, …"
            );
            unquote(&c[1]).to_owned()
        })
        .collect();
    let v: T = from_zeros(&[]).unwrap_or_else(|e| panic!("{name} from zeros: {e}"));
    let text = serde_json::to_string(&v).unwrap();
    assert_eq!(
        doc_fields,
        top_level_keys(&text),
        "{name}: the document's fields are not the encoder's, in its order"
    );
}

fn peer() -> PeerInfo {
    PeerInfo {
        peer_id: "12D3KooWA".into(),
        addrs: vec!["/ip4/10.0.0.2/tcp/4001/p2p/12D3KooWA".into()],
        interfaces: vec!["eth0".into()],
        source: Source::Mdns,
        verified: vec![Verification::Signature, Verification::Reachable],
        seq: 300,
    }
}

/// The key of the signed record example: the Ed25519 secret 01 01 … 01.
fn example_key() -> libp2p_identity::Keypair {
    libp2p_identity::Keypair::ed25519_from_bytes([1u8; 32]).unwrap()
}

fn example_record() -> Vec<u8> {
    let addr = "/ip4/0.0.0.0/tcp/4001".parse().unwrap();
    record::sign(&example_key(), "exo", 1, &[addr]).unwrap()
}

fn bad_hex_message() -> String {
    match protocol_json::parse_request(br#"{"register":{"signed_record":"xyz"}}"#) {
        Err(LineError::BadRequest(m)) => m,
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_hex_examples_are_what_the_encoder_writes() {
    let blocks = marked(&doc(), "hex");
    let want: BTreeMap<&str, Vec<u8>> = [
        (
            "hello",
            protocol::encode(&ClientMsg::Hello {
                magic: protocol::MAGIC.into(),
                version: protocol::PROTOCOL_VERSION,
            }),
        ),
        ("list", protocol::encode(&ClientMsg::List)),
        ("subscribe", protocol::encode(&ClientMsg::Subscribe)),
        (
            "register",
            protocol::encode(&ClientMsg::Register {
                signed_record: vec![0xde, 0xad, 0xbe, 0xef],
            }),
        ),
        (
            "welcome",
            protocol::encode(&AgentMsg::Welcome {
                version: protocol::PROTOCOL_VERSION,
                namespace: "exo".into(),
            }),
        ),
        (
            "event",
            protocol::encode(&AgentMsg::Event(PeerEvent {
                event: EventKind::Discovered,
                peer: peer(),
            })),
        ),
        (
            "error",
            protocol::encode(&AgentMsg::Error {
                kind: ErrorKind::Rejected(Reject::Namespace),
                message: "wrong namespace".into(),
            }),
        ),
        ("signed_record", example_record()),
    ]
    .into_iter()
    .collect();
    assert_eq!(
        blocks.keys().map(String::as_str).collect::<Vec<_>>(),
        want.keys().copied().collect::<Vec<_>>(),
        "the hex examples in the document"
    );
    for (name, bytes) in &want {
        let got = hex_bytes(&blocks[*name]);
        assert_eq!(
            protocol_json::to_hex(&got),
            protocol_json::to_hex(bytes),
            "hex example {name}: the document, then the encoder"
        );
    }
}

#[test]
fn the_signed_record_example_is_as_the_document_explains_it() {
    let signed = example_record();
    // The envelope: three byte strings, nothing after them.
    let (env, rest): ((Vec<u8>, Vec<u8>, Vec<u8>), _) = postcard::take_from_bytes(&signed).unwrap();
    assert!(rest.is_empty());
    let (rec, public_key, signature) = env;
    let record: Record = postcard::from_bytes(&rec).unwrap();
    assert_eq!(record.version, 1);
    assert_eq!(record.namespace, "exo");
    assert_eq!(record.seq, 1);
    assert_eq!(&record.peer_id[..2], &[0x00, 0x24]);
    assert_eq!(&record.peer_id[2..], &public_key[..]);
    assert_eq!(&public_key[..4], &[0x08, 0x01, 0x12, 0x20]);
    assert_eq!(public_key.len(), 36);
    assert_eq!(signature.len(), 64);
    let mut msg = b"exo-discovery/peer-record/v1\0".to_vec();
    assert_eq!(msg, record::SIGNING_CONTEXT);
    msg.extend_from_slice(&rec);
    assert!(example_key().public().verify(&msg, &signature));
    let verified = record::verify(&signed, "exo").unwrap();
    let text = doc();
    assert!(
        text.contains(&verified.peer_id.to_string()),
        "peer ID in the document"
    );
    assert!(signed.len() <= record::MAX_SIGNED_RECORD);
    assert!(text.contains(&format!(
        "The whole envelope is at most {} bytes",
        record::MAX_SIGNED_RECORD
    )));
}

#[test]
fn sign_prints_the_example_record_in_hex() {
    let dir = std::env::temp_dir().join(format!("exo-discovery-doc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("example.key");
    std::fs::write(&key, example_key().to_protobuf_encoding().unwrap()).unwrap();
    let out = common::bin()
        .args(["sign", "--key"])
        .arg(&key)
        .args(["--addr", "/ip4/0.0.0.0/tcp/4001", "--seq", "1"])
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("{}\n", protocol_json::to_hex(&example_record()))
    );
}

#[test]
fn the_json_examples_are_what_json_mode_reads_and_writes() {
    let text = doc();
    let requests = marked(&text, "json-request");
    let want: BTreeMap<&str, ClientMsg> = [
        (
            "hello",
            ClientMsg::Hello {
                magic: protocol::MAGIC.into(),
                version: protocol::PROTOCOL_VERSION,
            },
        ),
        (
            "register",
            ClientMsg::Register {
                signed_record: vec![0xde, 0xad, 0xbe, 0xef],
            },
        ),
        ("list", ClientMsg::List),
        ("status", ClientMsg::Status),
        ("subscribe", ClientMsg::Subscribe),
        ("mesh", ClientMsg::Mesh),
        (
            "add_host",
            ClientMsg::AddHost {
                host: "192.168.0.134".into(),
            },
        ),
        (
            "remove_host",
            ClientMsg::RemoveHost {
                host: "192.168.0.134".into(),
            },
        ),
        (
            "add_peer",
            ClientMsg::AddPeer {
                multiaddr: "/ip4/10.0.0.5/tcp/4001/p2p/12D3KooWA".into(),
            },
        ),
    ]
    .into_iter()
    .collect();
    assert_eq!(
        requests.keys().map(String::as_str).collect::<Vec<_>>(),
        want.keys().copied().collect::<Vec<_>>(),
        "the JSON requests in the document"
    );
    for (name, msg) in &want {
        let lines: Vec<&String> = requests[*name].iter().filter(|l| !l.is_empty()).collect();
        assert!(!lines.is_empty(), "{name}: no example");
        for line in lines {
            assert_eq!(
                &protocol_json::parse_request(line.as_bytes())
                    .unwrap_or_else(|e| panic!("{name}: {line}: {e:?}")),
                msg,
                "{name}: {line}"
            );
        }
    }

    let replies = marked(&text, "json-reply");
    let want: BTreeMap<&str, AgentMsg> = [
        (
            "welcome",
            AgentMsg::Welcome {
                version: protocol::PROTOCOL_VERSION,
                namespace: "exo".into(),
            },
        ),
        (
            "registered",
            AgentMsg::Registered {
                peer_id: "12D3KooWA".into(),
            },
        ),
        (
            "done",
            AgentMsg::Done {
                message: "asking 192.168.0.134 for its agent's records".into(),
            },
        ),
        ("snapshot", AgentMsg::Snapshot(vec![peer()])),
        (
            "event",
            AgentMsg::Event(PeerEvent {
                event: EventKind::Discovered,
                peer: peer(),
            }),
        ),
        (
            "error",
            AgentMsg::Error {
                kind: ErrorKind::Rejected(Reject::Namespace),
                message: "wrong namespace".into(),
            },
        ),
        (
            "bad_request",
            AgentMsg::Error {
                kind: ErrorKind::BadRequest,
                message: bad_hex_message(),
            },
        ),
    ]
    .into_iter()
    .collect();
    assert_eq!(
        replies.keys().map(String::as_str).collect::<Vec<_>>(),
        want.keys().copied().collect::<Vec<_>>(),
        "the JSON replies in the document"
    );
    for (name, msg) in &want {
        let lines = &replies[*name];
        assert_eq!(lines.len(), 1, "{name}: one line");
        let got: serde_json::Value =
            serde_json::from_str(&lines[0]).unwrap_or_else(|e| panic!("{name}: {e}: {}", lines[0]));
        assert_eq!(got, protocol_json::agent_json(msg), "{name}");
    }
}

#[test]
fn the_enum_tables_are_the_encoders_indexes() {
    let tables = marked(&doc(), "enum");
    assert_eq!(
        tables.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "AgentMsg",
            "ClientMsg",
            "ErrorKind",
            "EventKind",
            "Reject",
            "Source",
            "Verification"
        ],
        "the enum tables in the document"
    );
    fn serde_name<T: Serialize>(v: &T) -> String {
        serde_json::to_value(v)
            .ok()
            .and_then(|j| j.as_str().map(str::to_owned))
            .unwrap_or_default()
    }
    check_enum::<ClientMsg>(&tables, "ClientMsg", None);
    check_enum::<AgentMsg>(&tables, "AgentMsg", None);
    check_enum::<ErrorKind>(
        &tables,
        "ErrorKind",
        Some((3, |k| protocol_json::error_kind(*k).into())),
    );
    check_enum::<Reject>(&tables, "Reject", Some((2, |r| r.as_str().into())));
    check_enum::<EventKind>(&tables, "EventKind", Some((2, serde_name)));
    check_enum::<Source>(&tables, "Source", Some((2, serde_name)));
    check_enum::<Verification>(&tables, "Verification", Some((2, serde_name)));
}

#[test]
fn the_struct_tables_are_the_encoders_field_order() {
    let tables = marked(&doc(), "struct");
    assert_eq!(
        tables.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "BudgetUse",
            "Envelope",
            "FamilyStatus",
            "Heard",
            "HostView",
            "IfaceStatus",
            "LinkView",
            "PeerEvent",
            "PeerInfo",
            "Record",
            "Seen",
            "StaticHostStatus",
            "Status",
            "UnusedIface",
            "View"
        ],
        "the struct tables in the document"
    );
    check_struct::<PeerInfo>(&tables, "PeerInfo");
    check_struct::<PeerEvent>(&tables, "PeerEvent");
    check_struct::<Status>(&tables, "Status");
    check_struct::<IfaceStatus>(&tables, "IfaceStatus");
    check_struct::<FamilyStatus>(&tables, "FamilyStatus");
    check_struct::<UnusedIface>(&tables, "UnusedIface");
    check_struct::<StaticHostStatus>(&tables, "StaticHostStatus");
    check_struct::<BudgetUse>(&tables, "BudgetUse");
    check_struct::<Record>(&tables, "Record");
    check_struct::<mesh::HostView>(&tables, "HostView");
    check_struct::<mesh::View>(&tables, "View");
    check_struct::<mesh::LinkView>(&tables, "LinkView");
    check_struct::<mesh::Heard>(&tables, "Heard");
    check_struct::<mesh::Seen>(&tables, "Seen");
    // The envelope's type is private: its three byte strings are checked through the example
    // (the_signed_record_example_is_as_the_document_explains_it); here, their names and order.
    let envelope: Vec<String> = tables["Envelope"]
        .iter()
        .map(|r| unquote(&cells(r)[1]).to_owned())
        .collect();
    assert_eq!(envelope, ["record", "public_key", "signature"]);
}

#[test]
fn the_limits_in_the_document_are_the_codes() {
    let text = doc();
    assert_eq!(protocol::MAX_FRAME, 1_048_576);
    assert!(text.contains("`MAX_FRAME` = 1,048,576 (1 MiB)"));
    assert_eq!(protocol::PROTOCOL_VERSION, 2);
    assert!(text.contains("The protocol\nversion is 2"));
    assert_eq!(protocol::OLDEST_VERSION, 1);
    assert!(text.contains("The agent also speaks version 1"));
    assert_eq!(exo_discovery::agent::server::MAX_CONNECTIONS, 128);
    assert!(text.contains("At most 128 connections"));
    assert_eq!(exo_discovery::agent::server::HANDSHAKE_TIMEOUT.as_secs(), 5);
    assert!(text.contains("within 5 seconds"));
    assert_eq!(exo_discovery::agent::server::IDLE_TIMEOUT.as_secs(), 30);
    assert!(text.contains("once 30 seconds pass without a\n  request"));
    assert_eq!(exo_discovery::agent::server::OWN_BYTES, 8 * 1024);
    assert_eq!(exo_discovery::agent::server::SHARED_BYTES, 4 << 20);
    assert!(text.contains("up to 8 KiB of its own"));
    assert!(text.contains("from 4 MiB\n  shared"));
    assert_eq!(exo_discovery::agent::server::CLIENT_QUEUE, 256);
    assert!(text.contains("more than 256 messages queued"));
    assert_eq!(
        exo_discovery::client::MAX_SNAPSHOT_BYTES,
        64 * protocol::MAX_FRAME
    );
    assert!(text.contains("gives up past 64 MiB"));
    assert_eq!(record::MAX_ADDRS, 24);
    assert_eq!(record::MAX_NAMESPACE, 64);
    assert!(text.contains("at most 24 listen multiaddrs"));
    assert!(text.contains("1 to 64 bytes"));
    assert_eq!(exo_discovery::engine::registrations::MAX_REGISTRATIONS, 16);
    assert!(text.contains("the agent announces at most 16 nodes"));
    assert_eq!(protocol_json::FIRST_BYTE, 0x7b);
}

// The Python client of the JSON mode (run in `tests/json_socket.rs`), as the README shows it.
#[test]
fn the_readme_shows_the_python_client_as_it_is() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = std::fs::read_to_string(root.join("examples/json_client.py")).unwrap();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    assert!(
        readme.contains(&format!("```python\n{script}```\n")),
        "README.md must show examples/json_client.py exactly, in a ```python block"
    );
}
