//! Checks of the service files in `config/`: the systemd unit `exo-discovery.service` and the
//! launchd plist `io.exo.discovery.plist`. No macOS tool is needed: the plist is read by the small,
//! strict XML reader below. The unit is read by a parser of its own and, where `systemd-analyze`
//! is installed, verified by systemd itself (on a copy that points at the built binary; the agent
//! is never started). Nothing here sends network traffic.

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

// ---------------------------------------------------------------------------------------------
// A strict XML reader: enough of XML 1.0 for property lists, and nothing lenient. Mismatched,
// unclosed or stray end tags, text outside the root element, a second root, undefined entities,
// a bare `&`, `--` inside a comment, unquoted or repeated attributes, a declaration that is not
// first and a DOCTYPE after the root are all errors.
// ---------------------------------------------------------------------------------------------
mod xml {
    /// A node of the element tree.
    #[derive(Debug, Clone, PartialEq)]
    pub enum Node {
        Element(Element),
        /// Character data, entities decoded (adjacent runs and CDATA sections merged).
        Text(String),
    }

    #[derive(Debug, Clone, PartialEq)]
    pub struct Element {
        pub name: String,
        pub attrs: Vec<(String, String)>,
        pub children: Vec<Node>,
        /// Line of the start tag (for messages).
        pub line: usize,
    }

    impl Element {
        /// The child elements, in order.
        pub fn elements(&self) -> impl Iterator<Item = &Element> {
            self.children.iter().filter_map(|n| match n {
                Node::Element(e) => Some(e),
                Node::Text(_) => None,
            })
        }

        /// The first text child that is not XML whitespace, if any.
        pub fn stray_text(&self) -> Option<&str> {
            self.children.iter().find_map(|n| match n {
                Node::Text(t) if !t.chars().all(is_space) => Some(t.as_str()),
                _ => None,
            })
        }

        /// All text of an element that must hold text only.
        pub fn text_only(&self) -> Result<String, String> {
            let mut out = String::new();
            for n in &self.children {
                match n {
                    Node::Text(t) => out.push_str(t),
                    Node::Element(e) => {
                        return Err(format!(
                            "line {}: <{}> inside <{}>, which holds text only",
                            e.line, e.name, self.name
                        ))
                    }
                }
            }
            Ok(out)
        }
    }

    #[derive(Debug, PartialEq)]
    pub struct Document {
        /// The XML declaration's content (`xml version="1.0" …`), if any.
        pub declaration: Option<String>,
        /// The DOCTYPE's content after `<!DOCTYPE`, whitespace-normalised.
        pub doctype: Option<String>,
        /// Every comment's text, in order.
        pub comments: Vec<String>,
        pub root: Element,
    }

    pub fn is_space(c: char) -> bool {
        matches!(c, ' ' | '\t' | '\n' | '\r')
    }

    fn is_name_start(c: char) -> bool {
        c.is_alphabetic() || c == '_' || c == ':'
    }

    fn is_name_char(c: char) -> bool {
        is_name_start(c) || c.is_alphanumeric() || matches!(c, '-' | '.')
    }

    #[derive(Debug)]
    enum Token {
        Declaration(String),
        Doctype(String),
        Comment(String),
        Pi,
        Start {
            name: String,
            attrs: Vec<(String, String)>,
            empty: bool,
        },
        End(String),
        Text {
            raw: String,
            decoded: String,
        },
        Cdata(String),
    }

