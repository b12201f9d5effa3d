//! The group commit: many attribute files replaced at once, each atomically, one sync.

use super::*;

/// One attribute file to replace in the next group commit: already written (not synced) at
/// `tmp` by the caller, so file creation happens in parallel in the callers.
#[derive(Debug)]
pub(super) struct CommitReq {
    pub(super) tmp: PathBuf,
    pub(super) path: PathBuf,
    pub(super) done: crossbeam_channel::Sender<io::Result<()>>,
}

/// Replaces many files at once, each atomically, with one file-system sync for the batch:
/// every temp file is written (by its caller), then `syncfs` makes them all durable, then each is renamed
/// into place and the directory synced once. A file is never visible before its bytes are
/// durable, and no caller is answered before its rename is. Batches form by themselves: the
/// requests that arrive while one batch syncs make the next.
pub(super) fn group_committer(root: PathBuf, rx: crossbeam_channel::Receiver<CommitReq>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < 1024 {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let staged = batch;
        let synced = File::open(&root).and_then(|d| {
            // SAFETY: syncfs on a descriptor we own for the duration of the call.
            if unsafe { libc::syncfs(d.as_raw_fd()) } == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        });
        let synced = synced.or_else(|_| {
            // No syncfs here: one fsync per file, still one directory sync.
            staged
                .iter()
                .try_for_each(|r| File::open(&r.tmp).and_then(|f| f.sync_all()))
        });
        let mut renamed = Vec::with_capacity(staged.len());
        for r in staged {
            let res = synced
                .as_ref()
                .map_err(|e| io::Error::new(e.kind(), e.to_string()))
                .and_then(|()| fs::rename(&r.tmp, &r.path));
            match res {
                Ok(()) => renamed.push(r),
                Err(e) => {
                    let _ = fs::remove_file(&r.tmp);
                    let _ = r.done.send(Err(e));
                }
            }
        }
        let dir = File::open(&root).and_then(|d| d.sync_all());
        for r in renamed {
            let res = match &dir {
                Ok(()) => Ok(()),
                Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
            };
            let _ = r.done.send(res);
        }
    }
}
