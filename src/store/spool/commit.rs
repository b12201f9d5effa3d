//! The group commit: many attribute files replaced at once, each atomically, one directory
//! sync for them all.

use super::*;

/// One file to replace in the next group commit: already written at `tmp` by the caller, so
/// file creation (and, for `synced` requests, the fsync) happens in parallel in the callers.
#[derive(Debug)]
pub(super) struct CommitReq {
    pub(super) tmp: PathBuf,
    pub(super) path: PathBuf,
    /// Replace `path` by exchanging it with `tmp` (see [`super::spare`]): the old version
    /// stays at `tmp` and goes to the spare pool once the batch is durable. Only for
    /// attribute files, whose readers read them whole at once.
    pub(super) exchange: bool,
    /// The caller has already fsynced `tmp` (in parallel with the other callers): no
    /// file-system sync is needed for it.
    pub(super) synced: bool,
    pub(super) done: crossbeam_channel::Sender<io::Result<()>>,
}

/// Replaces many files at once, each atomically, with one directory sync for the batch:
/// every temp file is written (by its caller), made durable (by its caller's fsync, or one
/// `syncfs` here for those not synced yet), then each is renamed into place and the directory
/// synced once. A file is never visible before its bytes are durable, and no caller is
/// answered before its rename is. Batches form by themselves: the requests that arrive while
/// one batch syncs make the next.
pub(super) fn group_committer(
    root: PathBuf,
    rx: crossbeam_channel::Receiver<CommitReq>,
    spares: super::spare::Spares,
    own: super::recent::OwnRenames,
) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < 1024 {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let staged = batch;
        let synced = if staged.iter().all(|r| r.synced) {
            Ok(())
        } else {
            sync_all_of(&root, &staged)
        };
        let mut renamed = Vec::with_capacity(staged.len());
        for r in staged {
            let res = synced
                .as_ref()
                .map_err(|e| io::Error::new(e.kind(), e.to_string()))
                .and_then(|()| {
                    // An exchange shows as the name moved away and moved back. Should it fall
                    // back to a rename (no old version), one count waits for nothing: the
                    // watch may then miss one change by another process within 5 s (the TTL).
                    let events = if r.exchange { 2 } else { 1 };
                    own.note(&r.path, events);
                    replace(&r).inspect_err(|_| own.unnote(&r.path, events))
                });
            match res {
                Ok(kept) => renamed.push((r, kept)),
                Err(e) => {
                    let _ = fs::remove_file(&r.tmp);
                    let _ = r.done.send(Err(e));
                }
            }
        }
        let dir = File::open(&root).and_then(|d| d.sync_all());
        for (r, kept) in renamed {
            let res = match &dir {
                Ok(()) => Ok(()),
                Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
            };
            // The old version may be rewritten only once its replacement is durable.
            if kept {
                if res.is_ok() {
                    spares.put(r.tmp.clone(), true);
                } else {
                    let _ = fs::remove_file(&r.tmp);
                }
            }
            let _ = r.done.send(res);
        }
    }
}

/// Puts one request's file in place; `true` when the old version was kept at `r.tmp`.
fn replace(r: &CommitReq) -> io::Result<bool> {
    if r.exchange {
        match super::spare::exchange(&r.tmp, &r.path) {
            Ok(()) => return Ok(true),
            // No old version (a first write), or a file system without RENAME_EXCHANGE.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) => {}
            Err(e) => return Err(e),
        }
    }
    fs::rename(&r.tmp, &r.path).map(|()| false)
}

/// Makes the temp files of a batch durable: one `syncfs`, or one fsync each where there is none.
fn sync_all_of(root: &Path, staged: &[CommitReq]) -> io::Result<()> {
    let synced = File::open(root).and_then(|d| {
        // SAFETY: syncfs on a descriptor we own for the duration of the call.
        if unsafe { libc::syncfs(d.as_raw_fd()) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    });
    synced.or_else(|_| {
        staged
            .iter()
            .try_for_each(|r| File::open(&r.tmp).and_then(|f| f.sync_all()))
    })
}
