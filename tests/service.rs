//! Checks of the service files in `config/`: the systemd unit `exo-discovery.service`, the Debian
//! package's copy of it `deb/exo-discovery.service` (the package itself is checked by
//! `tests/deb.rs`) and the launchd plist `io.exo.discovery.plist`. No macOS tool is needed: the
//! plist is read by the `plist` crate, and what that crate skips (declaration, DOCTYPE, comments,
//! repeated keys) from quick-xml's events. The unit is read by a parser of its own and, where
//! `systemd-analyze` is installed, verified by systemd itself (on a copy that points at the built
//! binary; the agent is never started). Nothing here sends network traffic.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

const UNIT: &str = include_str!("../config/exo-discovery.service");
const UNIT_NAME: &str = "exo-discovery.service";
const PLIST: &str = include_str!("../config/io.exo.discovery.plist");
const PLIST_NAME: &str = "io.exo.discovery.plist";
const BIN: &str = env!("CARGO_BIN_EXE_exo-discovery");
/// What the shipped files hold where the node's user name belongs.
const USER_PLACEHOLDER: &str = "REPLACE_WITH_USER";
/// Where the shipped unit expects the binary.
const INSTALLED_BIN: &str = "/usr/local/bin/exo-discovery";
/// The Debian package's copy of the unit (`cargo deb`, see `[package.metadata.deb]`).
const DEB_UNIT: &str = include_str!("../config/deb/exo-discovery.service");
/// Where the Debian package installs the binary.
const DEB_BIN: &str = "/usr/bin/exo-discovery";
/// Where the Debian package installs the configuration file, which its unit reads.
const DEB_CONFIG: &str = "/etc/exo-discovery/exo-discovery.toml";

// ---------------------------------------------------------------------------------------------
// Reading the plist: its values with the `plist` crate; what that crate skips (the XML
// declaration, the DOCTYPE, the root's attributes, comments, entities it does not know, and
// whether each `<dict>` alternates `<key>` and value without repeating a key) from the XML events
// of `quick-xml`, the reader the `plist` crate itself is built on.
// ---------------------------------------------------------------------------------------------

/// The DOCTYPE of an XML property list, whitespace-normalised.
const PLIST_DOCTYPE: &str = r#"plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd""#;

/// A property list as the checks see it.
struct Plist {
    /// The top-level `<dict>`.
    top: plist::Dictionary,
    /// Every comment's text, in order.
    comments: Vec<String>,
}

/// Reads an XML property list strictly: well-formed XML, the XML declaration first, the Apple
/// DOCTYPE, one `<dict>` in `<plist version="1.0">`, and nothing a lenient reader would let pass.
fn read_plist(text: &str) -> Result<Plist, String> {
    let comments = xml_facts(text)?;
    let value =
        plist::Value::from_reader_xml(text.as_bytes()).map_err(|e| format!("plist: {e}"))?;
    match value {
        plist::Value::Dictionary(top) => Ok(Plist { top, comments }),
        other => Err(format!("<plist> holds {}, not <dict>", kind(&other))),
    }
}

/// An element open while [`xml_facts`] reads.
enum Open {
    /// A `<dict>`: its keys so far, and whether a `<key>` comes next.
    Dict {
        keys: BTreeSet<String>,
        want_key: bool,
    },
    /// A `<key>`: its text so far.
    Key(String),
    /// Any other element.
    Other,
}

