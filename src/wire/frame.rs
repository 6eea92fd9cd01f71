//! Frames out of a byte stream, in whatever pieces it arrives. Pure, no I/O: the caller reads
//! the socket and pushes what it read; [`FrameDecoder`] takes the bytes of one frame at a time and
//! hands the frame's body out once it is whole.
//!
//! Two framings: a 4-byte big-endian length then that many bytes (the local socket's binary
//! frames, peer exchange), or one line ending in `\n` (the local socket's JSON mode; blank lines
//! are skipped). Each is bounded: a length prefix over the decoder's bound is refused before a
//! byte of its body is waited for, a line as soon as it passes the bound.
//!
//! The buffer of the frame under way asks a [`Room`] before it grows, and grows as the bytes come
//! (doubling, up to the frame's declared length): a frame is never allocated at the length it
//! declares, so a peer that declares a large frame and sends little of it holds little. The agent's
//! socket takes that room from a budget all its connections share; [`Unbounded`] grants it always.
//! The buffer is given back once the frame handed out is dropped.
//!
//! ```
//! use exo_discovery::protocol::{self, ClientMsg, FrameDecoder, Framing};
//! let bytes = protocol::encode(&ClientMsg::List);
//! let mut frames = FrameDecoder::new(Framing::LengthPrefixed, protocol::MAX_FRAME);
//! let (first, rest) = bytes.split_at(3);
//! assert!(frames.push(&mut &first[..]).unwrap().is_none());
//! let mut input = rest;
//! let body = frames.push(&mut input).unwrap().expect("a whole frame");
//! assert_eq!(protocol::decode::<ClientMsg>(&body), Ok(ClientMsg::List));
//! assert!(input.is_empty());
//! ```

/// How frames are delimited in the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// A 4-byte big-endian length, then that many bytes of body.
    LengthPrefixed,
    /// One line, its body without the `\n` (a `\r` before it is kept); lines holding only
    /// whitespace are skipped; a last line without `\n` counts when the stream ends.
    Lines,
}

