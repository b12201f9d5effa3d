//! setattr (chmod, chown, times), scratch files becoming messages, and what `access(2)` and a
//! directory listing in several calls answer.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, UNIX_EPOCH};

use super::*;

#[test]
fn chmod_shares_a_draft_with_its_group_and_nothing_more() {
    let h = Harness::new();
    let ino = h.write_new(ALICE, "m.eml", PLAIN);
    let parts = h.parts(ALICE, "m.eml");
    // Others never get a message, and nothing is executable (SPEC §10).
    let a =
        h.fs.setattr(ALICE, ino, Some(0o777), (None, None), None, None, None)
            .unwrap();
    assert_eq!(a.perm, 0o660);
    assert_eq!(
        h.fs.getattr(parts).unwrap().perm,
        0o770,
        "the parts directory follows"
    );
    let stranger = Caller {
        uid: 1005,
        gid: 1005,
        pid: 0,
    };
    assert_eq!(errno(h.read(stranger, ino)), libc::EACCES);
    let carol = Caller {
        uid: 1002,
        gid: ALICE.gid,
        pid: 0,
    };
    assert_eq!(h.read(carol, ino).unwrap(), PLAIN);
    // Only the owner changes the mode; a chmod of a part is a chmod of its Draft (rsync -a).
    let r =
        h.fs.setattr(carol, ino, Some(0o600), (None, None), None, None, None);
    assert_eq!(errno(r), libc::EACCES);
    let body = h.ino(ALICE, parts, "Body.txt").unwrap();
    h.fs.setattr(ALICE, body, Some(0o600), (None, None), None, None, None)
        .unwrap();
    assert_eq!(h.fs.getattr(ino).unwrap().perm, 0o600);
    assert_eq!(errno(h.read(carol, ino)), libc::EACCES);
    // Kept in the attributes: a new MailFs shows it.
    let again = MailFs::new(h.fs.node.clone());
    let a = again.lookup(ALICE, ROOT, "m.eml").unwrap();
    assert_eq!((a.perm, a.uid), (0o600, ALICE.uid));
}

#[test]
fn chown_is_roots_and_an_owner_may_only_restore_what_is_theirs() {
    let h = Harness::new();
    let ino = h.write_new(ALICE, "m.eml", PLAIN);
    let own = |who, ids| h.fs.setattr(who, ino, None, ids, None, None, None);
    assert_eq!(
        errno(own(ALICE, (Some(BOB.uid), None))),
        libc::EPERM,
        "giving mail away"
    );
    assert_eq!(errno(own(BOB, (Some(BOB.uid), None))), libc::EPERM, "taking it");
    // `cp -a` / `tar -x` by the owner: its own uid and group are no change.
    own(ALICE, (Some(ALICE.uid), Some(ALICE.gid))).unwrap();
    let root = Caller {
        uid: 0,
        gid: 0,
        pid: 0,
    };
    let a = own(root, (Some(BOB.uid), Some(BOB.gid))).unwrap();
    assert_eq!((a.uid, a.gid), (BOB.uid, BOB.gid));
    assert_eq!(errno(h.read(ALICE, ino)), libc::EACCES);
    assert_eq!(h.read(BOB, ino).unwrap(), PLAIN);
    // The root of the node keeps its mode and owner; setting what it shows is no change.
    let shown = h.fs.getattr(ROOT).unwrap();
    let r =
        h.fs.setattr(root, ROOT, Some(0o755), (None, None), None, None, None);
    assert_eq!(errno(r), libc::EPERM);
    h.fs.setattr(
        root,
        ROOT,
        Some(u32::from(shown.perm)),
        (None, None),
        None,
        None,
        None,
    )
    .unwrap();
}

#[test]
fn times_are_set_on_a_draft_and_refused_once_ready() {
    let h = Harness::new();
    let ino = h.write_new(ALICE, "m.eml", PLAIN);
    let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let a =
        h.fs.setattr(ALICE, ino, None, (None, None), None, Some(t), Some(t))
            .unwrap();
    assert_eq!((a.mtime, a.atime), (t, t));
    assert_eq!(h.eml("m.eml"), PLAIN, "touch -d changes no byte");
    let r = h.fs.setattr(BOB, ino, None, (None, None), None, None, Some(t));
    assert_eq!(errno(r), libc::EACCES);
    h.make_ready(ALICE, "m.eml");
    let r =
        h.fs.setattr(ALICE, ino, None, (None, None), None, None, Some(UNIX_EPOCH));
    assert_eq!(errno(r), libc::EACCES);
}

