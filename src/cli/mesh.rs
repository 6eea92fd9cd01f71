//! `exo-discovery mesh`: the views the agents handed over, as a matrix of who sees whom and why
//! not, as text, JSON and an SVG picture. Pure: values in, text out.

use crate::wire::mesh::{HostView, View};
use serde::Serialize;
use std::fmt::Write as _;
use std::net::IpAddr;

/// One observing host (a row).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Host {
    /// How it is shown: its first routable address, else where it was asked.
    pub label: String,
    /// The peer IDs it runs (announced, or expected where it did not answer).
    pub peers: Vec<String>,
    /// Why it gave no view, if it gave none.
    pub no_view: Option<String>,
}

/// One cell: what `observer` knows of `peer`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Cell {
    /// Row: index into [`Matrix::hosts`].
    pub observer: usize,
    /// Column: index into [`Matrix::peers`].
    pub peer: usize,
    /// How it knows the peer (`v4:eth0`, `v6:eth0`, `static`, `exchange`, `cache`, `self`); empty:
    /// it does not.
    pub ways: Vec<String>,
    /// Seconds since it last heard the peer, if known.
    pub age_secs: Option<u64>,
    /// Why it does not know the peer, or what it knows is missing.
    pub reason: Option<String>,
}

/// Who sees whom.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Matrix {
    /// The observers, the asked agent first.
    pub hosts: Vec<Host>,
    /// Every peer any of them runs or knows.
    pub peers: Vec<String>,
    /// The host running each peer, if known.
    pub peer_host: Vec<Option<usize>>,
    /// Row by row, one cell a peer.
    pub cells: Vec<Cell>,
    /// The views as handed over.
    pub views: Vec<HostView>,
}

fn routable(ip: &IpAddr) -> bool {
    !matches!(ip, IpAddr::V6(v6) if crate::wire::addrs::is_link_local_v6(v6)) && !ip.is_loopback()
}

/// Why `v` (the observer's view) does not know a peer of `host` (its view, if it gave one).
fn why_not(v: &View, host: Option<&View>) -> String {
    let broken: Vec<String> = v
        .links
        .iter()
        .filter_map(|l| Some(format!("{} {}: {}", l.iface, l.family, l.problem.as_ref()?)))
        .collect();
    let working = v.links.iter().filter(|l| l.problem.is_none()).count();
    if working == 0 && !broken.is_empty() {
        return format!("its links do not work ({})", broken.join("; "));
    }
    let Some(h) = host else {
        return "not known here; its host gave no view".to_owned();
    };
    let heard: Vec<&IpAddr> = v
        .heard
        .iter()
        .map(|x| &x.ip)
        .filter(|ip| h.addrs.contains(ip))
        .collect();
    let mut why = if heard.is_empty() {
        let addrs: Vec<String> = h.addrs.iter().filter(|ip| routable(ip)).map(|ip| ip.to_string()).collect();
        format!("no mDNS packet heard from its host ({})", addrs.join(", "))
    } else if heard.iter().all(|ip| ip.is_ipv6()) {
        "heard only on IPv6, no verified record".to_owned()
    } else {
        "heard its host, but holds no record of it (refused? see its status)".to_owned()
    };
    if !broken.is_empty() {
        let _ = write!(why, "; {}", broken.join("; "));
    }
    why
}

impl Matrix {
    /// The matrix of `hosts` (as the agent handed them over).
    pub fn build(hosts: &[HostView]) -> Matrix {
        let mut rows = Vec::new();
        let mut peers: Vec<String> = Vec::new();
        let add = |p: &String, peers: &mut Vec<String>| {
            if !peers.contains(p) {
                peers.push(p.clone());
            }
        };
        for h in hosts {
            let (label, runs, no_view) = match &h.view {
                Ok(v) => (
                    v.addrs
                        .iter()
                        .find(|ip| routable(ip))
                        .map(|ip| ip.to_string())
                        .unwrap_or_else(|| h.asked.clone()),
                    v.announces.clone(),
                    None,
                ),
                Err(e) => (h.asked.clone(), h.expected.clone(), Some(e.clone())),
            };
            runs.iter().for_each(|p| add(p, &mut peers));
            rows.push(Host {
                label,
                peers: runs,
                no_view,
            });
        }
        for h in hosts {
            if let Ok(v) = &h.view {
                v.peers.iter().for_each(|s| add(&s.peer_id, &mut peers));
            }
        }
        let peer_host: Vec<Option<usize>> = peers
            .iter()
            .map(|p| rows.iter().position(|r| r.peers.contains(p)))
            .collect();
        let mut cells = Vec::new();
        for (o, h) in hosts.iter().enumerate() {
            for (i, p) in peers.iter().enumerate() {
                let mut cell = Cell {
                    observer: o,
                    peer: i,
                    ways: vec![],
                    age_secs: None,
                    reason: None,
                };
                match &h.view {
                    Err(e) => cell.reason = Some(e.clone()),
                    Ok(_) if rows[o].peers.contains(p) => cell.ways = vec!["self".into()],
                    Ok(v) => match v.peers.iter().find(|s| &s.peer_id == p) {
                        Some(s) => {
                            cell.ways = s.ways.clone();
                            cell.age_secs = s.age_secs;
                            cell.reason = (!s.missing.is_empty()).then(|| s.missing.join("; "));
                        }
                        None => {
                            let host = peer_host[i].and_then(|x| hosts[x].view.as_ref().ok());
                            cell.reason = Some(why_not(v, host));
                        }
                    },
                }
                cells.push(cell);
            }
        }
        Matrix {
            hosts: rows,
            peers,
            peer_host,
            cells,
            views: hosts.to_vec(),
        }
    }

