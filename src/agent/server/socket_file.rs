//! Where the local socket lives (does I/O): binding it owner-only in place of a stale socket
//! left by a dead agent, and the default socket's directory, which must be this user's own and
//! closed to everyone else.

use async_io::Async;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// The bound socket; the file is removed when this is dropped.
pub struct Listener {
    inner: UnixListener,
    path: PathBuf,
}

impl Listener {
    /// A non-blocking handle on the same socket, for the accept loop.
    pub fn accept_async(&self) -> io::Result<Async<UnixListener>> {
        Async::new(self.inner.try_clone()?)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Binds the socket at `path`, owner-only (0600) before it accepts anything. A stale socket file
/// left by a dead agent is removed; a live agent or a file that is not a socket is an error.
pub fn bind(path: &Path) -> io::Result<Listener> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("another agent is already listening on {}", path.display()),
                ));
            }
            std::fs::remove_file(path)?;
        }
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ))
        }
        Err(_) => {}
    }
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() && !dir.exists() {
            std::fs::create_dir_all(dir)?;
        }
    }
    // Bind under a temporary name, restrict it, then move it into place: nobody can connect
    // before the permissions are set.
    let tmp = path.with_file_name(format!(
        ".{}.{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&tmp);
    let inner = UnixListener::bind(&tmp)?;
    let placed = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
        .and_then(|_| std::fs::rename(&tmp, path));
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(Listener {
        inner,
        path: path.to_owned(),
    })
}

/// Why the default socket's directory cannot be used. Its `Display` is one line naming the
/// directory, what is wrong with it, and what to do.
#[derive(Debug)]
#[non_exhaustive]
pub enum SocketDirError {
    /// It is missing and could not be created, or could not be examined.
    Io(PathBuf, io::Error),
    /// It is a symbolic link, which could lead anywhere.
    Symlink(PathBuf),
    /// It is something other than a directory.
    NotDirectory(PathBuf),
    /// Another user owns it, and so decides what is in it.
    Owner {
        /// The directory.
        dir: PathBuf,
        /// Its owner.
        owner: u32,
        /// The agent's (effective) uid.
        me: u32,
    },
    /// Its group or others have some permission on it.
    Mode {
        /// The directory.
        dir: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
}

impl std::fmt::Display for SocketDirError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const FIX: &str = "remove it or set socket = \"...\" in the config";
        match self {
            SocketDirError::Io(d, e) => write!(
                f,
                "cannot create socket directory {}: {e}; set socket = \"...\" in the config",
                d.display()
            ),
            SocketDirError::Symlink(d) => write!(
                f,
                "socket directory {} is a symbolic link, not a directory: {FIX}",
                d.display()
            ),
            SocketDirError::NotDirectory(d) => {
                write!(f, "socket directory {} is not a directory: {FIX}", d.display())
            }
            SocketDirError::Owner { dir, owner, me } => write!(
                f,
                "socket directory {} is owned by uid {owner}, not {me}: {FIX}",
                dir.display()
            ),
            SocketDirError::Mode { dir, mode } => write!(
                f,
                "socket directory {} has mode {mode:04o}, open to group or others (want 0700): {FIX}",
                dir.display()
            ),
        }
    }
}

impl std::error::Error for SocketDirError {}

/// What a directory entry is, as far as [`dir_verdict`] cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EntryKind {
    Directory,
    Symlink,
    Other,
}

/// Whether an entry of `kind`, owned by `owner` with permission bits `mode`, may hold the socket
/// of an agent running as `me`: a real directory of its own that nobody else may use.
fn dir_verdict(
    dir: &Path,
    kind: EntryKind,
    owner: u32,
    mode: u32,
    me: u32,
) -> Result<(), SocketDirError> {
    match kind {
        EntryKind::Symlink => return Err(SocketDirError::Symlink(dir.to_owned())),
        EntryKind::Other => return Err(SocketDirError::NotDirectory(dir.to_owned())),
        EntryKind::Directory => {}
    }
    if owner != me {
        return Err(SocketDirError::Owner {
            dir: dir.to_owned(),
            owner,
            me,
        });
    }
    if mode & 0o077 != 0 {
        return Err(SocketDirError::Mode {
            dir: dir.to_owned(),
            mode: mode & 0o7777,
        });
    }
    Ok(())
}

