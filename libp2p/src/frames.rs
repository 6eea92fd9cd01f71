//! The agent's messages out of the bytes its socket delivers, in whatever pieces they come. Pure,
//! no I/O: the non-blocking counterpart of [`exo_discovery::client::Client::next_message`], with the same
//! bounds (a frame's length prefix is checked before its body is waited for, a snapshot sent in
//! parts is joined up to [`MAX_SNAPSHOT_BYTES`]).

use exo_discovery::client::MAX_SNAPSHOT_BYTES;
use exo_discovery::protocol::{self, AgentMsg, FrameError, PeerInfo};

/// Why the byte stream cannot be read further; the connection is to be closed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum StreamError {
    /// A length prefix over [`protocol::MAX_FRAME`], or a body that does not decode.
    Frame(FrameError),
    /// Snapshot parts adding up to more than [`MAX_SNAPSHOT_BYTES`].
    SnapshotTooLarge,
    /// A snapshot part followed by something other than more of the snapshot.
    UnfinishedSnapshot,
}

impl std::fmt::Display for StreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StreamError::Frame(e) => write!(f, "{e}"),
            StreamError::SnapshotTooLarge => {
                write!(f, "snapshot larger than {MAX_SNAPSHOT_BYTES} bytes")
            }
            StreamError::UnfinishedSnapshot => {
                f.write_str("snapshot part followed by another message")
            }
        }
    }
}

/// Bytes in, messages out.
pub(crate) struct Frames {
    /// Received bytes; those before `start` are consumed.
    buf: Vec<u8>,
    start: usize,
    /// The parts of a snapshot so far, and their size on the wire.
    parts: Vec<PeerInfo>,
    parts_bytes: usize,
    /// Set once an error was returned: nothing more is read.
    failed: bool,
    /// Most bytes of one snapshot in parts.
    max_snapshot: usize,
}

impl Default for Frames {
    fn default() -> Self {
        Frames {
            buf: Vec::new(),
            start: 0,
            parts: Vec::new(),
            parts_bytes: 0,
            failed: false,
            max_snapshot: MAX_SNAPSHOT_BYTES,
        }
    }
}

impl Frames {
    /// Takes in bytes as they arrived.
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole message, if its bytes are all in. After an error, always `None`.
    pub(crate) fn next_msg(&mut self) -> Option<Result<AgentMsg, StreamError>> {
        loop {
            if self.failed {
                return None;
            }
            let msg = match self.next_frame()? {
                Ok(m) => m,
                Err(e) => return Some(self.fail(e)),
            };
            match msg {
                (AgentMsg::SnapshotPart(p), len) => {
                    self.parts_bytes += len;
                    if self.parts_bytes > self.max_snapshot {
                        return Some(self.fail(StreamError::SnapshotTooLarge));
                    }
                    self.parts.extend(p);
                }
                (AgentMsg::Snapshot(rest), _) if !self.parts.is_empty() => {
                    let mut all = std::mem::take(&mut self.parts);
                    self.parts_bytes = 0;
                    all.extend(rest);
                    return Some(Ok(AgentMsg::Snapshot(all)));
                }
                (other, _) if self.parts.is_empty() => return Some(Ok(other)),
                _ => return Some(self.fail(StreamError::UnfinishedSnapshot)),
            }
        }
    }

    fn fail(&mut self, e: StreamError) -> Result<AgentMsg, StreamError> {
        self.failed = true;
        self.buf = Vec::new();
        self.parts = Vec::new();
        Err(e)
    }