/// The checks the `plist` crate does not make, on quick-xml's events. Returns the comments.
fn xml_facts(text: &str) -> Result<Vec<String>, String> {
    use quick_xml::escape::resolve_predefined_entity;
    use quick_xml::events::Event;

    if let Some(c) = text
        .chars()
        .find(|c| (*c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r'))
    {
        return Err(format!("control character {c:?}"));
    }
    let mut reader = quick_xml::Reader::from_str(text);
    let config = reader.config_mut();
    config.check_comments = true;
    config.check_end_names = true;
    config.expand_empty_elements = true;
    let mut declaration = None;
    let mut doctype = None;
    let mut comments = Vec::new();
    let mut root_seen = false;
    let mut open: Vec<Open> = Vec::new();
    let mut first = true;
    loop {
        let at = reader.buffer_position();
        let err = |msg: String| format!("byte {at}: {msg}");
        let event = reader.read_event().map_err(|e| err(e.to_string()))?;
        let was_first = std::mem::replace(&mut first, false);
        match event {
            Event::Decl(d) => {
                if !was_first {
                    return Err(err("the XML declaration is not at the very start".into()));
                }
                declaration = Some(d.version().map_err(|e| err(e.to_string()))?.into_owned());
            }
            Event::DocType(d) => {
                if root_seen || doctype.is_some() {
                    return Err(err("a DOCTYPE after the root, or a second one".into()));
                }
                let body = d.into_inner();
                doctype = Some(body.split_whitespace().collect::<Vec<_>>().join(" "));
            }
            Event::Comment(c) => comments.push(c.into_inner().into_owned()),
            Event::Text(t) => {
                if let Some(Open::Key(key)) = open.last_mut() {
                    key.push_str(&t.into_inner());
                }
            }
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => Some(c.to_string()),
                    Ok(None) => resolve_predefined_entity(&r).map(str::to_owned),
                    Err(_) => None,
                };
                let Some(resolved) = resolved else {
                    return Err(err(format!("undefined entity &{};", &*r)));
                };
                if let Some(Open::Key(key)) = open.last_mut() {
                    key.push_str(&resolved);
                }
            }
            Event::Start(e) => {
                let name = e.name().as_ref().to_owned();
                let attrs = e
                    .attributes()
                    .map(|a| {
                        let a = a.map_err(|e| err(e.to_string()))?;
                        let key = a.key.as_ref().to_owned();
                        Ok((key, a.value.into_owned()))
                    })
                    .collect::<Result<Vec<_>, String>>()?;
                if open.is_empty() {
                    if root_seen {
                        return Err(err(format!("a second root element <{name}>")));
                    }
                    root_seen = true;
                    if name != "plist" || attrs != [("version".to_owned(), "1.0".to_owned())] {
                        return Err(err(format!(
                            "the root is <{name}> with {attrs:?}, not <plist version=\"1.0\">"
                        )));
                    }
                } else if !attrs.is_empty() {
                    return Err(err(format!("<{name}> has attributes")));
                }
                match open.last_mut() {
                    Some(Open::Dict { want_key, .. }) if *want_key != (name == "key") => {
                        let belongs = if *want_key { "a <key>" } else { "a value" };
                        return Err(err(format!("<{name}> where {belongs} belongs in <dict>")));
                    }
                    Some(Open::Dict { want_key, .. }) => *want_key = !*want_key,
                    _ if name == "key" => {
                        return Err(err("a <key> outside a <dict>".into()));
                    }
                    _ => {}
                }
                open.push(match name.as_str() {
                    "dict" => Open::Dict {
                        keys: BTreeSet::new(),
                        want_key: true,
                    },
                    "key" => Open::Key(String::new()),
                    _ => Open::Other,
                });
            }
            Event::End(_) => match open.pop() {
                Some(Open::Dict {
                    want_key: false, ..
                }) => return Err(err("a <key> without a value".into())),
                Some(Open::Key(key)) => {
                    if let Some(Open::Dict { keys, .. }) = open.last_mut() {
                        if !keys.insert(key.clone()) {
                            return Err(err(format!("key {key:?} repeated")));
                        }
                    }
                }
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
    }
    if !open.is_empty() {
        return Err("an element is never closed".into());
    }
    if declaration.as_deref() != Some("1.0") {
        return Err(format!(
            "the XML declaration's version is {declaration:?}, not 1.0"
        ));
    }
    if doctype.as_deref() != Some(PLIST_DOCTYPE) {
        return Err(format!("the DOCTYPE is {doctype:?}, not the plist one"));
    }
    Ok(comments)
}

/// The plist element a value is written as.
fn kind(v: &plist::Value) -> &'static str {
    match v {
        plist::Value::Array(_) => "array",
        plist::Value::Dictionary(_) => "dict",
        plist::Value::Boolean(_) => "boolean",
        plist::Value::Data(_) => "data",
        plist::Value::Date(_) => "date",
        plist::Value::Real(_) => "real",
        plist::Value::Integer(_) => "integer",
        plist::Value::String(_) => "string",
        _ => "other value",
    }
}

// ---------------------------------------------------------------------------------------------
// The launchd job's content.
// ---------------------------------------------------------------------------------------------

/// What the agent's launchd job must say. Returns the program arguments.
fn check_launchd(top: &plist::Dictionary, file_name: &str) -> Result<Vec<String>, String> {
    use plist::Value;
    let mut errors = Vec::new();
    for key in [
        "Label",
        "ProgramArguments",
        "RunAtLoad",
        "KeepAlive",
        "UserName",
    ] {
        if top.get(key).is_none() {
            errors.push(format!("required key {key} is missing"));
        }
    }
    match top.get("Label") {
        Some(Value::String(label)) if format!("{label}.plist") == file_name => {}
        Some(Value::String(label)) => errors.push(format!(
            "Label {label:?} does not match the file name {file_name}"
        )),
        Some(v) => errors.push(format!("Label is a {}, not a string", kind(v))),
        None => {}
    }
    let mut args = Vec::new();
    match top.get("ProgramArguments") {
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::String(s) => args.push(s.clone()),
                    other => errors.push(format!(
                        "ProgramArguments[{i}] is a {}, not a string",
                        kind(other)
                    )),
                }
            }
            match args.first() {
                Some(p) if p.starts_with('/') && p.ends_with("/exo-discovery") => {}
                Some(p) => errors.push(format!(
                    "ProgramArguments[0] {p:?} is not an absolute path to exo-discovery"
                )),
                None => errors.push("ProgramArguments is empty".into()),
            }
            if args.get(1).map(String::as_str) != Some("run") {
                errors.push(format!(
                    "ProgramArguments does not run `exo-discovery run`: {args:?}"
                ));
            }
            for flag in ["--socket", "--state-dir"] {
                match args.iter().position(|a| a == flag).map(|i| args.get(i + 1)) {
                    Some(Some(path)) if path.starts_with('/') => {}
                    Some(other) => {
                        errors.push(format!("{flag} is followed by {other:?}, not a path"))
                    }
                    None => errors.push(format!("ProgramArguments lacks {flag}")),
                }
            }
        }
        Some(v) => errors.push(format!("ProgramArguments is a {}, not an array", kind(v))),
        None => {}
    }
    if top.get("RunAtLoad") != Some(&Value::Boolean(true)) {
        errors.push("RunAtLoad is not <true/>".into());
    }
    match top.get("KeepAlive") {
        Some(Value::Boolean(true) | Value::Dictionary(_)) | None => {}
        Some(v) => errors.push(format!("KeepAlive is {v:?}")),
    }
    match top.get("UserName") {
        Some(Value::String(u)) if u == USER_PLACEHOLDER => {}
        Some(v) => errors.push(format!(
            "UserName is {v:?}, not the placeholder {USER_PLACEHOLDER}"
        )),
        None => {}
    }
    match top.get("StandardErrorPath").and_then(Value::as_string) {
        Some(p) if p.starts_with('/') => {}
        other => errors.push(format!("StandardErrorPath is {other:?}")),
    }
    let log = top
        .get("EnvironmentVariables")
        .and_then(Value::as_dictionary)
        .and_then(|env| env.get("EXO_DISCOVERY_LOG"))
        .and_then(Value::as_string);
    if log != Some("info") {
        errors.push(format!(
            "EnvironmentVariables.EXO_DISCOVERY_LOG is {log:?}, not \"info\""
        ));
    }
    if errors.is_empty() {
        Ok(args)
    } else {
        Err(errors.join("; "))
    }
}

