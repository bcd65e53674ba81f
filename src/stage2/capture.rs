//! What a provider prints, kept within a limit: the first half of the limit written to
//! its log as it comes, the last half kept in memory and written at the end, and the
//! bytes dropped between them counted and said in the log. A writer that outlives the
//! run (a process that escaped the kill) cannot hold the harness: reading stops a
//! second after the run ends.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How one stream was kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Captured {
    pub bytes: u64,
    pub kept: u64,
    pub dropped: u64,
}

/// A stream being captured into its log.
pub(crate) struct Capture {
    done: Arc<AtomicBool>,
    thread: JoinHandle<std::io::Result<Captured>>,
    path: PathBuf,
}

/// Starts capturing `pipe` into `path` (created), keeping at most `limit` bytes.
pub(crate) fn start(pipe: OwnedFd, path: &Path, limit: u64) -> Result<Capture> {
    let log = File::create(path).map_err(Error::io("create", path))?;
    let done = Arc::new(AtomicBool::new(false));
    let stop = done.clone();
    let thread = std::thread::spawn(move || pump(pipe, log, limit, &stop));
    Ok(Capture {
        done,
        thread,
        path: path.to_path_buf(),
    })
}

impl Capture {
    /// Once the run is over: the rest of the stream (for a second at most), then the log
    /// completed with the kept tail.
    pub(crate) fn finish(self) -> Result<Captured> {
        self.done.store(true, Ordering::SeqCst);
        match self.thread.join() {
            Ok(r) => r.map_err(Error::io("write", &self.path)),
            Err(_) => Err(Error::Io {
                action: "capture",
                path: self.path,
                source: std::io::Error::other("the capture thread panicked"),
            }),
        }
    }
}

fn readable(fd: &impl AsFd, wait: Duration) -> bool {
    let mut fds = [rustix::event::PollFd::new(fd, rustix::event::PollFlags::IN)];
    let t = rustix::event::Timespec {
        tv_sec: 0,
        tv_nsec: wait.as_nanos() as _,
    };
    rustix::event::poll(&mut fds, Some(&t)).is_ok_and(|n| n > 0)
}

fn pump(pipe: OwnedFd, mut log: File, limit: u64, done: &AtomicBool) -> std::io::Result<Captured> {
    let head_max = limit / 2;
    let tail_max = (limit - head_max) as usize;
    let mut tail: VecDeque<u8> = VecDeque::new();
    let mut c = Captured::default();
    let mut buf = vec![0u8; 64 << 10];
    let mut reader = File::from(pipe);
    let mut ended: Option<Instant> = None;
    loop {
        if done.load(Ordering::SeqCst) {
            let since = *ended.get_or_insert_with(Instant::now);
            if since.elapsed() > Duration::from_secs(1) {
                break;
            }
        }
        if !readable(&reader, Duration::from_millis(100)) {
            continue;
        }
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        c.bytes += n as u64;
        let mut chunk = &buf[..n];
        let room = head_max.saturating_sub(c.kept) as usize;
        if room > 0 {
            let take = room.min(chunk.len());
            log.write_all(&chunk[..take])?;
            c.kept += take as u64;
            chunk = &chunk[take..];
        }
        tail.extend(chunk);
        while tail.len() > tail_max {
            let over = tail.len() - tail_max;
            tail.drain(..over);
            c.dropped += over as u64;
        }
    }
    if c.dropped > 0 {
        writeln!(
            log,
            "\n[cto-ledger: {} bytes dropped here; {} bytes in all, the first and last {} kept]",
            c.dropped,
            c.bytes,
            limit / 2
        )?;
    }
    let (a, b) = tail.as_slices();
    log.write_all(a)?;
    log.write_all(b)?;
    c.kept += tail.len() as u64;
    log.sync_all()?;
    Ok(c)
}