    struct Lexer<'a> {
        s: &'a str,
        pos: usize,
    }

    impl Lexer<'_> {
        fn line(&self, at: usize) -> usize {
            self.s[..at.min(self.s.len())].matches('\n').count() + 1
        }

        fn err(&self, at: usize, msg: impl std::fmt::Display) -> String {
            format!("line {}: {msg}", self.line(at))
        }

        fn rest(&self) -> &str {
            &self.s[self.pos..]
        }

        fn peek(&self) -> Option<char> {
            self.rest().chars().next()
        }

        fn bump(&mut self) -> Option<char> {
            let c = self.peek()?;
            self.pos += c.len_utf8();
            Some(c)
        }

        fn skip_space(&mut self) -> bool {
            let start = self.pos;
            while self.peek().is_some_and(is_space) {
                self.bump();
            }
            self.pos > start
        }

        /// Everything up to `end` (not included); the position moves past `end`.
        fn until(&mut self, end: &str, what: &str) -> Result<String, String> {
            let start = self.pos;
            match self.rest().find(end) {
                Some(i) => {
                    let body = self.s[start..start + i].to_owned();
                    self.pos = start + i + end.len();
                    Ok(body)
                }
                None => Err(self.err(start, format!("unterminated {what}"))),
            }
        }

        fn name(&mut self) -> Result<String, String> {
            let start = self.pos;
            match self.peek() {
                Some(c) if is_name_start(c) => {
                    self.bump();
                }
                other => {
                    return Err(self.err(start, format!("expected a name, found {other:?}")));
                }
            }
            while self.peek().is_some_and(is_name_char) {
                self.bump();
            }
            Ok(self.s[start..self.pos].to_owned())
        }

        fn next_token(&mut self) -> Result<Option<(usize, Token)>, String> {
            let at = self.pos;
            let rest = self.rest();
            if rest.is_empty() {
                return Ok(None);
            }
            let token = if rest.starts_with("<?") {
                self.pos += 2;
                let body = self.until("?>", "processing instruction")?;
                let target: String = body.chars().take_while(|c| !is_space(*c)).collect();
                if target == "xml" {
                    Token::Declaration(body)
                } else if target.eq_ignore_ascii_case("xml") || target.is_empty() {
                    return Err(self.err(at, format!("bad processing instruction <?{body}?>")));
                } else {
                    Token::Pi
                }
            } else if rest.starts_with("<!--") {
                self.pos += 4;
                let body = self.until("-->", "comment")?;
                if body.contains("--") || body.ends_with('-') {
                    return Err(self.err(at, "\"--\" inside a comment"));
                }
                Token::Comment(body)
            } else if rest.starts_with("<![CDATA[") {
                self.pos += 9;
                Token::Cdata(self.until("]]>", "CDATA section")?)
            } else if rest.starts_with("<!DOCTYPE") {
                self.pos += 9;
                if !self.skip_space() {
                    return Err(self.err(at, "expected whitespace after <!DOCTYPE"));
                }
                let body = self.until(">", "DOCTYPE")?;
                if body.contains('[') || body.contains('<') {
                    return Err(self.err(at, "an internal DTD subset is not accepted"));
                }
                Token::Doctype(body.split_whitespace().collect::<Vec<_>>().join(" "))
            } else if rest.starts_with("<!") {
                return Err(self.err(at, "unknown markup declaration"));
            } else if rest.starts_with("</") {
                self.pos += 2;
                let name = self.name()?;
                self.skip_space();
                if self.bump() != Some('>') {
                    return Err(self.err(at, format!("malformed end tag </{name}")));
                }
                Token::End(name)
            } else if rest.starts_with('<') {
                self.pos += 1;
                let name = self.name()?;
                let mut attrs: Vec<(String, String)> = Vec::new();
                loop {
                    let spaced = self.skip_space();
                    if self.rest().starts_with("/>") {
                        self.pos += 2;
                        break Token::Start {
                            name,
                            attrs,
                            empty: true,
                        };
                    }
                    if self.rest().starts_with('>') {
                        self.pos += 1;
                        break Token::Start {
                            name,
                            attrs,
                            empty: false,
                        };
                    }
                    if self.peek().is_none() {
                        return Err(self.err(at, format!("unterminated start tag <{name}")));
                    }
                    if !spaced {
                        return Err(self.err(self.pos, format!("expected whitespace in <{name}")));
                    }
                    let attr_at = self.pos;
                    let attr = self.name()?;
                    self.skip_space();
                    if self.bump() != Some('=') {
                        return Err(self.err(attr_at, format!("attribute {attr} without a value")));
                    }
                    self.skip_space();
                    let quote = match self.bump() {
                        Some(q @ ('"' | '\'')) => q,
                        _ => {
                            return Err(self.err(attr_at, format!("attribute {attr} is not quoted")))
                        }
                    };
                    let raw = self.until(&quote.to_string(), "attribute value")?;
                    if raw.contains('<') {
                        return Err(self.err(attr_at, format!("'<' in attribute {attr}")));
                    }
                    let value = decode(&raw).map_err(|e| self.err(attr_at, e))?;
                    if attrs.iter().any(|(n, _)| *n == attr) {
                        return Err(self.err(attr_at, format!("attribute {attr} repeated")));
                    }
                    attrs.push((attr, value));
                }
            } else {
                let end = rest.find('<').unwrap_or(rest.len());
                let raw = rest[..end].to_owned();
                self.pos += end;
                if raw.contains("]]>") {
                    return Err(self.err(at, "\"]]>\" in text"));
                }
                let decoded = decode(&raw).map_err(|e| self.err(at, e))?;
                Token::Text { raw, decoded }
            };
            Ok(Some((at, token)))
        }
    }

    /// Decodes the five predefined entities and character references; anything else is an error.
    pub fn decode(raw: &str) -> Result<String, String> {
        let mut out = String::with_capacity(raw.len());
        let mut rest = raw;
        while let Some(i) = rest.find('&') {
            out.push_str(&rest[..i]);
            rest = &rest[i + 1..];
            let Some(semi) = rest.find(';').filter(|&j| j <= 10) else {
                return Err("a bare '&' (not an entity reference)".into());
            };
            let name = &rest[..semi];
            let c = match name {
                "amp" => '&',
                "lt" => '<',
                "gt" => '>',
                "quot" => '"',
                "apos" => '\'',
                _ => {
                    let code = if let Some(hex) = name.strip_prefix("#x") {
                        u32::from_str_radix(hex, 16).ok()
                    } else if let Some(dec) = name.strip_prefix('#') {
                        dec.parse::<u32>().ok()
                    } else {
                        None
                    };
                    match code.and_then(char::from_u32) {
                        Some(c) if c == '\t' || c == '\n' || c == '\r' || c >= ' ' => c,
                        _ => return Err(format!("undefined entity &{name};")),
                    }
                }
            };
            out.push(c);
            rest = &rest[semi + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// Parses a whole document.
    pub fn parse(s: &str) -> Result<Document, String> {
        let s = s.strip_prefix('\u{feff}').unwrap_or(s);
        if let Some((i, c)) = s
            .char_indices()
            .find(|(_, c)| (*c as u32) < 0x20 && !is_space(*c))
        {
            let line = s[..i].matches('\n').count() + 1;
            return Err(format!("line {line}: control character {c:?}"));
        }
        let mut lx = Lexer { s, pos: 0 };
        let mut declaration = None;
        let mut doctype = None;
        let mut comments = Vec::new();
        let mut stack: Vec<Element> = Vec::new();
        let mut root: Option<Element> = None;
        let mut first = true;
        while let Some((at, token)) = lx.next_token()? {
            let was_first = std::mem::replace(&mut first, false);
            let outside = stack.is_empty();
            match token {
                Token::Declaration(body) => {
                    if !was_first {
                        return Err(lx.err(at, "the XML declaration is not at the very start"));
                    }
                    if !body.contains("version=\"1.0\"") {
                        return Err(lx.err(at, "the XML declaration lacks version=\"1.0\""));
                    }
                    declaration = Some(body);
                }
                Token::Doctype(body) => {
                    if root.is_some() || !outside {
                        return Err(lx.err(at, "DOCTYPE after the root element started"));
                    }
                    if doctype.replace(body).is_some() {
                        return Err(lx.err(at, "a second DOCTYPE"));
                    }
                }
                Token::Comment(body) => comments.push(body),
                Token::Pi => {}
                Token::Start { name, attrs, empty } => {
                    if outside && root.is_some() {
                        return Err(lx.err(at, format!("a second root element <{name}>")));
                    }
                    let el = Element {
                        name,
                        attrs,
                        children: Vec::new(),
                        line: lx.line(at),
                    };
                    if empty {
                        close(el, &mut stack, &mut root);
                    } else {
                        stack.push(el);
                    }
                }
                Token::End(name) => match stack.pop() {
                    None => return Err(lx.err(at, format!("</{name}> closes nothing"))),
                    Some(open) if open.name != name => {
                        return Err(lx.err(
                            at,
                            format!(
                                "</{name}> does not match <{}> opened on line {}",
                                open.name, open.line
                            ),
                        ))
                    }
                    Some(open) => close(open, &mut stack, &mut root),
                },
                Token::Text { raw, decoded } => match stack.last_mut() {
                    None if raw.chars().all(is_space) => {}
                    None => {
                        return Err(lx.err(
                            at,
                            format!("text outside the root element: {:?}", raw.trim()),
                        ))
                    }
                    Some(top) => push_text(top, decoded),
                },
                Token::Cdata(text) => match stack.last_mut() {
                    None => return Err(lx.err(at, "CDATA outside the root element")),
                    Some(top) => push_text(top, text),
                },
            }
        }
        if let Some(open) = stack.last() {
            return Err(format!(
                "<{}> opened on line {} is never closed",
                open.name, open.line
            ));
        }
        let root = root.ok_or("no root element")?;
        Ok(Document {
            declaration,
            doctype,
            comments,
            root,
        })
    }

    fn push_text(top: &mut Element, text: String) {
        if let Some(Node::Text(prev)) = top.children.last_mut() {
            prev.push_str(&text);
        } else {
            top.children.push(Node::Text(text));
        }
    }

    fn close(el: Element, stack: &mut [Element], root: &mut Option<Element>) {
        match stack.last_mut() {
            Some(parent) => parent.children.push(Node::Element(el)),
            None => *root = Some(el),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Property lists on top of the XML reader.
// ---------------------------------------------------------------------------------------------
mod plist {
    use super::xml::{self, Element};

    pub const DOCTYPE: &str = r#"plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd""#;

    #[derive(Debug, Clone, PartialEq)]
    pub enum Value {
        String(String),
        Integer(i64),
        Real(f64),
        Bool(bool),
        Date(String),
        Data(String),
        Array(Vec<Value>),
        Dict(Vec<(String, Value)>),
    }

    impl Value {
        pub fn kind(&self) -> &'static str {
            match self {
                Value::String(_) => "string",
                Value::Integer(_) => "integer",
                Value::Real(_) => "real",
                Value::Bool(_) => "boolean",
                Value::Date(_) => "date",
                Value::Data(_) => "data",
                Value::Array(_) => "array",
                Value::Dict(_) => "dict",
            }
        }

        pub fn get(&self, key: &str) -> Option<&Value> {
            match self {
                Value::Dict(pairs) => pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v),
                _ => None,
            }
        }

        pub fn as_str(&self) -> Option<&str> {
            match self {
                Value::String(s) => Some(s),
                _ => None,
            }
        }

        /// A JSON rendering, to compare with an independent parser's.
        pub fn to_json(&self) -> serde_json::Value {
            use serde_json::Value as J;
            match self {
                Value::String(s) | Value::Date(s) | Value::Data(s) => J::String(s.clone()),
                Value::Integer(i) => J::from(*i),
                Value::Real(r) => J::from(*r),
                Value::Bool(b) => J::Bool(*b),
                Value::Array(items) => J::Array(items.iter().map(Value::to_json).collect()),
                Value::Dict(pairs) => J::Object(
                    pairs
                        .iter()
                        .map(|(k, v)| (k.clone(), v.to_json()))
                        .collect(),
                ),
            }
        }
    }

    /// The plist's top-level value, checked to be exactly one `<dict>` in `<plist version="1.0">`
    /// under the Apple DOCTYPE.
    pub fn parse(text: &str) -> Result<Value, String> {
        let doc = xml::parse(text)?;
        if doc.declaration.is_none() {
            return Err("no XML declaration".into());
        }
        match doc.doctype.as_deref() {
            Some(DOCTYPE) => {}
            Some(other) => return Err(format!("DOCTYPE is {other:?}, not the plist one")),
            None => return Err("no DOCTYPE".into()),
        }
        let root = &doc.root;
        if root.name != "plist" {
            return Err(format!("the root element is <{}>, not <plist>", root.name));
        }
        if root.attrs != [("version".to_owned(), "1.0".to_owned())] {
            return Err(format!(
                "<plist> attributes are {:?}, not version=\"1.0\"",
                root.attrs
            ));
        }
        if let Some(t) = root.stray_text() {
            return Err(format!("text {:?} directly inside <plist>", t.trim()));
        }
        let top: Vec<&Element> = root.elements().collect();
        match top.as_slice() {
            [dict] if dict.name == "dict" => value(dict),
            [other] => Err(format!(
                "line {}: <plist> holds <{}>, not <dict>",
                other.line, other.name
            )),
            _ => Err(format!(
                "<plist> holds {} elements, not exactly one <dict>",
                top.len()
            )),
        }
    }

    fn value(el: &Element) -> Result<Value, String> {
        let at = |msg: String| format!("line {}: {msg}", el.line);
        if !el.attrs.is_empty() {
            return Err(at(format!("<{}> has attributes", el.name)));
        }
        let no_stray = || match el.stray_text() {
            Some(t) => Err(at(format!("text {:?} inside <{}>", t.trim(), el.name))),
            None => Ok(()),
        };
        Ok(match el.name.as_str() {
            "dict" => {
                no_stray()?;
                let mut pairs: Vec<(String, Value)> = Vec::new();
                let mut items = el.elements();
                while let Some(k) = items.next() {
                    if k.name != "key" {
                        return Err(format!(
                            "line {}: <{}> where a <key> belongs in <dict>",
                            k.line, k.name
                        ));
                    }
                    if !k.attrs.is_empty() {
                        return Err(format!("line {}: <key> has attributes", k.line));
                    }
                    let key = k.text_only()?;
                    let Some(v) = items.next() else {
                        return Err(format!("line {}: <key>{key}</key> has no value", k.line));
                    };
                    if v.name == "key" {
                        return Err(format!(
                            "line {}: <key>{key}</key> is followed by another <key>",
                            k.line
                        ));
                    }
                    if pairs.iter().any(|(seen, _)| *seen == key) {
                        return Err(format!("line {}: key {key:?} repeated", k.line));
                    }
                    pairs.push((key, value(v)?));
                }
                Value::Dict(pairs)
            }
            "array" => {
                no_stray()?;
                Value::Array(el.elements().map(value).collect::<Result<_, _>>()?)
            }
            "string" => Value::String(el.text_only()?),
            "integer" => {
                let t = el.text_only()?;
                let digits = t.strip_prefix(['+', '-']).unwrap_or(&t);
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(at(format!("<integer> {t:?} is not an integer")));
                }
                Value::Integer(t.parse().map_err(|e| at(format!("<integer> {t:?}: {e}")))?)
            }
            "real" => {
                let t = el.text_only()?;
                Value::Real(t.parse().map_err(|e| at(format!("<real> {t:?}: {e}")))?)
            }
            "true" | "false" => {
                if !el.children.is_empty() {
                    return Err(at(format!("<{}> is not empty", el.name)));
                }
                Value::Bool(el.name == "true")
            }
            "date" => {
                let t = el.text_only()?;
                let b = t.as_bytes();
                let shape = b.len() == 20
                    && b.iter().enumerate().all(|(i, c)| match i {
                        4 | 7 => *c == b'-',
                        10 => *c == b'T',
                        13 | 16 => *c == b':',
                        19 => *c == b'Z',
                        _ => c.is_ascii_digit(),
                    });
                if !shape {
                    return Err(at(format!("<date> {t:?} is not YYYY-MM-DDTHH:MM:SSZ")));
                }
                Value::Date(t)
            }
            "data" => {
                let t = el.text_only()?;
                let ok = t.chars().all(|c| {
                    c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=') || xml::is_space(c)
                });
                if !ok {
                    return Err(at("<data> is not base64".into()));
                }
                Value::Data(t.split_whitespace().collect())
            }
            "key" => return Err(at("a <key> where a value belongs".into())),
            other => return Err(at(format!("<{other}> is not a plist element"))),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The launchd job's content.
// ---------------------------------------------------------------------------------------------

/// What the agent's launchd job must say. Returns the program arguments.
fn check_launchd(top: &plist::Value, file_name: &str) -> Result<Vec<String>, String> {
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
        Some(v) => errors.push(format!("Label is a {}, not a string", v.kind())),
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
                        other.kind()
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
        Some(v) => errors.push(format!("ProgramArguments is a {}, not an array", v.kind())),
        None => {}
    }
    if top.get("RunAtLoad") != Some(&Value::Bool(true)) {
        errors.push("RunAtLoad is not <true/>".into());
    }
    match top.get("KeepAlive") {
        Some(Value::Bool(true) | Value::Dict(_)) | None => {}
        Some(v) => errors.push(format!("KeepAlive is {v:?}")),
    }
    match top.get("UserName") {
        Some(Value::String(u)) if u == USER_PLACEHOLDER => {}
        Some(v) => errors.push(format!(
            "UserName is {v:?}, not the placeholder {USER_PLACEHOLDER}"
        )),
        None => {}
    }
    match top.get("StandardErrorPath").and_then(Value::as_str) {
        Some(p) if p.starts_with('/') => {}
        other => errors.push(format!("StandardErrorPath is {other:?}")),
    }
    let log = top
        .get("EnvironmentVariables")
        .and_then(|env| env.get("EXO_DISCOVERY_LOG"))
        .and_then(Value::as_str);
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
// Tests of the XML reader and the plist layer: they must be able to fail.
// ---------------------------------------------------------------------------------------------

const HEAD: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
"#;

fn doc(body: &str) -> String {
    format!("{HEAD}{body}\n")
}

fn assert_xml_error(text: &str, needle: &str) {
    match xml::parse(text) {
        Ok(d) => panic!("accepted bad XML {text:?} as {d:?}"),
        Err(e) => assert!(e.contains(needle), "error {e:?} should mention {needle:?}"),
    }
}

fn assert_plist_error(text: &str, needle: &str) {
    match plist::parse(text) {
        Ok(v) => panic!("accepted bad plist {text:?} as {v:?}"),
        Err(e) => assert!(e.contains(needle), "error {e:?} should mention {needle:?}"),
    }
}

#[test]
fn xml_reader_accepts_a_small_plist() {
    let text = doc(concat!(
        "<!-- a comment -->\n<plist version=\"1.0\">\n<dict>\n",
        "  <key>A &amp; B</key><string>x &lt;&#65;&#x42;&gt; 'y'</string>\n",
        "  <key>N</key><integer>-42</integer>\n",
        "  <key>R</key><real>1.5</real>\n",
        "  <key>T</key><true/>\n",
        "  <key>F</key><false></false>\n",
        "  <key>D</key><date>2024-01-02T03:04:05Z</date>\n",
        "  <key>B</key><data>AAEC\n  AwQ=</data>\n",
        "  <key>C</key><string><![CDATA[<raw> & text]]></string>\n",
        "  <key>Arr</key><array><string>one</string><dict/></array>\n",
        "</dict>\n</plist>\n<!-- trailing comment -->"
    ));
    let v = plist::parse(&text).unwrap();
    use plist::Value::*;
    assert_eq!(v.get("A & B"), Some(&String("x <AB> 'y'".into())));
    assert_eq!(v.get("N"), Some(&Integer(-42)));
    assert_eq!(v.get("R"), Some(&Real(1.5)));
    assert_eq!(v.get("T"), Some(&Bool(true)));
    assert_eq!(v.get("F"), Some(&Bool(false)));
    assert_eq!(v.get("D"), Some(&Date("2024-01-02T03:04:05Z".into())));
    assert_eq!(v.get("B"), Some(&Data("AAECAwQ=".into())));
    assert_eq!(v.get("C"), Some(&String("<raw> & text".into())));
    assert_eq!(
        v.get("Arr"),
        Some(&Array(vec![String("one".into()), Dict(vec![])]))
    );
    let d = xml::parse(&text).unwrap();
    assert_eq!(d.comments, [" a comment ", " trailing comment "]);
}

#[test]
fn xml_reader_rejects_malformed_documents() {
    let missing_dict_end =
        doc("<plist version=\"1.0\">\n<dict>\n  <key>Label</key>\n  <string>x</string>\n</plist>");
    assert_xml_error(&missing_dict_end, "does not match <dict>");
    assert_plist_error(&missing_dict_end, "does not match <dict>");
    assert_xml_error(&doc("<a><b></a></b>"), "</a> does not match <b>");
    assert_xml_error(&doc("<a><b></b>"), "<a> opened on line 3 is never closed");
    assert_xml_error(&doc("<a/></a>"), "</a> closes nothing");
    assert_xml_error(&doc("stray<a/>"), "text outside the root element");
    assert_xml_error(&doc("<a/>stray"), "text outside the root element");
    assert_xml_error(&doc("<a/><b/>"), "a second root element <b>");
    assert_xml_error(&doc("<a/><![CDATA[x]]>"), "CDATA outside");
    assert_xml_error(&doc("<a>&nbsp;</a>"), "undefined entity &nbsp;");
    assert_xml_error(&doc("<a>fish & chips</a>"), "bare '&'");
    assert_xml_error(&doc("<a>&#0;</a>"), "undefined entity");
    assert_xml_error(&doc("<a>x ]]> y</a>"), "\"]]>\" in text");
    assert_xml_error(&doc("<!-- a -- b --><a/>"), "\"--\" inside a comment");
    assert_xml_error(&doc("<!-- a ---><a/>"), "\"--\" inside a comment");
    assert_xml_error(&doc("<a><!-- never closed </a>"), "unterminated comment");
    assert_xml_error(&doc("<a b=c/>"), "attribute b is not quoted");
    assert_xml_error(&doc("<a b/>"), "attribute b without a value");
    assert_xml_error(&doc("<a b=\"1\" b=\"2\"/>"), "attribute b repeated");
    assert_xml_error(&doc("<a b=\"1\"c=\"2\"/>"), "expected whitespace");
    assert_xml_error(&doc("<a b=\"<\"/>"), "'<' in attribute");
    assert_xml_error(&doc("<a"), "unterminated start tag");
    assert_xml_error(&doc("<1a/>"), "expected a name");
    assert_xml_error(&doc("<a></a >x"), "text outside");
    assert_xml_error(&doc("<a></a"), "malformed end tag");
    assert_xml_error(&format!("\n{HEAD}<a/>"), "not at the very start");
    assert_xml_error(&doc("<a/><!DOCTYPE a>"), "DOCTYPE after the root");
    assert_xml_error(
        "<?xml version=\"1.0\"?>\n<!DOCTYPE a [<!ENTITY e \"x\">]><a/>",
        "internal DTD subset",
    );
    assert_xml_error(&doc("<a>\u{1}</a>"), "control character");
    assert_xml_error(&doc(""), "no root element");
}

#[test]
fn plist_layer_rejects_bad_property_lists() {
    let p = |body: &str| doc(&format!("<plist version=\"1.0\">\n{body}\n</plist>"));
    assert_plist_error(&p("<dict><key>A</key></dict>"), "<key>A</key> has no value");
    assert_plist_error(
        &p("<dict><key>A</key><key>B</key><true/></dict>"),
        "followed by another <key>",
    );
    assert_plist_error(
        &p("<dict><key>A</key><true/><false/></dict>"),
        "<false> where a <key> belongs",
    );
    assert_plist_error(
        &p("<dict><key>A</key><true/><key>A</key><true/></dict>"),
        "key \"A\" repeated",
    );
    assert_plist_error(&p("<dict>text</dict>"), "text \"text\" inside <dict>");
    assert_plist_error(&p("<dict/><dict/>"), "not exactly one <dict>");
    assert_plist_error(&p(""), "not exactly one <dict>");
    assert_plist_error(&p("<array/>"), "holds <array>, not <dict>");
    assert_plist_error(&p("stray<dict/>"), "directly inside <plist>");
    assert_plist_error(
        &p("<dict><key>A</key><true>x</true></dict>"),
        "<true> is not empty",
    );
    assert_plist_error(
        &p("<dict><key>A</key><integer>4x</integer></dict>"),
        "is not an integer",
    );
    assert_plist_error(
        &p("<dict><key>A</key><string><b/></string></dict>"),
        "which holds text only",
    );
    assert_plist_error(
        &p("<dict><key>A</key><date>yesterday</date></dict>"),
        "not YYYY-MM-DDTHH:MM:SSZ",
    );
    assert_plist_error(&p("<dict><key>A</key><data>!!</data></dict>"), "not base64");
    assert_plist_error(
        &p("<dict><key>A</key><str>x</str></dict>"),
        "<str> is not a plist element",
    );
    assert_plist_error(
        &p("<dict><key>A</key><string id=\"1\">x</string></dict>"),
        "has attributes",
    );
    assert_plist_error(
        &doc("<plist version=\"2.0\"><dict/></plist>"),
        "not version=\"1.0\"",
    );
    assert_plist_error(&doc("<plist><dict/></plist>"), "not version=\"1.0\"");
    assert_plist_error(&doc("<plst version=\"1.0\"><dict/></plst>"), "not <plist>");
    assert_plist_error(
        "<?xml version=\"1.0\"?>\n<plist version=\"1.0\"><dict/></plist>",
        "no DOCTYPE",
    );
    assert_plist_error(
        "<?xml version=\"1.0\"?>\n<!DOCTYPE plist SYSTEM \"x.dtd\">\n<plist version=\"1.0\"><dict/></plist>",
        "not the plist one",
    );
    assert_plist_error(
        "<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n<plist version=\"1.0\"><dict/></plist>",
        "no XML declaration",
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
        check_launchd(&plist::parse(&text).unwrap(), PLIST_NAME)
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
        &plist::parse(&doc("<plist version=\"1.0\"><dict/></plist>")).unwrap(),
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
        &plist::parse(&PLIST.replace(">REPLACE_WITH_USER<", ">alice<")).unwrap(),
        PLIST_NAME,
    )
    .unwrap_err();
    assert!(e.contains("not the placeholder"), "{e}");
    let e = check_launchd(&plist::parse(PLIST).unwrap(), "other.plist").unwrap_err();
    assert!(e.contains("does not match the file name"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// The shipped plist.
// ---------------------------------------------------------------------------------------------

#[test]
fn shipped_plist_is_a_valid_launchd_job() {
    let top = plist::parse(PLIST).unwrap_or_else(|e| panic!("{PLIST_NAME}: {e}"));
    let args = check_launchd(&top, PLIST_NAME).unwrap_or_else(|e| panic!("{PLIST_NAME}: {e}"));
    println!("{PLIST_NAME}: ProgramArguments {args:?}");
    // The install steps in the file's comment create every directory the job needs.
    let comments = xml::parse(PLIST).unwrap().comments.join("\n");
    let after = |flag: &str| {
        let i = args.iter().position(|a| a == flag).unwrap();
        PathBuf::from(&args[i + 1])
    };
    let log = PathBuf::from(top.get("StandardErrorPath").unwrap().as_str().unwrap());
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
    let ours = plist::parse(PLIST).unwrap().to_json();
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

/// Every flag the two files pass to `exo-discovery run` is one the built binary accepts
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
    let plist_args = check_launchd(&plist::parse(PLIST).unwrap(), PLIST_NAME).unwrap();
    for flag in unit_args
        .iter()
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
