//! Checks of the release that `scripts/release` writes: every archive unpacked and looked into,
//! `SHA256SUMS` checked as a user checks it, and each binary read as its system's loader would
//! read it. Nothing here runs a binary (`.ci/run` runs each Linux one through `tests/cli.rs`;
//! nothing can run the macOS ones on this machine).
//!
//! A macOS binary must be a Mach-O executable of its architecture, position-independent, for
//! macOS 11 or later, loading only system libraries from `/usr/lib`; the arm64 one must carry a
//! valid ad-hoc code signature (macOS refuses arm64 code without one), which is checked here page
//! by page against its CodeDirectory, as the kernel does. A Linux binary must be an ELF
//! executable of its architecture, stripped; the musl one static. The ARM and macOS binaries are
//! held to 2 MiB each (docs/platforms.md).
//!
//! The release is not built here (it takes minutes): the tests read the directory named by
//! `EXO_DISCOVERY_DIST`. Without one they fail when `EXO_DISCOVERY_REQUIRE_DIST=1` (as `.ci/run`
//! sets once it has built the release), and otherwise say so in one line and skip.

use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::process::Command;

const VERSION: &str = env!("CARGO_PKG_VERSION");
const CONFIG: &[u8] = include_bytes!("../config/exo-discovery.toml");
const README: &[u8] = include_bytes!("../README.md");
const LICENSE_MIT: &[u8] = include_bytes!("../LICENSE-MIT");
const LICENSE_APACHE: &[u8] = include_bytes!("../LICENSE-APACHE");
const UNIT: &[u8] = include_bytes!("../config/exo-discovery.service");
const PLIST: &[u8] = include_bytes!("../config/io.exo.discovery.plist");
const BUDGET: u64 = 2 * 1024 * 1024;

/// What a target's binary must be.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    /// ELF, with its `e_machine`, static or not, and whether it is held to the budget.
    Linux {
        machine: u16,
        is_static: bool,
        budget: bool,
    },
    /// Mach-O of these architectures (one: thin; two: universal).
    MacOs(&'static [Arch]),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Arch {
    Arm64,
    X86_64,
}

const TARGETS: &[(&str, Kind)] = &[
    (
        "aarch64-unknown-linux-gnu",
        Kind::Linux {
            machine: 183,
            is_static: false,
            budget: true,
        },
    ),
    (
        "armv7-unknown-linux-gnueabihf",
        Kind::Linux {
            machine: 40,
            is_static: false,
            budget: true,
        },
    ),
    (
        "x86_64-unknown-linux-musl",
        Kind::Linux {
            machine: 62,
            is_static: true,
            budget: false,
        },
    ),
    ("aarch64-apple-darwin", Kind::MacOs(&[Arch::Arm64])),
    ("x86_64-apple-darwin", Kind::MacOs(&[Arch::X86_64])),
    (
        "universal-apple-darwin",
        Kind::MacOs(&[Arch::X86_64, Arch::Arm64]),
    ),
];
const DEBS: &[&str] = &["amd64", "arm64"];

/// The release directory, or `None` (said in one line) when there is none to check.
fn dist(test: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("EXO_DISCOVERY_DIST").map(PathBuf::from);
    match dir {
        Some(d) if d.is_dir() => Some(d),
        _ => {
            let why = match dir {
                Some(d) => format!("EXO_DISCOVERY_DIST={} is no directory", d.display()),
                None => "EXO_DISCOVERY_DIST is not set".into(),
            };
            assert!(
                std::env::var_os("EXO_DISCOVERY_REQUIRE_DIST").is_none(),
                "{test}: {why}"
            );
            eprintln!("SKIPPED {test}: {why} (scripts/release writes a release to check)");
            None
        }
    }
}

fn archive_name(target: &str) -> String {
    format!("exo-discovery-{VERSION}-{target}")
}

