//! Checks of the Debian package that `cargo deb` builds (`[package.metadata.deb]` in Cargo.toml).
//! Does I/O: the package is unpacked with `dpkg-deb` into a directory of its own under the
//! temporary directory, never installed; the unit is verified there by `systemd-analyze verify
//! --root`, and the packaged binary runs `--version` (the agent is never started).
//!
//! The package is not built here (its release build takes minutes): `.ci/run` builds it before
//! `cargo test`. The test reads `EXO_DISCOVERY_DEB` if set, else
//! `<target dir>/debian/exo-discovery_<version>-1_<arch>.deb`, where `cargo deb` puts it. With no
//! package there it fails when `EXO_DISCOVERY_REQUIRE_DEB=1` (as `.ci/run` sets once it has built
//! one), and otherwise says so in one line and skips.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_exo-discovery");
const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The unit and the configuration file as the package must hold them.
const DEB_UNIT: &str = include_str!("../config/deb/exo-discovery.service");
const CONFIG: &str = include_str!("../config/exo-discovery.toml");

const UNIT_PATH: &str = "usr/lib/systemd/system/exo-discovery.service";
const CONFIG_PATH: &str = "etc/exo-discovery/exo-discovery.toml";
const BIN_PATH: &str = "usr/bin/exo-discovery";

/// Every regular file the package holds, with its mode.
const FILES: &[(&str, u32)] = &[
    ("etc/exo-discovery/exo-discovery.toml", 0o644),
    ("usr/bin/exo-discovery", 0o755),
    ("usr/lib/systemd/system/exo-discovery.service", 0o644),
    ("usr/share/doc/exo-discovery/LICENSE-APACHE", 0o644),
    ("usr/share/doc/exo-discovery/LICENSE-MIT", 0o644),
    ("usr/share/doc/exo-discovery/README.md", 0o644),
    ("usr/share/doc/exo-discovery/copyright", 0o644),
];

/// The package's Debian architecture name for the architecture the tests were built for.
fn deb_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "i386",
        "arm" => "armhf",
        other => other,
    }
}

/// Where the package is expected: `EXO_DISCOVERY_DEB`, else beside the target directory's
/// profile directories (`target/debug/exo-discovery` → `target/debian/`).
fn deb_path() -> PathBuf {
    if let Some(p) = std::env::var_os("EXO_DISCOVERY_DEB") {
        return PathBuf::from(p);
    }
    let target = Path::new(BIN)
        .parent()
        .and_then(Path::parent)
        .expect("the binary lies in <target>/<profile>/");
    target
        .join("debian")
        .join(format!("exo-discovery_{VERSION}-1_{}.deb", deb_arch()))
}

