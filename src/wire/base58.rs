//! Base58 text (the Bitcoin alphabet, as libp2p writes peer IDs), made and read a few limbs at a
//! time.
//!
//! A peer ID's text is made for every instance label this host lists as a known answer and for
//! every peer handed to the node: at a thousand peers, thousands of times a second while a link
//! settles. The `bs58` crate that `PeerId::to_base58` uses carries the whole number through one
//! base-58 digit per input byte (about 12,000 instructions for a 38-byte peer ID); here the input
//! goes in four bytes at a time into limbs of five digits each, for the same text. Every label a
//! packet names that is not held yet is read back into its peer ID the same way, five digits at a
//! time.

use libp2p_identity::PeerId;

const ALPHABET: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/// Each ASCII character's digit, or [`NOT_A_DIGIT`].
const DIGITS: [u8; 128] = {
    let mut table = [NOT_A_DIGIT; 128];
    let mut i = 0;
    while i < ALPHABET.len() {
        table[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    table
};
const NOT_A_DIGIT: u8 = 0xff;

/// 58^5: a limb of the text's number holds five digits.
const LIMB: u64 = 58 * 58 * 58 * 58 * 58;

/// The number whose digits in base `BASE` are `digits` (most significant first), as
/// little-endian limbs each under `LIMB`, written to `limbs` (at least [`room`] for the digits);
/// returns how many. The digits go in `PER` at a time (a shorter group first), each group
/// multiplying every limb once. Both bases' products stay under 2^62: a limb under 2^32 times a
/// group under 2^30, or the reverse.
fn limbs<const BASE: u64, const PER: usize, const LIMB: u64>(digits: &[u8], limbs: &mut [u64]) -> usize {
    let head = match digits.len() % PER {
        0 => PER,
        n => n,
    };
    let mut len = 0;
    let mut at = 0;
    while at < digits.len() {
        let take = if at == 0 { head } else { PER };
        let group = &digits[at..at + take];
        at += take;
        let mut carry = group.iter().fold(0u64, |n, d| n * BASE + u64::from(*d));
        let scale = BASE.pow(take as u32);
        for limb in limbs[..len].iter_mut() {
            let n = *limb * scale + carry;
            *limb = n % LIMB;
            carry = n / LIMB;
        }
        while carry > 0 {
            limbs[len] = carry % LIMB;
            len += 1;
            carry /= LIMB;
        }
    }
    len
}

/// Room for the limbs of a number of `n` digits in either direction: `n` bytes make at most
/// 0.28 n limbs of five base-58 digits, and `n` base-58 digits at most 0.19 n limbs of 32 bits.
fn room(n: usize) -> usize {
    n / 2 + 2
}

/// Runs `f` on `len` zeroed elements: on the stack up to `N` (a peer ID's bytes, digits and limbs
/// fit), in a vector past that. The text of every instance label is made and read here.
fn scratch<T: Copy + Default, const N: usize, R>(len: usize, f: impl FnOnce(&mut [T]) -> R) -> R {
    if len <= N {
        f(&mut [T::default(); N][..len])
    } else {
        f(&mut vec![T::default(); len])
    }
}

/// `bytes` in base58: a `1` for each leading zero byte, then the rest as a base-58 number. (The
/// agent writes only peer IDs, with [`peer`]; the tests check any bytes.)
#[cfg(test)]
fn encode(bytes: &[u8]) -> String {
    encode_with_room(bytes, 0)
}

/// `bytes` in base58 (see `encode`), in a string with room for `more` bytes after the text.
fn encode_with_room(bytes: &[u8], more: usize) -> String {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    let number = &bytes[zeros..];
    scratch::<u64, 48, _>(room(number.len()), |limbs_buf| {
        // Four bytes make at most 5.5 digits: limbs of five digits.
        let n = limbs::<256, 4, LIMB>(number, limbs_buf);
        let limbs = &limbs_buf[..n];
        let mut digits: Vec<u8> = Vec::with_capacity(zeros + n * 5 + more);
        for (i, limb) in limbs.iter().enumerate() {
            let mut n = *limb;
            let last = i + 1 == limbs.len();
            for _ in 0..5 {
                if last && n == 0 {
                    break; // no leading zero digits
                }
                digits.push(ALPHABET[(n % 58) as usize]);
                n /= 58;
            }
        }
        digits.extend(std::iter::repeat_n(b'1', zeros));
        digits.reverse();
        // Only the alphabet's ASCII letters and digits were pushed.
        String::from_utf8(digits).unwrap_or_default()
    })
}

/// `peer`'s text, as `PeerId::to_base58` makes it.
pub fn peer(peer: &PeerId) -> String {
    peer_with_room(peer, 0)
}

/// `peer`'s text, in a string with room for `more` bytes after it (an instance label's tag).
pub fn peer_with_room(peer: &PeerId, more: usize) -> String {
    // A peer ID's bytes are its multihash's: written on the stack (at most 75 bytes).
    let mut bytes = [0u8; 96];
    match peer.as_ref().write(&mut bytes[..]) {
        Ok(n) => encode_with_room(&bytes[..n], more),
        Err(_) => encode_with_room(&peer.to_bytes(), more),
    }
}

/// The bytes `text` stands for (`None`: a character outside the alphabet), as the `bs58` crate
/// reads them: a zero byte for each leading `1`, then the rest as a base-58 number. (The agent
/// reads only peer IDs: [`parse_peer`]; this is what the tests hold it to.)
#[cfg(test)]
pub fn decode(text: &str) -> Option<Vec<u8>> {
    decode_with(text, <[u8]>::to_vec)
}

/// `f` of the bytes `text` stands for (see [`decode`]), read on the stack for a text as short as
/// a peer ID's.
fn decode_with<R>(text: &str, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
    let text = text.as_bytes();
    let ones = text.iter().take_while(|c| **c == b'1').count();
    let text = &text[ones..];
    scratch::<u8, 128, _>(text.len(), |digits| {
        for (d, c) in digits.iter_mut().zip(text) {
            *d = DIGITS
                .get(usize::from(*c))
                .copied()
                .filter(|d| *d != NOT_A_DIGIT)?;
        }
        scratch::<u64, 48, _>(room(digits.len()), |limbs_buf| {
            // Five digits make at most 29.3 bits: limbs of 32 bits.
            let n = limbs::<58, 5, { 1 << 32 }>(digits, limbs_buf);
            let number = limbs_buf[..n]
                .iter()
                .rev()
                .flat_map(|l| (*l as u32).to_be_bytes())
                .skip_while(|b| *b == 0);
            scratch::<u8, 128, _>(ones + 4 * n, |bytes| {
                let mut len = ones;
                for b in number {
                    bytes[len] = b;
                    len += 1;
                }
                Some(f(&bytes[..len]))
            })
        })
    })
}

/// The peer `text` names, as `PeerId`'s `FromStr` reads it.
pub fn parse_peer(text: &str) -> Option<PeerId> {
    decode_with(text, |bytes| PeerId::from_bytes(bytes).ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_is_the_bs58_crates_for_any_bytes_and_any_peer() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        // Past 92 bytes the number is worked out in a vector, not on the stack: both are tested.
        for len in 0..120 {
            for round in 0..20 {
                let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
                // Leading zeros, and all-zero or all-0xff inputs, now and then.
                match round {
                    0 => bytes.iter_mut().for_each(|b| *b = 0),
                    1 => bytes.iter_mut().for_each(|b| *b = 0xff),
                    2..=5 => bytes.iter_mut().take(round).for_each(|b| *b = 0),
                    _ => {}
                }
                assert_eq!(encode(&bytes), bs58::encode(&bytes).into_string(), "{bytes:?}");
            }
        }
        for _ in 0..50 {
            let p = libp2p_identity::Keypair::generate_ed25519()
                .public()
                .to_peer_id();
            assert_eq!(super::peer(&p), p.to_base58());
            assert_eq!(parse_peer(&p.to_base58()), Some(p));
        }
        // And back (past 128 digits on the heap, not the stack: both are tested).
        for len in 0..200 {
            for round in 0..20 {
                let mut text: Vec<u8> = (0..len)
                    .map(|_| ALPHABET[(next() % 58) as usize])
                    .collect();
                match round {
                    0 => text.iter_mut().for_each(|c| *c = b'1'),
                    1 => text.iter_mut().for_each(|c| *c = b'z'),
                    2..=5 => text.iter_mut().take(round).for_each(|c| *c = b'1'),
                    6 if len > 0 => text[len / 2] = b"0OIl+ /\xff"[len % 8],
                    _ => {}
                }
                let text = String::from_utf8_lossy(&text);
                assert_eq!(decode(&text), bs58::decode(&*text).into_vec().ok(), "{text}");
            }
        }
        // A SHA-256 multihash (a peer ID of a key too long to inline) as well.
        let digest: Vec<u8> = (0..32).map(|_| next() as u8).collect();
        let mh = multiaddr::multihash::Multihash::<64>::wrap(0x12, &digest).unwrap();
        let p = PeerId::from_multihash(mh).unwrap();
        assert_eq!(super::peer(&p), p.to_base58());
        assert_eq!(parse_peer(&p.to_base58()), Some(p));
        assert_eq!(parse_peer("Qm"), None);
    }
}