#[test]
fn a_scratch_file_renamed_onto_a_message_name_brings_its_xattrs() {
    let h = Harness::new();
    // `cp --preserve=xattr draft tmp && mv tmp X.eml`, as rsync -aX does.
    let tmp = h.write_new(ALICE, "incoming.tmp", PLAIN);
    h.fs.setxattr(ALICE, tmp, "user.env_to", b"carol@example.net")
        .unwrap();
    h.fs.setxattr(ALICE, tmp, "user.project", b"q3").unwrap();
    // Attributes that describe the node it came from are not applied.
    h.fs.setxattr(ALICE, tmp, "user.try_count", b"0").unwrap();
    h.fs.rename(ALICE, (ROOT, "incoming.tmp"), (ROOT, "x.eml"), false)
        .unwrap();
    let ino = h.ino(ALICE, ROOT, "x.eml").unwrap();
    assert_eq!(h.eml("x.eml"), PLAIN);
    assert_eq!(h.getx(ALICE, ino, "user.env_to").unwrap(), "carol@example.net");
    assert_eq!(h.getx(ALICE, ino, "user.project").unwrap(), "q3");
    assert_eq!(h.getx(ALICE, ino, "user.status").unwrap(), "Draft");
    let a = h.fs.getattr(ino).unwrap();
    assert_eq!(
        (a.uid, a.perm),
        (ALICE.uid, 0o600),
        "a message of the renaming user"
    );
    // With is_ready among them it arrives ready, the envelope checked as for setfattr.
    let tmp = h.write_new(ALICE, "ready.tmp", PLAIN);
    h.fs.setxattr(ALICE, tmp, "user.is_ready", b"1").unwrap();
    h.fs.rename(ALICE, (ROOT, "ready.tmp"), (ROOT, "y.eml"), false)
        .unwrap();
    let ino = h.ino(ALICE, ROOT, "y.eml").unwrap();
    assert_eq!(h.getx(ALICE, ino, "user.status").unwrap(), "Pending");
}

#[test]
fn create_exclusive_access_and_a_listing_read_in_pieces() {
    let h = Harness::new();
    h.write_new(ALICE, "a.eml", PLAIN);
    let r = h.fs.create(
        ALICE,
        ROOT,
        "a.eml",
        0o600,
        libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
    );
    assert_eq!(errno(r), libc::EEXIST);
    assert_eq!(h.eml("a.eml"), PLAIN);
    let ino = h.ino(ALICE, ROOT, "a.eml").unwrap();
    h.fs.access(ALICE, ino, libc::R_OK | libc::W_OK).unwrap();
    assert_eq!(errno(h.fs.access(BOB, ino, libc::R_OK)), libc::EACCES);
    h.make_ready(ALICE, "a.eml");
    h.fs.access(ALICE, ino, libc::R_OK).unwrap();
    // Ready: every write is refused, so `test -w` says no, to the owner and to root alike
    // (without default_permissions the kernel asks mailfs rather than reading the mode).
    let parts = h.parts(ALICE, "a.eml");
    let body = h.ino(ALICE, parts, "Body.txt").unwrap();
    for who in [
        ALICE,
        Caller {
            uid: 0,
            gid: 0,
            pid: 0,
        },
    ] {
        for i in [ino, parts, body] {
            assert_eq!(
                errno(h.fs.access(who, i, libc::W_OK)),
                libc::EACCES,
                "{who:?} {i}"
            );
            h.fs.access(who, i, libc::R_OK).unwrap();
        }
    }

    for n in ["b.eml", "c.eml", "d.eml"] {
        h.write_new(ALICE, n, PLAIN);
    }
    // getdents in small buffers: each call resumes at the offset the last entry gave.
    let fh = h.fs.opendir(ALICE, ROOT).unwrap();
    let mut seen = Vec::new();
    let mut offset = 0;
    loop {
        let mut got = 0;
        h.fs.readdir(fh, offset, |_, next, _, name| {
            seen.push(name.to_string());
            offset = next;
            got += 1;
            got == 3
        })
        .unwrap();
        if got < 3 {
            break;
        }
    }
    h.fs.release(fh);
    assert_eq!(
        seen,
        [
            ".",
            "..",
            "a.eml",
            "a.eml.parts",
            "b.eml",
            "b.eml.parts",
            "c.eml",
            "c.eml.parts",
            "d.eml",
            "d.eml.parts"
        ]
    );
}