fn required() -> bool {
    std::env::var("EXO_DISCOVERY_REQUIRE_DEB").is_ok_and(|v| v == "1")
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The regular files of `dpkg-deb --contents` (tar's verbose listing), path → (mode, owner).
fn listing(text: &str) -> Result<BTreeMap<String, (u32, String)>, String> {
    let mut files = BTreeMap::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [perms, owner, _size, _date, _time, path] = fields[..] else {
            return Err(format!("unexpected listing line {line:?}"));
        };
        if perms.starts_with('d') {
            continue;
        }
        if !perms.starts_with('-') || perms.len() != 10 {
            return Err(format!("not a regular file or directory: {line:?}"));
        }
        let mode = perms[1..]
            .chars()
            .zip((0..9).rev())
            .filter(|(c, _)| *c != '-')
            .fold(0, |m, (_, bit)| m | 1 << bit);
        let path = path.strip_prefix("./").unwrap_or(path);
        files.insert(path.to_owned(), (mode, owner.to_owned()));
    }
    Ok(files)
}

#[test]
fn listing_reads_modes_and_skips_directories() {
    let text = "drwxr-xr-x root/root         0 2026-01-01 00:00 ./usr/\n\
                -rwxr-xr-x root/root      1234 2026-01-01 00:00 ./usr/bin/x\n\
                -rw-r--r-- root/root        10 2026-01-01 00:00 ./etc/x.toml\n";
    let files = listing(text).unwrap();
    assert_eq!(files.len(), 2);
    assert_eq!(files["usr/bin/x"], (0o755, "root/root".to_owned()));
    assert_eq!(files["etc/x.toml"].0, 0o644);
    let link = "lrwxrwxrwx root/root 0 2026-01-01 00:00 ./usr/bin/y -> x\n";
    assert!(listing(link).is_err());
}

#[test]
fn the_package_installs_the_agent_its_unit_and_its_config() {
    let deb = deb_path();
    if !deb.exists() {
        assert!(
            !required(),
            "EXO_DISCOVERY_REQUIRE_DEB=1 and there is no {}",
            deb.display()
        );
        println!(
            "SKIPPED Debian package: no .deb built (run cargo deb): no {}",
            deb.display()
        );
        return;
    }
    match Command::new("dpkg-deb").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required() => {
            println!("SKIPPED Debian package: dpkg-deb is not installed");
            return;
        }
        other => panic!("cannot run dpkg-deb --version: {other:?}"),
    }
    println!("checking {}", deb.display());
    let dir = std::env::temp_dir().join(format!("exo-discovery-deb-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let root = dir.join("root");
    let control = dir.join("control");
    std::fs::create_dir_all(&dir).unwrap();

    // The files and modes as packed, owned by root.
    let contents = run(Command::new("dpkg-deb").arg("--contents").arg(&deb));
    let contents = String::from_utf8(contents.stdout).unwrap();
    let files = listing(&contents).unwrap_or_else(|e| panic!("{e}\n{contents}"));
    let got: Vec<(&str, u32)> = files.iter().map(|(p, (m, _))| (p.as_str(), *m)).collect();
    assert_eq!(
        got, FILES,
        "the package's files and modes (left), expected (right):\n{contents}"
    );
    for (path, (_, owner)) in &files {
        assert!(
            owner == "0/0" || owner == "root/root",
            "{path} is owned by {owner}, not root"
        );
    }

    // Control files: the name, the version, the conffile, and no maintainer scripts (so
    // installing the package enables and starts nothing).
    run(Command::new("dpkg-deb")
        .arg("--control")
        .arg(&deb)
        .arg(&control));
    let fields = std::fs::read_to_string(control.join("control")).unwrap();
    println!("{fields}");
    for want in [
        "Package: exo-discovery".to_owned(),
        format!("Version: {VERSION}-1"),
        format!("Architecture: {}", deb_arch()),
    ] {
        assert!(
            fields.lines().any(|l| l == want),
            "control lacks {want:?}:\n{fields}"
        );
    }
    let conffiles = std::fs::read_to_string(control.join("conffiles")).unwrap_or_default();
    assert_eq!(
        conffiles.lines().collect::<Vec<_>>(),
        [format!("/{CONFIG_PATH}")],
        "conffiles"
    );
    for script in ["preinst", "postinst", "prerm", "postrm"] {
        assert!(
            !control.join(script).exists(),
            "the package has a {script} script"
        );
    }

    // Unpacked: the same modes, and the unit and config are this tree's files (not a stale
    // package's).
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root));
    for (path, mode) in FILES {
        let meta = std::fs::metadata(root.join(path)).unwrap();
        assert_eq!(
            meta.permissions().mode() & 0o7777,
            *mode,
            "mode of unpacked {path}"
        );
    }
    let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap();
    assert!(
        read(UNIT_PATH) == DEB_UNIT,
        "the packaged unit is not config/deb/exo-discovery.service: rebuild the package"
    );
    assert!(
        read(CONFIG_PATH) == CONFIG,
        "the packaged config is not config/exo-discovery.toml: rebuild the package"
    );

    // The packaged binary runs and is this version.
    let out = run(Command::new(root.join(BIN_PATH)).arg("--version"));
    let version = String::from_utf8(out.stdout).unwrap();
    println!("{BIN_PATH} --version: {}", version.trim());
    assert_eq!(version.trim(), format!("exo-discovery {VERSION}"));

    verify_unit(&root);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `systemd-analyze verify --root` on the unpacked unit, with the drop-in `docs/service.md` tells
/// users to create (`systemctl edit exo-discovery`, setting User=; root here, since systemd warns
/// about some users). ExecStart's /usr/bin/exo-discovery is the unpacked binary. The unit's default
/// dependencies (sysinit.target, system.slice, …) must exist under the root too: the host's
/// targets and slices are copied there, none of the package's files is replaced.
fn verify_unit(root: &Path) {
    match Command::new("systemd-analyze").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!(
                "SKIPPED systemd-analyze verify of the package: systemd-analyze is not installed"
            );
            return;
        }
        other => panic!("cannot run systemd-analyze --version: {other:?}"),
    }
    let host_units = Path::new("/usr/lib/systemd/system");
    let units = root.join("usr/lib/systemd/system");
    for entry in std::fs::read_dir(host_units).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap();
        let wanted = path
            .extension()
            .is_some_and(|e| e == "target" || e == "slice");
        if wanted && path.is_file() && !units.join(name).exists() {
            std::fs::copy(&path, units.join(name)).unwrap();
        }
    }
    let dropin = root.join("etc/systemd/system/exo-discovery.service.d");
    std::fs::create_dir_all(&dropin).unwrap();
    std::fs::write(dropin.join("override.conf"), "[Service]\nUser=root\n").unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", root.display()))
        .arg("exo-discovery.service")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    println!("systemd-analyze verify --root: {}", out.status);
    for line in stdout.lines().chain(stderr.lines()) {
        println!("  {line}");
    }
    assert!(out.status.success(), "systemd-analyze verify failed");
    let about_us: Vec<&str> = stdout
        .lines()
        .chain(stderr.lines())
        .filter(|l| l.contains("exo-discovery"))
        .collect();
    assert!(about_us.is_empty(), "systemd-analyze verify: {about_us:?}");
}