    /// One frame and its body's length, once the prefix and the whole body are in.
    fn next_frame(&mut self) -> Option<Result<(AgentMsg, usize), StreamError>> {
        let avail = &self.buf[self.start..];
        let prefix: [u8; 4] = avail.get(..4)?.try_into().ok()?;
        let len = match protocol::body_len(prefix) {
            Ok(n) => n,
            Err(e) => return Some(Err(StreamError::Frame(e))),
        };
        let body = avail.get(4..4 + len)?;
        let msg = protocol::decode::<AgentMsg>(body).map_err(StreamError::Frame);
        self.start += 4 + len;
        Some(msg.map(|m| (m, len)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use exo_discovery::protocol::{EventKind, PeerEvent, Source};

    fn peer(i: usize) -> PeerInfo {
        PeerInfo {
            peer_id: format!("peer-{i}"),
            addrs: vec![format!("/ip4/10.0.0.{}/tcp/4001", i % 250)],
            interfaces: vec!["eth0".into()],
            source: Source::Mdns,
            verified: vec![],
            seq: i as u64,
        }
    }

    #[test]
    fn messages_come_out_whole_however_the_bytes_are_cut() {
        let msgs = vec![
            AgentMsg::Welcome {
                version: 1,
                namespace: "exo".into(),
            },
            AgentMsg::Snapshot(vec![peer(1), peer(2)]),
            AgentMsg::Event(PeerEvent {
                event: EventKind::Expired,
                peer: peer(1),
            }),
        ];
        let bytes: Vec<u8> = msgs.iter().flat_map(protocol::encode).collect();
        for piece in [1, 3, 4, 5, 7, bytes.len()] {
            let mut f = Frames::default();
            let mut got = Vec::new();
            for chunk in bytes.chunks(piece) {
                f.push(chunk);
                while let Some(m) = f.next_msg() {
                    got.push(m.unwrap());
                }
            }
            assert_eq!(got, msgs, "pieces of {piece} bytes");
            assert!(f.buf.len() - f.start == 0);
        }
    }

    #[test]
    fn a_snapshot_in_parts_comes_out_joined() {
        let peers: Vec<PeerInfo> = (0..5000).map(peer).collect();
        let mut bytes = Vec::new();
        for chunk in peers.chunks(1000).take(4) {
            bytes.extend(protocol::encode(&AgentMsg::SnapshotPart(chunk.to_vec())));
        }
        bytes.extend(protocol::encode(&AgentMsg::Snapshot(
            peers[4000..].to_vec(),
        )));
        let mut f = Frames::default();
        f.push(&bytes);
        assert_eq!(f.next_msg(), Some(Ok(AgentMsg::Snapshot(peers))));
        assert_eq!(f.next_msg(), None);
    }

    #[test]
    fn an_oversize_prefix_is_refused_before_its_body_arrives() {
        let mut f = Frames::default();
        f.push(&((protocol::MAX_FRAME + 1) as u32).to_be_bytes());
        assert_eq!(
            f.next_msg(),
            Some(Err(StreamError::Frame(FrameError::TooLarge(
                protocol::MAX_FRAME + 1
            ))))
        );
        f.push(&[0; 64]);
        assert_eq!(f.next_msg(), None, "nothing is read after an error");
    }

    #[test]
    fn garbage_and_broken_snapshots_are_errors_not_panics() {
        let mut f = Frames::default();
        f.push(&[0, 0, 0, 3, 0xff, 0xff, 0xff]);
        assert_eq!(
            f.next_msg(),
            Some(Err(StreamError::Frame(FrameError::Malformed)))
        );

        let mut f = Frames::default();
        f.push(&protocol::encode(&AgentMsg::SnapshotPart(vec![peer(1)])));
        f.push(&protocol::encode(&AgentMsg::Done {
            message: "x".into(),
        }));
        assert_eq!(f.next_msg(), Some(Err(StreamError::UnfinishedSnapshot)));

        // Parts that never end are cut off at the bound (a small one here).
        let mut f = Frames {
            max_snapshot: 10_000,
            ..Frames::default()
        };
        let big = protocol::encode(&AgentMsg::SnapshotPart((0..50).map(peer).collect()));
        let mut seen = None;
        for _ in 0..(10_000 / (big.len() - 4) + 2) {
            f.push(&big);
            if let Some(r) = f.next_msg() {
                seen = Some(r);
                break;
            }
        }
        assert_eq!(seen, Some(Err(StreamError::SnapshotTooLarge)));

        // Every prefix of every cut of a valid stream, and random bytes: no panic.
        let mut x: u32 = 7;
        for n in 0..2000 {
            let mut f = Frames::default();
            let bytes: Vec<u8> = (0..(n % 97))
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    (x >> 16) as u8
                })
                .collect();
            f.push(&bytes);
            while let Some(Ok(_)) = f.next_msg() {}
        }
    }
}