#[test]
fn a_new_scratch_file_is_its_creators_alone_until_a_chmod_widens_it() {
    // audit-10 J18: `echo hi > MNT/notes.txt` under umask 022 left a 0644 file in the spool.
    let h = Harness::new();
    let ino = h.write_new(ALICE, "notes.txt", b"hi\n");
    assert_eq!(h.fs.getattr(ino).unwrap().perm, 0o600, "as the mount shows it");
    let on_disk = std::fs::metadata(h.fs.node.spool.scratch_path("notes.txt")).unwrap();
    assert_eq!(
        on_disk.permissions().mode() & 0o7777,
        0o600,
        "as the spool keeps it"
    );
    // A chmod is the user widening it (cp -a, tar and rsync -a restore modes this way).
    let a =
        h.fs.setattr(ALICE, ino, Some(0o644), (None, None), None, None, None)
            .unwrap();
    assert_eq!(a.perm, 0o644);
    let on_disk = std::fs::metadata(h.fs.node.spool.scratch_path("notes.txt")).unwrap();
    assert_eq!(on_disk.permissions().mode() & 0o7777, 0o644);
}

#[test]
fn a_scratch_file_renamed_onto_a_message_brings_its_hold_and_becomes_the_spools() {
    let h = Harness::new();
    let tmp = h.write_new(ALICE, "staged.tmp", PLAIN);
    // A user's file, widened as `cp` of a 0644 file leaves it.
    h.fs.setattr(ALICE, tmp, Some(0o644), (None, None), None, None, None)
        .unwrap();
    h.fs.setxattr(ALICE, tmp, "user.hold", b"1").unwrap();
    h.fs.setxattr(ALICE, tmp, "user.is_ready", b"1").unwrap();
    h.fs.rename(ALICE, (ROOT, "staged.tmp"), (ROOT, "s.eml"), false)
        .unwrap();
    let ino = h.ino(ALICE, ROOT, "s.eml").unwrap();
    // audit-16 D8: the hold was dropped, so a message staged "ready but held" went out at once.
    assert_eq!(h.getx(ALICE, ino, "user.hold").unwrap(), "1");
    assert_eq!(h.getx(ALICE, ino, "user.status").unwrap(), "Pending");
    // audit-16 D2: the spool file stayed the user's, 0644; the message is ALICE's in the view.
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(h.fs.node.spool.eml_path("s.eml")).unwrap();
    assert_eq!((m.uid(), m.mode() & 0o7777), (h.fs.uid, 0o600));
    let a = h.fs.getattr(ino).unwrap();
    assert_eq!(a.uid, ALICE.uid);
}

#[test]
fn a_scratch_file_whose_hold_or_envelope_is_refused_lands_as_a_draft() {
    // audit-17 D1: `hold=true` (not 0 or 1) was refused, is_ready=1 applied: it went out at once.
    let h = Harness::new();
    for (attr, bad) in [("user.hold", &b"true"[..]), ("user.env_to", b"not an address")] {
        let tmp = h.write_new(ALICE, "staged.tmp", PLAIN);
        h.fs.setxattr(ALICE, tmp, attr, bad).unwrap();
        h.fs.setxattr(ALICE, tmp, "user.is_ready", b"1").unwrap();
        h.fs.rename(ALICE, (ROOT, "staged.tmp"), (ROOT, "s.eml"), false)
            .unwrap();
        let ino = h.ino(ALICE, ROOT, "s.eml").unwrap();
        assert_eq!(h.getx(ALICE, ino, "user.status").unwrap(), "Draft", "{attr}");
        assert_eq!(h.getx(ALICE, ino, "user.is_ready").unwrap(), "0", "{attr}");
        h.fs.unlink(ALICE, ROOT, "s.eml").unwrap();
    }
}