// ---------------------------------------------------------------------------------------------
// A systemd unit parser of our own.
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
struct Entry {
    section: String,
    key: String,
    value: String,
    line: usize,
}

/// Sections and `Key=Value` lines (comments, blank lines and backslash continuations as systemd
/// reads them). A line that is neither, a key outside a section or a repeated section is an error.
fn parse_unit(text: &str) -> Result<Vec<Entry>, String> {
    let mut entries = Vec::new();
    let mut sections: Vec<String> = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let trimmed = raw.trim();
        if pending.is_none() && (trimmed.is_empty() || trimmed.starts_with(['#', ';'])) {
            continue;
        }
        let (start, mut line) = match pending.take() {
            Some((start, mut acc)) => {
                if trimmed.starts_with(['#', ';']) {
                    pending = Some((start, acc));
                    continue;
                }
                acc.push(' ');
                acc.push_str(trimmed);
                (start, acc)
            }
            None => (line_no, trimmed.to_owned()),
        };
        if let Some(cont) = line.strip_suffix('\\') {
            line = cont.trim_end().to_owned();
            pending = Some((start, line));
            continue;
        }
        if let Some(name) = line.strip_prefix('[') {
            let name = name
                .strip_suffix(']')
                .filter(|n| !n.is_empty() && !n.contains([']', '[']))
                .ok_or(format!("line {start}: malformed section header {line:?}"))?;
            if sections.iter().any(|s| s == name) {
                return Err(format!("line {start}: section [{name}] repeated"));
            }
            sections.push(name.to_owned());
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("line {start}: not a Key=Value line: {line:?}"));
        };
        let key = key.trim();
        let well_formed = key.starts_with(|c: char| c.is_ascii_alphabetic())
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !well_formed {
            return Err(format!("line {start}: bad key {key:?}"));
        }
        let Some(section) = sections.last() else {
            return Err(format!("line {start}: {key}= before any section"));
        };
        entries.push(Entry {
            section: section.clone(),
            key: key.to_owned(),
            value: value.trim().to_owned(),
            line: start,
        });
    }
    if let Some((start, _)) = pending {
        return Err(format!(
            "line {start}: continuation runs past the end of the file"
        ));
    }
    Ok(entries)
}

