//! The agent's messages out of the bytes its socket delivers, in whatever pieces they come. Pure,
//! no I/O: the non-blocking counterpart of [`exo_discovery::client::Client::next_message`], with
//! the same parts and bounds: [`FrameDecoder`] takes the frames (a length prefix over
//! [`protocol::MAX_FRAME`] is refused before its body is waited for), [`SnapshotJoiner`] joins a
//! snapshot sent in parts (up to [`MAX_SNAPSHOT_BYTES`]).

use exo_discovery::protocol::{
    self, AgentMsg, DecodeError, FrameDecoder, FrameError, Framing, JoinError, SnapshotJoiner,
    MAX_SNAPSHOT_BYTES,
};

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

impl From<DecodeError> for StreamError {
    fn from(e: DecodeError) -> Self {
        match e {
            DecodeError::TooLarge { len, .. } => StreamError::Frame(FrameError::TooLarge(len)),
            // Lines, a bounded room and the end of the stream are not this stream's: it is
            // length-prefixed, its decoder's room unbounded, and it is never finished.
            _ => StreamError::Frame(FrameError::Malformed),
        }
    }
}

impl From<JoinError> for StreamError {
    fn from(e: JoinError) -> Self {
        match e {
            JoinError::TooLarge(_) => StreamError::SnapshotTooLarge,
            // `JoinError::Unfinished`, a part followed by something else.
            _ => StreamError::UnfinishedSnapshot,
        }
    }
}

/// Bytes in, messages out. One per connection.
pub(crate) struct Frames {
    frames: FrameDecoder,
    joiner: SnapshotJoiner,
    /// Set once an error was returned: nothing more is read.
    failed: bool,
}

impl Default for Frames {
    fn default() -> Self {
        Frames {
            frames: FrameDecoder::new(Framing::LengthPrefixed, protocol::MAX_FRAME),
            joiner: SnapshotJoiner::new(),
            failed: false,
        }
    }
}

impl Frames {
    /// Takes in bytes as they arrived: the messages they complete, in order. After an error,
    /// always none.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> Result<Vec<AgentMsg>, StreamError> {
        let mut msgs = Vec::new();
        if self.failed {
            return Ok(msgs);
        }
        let read = self.read(bytes, &mut msgs);
        if read.is_err() {
            self.failed = true;
            // The parts of a snapshot under way are let go.
            self.joiner = SnapshotJoiner::new();
        }
        read.map(|()| msgs)
    }

    fn read(&mut self, mut input: &[u8], msgs: &mut Vec<AgentMsg>) -> Result<(), StreamError> {
        while let Some(body) = self.frames.push(&mut input)? {
            let len = body.len();
            let msg = protocol::decode::<AgentMsg>(&body).map_err(StreamError::Frame)?;
            drop(body);
            if let Some(msg) = self.joiner.push(msg, len)? {
                msgs.push(msg);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use exo_discovery::protocol::{EventKind, PeerEvent, PeerInfo, Source};

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
                got.extend(f.push(chunk).unwrap());
            }
            assert_eq!(got, msgs, "pieces of {piece} bytes");
            assert!(f.frames.wants() == 4, "nothing of a next frame held");
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
        assert_eq!(f.push(&bytes), Ok(vec![AgentMsg::Snapshot(peers)]));
    }

    #[test]
    fn an_oversize_prefix_is_refused_before_its_body_arrives() {
        let mut f = Frames::default();
        assert_eq!(
            f.push(&((protocol::MAX_FRAME + 1) as u32).to_be_bytes()),
            Err(StreamError::Frame(FrameError::TooLarge(
                protocol::MAX_FRAME + 1
            )))
        );
        assert_eq!(
            f.push(&[0; 64]),
            Ok(vec![]),
            "nothing is read after an error"
        );
    }

    #[test]
    fn garbage_and_broken_snapshots_are_errors_not_panics() {
        let mut f = Frames::default();
        assert_eq!(
            f.push(&[0, 0, 0, 3, 0xff, 0xff, 0xff]),
            Err(StreamError::Frame(FrameError::Malformed))
        );

        let mut f = Frames::default();
        let mut bytes = protocol::encode(&AgentMsg::SnapshotPart(vec![peer(1)]));
        bytes.extend(protocol::encode(&AgentMsg::Done {
            message: "x".into(),
        }));
        assert_eq!(f.push(&bytes), Err(StreamError::UnfinishedSnapshot));

        // Parts that never end are cut off at the bound (a small one here).
        let mut f = Frames {
            joiner: SnapshotJoiner::with_max(10_000),
            ..Frames::default()
        };
        let big = protocol::encode(&AgentMsg::SnapshotPart((0..50).map(peer).collect()));
        let mut seen = None;
        for _ in 0..(10_000 / (big.len() - 4) + 2) {
            match f.push(&big) {
                Ok(msgs) if msgs.is_empty() => {}
                r => {
                    seen = Some(r);
                    break;
                }
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
            let _ = f.push(&bytes);
        }
    }
}
