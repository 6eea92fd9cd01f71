//! nftables inside the network, and the check for a tool a test needs.

use super::network::{Host, Net};
use std::process::{Command, Stdio};

/// Whether `tool` runs here; if not, prints the one `SKIPPED` line for `test` (`what` names the
/// package).
pub fn have_tool(test: &str, tool: &str, what: &str) -> bool {
    if Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
    {
        return true;
    }
    eprintln!("SKIPPED {test}: {what} is not installed");
    false
}

impl Net {
    /// Applies nftables commands inside the namespace `ns` (a host's, or [`Net::switch_ns`]).
    pub fn nft(&self, ns: &str, rules: &[&str]) {
        for rule in rules {
            let out = Command::new("ip")
                .args(["netns", "exec", ns, "nft", rule])
                .output()
                .expect("ip netns exec nft");
            assert!(out.status.success(), "nft {rule}: {out:?}");
        }
    }

    /// Makes every link drop mDNS multicast frames (IPv4 and IPv6) at the switch, as an isolating
    /// access point does.
    pub fn block_multicast(&self) {
        self.nft(
            &self.switch,
            &[
                "add table bridge iso",
                "add chain bridge iso pass { type filter hook forward priority 0 ; }",
                "add rule bridge iso pass ether daddr 01:00:5e:00:00:fb drop",
                "add rule bridge iso pass ether daddr 33:33:00:00:00:fb drop",
            ],
        );
    }

    /// The packets and bytes an nftables named counter (`add counter inet TABLE NAME`) in
    /// `host` has counted.
    pub fn nft_counter(&self, host: &Host, table: &str, name: &str) -> (u64, u64) {
        let out = self.exec(host, &["nft", "list", "counter", "inet", table, name]);
        assert!(
            out.status.success(),
            "nft list counter {table} {name}: {out:?}"
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let mut words = text.split_whitespace();
        let mut got = (None, None);
        while let Some(w) = words.next() {
            match w {
                "packets" => got.0 = words.next().and_then(|v| v.parse().ok()),
                "bytes" => got.1 = words.next().and_then(|v| v.parse().ok()),
                _ => {}
            }
        }
        match got {
            (Some(packets), Some(bytes)) => (packets, bytes),
            _ => panic!("nft counter {table} {name}: no packets and bytes in {text}"),
        }
    }
}