/// Keys that may appear more than once in the unit (their values accumulate).
const REPEATABLE: &[&str] = &["SystemCallFilter", "Environment", "After", "Wants"];

/// The hardening the unit must carry: `[Service]` key and exact value.
const HARDENING: &[(&str, &str)] = &[
    ("Type", "simple"),
    ("Restart", "on-failure"),
    ("NoNewPrivileges", "yes"),
    ("ProtectSystem", "strict"),
    ("ProtectHome", "yes"),
    ("PrivateTmp", "yes"),
    ("RuntimeDirectory", "exo-discovery"),
    ("StateDirectory", "exo-discovery"),
    ("ProtectKernelTunables", "yes"),
    ("ProtectControlGroups", "yes"),
    ("ProtectKernelModules", "yes"),
    ("RestrictNamespaces", "yes"),
    ("LockPersonality", "yes"),
    ("MemoryDenyWriteExecute", "yes"),
    ("RestrictRealtime", "yes"),
    ("SystemCallArchitectures", "native"),
    ("CapabilityBoundingSet", ""),
    ("EnvironmentFile", "-/etc/default/exo-discovery"),
];

/// Settings that would break the agent, with the reason.
const FORBIDDEN: &[(&str, &str, &str)] = &[
    (
        "PrivateUsers",
        "yes",
        "the node's uid would be mapped away and refused",
    ),
    (
        "DynamicUser",
        "yes",
        "the agent must run as the node's user",
    ),
    (
        "RemoveIPC",
        "yes",
        "it would delete the node user's IPC objects",
    ),
    ("PrivateNetwork", "yes", "the agent's job is the LAN"),
];

fn service_values<'a>(entries: &'a [Entry], key: &str) -> Vec<&'a str> {
    entries
        .iter()
        .filter(|e| e.section == "Service" && e.key == key)
        .map(|e| e.value.as_str())
        .collect()
}

/// What the shipped unit must say. Returns the ExecStart arguments.
fn check_unit(entries: &[Entry]) -> Result<Vec<String>, String> {
    let mut errors = Vec::new();
    let sections: BTreeSet<&str> = entries.iter().map(|e| e.section.as_str()).collect();
    for s in ["Unit", "Service", "Install"] {
        if !sections.contains(s) {
            errors.push(format!("no [{s}] section"));
        }
    }
    for (i, e) in entries.iter().enumerate() {
        let repeated = entries[..i]
            .iter()
            .any(|p| p.section == e.section && p.key == e.key);
        if repeated && !REPEATABLE.contains(&e.key.as_str()) {
            errors.push(format!("line {}: {} set twice", e.line, e.key));
        }
    }
    for (key, want) in HARDENING {
        match service_values(entries, key).as_slice() {
            [got] if got == want => {}
            [] => errors.push(format!("[Service] lacks {key}={want}")),
            got => errors.push(format!("[Service] {key} is {got:?}, not {want:?}")),
        }
    }
    for (key, value, why) in FORBIDDEN {
        if service_values(entries, key).contains(value) {
            errors.push(format!("{key}={value} must not be set: {why}"));
        }
    }
    match service_values(entries, "RestrictAddressFamilies").as_slice() {
        [families] => {
            let got: Vec<&str> = families.split_whitespace().collect();
            let mut sorted = got.clone();
            sorted.sort_unstable();
            if sorted != ["AF_INET", "AF_INET6", "AF_NETLINK", "AF_UNIX"] {
                errors.push(format!(
                    "RestrictAddressFamilies is {got:?}, not exactly AF_UNIX AF_INET AF_INET6 AF_NETLINK"
                ));
            }
        }
        other => errors.push(format!(
            "RestrictAddressFamilies must be set once, found {other:?}"
        )),
    }
    match service_values(entries, "User").as_slice() {
        [u] if !u.is_empty() => {}
        other => errors.push(format!("User= must be set once, found {other:?}")),
    }
    let mut args: Vec<String> = Vec::new();
    match service_values(entries, "ExecStart").as_slice() {
        [cmd] => {
            args = cmd.split_whitespace().map(str::to_owned).collect();
            match args.first() {
                Some(p) if p.starts_with('/') && p.ends_with("/exo-discovery") => {}
                other => errors.push(format!(
                    "ExecStart starts with {other:?}, not an absolute path to exo-discovery"
                )),
            }
            if args.get(1).map(String::as_str) != Some("run") {
                errors.push(format!("ExecStart does not run `exo-discovery run`: {cmd}"));
            }
            let runtime = service_values(entries, "RuntimeDirectory");
            let socket = args
                .iter()
                .position(|a| a == "--socket")
                .map(|i| args.get(i + 1));
            match (socket, runtime.first()) {
                (Some(Some(path)), Some(dir))
                    if Path::new(path).parent() == Some(&Path::new("/run").join(dir)) => {}
                (socket, _) => errors.push(format!(
                    "ExecStart's --socket is {socket:?}, not a path in /run/<RuntimeDirectory>"
                )),
            }
            if !args.iter().any(|a| a == "$EXO_DISCOVERY_ARGS") {
                errors.push("ExecStart does not pass $EXO_DISCOVERY_ARGS".into());
            }
        }
        other => errors.push(format!("ExecStart must be set once, found {other:?}")),
    }
    if errors.is_empty() {
        Ok(args)
    } else {
        Err(errors.join("; "))
    }
}

