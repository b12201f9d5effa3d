//! A new message put in place from `.tmp/`: its content and attribute file made durable side
//! by side, renamed into the spool root (attributes first), one directory sync for both.

use super::*;

impl Spool {
    /// Moves a complete file from `.tmp/` (synced or not) into the spool as message `name`
    /// with `attrs`: attributes first, then the content renamed into place, and one directory
    /// sync for both. The content's fsync and the attribute file's run at once, so a
    /// submitting process waits for the slower of the two rather than their sum. On error the
    /// temp file is removed and no message appears.
    pub fn commit_tmp(&self, tmp: &Path, name: &str, attrs: &MessageAttrs) -> Result<()> {
        self.commit_tmp_with(tmp, name, attrs, || {})
    }

    /// [`Spool::commit_tmp`], running `side` (another durable write the caller needs, such as
    /// the Message-ID record) on the thread that synced the content, once the message is in
    /// place: it then overlaps the directory sync, and a one-message process starts one
    /// thread, not two. `side` runs only for a message put in place (before this returns): a
    /// message that could not be stored (a full disk) must not be recorded as gone out.
    pub fn commit_tmp_with(
        &self,
        tmp: &Path,
        name: &str,
        attrs: &MessageAttrs,
        side: impl FnOnce() + Send,
    ) -> Result<()> {
        if !is_message_name(name) {
            let _ = fs::remove_file(tmp);
            return Err(Error::invalid("name", format!("{name:?} is not a message name")));
        }
        let attrs_tmp = self.tmp_path();
        let res = (|| -> Result<()> {
            let bytes = Self::encode(attrs)?;
            let write_attrs = || -> io::Result<()> {
                let mut f = create_private(&attrs_tmp)?;
                f.write_all(&bytes)?;
                f.sync_all()
            };
            let sync_content = || open_read(tmp).and_then(|f| f.sync_all());
            let rename = || -> io::Result<()> {
                self.rename_noted(&attrs_tmp, &self.struct_path(name))?;
                self.rename_noted(tmp, &self.eml_path(name))
            };
            let (synced_tx, synced) = crossbeam_channel::bounded(1);
            let (placed_tx, placed) = crossbeam_channel::bounded::<bool>(1);
            let side = parking_lot::Mutex::new(Some(side));
            std::thread::scope(|s| -> io::Result<()> {
                let helper = std::thread::Builder::new().spawn_scoped(s, || {
                    let _ = synced_tx.send(sync_content());
                    if placed.recv() == Ok(true)
                        && let Some(f) = side.lock().take()
                    {
                        f();
                    }
                });
                match helper {
                    Ok(helper) => {
                        let a = write_attrs();
                        let c = synced
                            .recv()
                            .unwrap_or_else(|_| Err(io::Error::other("the fsync thread failed")));
                        let renamed = a.and(c).and_then(|()| rename());
                        let _ = placed_tx.send(renamed.is_ok());
                        let done = renamed.and_then(|()| self.sync_root());
                        let _ = helper.join();
                        done
                    }
                    Err(_) => {
                        write_attrs()
                            .and_then(|()| sync_content())
                            .and_then(|()| rename())?;
                        if let Some(f) = side.lock().take() {
                            f();
                        }
                        self.sync_root()
                    }
                }
            })?;
            Ok(())
        })();
        if res.is_err() {
            let _ = fs::remove_file(&attrs_tmp);
            let _ = fs::remove_file(tmp);
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// The side job (sendmail's Message-ID record) runs once for a message put in place, and
    /// not at all for one refused for its name, whose content is missing, or whose attribute
    /// file cannot be put in place; a failure leaves no message behind.
    #[test]
    fn the_side_job_runs_only_for_a_message_put_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let attrs = MessageAttrs::new_draft();
        let runs = AtomicUsize::new(0);
        let side = || {
            runs.fetch_add(1, Ordering::SeqCst);
        };
        let tmp = spool.tmp_path();
        fs::write(&tmp, b"Subject: x\n\nbody\n").unwrap();
        spool.commit_tmp_with(&tmp, "m.eml", &attrs, side).unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(
            fs::read(spool.eml_path("m.eml")).unwrap(),
            b"Subject: x\n\nbody\n"
        );
        assert_eq!(spool.read_attrs("m.eml").unwrap().unwrap().0, attrs);
        assert!(!tmp.exists());

        let tmp = spool.tmp_path();
        fs::write(&tmp, b"x").unwrap();
        assert!(spool.commit_tmp_with(&tmp, "../x", &attrs, side).is_err());
        assert!(!tmp.exists());

        let missing = spool.tmp_path();
        assert!(spool.commit_tmp_with(&missing, "n.eml", &attrs, side).is_err());
        assert!(!spool.eml_path("n.eml").exists() && spool.read_attrs("n.eml").unwrap().is_none());

        // Both files written and synced, but the attribute file cannot be renamed into place.
        fs::create_dir(spool.struct_path("d.eml")).unwrap();
        let tmp = spool.tmp_path();
        fs::write(&tmp, b"Subject: y\n\nbody\n").unwrap();
        assert!(spool.commit_tmp_with(&tmp, "d.eml", &attrs, side).is_err());
        assert!(!spool.eml_path("d.eml").exists());
        assert_eq!(
            runs.load(Ordering::SeqCst),
            1,
            "the side job ran for a message not stored"
        );
        assert_eq!(fs::read_dir(dir.path().join(".tmp")).unwrap().count(), 0);
    }
}