    /// The cell of `observer` and `peer`.
    pub fn cell(&self, observer: usize, peer: usize) -> &Cell {
        &self.cells[observer * self.peers.len() + peer]
    }

    /// Whether host `a` sees every peer host `b` runs (`None`: `a` gave no view, or `b` runs none).
    pub fn sees(&self, a: usize, b: usize) -> Option<bool> {
        if self.hosts[a].no_view.is_some() {
            return None;
        }
        let cols: Vec<usize> = (0..self.peers.len())
            .filter(|&i| self.peer_host[i] == Some(b))
            .collect();
        if cols.is_empty() {
            return None;
        }
        Some(cols.iter().all(|&i| !self.cell(a, i).ways.is_empty()))
    }
}

/// A peer ID shortened for a column head: its last 6 characters.
pub fn short(peer: &str) -> String {
    let n = peer.chars().count();
    peer.chars().skip(n.saturating_sub(6)).collect()
}

fn mark(c: &Cell) -> String {
    if c.ways.is_empty() {
        return String::new();
    }
    if c.ways == ["self"] {
        return "self".into();
    }
    let mut kinds: Vec<&str> = c
        .ways
        .iter()
        .map(|w| w.split(':').next().unwrap_or(w))
        .collect();
    kinds.dedup();
    let mut s = kinds.join(",");
    if let Some(a) = c.age_secs {
        let _ = write!(s, " {a}s");
    }
    s
}