// ---------------------------------------------------------------------------------------------
// The plist checks must be able to fail.
// ---------------------------------------------------------------------------------------------

const HEAD: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
"#;

fn doc(body: &str) -> String {
    format!("{HEAD}{body}\n")
}

#[test]
fn malformed_plists_are_refused() {
    // Small edits of the shipped file: (what, [(from, to)]), each replacing the first `from`.
    let cases: &[(&str, &[(&str, &str)])] = &[
        ("an unclosed <dict>", &[("</dict>\n</plist>", "</plist>")]),
        ("a mismatched end tag", &[("io.exo.discovery</string>", "io.exo.discovery</strin>")]),
        ("a stray end tag", &[("</plist>", "</plist></dict>")]),
        ("text outside the root", &[("</plist>", "</plist>\nstray")]),
        ("a second root", &[("</plist>", "</plist>\n<plist version=\"1.0\"><dict/></plist>")]),
        ("two <dict>s in <plist>", &[("</dict>\n</plist>", "</dict>\n<dict/>\n</plist>")]),
        ("an undefined entity", &[(">info<", ">&nbsp;info<")]),
        ("a bare '&'", &[(">info<", ">fish & chips<")]),
        ("a control character", &[(">info<", ">in\u{1}fo<")]),
        ("\"--\" inside a comment", &[("<!-- The node's user", "<!-- The node's -- user")]),
        ("a repeated key", &[("<key>UserName</key>", "<key>Label</key>")]),
        ("a <string> where a <key> belongs", &[("<key>UserName</key>", "<string>UserName</string>")]),
        ("a <key> where a value belongs", &[("<string>REPLACE_WITH_USER</string>", "<key>REPLACE_WITH_USER</key>")]),
        (
            "a <key> without a value",
            &[("<string>/usr/local/var/log/exo-discovery/exo-discovery.log</string>\n</dict>", "</dict>")],
        ),
        ("text inside a <dict>", &[("<key>Label</key>", "text<key>Label</key>")]),
        ("an element inside a <string>", &[(">info<", ">info<b/><")]),
        ("a <true> that is not empty", &[("<true/>", "<true>x</true>")]),
        ("an integer that is not one", &[("<integer>63</integer>", "<integer>6x3</integer>")]),
        ("an unknown element", &[("<integer>63</integer>", "<int>63</int>")]),
        ("a date that is not one", &[("<key>Umask</key>", "<key>D</key><date>yesterday</date><key>Umask</key>")]),
        ("data that is not base64", &[("<key>Umask</key>", "<key>D</key><data>!!</data><key>Umask</key>")]),
        ("an attribute on a value", &[("<string>info</string>", "<string id=\"1\">info</string>")]),
        ("another plist version", &[("<plist version=\"1.0\">", "<plist version=\"2.0\">")]),
        ("no plist version", &[("<plist version=\"1.0\">", "<plist>")]),
        ("a root other than <plist>", &[("<plist version=\"1.0\">", "<plst version=\"1.0\">"), ("</plist>", "</plst>")]),
        ("no DOCTYPE", &[("<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n", "")]),
        ("another DOCTYPE", &[("-//Apple//DTD PLIST 1.0//EN", "-//Other//DTD PLIST 1.0//EN")]),
        ("an internal DTD subset", &[("PropertyList-1.0.dtd\">", "PropertyList-1.0.dtd\" [<!ENTITY e \"x\">]>")]),
        ("no XML declaration", &[("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", "")]),
        ("a declaration that is not first", &[("<?xml", "\n<?xml")]),
    ];
    for (what, edits) in cases {
        let mut text = PLIST.to_owned();
        for (from, to) in *edits {
            assert!(
                text.contains(from),
                "{what}: {from:?} is not in {PLIST_NAME}"
            );
            text = text.replacen(from, to, 1);
        }
        match read_plist(&text) {
            Ok(p) => panic!("accepted a plist with {what}: {:?}", p.top),
            Err(e) => println!("{what}: {e}"),
        }
    }
    let top_array = doc("<plist version=\"1.0\"><array/></plist>");
    assert!(
        read_plist(&top_array).is_err(),
        "accepted an <array> as the top value"
    );
}

