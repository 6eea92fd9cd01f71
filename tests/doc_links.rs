//! The documents' links, checked: every relative link in `README.md` and under `docs/` names a
//! file or directory that exists, and every `#anchor` names a heading of the page it points to
//! (or of the linking page, for a bare `#anchor`), by GitHub's rules for heading anchors.
//!
//! Links are markdown's `[text](target)`, `![alt](target)` and `[label]: target`. Targets that
//! start with `http:`, `https:` or `mailto:` (or name any other scheme) are not followed. Fenced
//! code blocks, inline code and HTML comments are skipped. A failure lists every broken link as
//! `file:line: target (why)`.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// The documents checked: the README and every markdown file under `docs/`.
fn documents(root: &Path) -> Vec<PathBuf> {
    let mut out = vec![root.join("README.md")];
    let mut dirs = vec![root.join("docs")];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The text with fenced code blocks, inline code spans and HTML comments replaced by spaces,
/// newlines kept, so that line numbers stay those of the file.
fn prose(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut fence: Option<(char, usize)> = None;
    for line in text.split_inclusive('\n') {
        let opening = fence_of(line);
        match (fence, opening) {
            (None, Some(f)) => {
                fence = Some(f);
                out.push_str(&blank(line));
            }
            (Some((ch, len)), Some((c, l))) if c == ch && l >= len && is_bare_fence(line) => {
                fence = None;
                out.push_str(&blank(line));
            }
            (Some(_), _) => out.push_str(&blank(line)),
            (None, None) => out.push_str(line),
        }
    }
    blank_spans(&blank_comments(&out))
}

/// The fence a line opens or closes (its character and length), if it is one: three or more
/// backticks or tildes after indentation.
fn fence_of(line: &str) -> Option<(char, usize)> {
    let t = line.trim_start();
    let ch = t.chars().next().filter(|c| *c == '`' || *c == '~')?;
    let len = t.chars().take_while(|c| *c == ch).count();
    (len >= 3).then_some((ch, len))
}

/// A closing fence carries nothing after its fence characters.
fn is_bare_fence(line: &str) -> bool {
    let t = line.trim();
    t.chars().all(|c| c == '`' || c == '~')
}

fn blank(s: &str) -> String {
    s.chars()
        .map(|c| if c == '\n' { '\n' } else { ' ' })
        .collect()
}

fn blank_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("<!--") {
        let end = rest[start..]
            .find("-->")
            .map_or(rest.len(), |e| start + e + 3);
        out.push_str(&rest[..start]);
        out.push_str(&blank(&rest[start..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Inline code: a run of backticks up to the next run of the same length (within a
/// paragraph; an unmatched run is literal).
fn blank_spans(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out: Vec<char> = chars.clone();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '`' {
            i += 1;
            continue;
        }
        let run = chars[i..].iter().take_while(|c| **c == '`').count();
        let mut j = i + run;
        let mut close = None;
        while j < chars.len() {
            if chars[j] == '\n' && blank_line_follows(&chars[j + 1..]) {
                break;
            }
            if chars[j] == '`' {
                let r = chars[j..].iter().take_while(|c| **c == '`').count();
                if r == run {
                    close = Some(j + r);
                    break;
                }
                j += r;
            } else {
                j += 1;
            }
        }
        match close {
            Some(end) => {
                for c in &mut out[i..end] {
                    if *c != '\n' {
                        *c = ' ';
                    }
                }
                i = end;
            }
            None => i += run,
        }
    }
    out.into_iter().collect()
}

/// Whether the line at the start of `rest` is blank (a paragraph ends there).
fn blank_line_follows(rest: &[char]) -> bool {
    rest.iter()
        .take_while(|c| **c != '\n')
        .all(|c| c.is_whitespace())
}

/// One link: the line it is on (from 1) and its target as written.
#[derive(Debug, PartialEq)]
struct Link {
    line: usize,
    target: String,
}

/// Every link of a markdown text, outside code and comments.
fn links(text: &str) -> Vec<Link> {
    let text = prose(text);
    let bytes = text.as_bytes();
    let line_of = |at: usize| text[..at].matches('\n').count() + 1;
    let mut out = Vec::new();
    // Inline links and images: `](` after a bracketed text, then the target up to `)` or a
    // space (a title may follow).
    let mut from = 0;
    while let Some(at) = text[from..].find("](").map(|i| from + i) {
        from = at + 2;
        if !has_opening_bracket(bytes, at) {
            continue;
        }
        let rest = &text[at + 2..];
        let rest = rest.strip_prefix('<').unwrap_or(rest);
        let end = rest
            .find(|c: char| c == ')' || c == '>' || c.is_whitespace())
            .unwrap_or(rest.len());
        let target = &rest[..end];
        if !target.is_empty() {
            out.push(Link {
                line: line_of(at),
                target: target.to_owned(),
            });
        }
    }
    // Reference definitions: `[label]: target` at the start of a line.
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        if !t.starts_with('[') || line.len() - t.len() > 3 {
            continue;
        }
        let Some(close) = t.find(']') else {
            continue;
        };
        if let Some(after) = t[close + 1..].strip_prefix(':') {
            if let Some(target) = after.split_whitespace().next() {
                let target = target.trim_start_matches('<').trim_end_matches('>');
                out.push(Link {
                    line: i + 1,
                    target: target.to_owned(),
                });
            }
        }
    }
    out.sort_by_key(|l| l.line);
    out
}

/// Whether the `]` at `close` ends a bracketed text: a `[` before it, with brackets between
/// them balanced, not crossing a blank line.
fn has_opening_bracket(bytes: &[u8], close: usize) -> bool {
    let mut depth = 0usize;
    let mut i = close;
    while i > 0 {
        i -= 1;
        match bytes[i] {
            b']' => depth += 1,
            b'[' if depth == 0 => return true,
            b'[' => depth -= 1,
            b'\n' => {
                // The line before this newline: blank ends the paragraph.
                let start = bytes[..i]
                    .iter()
                    .rposition(|b| *b == b'\n')
                    .map_or(0, |p| p + 1);
                if bytes[start..i].iter().all(|b| b.is_ascii_whitespace()) {
                    return false;
                }
            }
            _ => {}
        }
    }
    false
}

/// The anchor GitHub gives a heading's text: link syntax dropped (its text kept), lowercase,
/// every character but letters, digits, `_`, `-` and spaces dropped (backticks too, so a code
/// span counts by its text), each space made `-`. Emphasis written with `_` is not recognised:
/// its underscores would stay.
fn slug(heading: &str) -> String {
    let mut text = String::new();
    let mut rest = heading;
    // `[text](target)` reads as `text`.
    while let Some(open) = rest.find('[') {
        let Some(mid) = rest[open..].find("](").map(|m| open + m) else {
            break;
        };
        let Some(close) = rest[mid..].find(')').map(|c| mid + c) else {
            break;
        };
        text.push_str(&rest[..open]);
        text.push_str(&rest[open + 1..mid]);
        rest = &rest[close + 1..];
    }
    text.push_str(rest);
    text.trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | ' '))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a markdown text: its headings' slugs (ATX `#` headings and setext ones
/// underlined by `=` or `-`, outside fenced code), a repeated one followed by `-1`, `-2`, …,
/// and any `id="…"` or `name="…"` of an HTML anchor.
fn anchors(text: &str) -> HashSet<String> {
    let mut out = HashSet::new();
    let add = |title: &str, out: &mut HashSet<String>| {
        let base = slug(title);
        let mut anchor = base.clone();
        let mut n = 0;
        while out.contains(&anchor) {
            n += 1;
            anchor = format!("{base}-{n}");
        }
        out.insert(anchor);
    };
    let lines: Vec<&str> = text.lines().collect();
    let mut fence: Option<(char, usize)> = None;
    for (i, line) in lines.iter().enumerate() {
        match (fence, fence_of(line)) {
            (None, Some(f)) => {
                fence = Some(f);
                continue;
            }
            (Some((ch, len)), Some((c, l))) if c == ch && l >= len && is_bare_fence(line) => {
                fence = None;
                continue;
            }
            (Some(_), _) => continue,
            (None, None) => {}
        }
        let indent = line.len() - line.trim_start().len();
        if indent > 3 || line.trim().is_empty() {
            continue;
        }
        let t = line.trim();
        let hashes = t.chars().take_while(|c| *c == '#').count();
        let after = &t[hashes..];
        if (1..=6).contains(&hashes) && (after.is_empty() || after.starts_with(' ')) {
            // A closing run of `#` after a space is not part of the title.
            let title = after.trim();
            let title = match title.trim_end_matches('#') {
                rest if rest.is_empty() || rest.ends_with(' ') => rest.trim_end(),
                _ => title,
            };
            add(title, &mut out);
            continue;
        }
        let underline = lines.get(i + 1).map(|l| l.trim()).is_some_and(|u| {
            !u.is_empty() && (u.chars().all(|c| c == '=') || u.chars().all(|c| c == '-'))
        });
        let plain = !t.starts_with('|') && !t.starts_with("- ") && !t.starts_with("* ");
        if underline && plain {
            add(t, &mut out);
        }
    }
    // Outside code and comments.
    let clean = prose(text);
    for key in ["id=\"", "name=\""] {
        let mut rest = clean.as_str();
        while let Some(at) = rest.find(key) {
            rest = &rest[at + key.len()..];
            if let Some(end) = rest.find('"') {
                out.insert(rest[..end].to_owned());
            }
        }
    }
    out
}

/// Every broken relative link of the documents under `root`, as `file:line: target (why)`.
fn broken_links(root: &Path, docs: &[PathBuf]) -> Vec<String> {
    let mut cache: HashMap<PathBuf, HashSet<String>> = HashMap::new();
    let mut anchors_of = |path: &Path| -> HashSet<String> {
        cache
            .entry(path.to_path_buf())
            .or_insert_with(|| anchors(&std::fs::read_to_string(path).unwrap_or_default()))
            .clone()
    };
    let mut out = Vec::new();
    for doc in docs {
        let text =
            std::fs::read_to_string(doc).unwrap_or_else(|e| panic!("{}: {e}", doc.display()));
        let shown = doc.strip_prefix(root).unwrap_or(doc).display().to_string();
        for link in links(&text) {
            let target = link.target.as_str();
            if is_external(target) {
                continue;
            }
            let (path, anchor) = match target.split_once('#') {
                Some((p, a)) => (p, Some(a)),
                None => (target, None),
            };
            let path = percent_decode(path.split('?').next().unwrap_or(path));
            let file = if path.is_empty() {
                doc.clone()
            } else if let Some(abs) = path.strip_prefix('/') {
                root.join(abs)
            } else {
                doc.parent().unwrap_or(root).join(&path)
            };
            let mut fail = |why: &str| out.push(format!("{shown}:{}: {target} ({why})", link.line));
            if !file.exists() {
                fail("no such file or directory");
                continue;
            }
            let Some(anchor) = anchor.filter(|a| !a.is_empty()) else {
                continue;
            };
            let page = if file.is_dir() {
                file.join("README.md")
            } else {
                file.clone()
            };
            if page.extension().is_some_and(|e| e == "md") && page.is_file() {
                if !anchors_of(&page).contains(&percent_decode(anchor)) {
                    fail("no such heading");
                }
            } else if !is_line_anchor(anchor) {
                fail("an anchor in a file that has no headings");
            }
        }
    }
    out
}

fn is_external(target: &str) -> bool {
    let lower = target.to_ascii_lowercase();
    if ["http:", "https:", "mailto:"]
        .iter()
        .any(|s| lower.starts_with(s))
    {
        return true;
    }
    // Any other scheme (`ftp:`, `tel:`, …): letters, digits, `+`, `-`, `.` before a colon.
    match lower.split_once(':') {
        Some((scheme, _)) => {
            !scheme.is_empty()
                && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        }
        None => false,
    }
}

/// GitHub's line anchors in a source file: `L12` or `L12-L20`.
fn is_line_anchor(anchor: &str) -> bool {
    let line = |s: &str| {
        s.strip_prefix('L')
            .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
    };
    match anchor.split_once('-') {
        Some((a, b)) => line(a) && line(b),
        None => line(anchor),
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn every_relative_link_in_the_readme_and_docs_resolves() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let docs = documents(root);
    assert!(
        docs.len() > 1,
        "no pages under {}",
        root.join("docs").display()
    );
    let broken = broken_links(root, &docs);
    assert!(
        broken.is_empty(),
        "{} broken link(s):\n{}",
        broken.len(),
        broken.join("\n")
    );
}

#[test]
fn a_heading_slug_follows_githubs_rules() {
    assert_eq!(slug("Today's Exo (zenoh)"), "todays-exo-zenoh");
    assert_eq!(slug("How it works"), "how-it-works");
    assert_eq!(slug("macOS (launchd)"), "macos-launchd");
    assert_eq!(
        slug("Peer exchange: one static host is enough"),
        "peer-exchange-one-static-host-is-enough"
    );
    // Code spans count by their text.
    assert_eq!(
        slug("Debugging multicast: `doctor` and `status`"),
        "debugging-multicast-doctor-and-status"
    );
    // `_` and `-` stay, other punctuation goes, and every space is a dash (two in a row stay two).
    assert_eq!(slug("peer_exchange = false"), "peer_exchange--false");
    assert_eq!(slug("bytes ↔ values"), "bytes--values");
    assert_eq!(
        slug("1,000 agents in the simulator"),
        "1000-agents-in-the-simulator"
    );
    // A link in a heading reads as its text.
    assert_eq!(
        slug("See [the protocol](protocol.md) now"),
        "see-the-protocol-now"
    );
}

#[test]
fn repeated_headings_get_numbered_anchors() {
    let a = anchors("# Status\n\n## Status\n\n### Status\n\nSetext\n------\n");
    for want in ["status", "status-1", "status-2", "setext"] {
        assert!(a.contains(want), "{want} in {a:?}");
    }
    assert!(!a.contains("status-3"));
}

#[test]
fn links_in_code_and_comments_are_not_links() {
    let text = "See [a](a.md) and `[b](b.md)`.\n\n```md\n[c](c.md)\n# not a heading\n```\n\
                <!-- [d](d.md) -->\n[e\ntext](e.md#x) [f]: g\n\n[ref]: ref.md\n";
    let got: Vec<(usize, String)> = links(text)
        .into_iter()
        .map(|l| (l.line, l.target))
        .collect();
    let want = [(1, "a.md"), (9, "e.md#x"), (11, "ref.md")].map(|(n, t)| (n, t.to_owned()));
    assert_eq!(got, want);
    assert!(!anchors(text).contains("not-a-heading"));
}

#[test]
fn a_broken_link_is_reported_with_its_file_and_line() {
    let dir = std::env::temp_dir().join(format!("exo-discovery-doc-links-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("docs")).unwrap();
    std::fs::write(
        dir.join("README.md"),
        "# Top\n\n[ok](docs/a.md#part-one) [dir](docs/)\n[gone](docs/missing.md)\n\
         [bad anchor](docs/a.md#part-three) [here](#top) [not here](#nowhere)\n\
         [web](https://example.com/x.md) [mail](mailto:a@b.c)\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("docs/a.md"),
        "# A\n\n## Part one\n\n[back](../README.md#top) [src](../src/lib.rs#L3)\n",
    )
    .unwrap();
    let broken = broken_links(&dir, &documents(&dir));
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        broken,
        [
            "README.md:4: docs/missing.md (no such file or directory)",
            "README.md:5: docs/a.md#part-three (no such heading)",
            "README.md:5: #nowhere (no such heading)",
            "docs/a.md:5: ../src/lib.rs#L3 (no such file or directory)",
        ]
    );
}