/// Why a [`FrameDecoder`] stopped. The stream cannot be read further: the connection is to be
/// closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// A length prefix declaring more than the decoder's bound.
    TooLarge {
        /// The length declared.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// A line longer than the decoder's bound, with no `\n` within it.
    LineTooLong {
        /// The bound.
        max: usize,
    },
    /// The [`Room`] refused to grow the buffer of the frame under way.
    NoRoom,
    /// The stream ended inside a frame (see [`FrameDecoder::finish`]).
    Truncated,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::TooLarge { len, max } => write!(f, "frame of {len} bytes exceeds {max}"),
            DecodeError::LineTooLong { max } => write!(f, "line longer than {max} bytes"),
            DecodeError::NoRoom => f.write_str("no room for the frame"),
            DecodeError::Truncated => f.write_str("the stream ended inside a frame"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Where the buffer of the frame under way takes its memory from: asked before it grows.
pub trait Room {
    /// The buffer, of `capacity` bytes, must hold `needed`, of a frame that may hold at most `cap`
    /// (its declared length, or the decoder's bound for a line): the capacity to grow it to, at
    /// least `needed`; `None` if there is no room (the decoder then stops with
    /// [`DecodeError::NoRoom`]).
    fn grow(&mut self, capacity: usize, needed: usize, cap: usize) -> Option<usize>;

    /// The buffer was given back (its frame was taken, the decoder stopped or was dropped).
    fn release(&mut self);
}

/// Room that is always there: the buffer doubles as it grows, bounded by the frame alone.
#[derive(Clone, Copy, Debug, Default)]
pub struct Unbounded;

impl Room for Unbounded {
    fn grow(&mut self, capacity: usize, needed: usize, cap: usize) -> Option<usize> {
        Some(grown(capacity, needed, cap))
    }

    fn release(&mut self) {}
}

/// The capacity a buffer of `capacity` bytes grows to so that it holds `needed`: double (a
/// frame read piece by piece is copied a few times, not once a piece), at least `needed`, no
/// more than `cap` (the most the frame may hold) unless `needed` is more.
pub fn grown(capacity: usize, needed: usize, cap: usize) -> usize {
    capacity.saturating_mul(2).clamp(needed, cap.max(needed))
}

/// Where the decoder is in the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Reading a length prefix: this many of its bytes are in.
    Prefix(usize),
    /// Reading a body of this declared length.
    Body(usize),
    /// Reading a line.
    Line,
    /// A whole frame is in the buffer, handed out and not yet dropped.
    Whole,
    /// Stopped by this error.
    Failed(DecodeError),
}

/// Bytes in, frames out: length-prefixed binary frames or JSON lines, each body handed out
/// whole. One per stream.
#[derive(Debug)]
pub struct FrameDecoder<R: Room = Unbounded> {
    framing: Framing,
    max: usize,
    state: State,
    prefix: [u8; 4],
    buf: Vec<u8>,
    room: R,
}

impl FrameDecoder<Unbounded> {
    /// A decoder of frames of at most `max` bytes of body (a line: of at most `max` bytes without
    /// its `\n`), whose buffer grows without a bound of its own.
    pub fn new(framing: Framing, max: usize) -> FrameDecoder<Unbounded> {
        FrameDecoder::with_room(framing, max, Unbounded)
    }
}

impl<R: Room> FrameDecoder<R> {
    /// As [`FrameDecoder::new`], the buffer taking its memory from `room`.
    pub fn with_room(framing: Framing, max: usize, room: R) -> FrameDecoder<R> {
        FrameDecoder {
            framing,
            max,
            state: FrameDecoder::<R>::start(framing),
            prefix: [0; 4],
            buf: Vec::new(),
            room,
        }
    }

    fn start(framing: Framing) -> State {
        match framing {
            Framing::LengthPrefixed => State::Prefix(0),
            Framing::Lines => State::Line,
        }
    }

    /// The framing it reads.
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// The body length the frame under way declared, once its length prefix is in.
    pub fn declared(&self) -> Option<usize> {
        match self.state {
            State::Body(len) => Some(len),
            State::Prefix(_) | State::Line | State::Whole | State::Failed(_) => None,
        }
    }

    /// The fewest bytes the frame under way still needs before it can be whole: the rest of its
    /// length prefix, or of its body (for a line, 1). Reading at most this many from a stream
    /// never reads past the frame's end.
    pub fn wants(&self) -> usize {
        match self.state {
            State::Prefix(have) => 4 - have,
            State::Body(len) => len - self.buf.len(),
            State::Line | State::Whole | State::Failed(_) => 1,
        }
    }

    /// Takes the bytes of the frame under way from the front of `input` (advancing it), up to
    /// that frame's end and no further: `Some` with the frame's body once it is whole. The body
    /// is held until the [`Frame`] is dropped; the next call starts the next frame. After an
    /// error, every call returns it again and takes nothing.
    pub fn push(&mut self, input: &mut &[u8]) -> Result<Option<Frame<'_, R>>, DecodeError> {
        if self.state == State::Whole {
            self.taken();
        }
        loop {
            match self.state {
                State::Failed(e) => return Err(e),
                State::Whole => return Ok(Some(Frame { decoder: self })),
                State::Prefix(have) => {
                    if input.is_empty() {
                        return Ok(None);
                    }
                    let n = (4 - have).min(input.len());
                    self.prefix[have..have + n].copy_from_slice(&input[..n]);
                    *input = &input[n..];
                    if have + n < 4 {
                        self.state = State::Prefix(have + n);
                        return Ok(None);
                    }
                    let len = u32::from_be_bytes(self.prefix) as usize;
                    if len > self.max {
                        return Err(self.fail(DecodeError::TooLarge { len, max: self.max }));
                    }
                    self.state = if len == 0 {
                        State::Whole
                    } else {
                        State::Body(len)
                    };
                }
                State::Body(len) => {
                    if input.is_empty() {
                        return Ok(None);
                    }
                    let n = (len - self.buf.len()).min(input.len());
                    self.extend(&input[..n], len)?;
                    *input = &input[n..];
                    if self.buf.len() == len {
                        self.state = State::Whole;
                    }
                }
                State::Line => {
                    if input.is_empty() {
                        return Ok(None);
                    }
                    let (chunk, used) = match input.iter().position(|b| *b == b'\n') {
                        Some(i) => (&input[..i], Some(i + 1)),
                        None => (*input, None),
                    };
                    if self.buf.len() + chunk.len() > self.max {
                        return Err(self.fail(DecodeError::LineTooLong { max: self.max }));
                    }
                    self.extend(chunk, self.max)?;
                    let Some(used) = used else {
                        *input = &[];
                        return Ok(None);
                    };
                    *input = &input[used..];
                    if self.buf.iter().all(u8::is_ascii_whitespace) {
                        self.buf.clear();
                    } else {
                        self.state = State::Whole;
                    }
                }
            }
        }
    }

    /// The stream ended. `Some`: a last line without its `\n`, whole now; `None`: no frame was
    /// begun (or only a blank line); [`DecodeError::Truncated`]: the stream ended inside a
    /// length-prefixed frame.
    pub fn finish(&mut self) -> Result<Option<Frame<'_, R>>, DecodeError> {
        if self.state == State::Whole {
            self.taken();
        }
        match self.state {
            State::Failed(e) => Err(e),
            State::Prefix(0) => Ok(None),
            State::Prefix(_) | State::Body(_) => Err(DecodeError::Truncated),
            State::Line if self.buf.iter().all(u8::is_ascii_whitespace) => Ok(None),
            State::Line | State::Whole => {
                self.state = State::Whole;
                Ok(Some(Frame { decoder: self }))
            }
        }
    }

    /// Appends `bytes` to the buffer of a frame of at most `cap`, growing it if the room allows.
    fn extend(&mut self, bytes: &[u8], cap: usize) -> Result<(), DecodeError> {
        let needed = self.buf.len() + bytes.len();
        if needed > self.buf.capacity() {
            let Some(capacity) = self.room.grow(self.buf.capacity(), needed, cap) else {
                return Err(self.fail(DecodeError::NoRoom));
            };
            self.buf.reserve_exact(capacity.max(needed) - self.buf.len());
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }

    fn fail(&mut self, e: DecodeError) -> DecodeError {
        self.free();
        self.state = State::Failed(e);
        e
    }

    /// The frame handed out was dropped: its buffer is given back, the next frame begins.
    fn taken(&mut self) {
        self.free();
        self.state = FrameDecoder::<R>::start(self.framing);
    }

    fn free(&mut self) {
        self.buf = Vec::new();
        self.room.release();
    }
}