/// The matrix as text: one row per observing host, one column per peer (headed by its short ID
/// and the host running it); a missing cell points to a numbered note with the reason.
pub fn text(m: &Matrix) -> String {
    let mut notes: Vec<String> = Vec::new();
    let mut table: Vec<Vec<String>> = Vec::new();
    let mut head = vec!["observer \\ peer".to_owned()];
    for (i, p) in m.peers.iter().enumerate() {
        let host = m.peer_host[i].map(|h| m.hosts[h].label.as_str()).unwrap_or("?");
        head.push(format!("{} ({host})", short(p)));
    }
    table.push(head);
    for (o, h) in m.hosts.iter().enumerate() {
        let mut row = vec![h.label.clone()];
        if let Some(why) = &h.no_view {
            notes.push(format!("{}: {why}", h.label));
            row.extend((0..m.peers.len()).map(|_| format!("? [{}]", notes.len())));
            table.push(row);
            continue;
        }
        for i in 0..m.peers.len() {
            let c = m.cell(o, i);
            let mut s = mark(c);
            if let Some(r) = &c.reason {
                notes.push(format!("{} -> {}: {r}", h.label, short(&m.peers[i])));
                if s.is_empty() {
                    s = "-".into();
                }
                let _ = write!(s, " [{}]", notes.len());
            }
            row.push(s);
        }
        table.push(row);
    }
    let cols = table.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..cols)
        .map(|c| table.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in &table {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(s, w)| format!("{s:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    for (n, note) in notes.iter().enumerate() {
        let _ = writeln!(out, "[{}] {note}", n + 1);
    }
    if m.peers.is_empty() {
        out.push_str("no peers known\n");
    }
    out.truncate(out.trim_end().len());
    out
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A self-contained SVG picture: the hosts on a circle; between two hosts a green line when each
/// sees the other, an orange arrow from the host that sees to the one seen when only one does, a
/// red dashed line when neither does, grey when a view is missing; the missing pairs with their
/// reasons listed below.
pub fn svg(m: &Matrix) -> String {
    let n = m.hosts.len().max(1);
    let (cx, cy, r) = (300.0_f64, 260.0_f64, 200.0_f64);
    let pos = |i: usize| {
        let a = std::f64::consts::TAU * i as f64 / n as f64 - std::f64::consts::FRAC_PI_2;
        (cx + r * a.cos(), cy + r * a.sin())
    };
    let mut lines = Vec::new();
    for (o, h) in m.hosts.iter().enumerate() {
        if let Some(why) = &h.no_view {
            lines.push(format!("{}: {why}", h.label));
            continue;
        }
        for i in 0..m.peers.len() {
            let c = m.cell(o, i);
            if c.ways.is_empty() {
                let host = m.peer_host[i].map(|x| m.hosts[x].label.as_str()).unwrap_or("?");
                lines.push(format!(
                    "{} does not see {} ({host}): {}",
                    h.label,
                    short(&m.peers[i]),
                    c.reason.as_deref().unwrap_or("")
                ));
            }
        }
    }
    let height = 540 + 18 * lines.len();
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"900\" height=\"{height}\" \
         viewBox=\"0 0 900 {height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <title>exo-discovery mesh</title>\n\
         <defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"8\" \
         markerHeight=\"8\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#e67e22\"/></marker></defs>\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    for a in 0..m.hosts.len() {
        for b in (a + 1)..m.hosts.len() {
            let (ab, ba) = (m.sees(a, b), m.sees(b, a));
            let ((x1, y1), (x2, y2)) = (pos(a), pos(b));
            let (color, extra, from_to) = match (ab, ba) {
                (Some(true), Some(true)) => ("#27ae60", "", None),
                (Some(true), Some(false)) => ("#e67e22", " marker-end=\"url(#arrow)\"", Some((a, b))),
                (Some(false), Some(true)) => ("#e67e22", " marker-end=\"url(#arrow)\"", Some((b, a))),
                (Some(false), Some(false)) => ("#c0392b", " stroke-dasharray=\"6 4\"", None),
                _ => ("#95a5a6", " stroke-dasharray=\"2 4\"", None),
            };
            let ((x1, y1), (x2, y2)) = match from_to {
                Some((f, t)) => (pos(f), pos(t)),
                None => ((x1, y1), (x2, y2)),
            };
            // Stop short of the target's circle, so an arrow's head shows.
            let (dx, dy) = (x2 - x1, y2 - y1);
            let len = (dx * dx + dy * dy).sqrt().max(1.0);
            let (x2, y2) = (x2 - dx / len * 24.0, y2 - dy / len * 24.0);
            let _ = writeln!(
                s,
                "<line x1=\"{x1:.1}\" y1=\"{y1:.1}\" x2=\"{x2:.1}\" y2=\"{y2:.1}\" stroke=\"{color}\" \
                 stroke-width=\"2\"{extra}/>"
            );
        }
    }
    for (i, h) in m.hosts.iter().enumerate() {
        let (x, y) = pos(i);
        let fill = if h.no_view.is_some() { "#ecf0f1" } else { "#d6eaf8" };
        let _ = writeln!(
            s,
            "<g><circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"22\" fill=\"{fill}\" stroke=\"#2c3e50\"/>\
             <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text></g>",
            y + 38.0,
            esc(&h.label)
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"620\" y=\"40\">green: both see each other</text>\
         <text x=\"620\" y=\"58\" fill=\"#e67e22\">orange arrow: only this way</text>\
         <text x=\"620\" y=\"76\" fill=\"#c0392b\">red dashed: neither</text>\
         <text x=\"620\" y=\"94\" fill=\"#7f8c8d\">grey: no view</text>"
    );
    for (k, l) in lines.iter().enumerate() {
        let _ = writeln!(
            s,
            "<text x=\"20\" y=\"{}\" class=\"missing\">{}</text>",
            530 + 18 * k,
            esc(l)
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::mesh::{Heard, LinkView, Seen};

    fn link(problem: Option<&str>) -> Vec<LinkView> {
        ["v4", "v6"]
            .iter()
            .map(|f| LinkView {
                iface: "eth0".into(),
                family: (*f).into(),
                problem: problem.map(str::to_owned),
            })
            .collect()
    }

    fn view(n: u8, sees: &[(&str, &str)], heard: &[u8]) -> HostView {
        HostView {
            asked: format!("10.0.0.{n}"),
            expected: vec![format!("peer{n}")],
            view: Ok(View {
                announces: vec![format!("peer{n}")],
                addrs: vec![IpAddr::from([10, 0, 0, n])],
                links: link(None),
                heard: heard
                    .iter()
                    .map(|h| Heard {
                        ip: IpAddr::from([10, 0, 0, *h]),
                        iface: "eth0".into(),
                        age_secs: 1,
                    })
                    .collect(),
                peers: sees
                    .iter()
                    .map(|(p, w)| Seen {
                        peer_id: (*p).into(),
                        ways: vec![(*w).into()],
                        age_secs: Some(2),
                        verified: true,
                        missing: vec![],
                    })
                    .collect(),
            }),
        }
    }

    /// Three hosts; 1 hears nothing from 2, 2 sees 1; 3 sees both; a fourth did not answer.
    fn sample() -> Vec<HostView> {
        vec![
            view(1, &[("peer3", "v4:eth0")], &[3]),
            view(2, &[("peer1", "v4:eth0"), ("peer3", "v6:eth0")], &[1, 3]),
            view(3, &[("peer1", "v4:eth0"), ("peer2", "exchange")], &[1, 2]),
            HostView {
                asked: "10.0.0.4".into(),
                expected: vec!["peer4".into()],
                view: Err("did not answer: 10.0.0.4:5353: connection refused".into()),
            },
        ]
    }

    #[test]
    fn the_matrix_marks_each_way_and_gives_the_reason_for_a_missing_pair() {
        let m = Matrix::build(&sample());
        assert_eq!(m.peers, ["peer1", "peer2", "peer3", "peer4"]);
        assert_eq!(m.cell(0, 0).ways, ["self"]);
        assert!(m.cell(0, 1).ways.is_empty());
        let why = m.cell(0, 1).reason.clone().unwrap();
        assert!(why.contains("no mDNS packet heard from its host (10.0.0.2)"), "{why}");
        assert_eq!(m.sees(0, 1), Some(false));
        assert_eq!(m.sees(1, 0), Some(true));
        assert_eq!(m.sees(3, 0), None);
        let t = text(&m);
        assert!(t.contains("v4 2s"), "{t}");
        assert!(t.contains("ex 2s") || t.contains("exchange 2s"), "{t}");
        assert!(t.contains("10.0.0.4: did not answer"), "{t}");
        assert!(t.contains("10.0.0.1 -> peer2: no mDNS packet"), "{t}");
    }

    #[test]
    fn a_broken_link_and_a_v6_only_sender_are_told() {
        let mut hosts = sample();
        if let Ok(v) = &mut hosts[0].view {
            v.links = link(Some("multicast send refused: EPERM"));
        }
        let m = Matrix::build(&hosts);
        let why = m.cell(0, 1).reason.clone().unwrap();
        assert!(why.contains("EPERM"), "{why}");
        let mut hosts = sample();
        if let Ok(v) = &mut hosts[0].view {
            v.heard.push(Heard {
                ip: "fe80::2".parse().unwrap(),
                iface: "eth0".into(),
                age_secs: 0,
            });
        }
        if let Ok(v) = &mut hosts[1].view {
            v.addrs.push("fe80::2".parse().unwrap());
        }
        let why = Matrix::build(&hosts).cell(0, 1).reason.clone().unwrap();
        assert!(why.contains("heard only on IPv6"), "{why}");
    }

    #[test]
    fn the_picture_is_well_formed_svg_naming_the_missing_pairs() {
        let mut hosts = sample();
        hosts[3].asked = "<&\">".into();
        let s = svg(&Matrix::build(&hosts));
        use quick_xml::events::Event;
        let mut r = quick_xml::Reader::from_str(&s);
        r.config_mut().check_end_names = true;
        let (mut texts, mut depth, mut root) = (String::new(), 0usize, None);
        loop {
            match r.read_event() {
                Ok(Event::Eof) => break,
                Ok(Event::Start(e)) => {
                    if depth == 0 {
                        root = Some(e.name().as_ref().to_owned());
                    }
                    depth += 1;
                }
                Ok(Event::End(_)) => {
                    depth -= 1;
                    texts.push('\n');
                }
                Ok(Event::Text(t)) => texts.push_str(&t.into_inner()),
                Ok(Event::GeneralRef(g)) => {
                    let c = quick_xml::escape::resolve_predefined_entity(&g).unwrap();
                    texts.push_str(c);
                }
                Ok(_) => {}
                Err(e) => panic!("not well-formed: {e}\n{s}"),
            }
        }
        assert_eq!((root.as_deref(), depth), (Some("svg"), 0));
        assert!(texts.contains("<&\">: did not answer"), "{texts}");
        assert!(texts.contains("10.0.0.1 does not see peer2 (10.0.0.2)"), "{texts}");
        assert!(s.contains("marker-end"), "one-way pair drawn as an arrow");
    }
}
