//! Key files: a libp2p keypair in its protobuf encoding, owner-only (does I/O). Errors are one
//! line for a user.

use libp2p_identity::Keypair;
use std::io::Write;
use std::path::Path;

/// Reads the keypair at `path`.
pub fn read(path: &Path) -> Result<Keypair, String> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("cannot read key {}: {e}", path.display()))?;
    decode(&bytes, path)
}

fn decode(bytes: &[u8], path: &Path) -> Result<Keypair, String> {
    Keypair::from_protobuf_encoding(bytes).map_err(|e| {
        format!(
            "bad key file {}: not a libp2p protobuf-encoded keypair ({e})",
            path.display()
        )
    })
}

/// Generates an ed25519 keypair and writes it to `path` (mode 0600, synced). An existing file is
/// never overwritten.
pub fn create(path: &Path) -> Result<Keypair, String> {
    use std::os::unix::fs::OpenOptionsExt;
    let key = Keypair::generate_ed25519();
    let bytes = key
        .to_protobuf_encoding()
        .map_err(|e| format!("cannot encode the key: {e}"))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => {
                format!("{} already exists; not overwriting it", path.display())
            }
            _ => format!("cannot create {}: {e}", path.display()),
        })?;
    f.write_all(&bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(key)
}

#[cfg(any(test, feature = "internals"))]
/// Reads the keypair at `path`, or creates one there if there is no file.
pub fn read_or_create(path: &Path) -> Result<Keypair, String> {
    match std::fs::read(path) {
        Ok(bytes) => decode(&bytes, path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(path),
        Err(e) => Err(format!("cannot read key {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn create_read_and_refuse_to_overwrite() {
        let dir = std::env::temp_dir().join(format!("exo-keyfile-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("k");
        let k = read_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(read(&path).unwrap().public(), k.public());
        assert_eq!(read_or_create(&path).unwrap().public(), k.public());
        assert!(create(&path).unwrap_err().contains("already exists"));
        std::fs::write(&path, b"junk").unwrap();
        assert!(read(&path).unwrap_err().contains("bad key file"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