impl<R: Room> Drop for FrameDecoder<R> {
    fn drop(&mut self) {
        self.room.release();
    }
}

/// The body of a whole frame, as [`FrameDecoder::push`] hands it out; its buffer is given back
/// when this is dropped.
#[derive(Debug)]
pub struct Frame<'a, R: Room = Unbounded> {
    decoder: &'a mut FrameDecoder<R>,
}

impl<R: Room> std::ops::Deref for Frame<'_, R> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.decoder.buf
    }
}

impl<R: Room> Drop for Frame<'_, R> {
    fn drop(&mut self) {
        self.decoder.taken();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every frame `bytes` holds, pushed in pieces of `piece` bytes.
    fn frames_of(framing: Framing, max: usize, bytes: &[u8], piece: usize) -> Vec<Vec<u8>> {
        let mut d = FrameDecoder::new(framing, max);
        let mut out = Vec::new();
        for chunk in bytes.chunks(piece) {
            let mut input = chunk;
            while let Some(body) = d.push(&mut input).unwrap() {
                out.push(body.to_vec());
            }
            assert!(input.is_empty());
        }
        if let Some(last) = d.finish().unwrap() {
            out.push(last.to_vec());
        }
        out
    }

    fn framed(bodies: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for b in bodies {
            out.extend((b.len() as u32).to_be_bytes());
            out.extend(*b);
        }
        out
    }

    #[test]
    fn frames_come_out_whole_however_the_bytes_are_cut() {
        let bodies: [&[u8]; 4] = [b"one", b"", &[7; 300], b"four"];
        let bytes = framed(&bodies);
        for piece in [1, 2, 3, 4, 5, 7, 64, bytes.len()] {
            let got = frames_of(Framing::LengthPrefixed, 300, &bytes, piece);
            assert_eq!(got, bodies.map(<[u8]>::to_vec), "pieces of {piece}");
        }
    }

    #[test]
    fn a_push_takes_no_byte_past_the_end_of_its_frame() {
        let bytes = framed(&[b"ab", b"cd"]);
        let mut d = FrameDecoder::new(Framing::LengthPrefixed, 16);
        let mut input = &bytes[..];
        assert_eq!(d.wants(), 4);
        assert_eq!(&*d.push(&mut input).unwrap().unwrap(), b"ab");
        assert_eq!(input, &framed(&[b"cd"])[..]);
        let mut lines = FrameDecoder::new(Framing::Lines, 16);
        let mut input = &b"x\ny\n"[..];
        assert_eq!(&*lines.push(&mut input).unwrap().unwrap(), b"x");
        assert_eq!(input, b"y\n");
    }

    #[test]
    fn wants_is_what_the_frame_under_way_still_needs() {
        let mut d = FrameDecoder::new(Framing::LengthPrefixed, 16);
        d.push(&mut &[0, 0][..]).unwrap();
        assert_eq!((d.wants(), d.declared()), (2, None));
        d.push(&mut &[0, 5, b'a'][..]).unwrap();
        assert_eq!((d.wants(), d.declared()), (4, Some(5)));
    }

    #[test]
    fn lines_skip_blanks_and_the_last_counts_without_its_newline() {
        let bytes = b"\n  \r\n{\"a\":1}\r\n\n{\"b\":2}";
        for piece in [1, 2, 5, bytes.len()] {
            let got = frames_of(Framing::Lines, 64, bytes, piece);
            assert_eq!(got, vec![b"{\"a\":1}\r".to_vec(), b"{\"b\":2}".to_vec()]);
        }
        let mut d = FrameDecoder::new(Framing::Lines, 64);
        d.push(&mut &b"x\n \t"[..]).unwrap().unwrap();
        assert!(d.finish().unwrap().is_none(), "a blank last line is no line");
    }

    #[test]
    fn oversize_frames_and_lines_are_refused_before_they_are_held() {
        let mut d = FrameDecoder::new(Framing::LengthPrefixed, 512);
        let e = DecodeError::TooLarge { len: 513, max: 512 };
        assert_eq!(d.push(&mut &513u32.to_be_bytes()[..]).unwrap_err(), e);
        assert_eq!(e.to_string(), "frame of 513 bytes exceeds 512");
        assert_eq!(d.push(&mut &[0; 8][..]).unwrap_err(), e, "stopped for good");

        // A line of exactly the bound is read; one byte more is refused.
        let mut exact = vec![b'a'; 64];
        exact.push(b'\n');
        assert_eq!(frames_of(Framing::Lines, 64, &exact, 7), vec![vec![b'a'; 64]]);
        let mut d = FrameDecoder::new(Framing::Lines, 64);
        d.push(&mut &[b'a'; 60][..]).unwrap();
        let e = d.push(&mut &[b'a'; 5][..]).unwrap_err();
        assert_eq!(e, DecodeError::LineTooLong { max: 64 });
        assert_eq!(e.to_string(), "line longer than 64 bytes");
    }

    #[test]
    fn a_stream_ending_inside_a_frame_is_truncated() {
        let mut d = FrameDecoder::new(Framing::LengthPrefixed, 64);
        assert!(d.finish().unwrap().is_none());
        d.push(&mut &[0, 0][..]).unwrap();
        assert_eq!(d.finish().unwrap_err(), DecodeError::Truncated);
        let mut d = FrameDecoder::new(Framing::LengthPrefixed, 64);
        d.push(&mut &[0, 0, 0, 9, 1][..]).unwrap();
        assert_eq!(d.finish().unwrap_err(), DecodeError::Truncated);
    }

    /// A room of `left` bytes that records what it granted.
    #[derive(Debug, Default)]
    struct Counted {
        left: usize,
        held: usize,
        grants: Vec<usize>,
        released: usize,
    }

    impl Room for &mut Counted {
        fn grow(&mut self, capacity: usize, needed: usize, cap: usize) -> Option<usize> {
            let to = grown(capacity, needed, cap);
            if to - self.held > self.left {
                return None;
            }
            self.left -= to - self.held;
            self.held = to;
            self.grants.push(to);
            Some(to)
        }

        fn release(&mut self) {
            self.left += self.held;
            self.held = 0;
            self.released += 1;
        }
    }

    #[test]
    fn a_body_is_held_as_it_arrives_never_at_its_declared_length() {
        let mut room = Counted {
            left: 1 << 20,
            ..Counted::default()
        };
        {
            let mut d = FrameDecoder::with_room(Framing::LengthPrefixed, 1 << 20, &mut room);
            d.push(&mut &(600_000u32).to_be_bytes()[..]).unwrap();
            d.push(&mut &[1; 100][..]).unwrap();
            assert_eq!(d.buf.capacity(), 100, "not the 600,000 declared");
            for _ in 0..5_998 {
                assert!(d.push(&mut &[1; 100][..]).unwrap().is_none());
            }
            let body = d.push(&mut &[1; 100][..]).unwrap().expect("whole");
            assert_eq!(body.len(), 600_000);
        }
        // Doubling, up to the declared length and never past it; all given back at the end.
        assert_eq!(room.grants.first(), Some(&100));
        assert_eq!(room.grants.last(), Some(&600_000));
        assert_eq!(room.held, 0);
        assert_eq!(room.left, 1 << 20);

        // No room: the decoder stops, and what it held is given back.
        let mut small = Counted {
            left: 1000,
            ..Counted::default()
        };
        let mut d = FrameDecoder::with_room(Framing::Lines, 1 << 20, &mut small);
        d.push(&mut &[b'a'; 600][..]).unwrap();
        assert_eq!(
            d.push(&mut &[b'a'; 600][..]).unwrap_err(),
            DecodeError::NoRoom
        );
        drop(d);
        assert_eq!((small.held, small.left), (0, 1000));
    }

    #[test]
    fn a_frame_taken_gives_its_buffer_back() {
        let mut room = Counted {
            left: 1 << 20,
            ..Counted::default()
        };
        let mut d = FrameDecoder::with_room(Framing::LengthPrefixed, 1 << 20, &mut room);
        let bytes = framed(&[&[5; 10_000]]);
        drop(d.push(&mut &bytes[..]).unwrap().expect("whole"));
        assert_eq!(d.buf.capacity(), 0);
        assert_eq!(d.wants(), 4, "the next frame begins");
        drop(d);
        assert_eq!(room.left, 1 << 20);
    }

    #[test]
    fn random_bytes_are_errors_not_panics() {
        let mut x: u32 = 7;
        for n in 0..2000 {
            let bytes: Vec<u8> = (0..(n % 97))
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    (x >> 16) as u8
                })
                .collect();
            for framing in [Framing::LengthPrefixed, Framing::Lines] {
                let mut d = FrameDecoder::new(framing, 40);
                let mut input = &bytes[..];
                while let Ok(Some(_)) = d.push(&mut input) {}
                let _ = d.finish();
            }
        }
    }
}