/// Makes `dir` (the default socket's directory) owner-only (0700) if it is missing, then checks
/// that it is a real directory (not a symbolic link), owned by this user, with no permission for
/// group or others. In a shared parent such as `/tmp`, anyone may have made the name first.
pub fn private_dir(dir: &Path) -> Result<(), SocketDirError> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    // Created with its mode: there is no moment when it is open to others. An existing entry is
    // judged below, whatever it is.
    let created = std::fs::DirBuilder::new().mode(0o700).create(dir);
    let meta = std::fs::symlink_metadata(dir)
        .map_err(|e| SocketDirError::Io(dir.to_owned(), created.err().unwrap_or(e)))?;
    let kind = if meta.file_type().is_symlink() {
        EntryKind::Symlink
    } else if meta.is_dir() {
        EntryKind::Directory
    } else {
        EntryKind::Other
    };
    dir_verdict(
        dir,
        kind,
        meta.uid(),
        meta.mode(),
        nix::unistd::geteuid().as_raw(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_own_owner_only_directory_may_hold_the_socket() {
        let d = Path::new("/tmp/exo-discovery-1000");
        assert!(dir_verdict(d, EntryKind::Directory, 1000, 0o40700, 1000).is_ok());
        assert!(dir_verdict(d, EntryKind::Directory, 1000, 0o40500, 1000).is_ok());

        let e = dir_verdict(d, EntryKind::Directory, 65534, 0o40700, 1000).unwrap_err();
        assert!(matches!(
            e,
            SocketDirError::Owner {
                owner: 65534,
                me: 1000,
                ..
            }
        ));
        assert_eq!(
            e.to_string(),
            "socket directory /tmp/exo-discovery-1000 is owned by uid 65534, not 1000: \
             remove it or set socket = \"...\" in the config"
        );
        for mode in [0o40750, 0o40701, 0o40777, 0o41777] {
            let e = dir_verdict(d, EntryKind::Directory, 1000, mode, 1000).unwrap_err();
            assert!(matches!(e, SocketDirError::Mode { .. }), "{mode:o}");
            assert!(
                e.to_string()
                    .contains(&format!("mode {:04o}", mode & 0o7777)),
                "{e}"
            );
        }
        let e = dir_verdict(d, EntryKind::Symlink, 1000, 0o120777, 1000).unwrap_err();
        assert!(e.to_string().contains("is a symbolic link"), "{e}");
        let e = dir_verdict(d, EntryKind::Other, 1000, 0o100600, 1000).unwrap_err();
        assert!(e.to_string().contains("is not a directory"), "{e}");
        // The kind is judged first: someone else's symbolic link is reported as a link.
        let e = dir_verdict(d, EntryKind::Symlink, 65534, 0o120777, 1000).unwrap_err();
        assert!(matches!(e, SocketDirError::Symlink(_)));
    }

    #[test]
    fn every_refusal_is_one_line_naming_the_directory() {
        let d = PathBuf::from("/run/user/7/exo-discovery");
        let errors = [
            SocketDirError::Io(d.clone(), io::Error::from(io::ErrorKind::NotFound)),
            SocketDirError::Symlink(d.clone()),
            SocketDirError::NotDirectory(d.clone()),
            SocketDirError::Owner {
                dir: d.clone(),
                owner: 0,
                me: 7,
            },
            SocketDirError::Mode {
                dir: d.clone(),
                mode: 0o755,
            },
        ];
        for e in errors {
            let line = e.to_string();
            assert!(!line.contains('\n'), "{line:?}");
            assert!(line.contains("/run/user/7/exo-discovery"), "{line}");
        }
    }
}