/// A fresh directory under the temporary directory.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("exo-release-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn every_archive_holds_its_binary_service_configuration_readme_and_licences() {
    let Some(dist) =
        dist("every_archive_holds_its_binary_service_configuration_readme_and_licences")
    else {
        return;
    };
    let out = scratch("unpacked");
    for &(target, kind) in TARGETS {
        let name = archive_name(target);
        let archive = dist.join(format!("{name}.tar.gz"));
        assert!(archive.is_file(), "{} is missing", archive.display());
        let service = match kind {
            Kind::Linux { .. } => ("exo-discovery.service", UNIT),
            Kind::MacOs(_) => ("io.exo.discovery.plist", PLIST),
        };
        let mut listed: Vec<String> = run(Command::new("tar").arg("-tzf").arg(&archive))
            .lines()
            .map(str::to_owned)
            .collect();
        listed.sort();
        let mut want: Vec<String> = [
            "",
            "LICENSE-APACHE",
            "LICENSE-MIT",
            "README.md",
            "exo-discovery",
            "exo-discovery.toml",
            service.0,
        ]
        .iter()
        .map(|f| format!("{name}/{f}"))
        .collect();
        want.sort();
        assert_eq!(listed, want, "{name}.tar.gz");

        run(Command::new("tar")
            .arg("-xzf")
            .arg(&archive)
            .arg("-C")
            .arg(&out));
        let dir = out.join(&name);
        for (file, bytes) in [
            ("exo-discovery.toml", CONFIG),
            ("README.md", README),
            ("LICENSE-MIT", LICENSE_MIT),
            ("LICENSE-APACHE", LICENSE_APACHE),
            service,
        ] {
            assert_eq!(
                std::fs::read(dir.join(file)).unwrap(),
                bytes,
                "{name}/{file} is not the repository's"
            );
        }
        let bin = dir.join("exo-discovery");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&bin).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o755, "{name}/exo-discovery");
        let bytes = std::fs::read(&bin).unwrap();
        match kind {
            Kind::Linux {
                machine,
                is_static,
                budget,
            } => {
                let elf = elf::read(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(elf.machine, machine, "{name}: the ELF machine");
                assert!(elf.executable, "{name}: not an executable");
                assert!(!elf.has_symtab, "{name}: not stripped");
                assert_eq!(!elf.interpreter, is_static, "{name}: static or dynamic");
                if budget {
                    assert!(
                        bytes.len() as u64 <= BUDGET,
                        "{name}: {} bytes",
                        bytes.len()
                    );
                }
            }
            Kind::MacOs(archs) => {
                let slices = macho::slices(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
                let got: Vec<Arch> = slices.iter().map(|s| s.0).collect();
                assert_eq!(got, archs, "{name}: the architectures");
                for (arch, slice) in slices {
                    let m = macho::read(slice).unwrap_or_else(|e| panic!("{name} {arch:?}: {e}"));
                    assert!(m.pie_executable, "{name} {arch:?}: a PIE executable");
                    assert_eq!(
                        m.min_macos,
                        Some((11, 0)),
                        "{name} {arch:?}: macOS 11 or later"
                    );
                    assert!(!m.dylibs.is_empty(), "{name} {arch:?}: loads libSystem");
                    for lib in &m.dylibs {
                        assert!(lib.starts_with("/usr/lib/"), "{name} {arch:?} loads {lib}");
                    }
                    if arch == Arch::Arm64 {
                        let sig = m.signature.unwrap_or_else(|| {
                            panic!("{name} {arch:?}: no code signature (macOS refuses it)")
                        });
                        macho::verify_signature(slice, sig)
                            .unwrap_or_else(|e| panic!("{name} {arch:?}: {e}"));
                    }
                    assert!(
                        slice.len() as u64 <= BUDGET,
                        "{name} {arch:?}: {}",
                        slice.len()
                    );
                    eprintln!(
                        "{name} {arch:?}: {} bytes, dylibs {:?}",
                        slice.len(),
                        m.dylibs
                    );
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn sha256sums_names_every_file_and_checks() {
    let Some(dist) = dist("sha256sums_names_every_file_and_checks") else {
        return;
    };
    let sums = std::fs::read_to_string(dist.join("SHA256SUMS")).expect("SHA256SUMS");
    let mut named: Vec<&str> = sums
        .lines()
        .map(|l| l.split_once("  ").expect("HASH  FILE").1)
        .collect();
    named.sort();
    let mut want: Vec<String> = TARGETS
        .iter()
        .map(|(t, _)| format!("{}.tar.gz", archive_name(t)))
        .chain(
            DEBS.iter()
                .map(|a| format!("exo-discovery_{VERSION}-1_{a}.deb")),
        )
        .collect();
    want.sort();
    assert_eq!(named, want);
    let mut present: Vec<String> = std::fs::read_dir(&dist)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| f != "SHA256SUMS")
        .collect();
    present.sort();
    assert_eq!(
        present, want,
        "files in the release that SHA256SUMS does not name"
    );
    // As a user checks a download.
    let out = run(Command::new("sha256sum")
        .arg("--check")
        .arg("--strict")
        .arg("SHA256SUMS")
        .current_dir(&dist));
    assert_eq!(
        out.lines().filter(|l| l.ends_with(": OK")).count(),
        want.len(),
        "{out}"
    );
    for arch in DEBS {
        let deb = dist.join(format!("exo-discovery_{VERSION}-1_{arch}.deb"));
        if Command::new("dpkg-deb").arg("--version").output().is_ok() {
            let field = run(Command::new("dpkg-deb")
                .arg("-f")
                .arg(&deb)
                .arg("Architecture"));
            assert_eq!(field.trim(), *arch, "{}", deb.display());
        }
    }
}

#[test]
fn a_changed_byte_breaks_the_arm64_signature() {
    let Some(dist) = dist("a_changed_byte_breaks_the_arm64_signature") else {
        return;
    };
    let out = scratch("tampered");
    let name = archive_name("aarch64-apple-darwin");
    run(Command::new("tar")
        .arg("-xzf")
        .arg(dist.join(format!("{name}.tar.gz")))
        .arg("-C")
        .arg(&out));
    let mut bytes = std::fs::read(out.join(&name).join("exo-discovery")).unwrap();
    let _ = std::fs::remove_dir_all(&out);
    let sig = macho::read(&bytes).unwrap().signature.unwrap();
    macho::verify_signature(&bytes, sig).expect("as shipped");
    let at = bytes.len() / 3;
    bytes[at] ^= 1;
    let err = macho::verify_signature(&bytes, sig).unwrap_err();
    assert!(err.contains("page"), "{err}");
    // A signature cut short is an error, not a panic.
    assert!(macho::verify_signature(&bytes[..sig.0 as usize + 16], sig).is_err());
}

/// The `N` bytes at `off`, or an error naming where the file was cut short.
fn at<const N: usize>(b: &[u8], off: usize) -> Result<[u8; N], String> {
    b.get(off..off + N)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| format!("cut short at byte {off}"))
}

/// Just enough of ELF to say what a loader would see.
mod elf {
    use super::at;

    pub struct Elf {
        pub machine: u16,
        pub executable: bool,
        pub interpreter: bool,
        pub has_symtab: bool,
    }

    /// Reads the header, program headers (an interpreter: dynamically linked) and section
    /// headers (a symbol table: not stripped). Little-endian, 32- or 64-bit.
    pub fn read(b: &[u8]) -> Result<Elf, String> {
        if b.get(..4) != Some(b"\x7fELF") {
            return Err("not an ELF file".into());
        }
        let wide = b[4] == 2;
        if b.get(5) != Some(&1) {
            return Err("not little-endian".into());
        }
        let u16_at = |o: usize| at::<2>(b, o).map(u16::from_le_bytes);
        let u32_at = |o: usize| at::<4>(b, o).map(u32::from_le_bytes);
        let word = |o: usize| -> Result<usize, String> {
            if wide {
                Ok(u64::from_le_bytes(at::<8>(b, o)?) as usize)
            } else {
                Ok(u32_at(o)? as usize)
            }
        };
        let kind = u16_at(16)?;
        let machine = u16_at(18)?;
        let (phoff, shoff, rest) = if wide {
            (word(32)?, word(40)?, 52)
        } else {
            (word(28)?, word(32)?, 40)
        };
        let phentsize = u16_at(rest + 2)? as usize;
        let phnum = u16_at(rest + 4)? as usize;
        let shentsize = u16_at(rest + 6)? as usize;
        let shnum = u16_at(rest + 8)? as usize;
        let mut interpreter = false;
        for i in 0..phnum {
            interpreter |= u32_at(phoff + i * phentsize)? == 3; // PT_INTERP
        }
        let mut has_symtab = false;
        for i in 0..shnum {
            has_symtab |= u32_at(shoff + i * shentsize + 4)? == 2; // SHT_SYMTAB
        }
        Ok(Elf {
            machine,
            // ET_EXEC, or ET_DYN for a position-independent executable.
            executable: kind == 2 || kind == 3,
            interpreter,
            has_symtab,
        })
    }
}

/// Just enough of Mach-O to say what macOS would check before running it.
mod macho {
    use super::{at, Arch, Digest, Sha256};

    const MH_MAGIC_64: u32 = 0xfeed_facf;
    const FAT_MAGIC: u32 = 0xcafe_babe;
    const CPU_ARM64: u32 = 0x0100_000c;
    const CPU_X86_64: u32 = 0x0100_0007;
    const MH_EXECUTE: u32 = 2;
    const MH_PIE: u32 = 0x0020_0000;
    const LC_LOAD_DYLIB: u32 = 0xc;
    const LC_CODE_SIGNATURE: u32 = 0x1d;
    const LC_VERSION_MIN_MACOSX: u32 = 0x24;
    const LC_BUILD_VERSION: u32 = 0x32;
    const CSMAGIC_EMBEDDED_SIGNATURE: u32 = 0xfade_0cc0;
    const CSMAGIC_CODEDIRECTORY: u32 = 0xfade_0c02;
    const CS_HASHTYPE_SHA256: u8 = 2;

    pub struct MachO {
        pub pie_executable: bool,
        pub min_macos: Option<(u16, u8)>,
        pub dylibs: Vec<String>,
        /// The signature's offset and size in the file (`LC_CODE_SIGNATURE`).
        pub signature: Option<(u32, u32)>,
    }

    fn le(b: &[u8], o: usize) -> Result<u32, String> {
        at::<4>(b, o).map(u32::from_le_bytes)
    }

    fn be(b: &[u8], o: usize) -> Result<u32, String> {
        at::<4>(b, o).map(u32::from_be_bytes)
    }

    fn arch(cpu: u32) -> Result<Arch, String> {
        match cpu {
            CPU_ARM64 => Ok(Arch::Arm64),
            CPU_X86_64 => Ok(Arch::X86_64),
            other => Err(format!("CPU type {other:#x}")),
        }
    }

    /// The file's architectures and their bytes: one for a thin file, each slice of a
    /// universal (fat) one.
    pub fn slices(b: &[u8]) -> Result<Vec<(Arch, &[u8])>, String> {
        if be(b, 0)? == FAT_MAGIC {
            let n = be(b, 4)? as usize;
            let mut out = Vec::new();
            for i in 0..n {
                let e = 8 + i * 20;
                let (off, size) = (be(b, e + 8)? as usize, be(b, e + 12)? as usize);
                let slice = b
                    .get(off..off + size)
                    .ok_or("a slice beyond the end of the file")?;
                let a = arch(be(b, e)?)?;
                if arch(le(slice, 4)?)? != a {
                    return Err("a slice of another architecture than its entry says".into());
                }
                out.push((a, slice));
            }
            return Ok(out);
        }
        if le(b, 0)? != MH_MAGIC_64 {
            return Err("not a 64-bit Mach-O file".into());
        }
        Ok(vec![(arch(le(b, 4)?)?, b)])
    }

    /// Reads a thin file's header and load commands.
    pub fn read(b: &[u8]) -> Result<MachO, String> {
        if le(b, 0)? != MH_MAGIC_64 {
            return Err("not a 64-bit Mach-O file".into());
        }
        let (filetype, ncmds, flags) = (le(b, 12)?, le(b, 16)?, le(b, 24)?);
        let mut m = MachO {
            pie_executable: filetype == MH_EXECUTE && flags & MH_PIE != 0,
            min_macos: None,
            dylibs: Vec::new(),
            signature: None,
        };
        let mut off = 32;
        for _ in 0..ncmds {
            let (cmd, size) = (le(b, off)?, le(b, off + 4)? as usize);
            let version = |v: u32| ((v >> 16) as u16, (v >> 8) as u8);
            match cmd {
                LC_LOAD_DYLIB => {
                    let name = off + le(b, off + 8)? as usize;
                    let end = b.get(name..off + size).ok_or("a dylib command cut short")?;
                    let s = end.split(|&c| c == 0).next().unwrap_or_default();
                    m.dylibs.push(String::from_utf8_lossy(s).into_owned());
                }
                LC_BUILD_VERSION => m.min_macos = Some(version(le(b, off + 12)?)),
                LC_VERSION_MIN_MACOSX => m.min_macos = Some(version(le(b, off + 8)?)),
                LC_CODE_SIGNATURE => m.signature = Some((le(b, off + 8)?, le(b, off + 12)?)),
                _ => {}
            }
            if size < 8 {
                return Err("a load command of less than 8 bytes".into());
            }
            off += size;
        }
        Ok(m)
    }

    /// Checks the code signature at `sig` (offset, size) against the file, as the kernel does
    /// when it maps each page: the CodeDirectory's SHA-256 of every page up to its code limit
    /// must be the page's. (An ad-hoc signature has no certificate: the hashes are the whole of
    /// it.)
    pub fn verify_signature(b: &[u8], sig: (u32, u32)) -> Result<(), String> {
        let start = sig.0 as usize;
        let blob = b
            .get(start..start + sig.1 as usize)
            .ok_or("the signature lies beyond the end of the file")?;
        if be(blob, 0)? != CSMAGIC_EMBEDDED_SIGNATURE {
            return Err("no embedded signature at LC_CODE_SIGNATURE".into());
        }
        let count = be(blob, 8)? as usize;
        let mut directories = 0;
        for i in 0..count {
            let cd = be(blob, 12 + i * 8 + 4)? as usize;
            if be(blob, cd)? != CSMAGIC_CODEDIRECTORY {
                continue;
            }
            directories += 1;
            let hash_offset = be(blob, cd + 16)? as usize;
            let code_slots = be(blob, cd + 28)? as usize;
            let code_limit = be(blob, cd + 32)? as usize;
            let [hash_size, hash_type, _, page_shift] = be(blob, cd + 36)?.to_be_bytes();
            if hash_type != CS_HASHTYPE_SHA256 || hash_size != 32 {
                return Err(format!("hash type {hash_type} of {hash_size} bytes"));
            }
            if code_limit != start {
                return Err(format!(
                    "the code limit {code_limit} is not the signature's start"
                ));
            }
            let page = 1usize << page_shift;
            if code_slots != code_limit.div_ceil(page) {
                return Err(format!("{code_slots} page hashes for {code_limit} bytes"));
            }
            for slot in 0..code_slots {
                let data = &b[slot * page..((slot + 1) * page).min(code_limit)];
                let at = cd + hash_offset + slot * 32;
                let want = blob.get(at..at + 32).ok_or("the hashes are cut short")?;
                if Sha256::digest(data).as_slice() != want {
                    return Err(format!("page {slot} does not match its hash"));
                }
            }
        }
        if directories == 0 {
            return Err("no CodeDirectory in the signature".into());
        }
        Ok(())
    }
}
