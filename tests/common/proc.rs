//! What a process of the test costs, read from `/proc`: memory from `/proc/PID/status`, CPU time
//! from `/proc/PID/stat`. A process that is gone reads as empty or 0.

/// The value of `field` (such as `"VmRSS:"`) in `/proc/PID/status`, trimmed (`"4040 kB"`).
pub fn status_field(pid: u32, field: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .map(|v| v.trim().to_owned())
        .unwrap_or_default()
}

/// `VmHWM` (peak resident memory) of a process, in KiB.
pub fn peak_rss_kib(pid: u32) -> u64 {
    status_field(pid, "VmHWM:")
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap_or(0)
}

/// User plus system CPU time a process has used, in clock ticks (`/proc/PID/stat`; 1 tick is
/// 10 ms on the kernels seen here).
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default();
    let f: Vec<&str> = after.split_whitespace().collect();
    f.get(11).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0)
}
