//! Same-path rebuilds. A build that embeds its own working directory (Bun's `dist/ca`
//! embeds `<clone>/node_modules/...`) can only reproduce where it was built, so the check
//! mounts the clean work tree over the original source path, in a mount namespace of the
//! rebuild's own: the user's clone is never touched and nothing else on the machine sees
//! the mount. Unprivileged users get a user namespace that maps them to themselves.
//! Where namespaces are refused, the caller rebuilds in the scratch folder and says so.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use crate::sandbox::UserMaps;

use rustix::mount::{mount_bind_recursive, mount_change, MountPropagationFlags};
use rustix::thread::{unshare_unsafe, UnshareFlags};

/// The clean work tree `work`, to appear at `target` for one command.
pub(crate) struct SamePath {
    target: CString,
    work: CString,
    /// Paths outside the target the command may write, each with the scratch file or
    /// folder mounted over it (scratch, path).
    covers: Vec<(CString, CString)>,
    /// `None` when already root (no user namespace needed to mount).
    maps: Option<UserMaps>,
}

fn c(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

impl SamePath {
    pub(crate) fn new(target: &Path, work: &Path) -> io::Result<SamePath> {
        let maps = (!rustix::process::getuid().is_root()).then(UserMaps::identity);
        Ok(SamePath {
            target: c(target)?,
            work: c(work)?,
            covers: Vec::new(),
            maps,
        })
    }

    /// Mounts `scratch` over `path` too (a path outside the target), so that what the
    /// command writes there lands in the scratch and `path` itself is never touched.
    pub(crate) fn cover(&mut self, path: &Path, scratch: &Path) -> io::Result<()> {
        self.covers.push((c(scratch)?, c(path)?));
        Ok(())
    }

    /// Makes `cmd` run with the work tree mounted at the target, in `cwd` (a path under
    /// the target, resolved after the mount). `cmd`'s own current directory is ignored.
    pub(crate) fn apply(&self, cmd: &mut Command, cwd: &Path) -> io::Result<()> {
        let target = self.target.clone();
        let work = self.work.clone();
        let cwd = c(cwd)?;
        let maps = self.maps.clone();
        let covers = self.covers.clone();
        cmd.current_dir("/");
        // SAFETY: between fork and exec this only makes system calls (unshare, open,
        // write, mount, chdir) on data prepared before the fork; nothing allocates or locks.
        unsafe {
            cmd.pre_exec(move || {
                match &maps {
                    Some(m) => m.enter(UnshareFlags::NEWNS)?,
                    None => unshare_unsafe(UnshareFlags::NEWNS)?,
                }
                mount_change(
                    c"/",
                    MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
                )?;
                mount_bind_recursive(work.as_c_str(), target.as_c_str())?;
                for (scratch, path) in &covers {
                    rustix::mount::mount_bind(scratch.as_c_str(), path.as_c_str())?;
                }
                rustix::process::chdir(cwd.as_c_str())?;
                Ok(())
            });
        }
        Ok(())
    }

    /// Whether this machine lets us do it: our own executable run so, once.
    pub(crate) fn works(&self) -> bool {
        let target = Path::new(std::ffi::OsStr::from_bytes(self.target.as_bytes()));
        crate::sandbox::probe(|cmd| self.apply(cmd, target))
    }
}
