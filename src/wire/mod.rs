//! Bytes ↔ values, and the plain value types every layer shares. No state, no I/O, no clock: each
//! module here turns what arrives (a datagram, a socket frame, a file, a TOML text) into values and
//! back, and checks it on the way in.
//!
//! - [`record`]: a node's signed record; [`instance`]: DNS-SD instance names and their records;
//!   [`dns`]: the DNS reader and builder; [`stock`]: the stock libp2p-mdns dialect;
//! - [`frame`]: frames out of a byte stream, however it is cut (length-prefixed or lines);
//! - [`protocol`] and [`protocol_json`]: the local socket's frames, binary and JSON lines;
//!   [`exchange`]: the peer exchange's frames; [`mesh`]: an agent's view of the mesh;
//!   [`cache`]: the peer cache's encoding; [`config`]: the configuration file and its options;
//!   [`peers_file`]: the peers file's text;
//! - [`addrs`]: multiaddrs and IP ranges; [`net`]: families, interfaces, static hosts, errnos;
//!   [`base58`]: peer IDs as text.

pub mod addrs;
pub mod base58;
pub mod cache;
pub mod config;
pub mod dns;
pub mod exchange;
pub mod frame;
pub mod instance;
pub mod mesh;
pub mod net;
pub mod peers_file;
pub mod protocol;
pub mod protocol_json;
pub mod record;
pub mod stock;