#[test]
fn launchd_checks_reject_a_wrong_job() {
    let job = |program_arguments: &str| {
        let text = doc(&format!(
            "<plist version=\"1.0\"><dict>\
             <key>Label</key><string>io.exo.discovery</string>\
             <key>ProgramArguments</key><array>{program_arguments}</array>\
             <key>RunAtLoad</key><true/><key>KeepAlive</key><true/>\
             <key>UserName</key><string>REPLACE_WITH_USER</string>\
             <key>StandardErrorPath</key><string>/x.log</string>\
             <key>EnvironmentVariables</key><dict><key>EXO_DISCOVERY_LOG</key><string>info</string></dict>\
             </dict></plist>"
        ));
        check_launchd(&read_plist(&text).unwrap().top, PLIST_NAME)
    };
    let good = "<string>/usr/local/bin/exo-discovery</string><string>run</string>\
                <string>--socket</string><string>/s.sock</string>\
                <string>--state-dir</string><string>/state</string>";
    assert_eq!(job(good).unwrap().len(), 6);
    let e = job(&good.replace("/usr/local/bin/exo-discovery", "exo-discovery")).unwrap_err();
    assert!(e.contains("not an absolute path"), "{e}");
    let e = job(&good.replace(">run<", ">watch<")).unwrap_err();
    assert!(e.contains("does not run `exo-discovery run`"), "{e}");
    let e = job(&good.replace("<string>run</string>", "<true/>")).unwrap_err();
    assert!(e.contains("ProgramArguments[1] is a boolean"), "{e}");
    let e = job(&good.replace("/s.sock", "s.sock")).unwrap_err();
    assert!(e.contains("--socket is followed by"), "{e}");
    let e = check_launchd(
        &read_plist(&doc("<plist version=\"1.0\"><dict/></plist>"))
            .unwrap()
            .top,
        PLIST_NAME,
    )
    .unwrap_err();
    for key in [
        "Label",
        "ProgramArguments",
        "RunAtLoad",
        "KeepAlive",
        "UserName",
    ] {
        assert!(e.contains(&format!("required key {key} is missing")), "{e}");
    }
    let e = check_launchd(
        &read_plist(&PLIST.replace(">REPLACE_WITH_USER<", ">alice<"))
            .unwrap()
            .top,
        PLIST_NAME,
    )
    .unwrap_err();
    assert!(e.contains("not the placeholder"), "{e}");
    let e = check_launchd(&read_plist(PLIST).unwrap().top, "other.plist").unwrap_err();
    assert!(e.contains("does not match the file name"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// The shipped plist.
// ---------------------------------------------------------------------------------------------

#[test]
fn shipped_plist_is_a_valid_launchd_job() {
    let job = read_plist(PLIST).unwrap_or_else(|e| panic!("{PLIST_NAME}: {e}"));
    let args = check_launchd(&job.top, PLIST_NAME).unwrap_or_else(|e| panic!("{PLIST_NAME}: {e}"));
    println!("{PLIST_NAME}: ProgramArguments {args:?}");
    // The install steps in the file's comment create every directory the job needs.
    let comments = job.comments.join("\n");
    let after = |flag: &str| {
        let i = args.iter().position(|a| a == flag).unwrap();
        PathBuf::from(&args[i + 1])
    };
    let log = PathBuf::from(
        job.top
            .get("StandardErrorPath")
            .unwrap()
            .as_string()
            .unwrap(),
    );
    for dir in [
        after("--socket").parent().unwrap().to_owned(),
        after("--state-dir"),
        log.parent().unwrap().to_owned(),
    ] {
        let dir = dir.display().to_string();
        assert!(
            comments
                .lines()
                .any(|l| l.contains("install -d") && l.trim_end().ends_with(&dir)),
            "the comment of {PLIST_NAME} does not say to create {dir}"
        );
    }
    assert!(
        comments.contains(&format!("/Library/LaunchDaemons/{PLIST_NAME}")),
        "the comment of {PLIST_NAME} does not name /Library/LaunchDaemons/{PLIST_NAME}"
    );
    assert!(comments.contains(USER_PLACEHOLDER));
}

/// An independent reading: Python's plistlib (expat underneath), where python3 is installed.
#[test]
fn shipped_plist_reads_the_same_with_python_plistlib() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("config")
        .join(PLIST_NAME);
    let out = Command::new("python3")
        .args([
            "-c",
            "import json, plistlib, sys\n\
             with open(sys.argv[1], 'rb') as f:\n    \
                 print(json.dumps(plistlib.load(f, fmt=plistlib.FMT_XML)))",
        ])
        .arg(&path)
        .output();
    let out = match out {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("SKIPPED plistlib cross-check: python3 is not installed");
            return;
        }
        other => other.unwrap(),
    };
    assert!(
        out.status.success(),
        "plistlib refused {PLIST_NAME}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let top = plist::Value::Dictionary(read_plist(PLIST).unwrap().top);
    let ours = serde_json::to_value(&top).unwrap();
    assert_eq!(ours, theirs, "our reading and plistlib's differ");
}

// ---------------------------------------------------------------------------------------------
// The shipped systemd unit.
// ---------------------------------------------------------------------------------------------

#[test]
fn unit_parser_rejects_bad_units() {
    assert!(parse_unit("Type=simple\n[Service]\n")
        .unwrap_err()
        .contains("before any section"));
    assert!(parse_unit("[Service]\nType simple\n")
        .unwrap_err()
        .contains("not a Key=Value line"));
    assert!(parse_unit("[Service\n")
        .unwrap_err()
        .contains("malformed section"));
    assert!(parse_unit("[Service]\n[Service]\n")
        .unwrap_err()
        .contains("repeated"));
    assert!(parse_unit("[Service]\nBad Key=1\n")
        .unwrap_err()
        .contains("bad key"));
    assert!(parse_unit("[Service]\nA=1 \\\n")
        .unwrap_err()
        .contains("continuation"));
    let joined = parse_unit("[Service]\nExecStart=/bin/x \\\n  # note\n  run\n").unwrap();
    assert_eq!(joined[0].value, "/bin/x run");

    let check = |from: &str, to: &str| {
        assert!(UNIT.contains(from), "{from:?} is not in the unit");
        check_unit(&parse_unit(&UNIT.replace(from, to)).unwrap()).unwrap_err()
    };
    let e = check(
        "AF_UNIX AF_INET AF_INET6 AF_NETLINK",
        "AF_UNIX AF_INET AF_INET6 AF_NETLINK AF_PACKET",
    );
    assert!(e.contains("not exactly AF_UNIX"), "{e}");
    let e = check("AF_UNIX AF_INET AF_INET6 AF_NETLINK", "AF_UNIX AF_INET");
    assert!(e.contains("not exactly AF_UNIX"), "{e}");
    let e = check("\nNoNewPrivileges=yes", "\n#NoNewPrivileges=yes");
    assert!(e.contains("lacks NoNewPrivileges=yes"), "{e}");
    let e = check(
        "\nCapabilityBoundingSet=",
        "\nCapabilityBoundingSet=CAP_NET_RAW",
    );
    assert!(e.contains("CapabilityBoundingSet"), "{e}");
    let e = check(
        "\nProtectSystem=strict",
        "\nProtectSystem=strict\nProtectSystem=full",
    );
    assert!(e.contains("ProtectSystem set twice"), "{e}");
    let e = check(" run --socket", " watch --socket");
    assert!(e.contains("does not run `exo-discovery run`"), "{e}");
    let e = check("/run/exo-discovery/exo-discovery.sock", "/tmp/exo.sock");
    assert!(e.contains("not a path in /run/<RuntimeDirectory>"), "{e}");
    let e = check("\nUser=", "\nPrivateUsers=yes\nUser=");
    assert!(e.contains("PrivateUsers=yes must not be set"), "{e}");
}

#[test]
fn shipped_unit_passes_our_checks() {
    let entries = parse_unit(UNIT).unwrap_or_else(|e| panic!("{UNIT_NAME}: {e}"));
    let args = check_unit(&entries).unwrap_or_else(|e| panic!("{UNIT_NAME}: {e}"));
    assert_eq!(args[0], INSTALLED_BIN);
    assert_eq!(service_values(&entries, "User"), [USER_PLACEHOLDER]);
    println!("{UNIT_NAME}: ExecStart {args:?}");
}

/// The Debian package's unit says what the shipped unit says, apart from ExecStart=: the
/// package's binary, and `--config` with the package's configuration file. Comments may differ.
#[test]
fn packaged_unit_is_the_shipped_unit_with_the_package_paths() {
    let shipped = parse_unit(UNIT).unwrap_or_else(|e| panic!("{UNIT_NAME}: {e}"));
    let deb = parse_unit(DEB_UNIT).unwrap_or_else(|e| panic!("config/deb/{UNIT_NAME}: {e}"));
    let args = check_unit(&deb).unwrap_or_else(|e| panic!("config/deb/{UNIT_NAME}: {e}"));
    let mut want = check_unit(&shipped).unwrap();
    want[0] = DEB_BIN.to_owned();
    want.splice(2..2, ["--config".to_owned(), DEB_CONFIG.to_owned()]);
    assert_eq!(args, want, "ExecStart: packaged (left), expected (right)");
    let rest = |entries: &[Entry]| -> Vec<(String, String, String)> {
        entries
            .iter()
            .filter(|e| (e.section.as_str(), e.key.as_str()) != ("Service", "ExecStart"))
            .map(|e| (e.section.clone(), e.key.clone(), e.value.clone()))
            .collect()
    };
    assert_eq!(
        rest(&deb),
        rest(&shipped),
        "the packaged unit (left) and the shipped unit (right) differ beyond ExecStart="
    );
    println!("config/deb/{UNIT_NAME}: ExecStart {args:?}");
}

/// Every flag the three files pass to `exo-discovery run` is one the built binary accepts
/// (`run --help` prints and exits; the agent does not start).
#[test]
fn shipped_files_use_only_real_flags() {
    let out = Command::new(BIN).args(["run", "--help"]).output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    let known: BTreeSet<&str> = help
        .split_whitespace()
        .map(|w| w.trim_end_matches(','))
        .filter(|w| w.starts_with("--"))
        .collect();
    let unit_args = check_unit(&parse_unit(UNIT).unwrap()).unwrap();
    let deb_unit_args = check_unit(&parse_unit(DEB_UNIT).unwrap()).unwrap();
    let plist_args = check_launchd(&read_plist(PLIST).unwrap().top, PLIST_NAME).unwrap();
    for flag in unit_args
        .iter()
        .chain(&deb_unit_args)
        .chain(&plist_args)
        .filter(|a| a.starts_with("--"))
    {
        assert!(
            known.contains(flag.as_str()),
            "{flag} is not a flag of `exo-discovery run` (it knows {known:?})"
        );
    }
}

/// `systemd-analyze verify` (and, from systemd 250, the offline `security` score) on a copy of
/// the unit whose ExecStart runs the built binary and whose User= is root (systemd warns about some
/// users, such as nobody, whoever runs the tests; the placeholder itself is not checked). Neither
/// command starts the unit.
#[test]
fn shipped_unit_passes_systemd_analyze_verify() {
    match Command::new("systemd-analyze").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "systemd-analyze --version failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("SKIPPED systemd-analyze verify: systemd-analyze is not installed");
            // Our own reading still runs (also a test of its own).
            check_unit(&parse_unit(UNIT).unwrap()).unwrap();
            return;
        }
        Err(e) => panic!("cannot run systemd-analyze: {e}"),
    }
    let dir = std::env::temp_dir().join(format!("exo-discovery-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join(UNIT_NAME);
    let bin = if BIN.contains(char::is_whitespace) {
        format!("\"{BIN}\"")
    } else {
        BIN.to_owned()
    };
    let user = "root";
    let exec_from = format!("ExecStart={INSTALLED_BIN} ");
    let user_from = format!("User={USER_PLACEHOLDER}\n");
    assert!(UNIT.contains(&exec_from) && UNIT.contains(&user_from));
    let text = UNIT
        .replace(&exec_from, &format!("ExecStart={bin} "))
        .replace(&user_from, &format!("User={user}\n"));
    std::fs::write(&copy, &text).unwrap();
    println!(
        "verifying {} (a copy: ExecStart binary {INSTALLED_BIN} -> {BIN}; User={USER_PLACEHOLDER} -> User={user})",
        copy.display()
    );

    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("systemd-analyze verify: {}", out.status);
    for line in stdout.lines().chain(stderr.lines()) {
        println!("  {line}");
    }
    // verify exits 0 on unknown keys and unparsable values and only warns: any message about
    // this unit fails the test.
    let about_us: Vec<&str> = stdout
        .lines()
        .chain(stderr.lines())
        .filter(|l| l.contains(UNIT_NAME) || l.contains(&*copy.to_string_lossy()))
        .collect();

    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=yes"])
        .arg(&copy)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "systemd-analyze verify failed");
    assert!(about_us.is_empty(), "systemd-analyze verify: {about_us:?}");

    let report = String::from_utf8_lossy(&security.stdout);
    let overall = report
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .map(str::to_owned);
    match overall {
        Some(line) if security.status.success() => {
            println!("systemd-analyze security: {}", line.trim());
            let score: f64 = line
                .split(':')
                .next_back()
                .and_then(|s| s.split_whitespace().next())
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("cannot read the exposure in {line:?}"));
            assert!(
                score <= 2.5,
                "exposure {score} is above 2.5: the sandbox lost something"
            );
        }
        _ => println!(
            "SKIPPED systemd-analyze security: needs --offline (systemd 250 or later): {}",
            String::from_utf8_lossy(&security.stderr).trim()
        ),
    }
}
