//! A sync shared by concurrent callers: whoever needs what it wrote made durable waits for one
//! `syncfs` of the spool's file system that started after its writes. While one sync runs, the
//! callers that arrive meanwhile wait and then share the next one, so four `is_ready` at once
//! cost about one sync each round instead of four.

use std::fs::File;
use std::io;
use std::os::unix::io::AsRawFd;
use std::path::Path;

use parking_lot::{Condvar, Mutex, MutexGuard};

#[derive(Default)]
pub(super) struct Barrier {
    state: Mutex<State>,
    cv: Condvar,
}

impl std::fmt::Debug for Barrier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Barrier")
    }
}

#[derive(Default)]
struct State {
    /// Syncs started and finished, counted from 1; `done` is the last one finished.
    started: u64,
    done: u64,
    running: bool,
    /// The last sync that failed, with its error: every caller it covered gets the error.
    failed: Option<(u64, io::ErrorKind, String)>,
}

/// `syncfs` of the file system holding `root`: every file, append and rename on it durable.
pub(super) fn syncfs(root: &Path) -> io::Result<()> {
    let d = File::open(root)?;
    // SAFETY: syncfs on a descriptor owned by `d` for the duration of the call.
    if unsafe { libc::syncfs(d.as_raw_fd()) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

impl Barrier {
    /// Returns once a run of `sync` that started after this call began has finished (its
    /// result). Concurrent callers share runs: at most one runs at a time.
    pub(super) fn wait(&self, sync: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
        let mut st = self.state.lock();
        // A sync already running may have started before the caller's writes: it needs the next.
        let need = st.started + 1;
        loop {
            if st.done >= need {
                return match &st.failed {
                    Some((g, kind, msg)) if *g >= need => Err(io::Error::new(*kind, msg.clone())),
                    _ => Ok(()),
                };
            }
            if !st.running {
                st.running = true;
                st.started += 1;
                let generation = st.started;
                let res = MutexGuard::unlocked(&mut st, sync);
                st.running = false;
                st.done = generation;
                if let Err(e) = &res {
                    st.failed = Some((generation, e.kind(), e.to_string()));
                }
                self.cv.notify_all();
                return res;
            }
            self.cv.wait(&mut st);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    #[test]
    fn concurrent_callers_share_syncs_and_each_waits_for_one_started_after_it() {
        let barrier = Arc::new(Barrier::default());
        // The time of each sync's start, and each caller's (arrival, return) times.
        let clock = Arc::new(AtomicU64::new(0));
        let starts = Arc::new(Mutex::new(Vec::new()));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (barrier, clock, starts) = (barrier.clone(), clock.clone(), starts.clone());
                std::thread::spawn(move || {
                    let mut done = 0;
                    for _ in 0..20 {
                        let arrived = clock.fetch_add(1, Ordering::SeqCst);
                        let ran = std::cell::Cell::new(None);
                        barrier
                            .wait(|| {
                                let t = clock.fetch_add(1, Ordering::SeqCst);
                                starts.lock().push(t);
                                std::thread::sleep(Duration::from_millis(2));
                                ran.set(Some(t));
                                Ok(())
                            })
                            .unwrap();
                        let returned = clock.fetch_add(1, Ordering::SeqCst);
                        // Some sync started after this caller arrived and before it returned.
                        let s = starts.lock();
                        assert!(
                            s.iter().any(|&t| t > arrived && t < returned),
                            "no sync started between {arrived} and {returned}: {s:?}"
                        );
                        done += ran.get().is_some() as u32;
                    }
                    done
                })
            })
            .collect();
        let ran: u32 = threads.into_iter().map(|t| t.join().unwrap()).sum();
        // 160 waits; with 8 callers at once most share a sync.
        assert!(ran < 120, "{ran} syncs for 160 waits: callers did not share");
        assert_eq!(ran as usize, starts.lock().len());
    }

    #[test]
    fn a_failed_sync_fails_every_caller_it_covered_and_the_next_one_runs_again() {
        let barrier = Barrier::default();
        let e = barrier
            .wait(|| Err(io::Error::from_raw_os_error(libc::EIO)))
            .unwrap_err();
        assert_eq!(e.kind(), io::Error::from_raw_os_error(libc::EIO).kind());
        barrier.wait(|| Ok(())).unwrap();
    }
}
