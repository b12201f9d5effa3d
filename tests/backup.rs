//! Issue 12: backing up, restoring and moving mail with everyday tools — tar, rsync, cp -a,
//! flock — on real mounts, every shell step under `timeout`. One test per numbered item of
//! the issue, and the round trip of a whole node (a Draft holding an attached message among
//! its messages) through tar, tar --xattrs, rsync -a, rsync -aX and cp -a into fresh nodes,
//! compared by sha256 and attributes, with nothing sent again.

mod common;

use common::smtp::Sink;
use common::*;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

fn sh_in(dir: &Path, script: &str) -> Output {
    std::process::Command::new("timeout")
        .args(["60", "bash", "-c", script])
        .current_dir(dir)
        .output()
        .expect("bash")
}

fn text(o: &Output) -> String {
    format!(
        "status {}\n{}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `sha256sum` of every message in the mount, sorted by name.
fn digests(m: &Mount) -> String {
    m.ok("sha256sum *.eml")
}

/// The user attributes of a message as `getfattr -d` prints them.
fn attr_dump(m: &Mount, name: &str) -> String {
    m.ok(&format!("getfattr -d -m '^user\\.' {name}"))
}

/// A node holding a plain Draft with user attributes, a Draft composed by parts with a text
/// and a binary attachment, and a template; returns the attachment's bytes.
fn fill_drafts(m: &Mount) -> Vec<u8> {
    m.ok("printf 'From: a@example.com\\nTo: b@example.org\\nSubject: plain\\nMessage-ID: <plain@x>\\n\\nhello plain\\n' > plain.eml");
    m.ok("setfattr -n user.note -v 'kept note' plain.eml && setfattr -n user.env_to -v c@example.net plain.eml");
    let bin: Vec<u8> = (0..20_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(m.tmp.path().join("data.bin"), &bin).unwrap();
    m.ok("touch multi.eml && echo 'the body' > multi.eml.parts/Body.txt");
    m.ok(&format!(
        "cp {} multi.eml.parts/ && cp {}/README.md multi.eml.parts/notes.txt",
        m.tmp.path().join("data.bin").display(),
        env!("CARGO_MANIFEST_DIR")
    ));
    m.ok("setfattr -n user.header.to -v d@example.org multi.eml.parts && setfattr -n user.header.subject -v 'with attachments' multi.eml.parts");
    m.ok("setfattr -n user.tag -v blue multi.eml && setfattr -n user.env_from -v a@example.com multi.eml");
    m.ok("touch empty.eml");
    // A Draft holding an attached message, whose parts (fwd.eml.parts/) are read-only.
    let inner = m.tmp.path().join("inner.eml");
    std::fs::write(
        &inner,
        message("a@example.com", "b@example.org", "inner", "inner body"),
    )
    .unwrap();
    m.ok("printf 'From: a@example.com\\nTo: c@example.org\\nSubject: outer\\n\\nouter body\\n' > fwd.eml");
    m.ok(&format!("cp {} fwd.eml.parts/inner.eml", inner.display()));
    assert!(m.ok("ls fwd.eml.parts/inner.eml.parts").contains("Body.txt"));
    bin
}

/// Every name under the mount (messages, parts, attached messages' parts), sorted.
fn tree_listing(m: &Mount) -> String {
    m.ok("find . | LC_ALL=C sort")
}

fn sink_opts(sink: &Sink) -> Vec<String> {
    vec![
        format!("port={}", sink.port),
        "ratelimit_time=0".into(),
        "domlimit_time=0".into(),
    ]
}

fn mount_with(opts: &[String]) -> Mount {
    let o: Vec<&str> = opts.iter().map(String::as_str).collect();
    Mount::new(&o)
}

/// Item 1: `tar -xf` of a node's tar into an empty node hung (EEXIST on the parts, an unlink
/// that left Body.txt listed) and recomposed messages. Now it ends, byte for byte.
#[test]
fn tar_restore_into_an_empty_node_ends_and_is_byte_identical() {
    let a = Mount::new(&[]);
    fill_drafts(&a);
    let tarball = a.tmp.path().join("node.tar");
    a.ok(&format!("tar -cf {} .", tarball.display()));
    let b = Mount::new(&[]);
    let o = sh_in(&b.mnt, &format!("tar -xf {}", tarball.display()));
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(digests(&a), digests(&b));
    // Writing a part with the bytes it already has changes nothing.
    let before = digests(&b);
    b.ok("cat multi.eml.parts/Body.txt > ../body && cp ../body multi.eml.parts/Body.txt");
    b.ok("cp multi.eml.parts/data.bin ../d && cp ../d multi.eml.parts/data.bin");
    assert_eq!(digests(&b), before);
    // tar over a node that already has the messages (its default: unlink, create again).
    let o = sh_in(&b.mnt, &format!("tar -xf {}", tarball.display()));
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(digests(&b), before);
}

/// Item 2: `tar --xattrs -xf` over an existing x.eml unlinks it and makes it again with
/// mknod, which was ENOSYS: the message was gone.
#[test]
fn mknod_of_a_regular_file_works_like_create() {
    let m = Mount::new(&[]);
    fill_drafts(&m);
    let tarball = m.tmp.path().join("x.tar");
    m.ok(&format!("tar --xattrs -cf {} plain.eml", tarball.display()));
    let before = digests(&m);
    let o = sh_in(&m.mnt, &format!("tar --xattrs -xf {}", tarball.display()));
    assert!(o.status.success(), "{}", text(&o));
    // The Message-ID restored before the bytes is the one they carry: no warning.
    assert!(!text(&o).contains("user.message_id"), "{}", text(&o));
    assert_eq!(digests(&m), before);
    assert_eq!(m.attr("plain.eml", "note"), "kept note");
    // mknod makes an empty Draft (its bytes follow), a scratch file, or refuses other kinds.
    m.ok("python3 -c \"import os,stat; os.mknod('new.eml', 0o600 | stat.S_IFREG); os.mknod('scratch.tmp', 0o644 | stat.S_IFREG)\"");
    assert_eq!(m.ok("stat -c %s new.eml"), "0\n");
    assert_eq!(m.attr("new.eml", "status"), "Draft");
    assert_eq!(m.ok("stat -c %s scratch.tmp"), "0\n");
    assert!(m.fails("mknod fifo p").contains("not permitted"));
}

/// Item 3: `rm Body.txt` of a plain-text Draft returned 0, left an empty Body.txt listed and
/// the body gone. Now the name is gone with the body, and writing it back restores it.
#[test]
fn rm_of_the_only_body_does_what_it_says() {
    let m = Mount::new(&[]);
    fill_drafts(&m);
    m.ok("rm plain.eml.parts/Body.txt");
    assert!(!m.ok("ls plain.eml.parts").contains("Body.txt"));
    assert!(m.sh("test -e plain.eml.parts/Body.txt").status.code() == Some(1));
    assert!(!m.ok("cat plain.eml").contains("hello plain"));
    assert!(m.fails("rm plain.eml.parts/Body.txt").contains("No such file"));
    m.ok("echo 'new body' > plain.eml.parts/Body.txt");
    assert_eq!(m.ok("cat plain.eml.parts/Body.txt"), "new body\n");
    assert!(m.ok("cat plain.eml").contains("new body"));
    // An attachment's removal removes it.
    m.ok("rm multi.eml.parts/data.bin");
    assert!(!m.ok("ls multi.eml.parts").contains("data.bin"));
}

/// Item 4: `cp -a sent.eml copy.eml` (and a restore carrying user.is_ready=1) sent the message
/// again. Now a Message-ID that went out is refused (EALREADY, logged) until it is changed.
#[test]
fn a_copy_or_restore_of_a_sent_message_is_never_sent_again() {
    let tmp = tempfile::tempdir().unwrap();
    let sink = Sink::start(tmp.path());
    let m = mount_with(&sink_opts(&sink));
    m.ok("printf 'From: a@example.com\\nTo: b@example.org\\nSubject: once\\n\\nonce\\n' > sent.eml");
    m.ok("setfattr -n user.is_ready -v 1 sent.eml");
    wait_status(&m, "sent.eml", "Sent", 20);
    assert_eq!(sink.count(), 1);
    let o = m.sh("cp -a sent.eml copy.eml");
    assert!(m.path("copy.eml").exists(), "{}", text(&o));
    assert_eq!(m.attr("copy.eml", "status"), "Draft");
    let err = m.fails("setfattr -n user.is_ready -v 1 copy.eml");
    assert!(err.contains("Operation already in progress"), "{err}");
    assert!(m.log().contains("was already sent from this node"), "{}", m.log());
    // A restore through a temp file (rsync -X) is refused at the temp file.
    let bk = tmp.path().join("bk");
    std::fs::create_dir_all(&bk).unwrap();
    m.ok(&format!("rsync -aX sent.eml {}/", bk.display()));
    let o = sh_in(&m.mnt, &format!("rsync -aX {}/sent.eml again.eml", bk.display()));
    assert!(text(&o).contains("Operation already in progress"), "{}", text(&o));
    assert_eq!(m.attr("again.eml", "status"), "Draft");
    // In place (audit-25 F1): rsync makes the file, closes it, then sets the attributes by
    // path; its own is_ready=1 and a later one by anyone are refused.
    let o = sh_in(
        &m.mnt,
        &format!("rsync -aX --inplace {}/sent.eml inplace.eml", bk.display()),
    );
    assert!(text(&o).contains("Operation already in progress"), "{}", text(&o));
    assert_eq!(m.attr("inplace.eml", "status"), "Draft");
    let err = m.fails("setfattr -n user.is_ready -v 1 inplace.eml");
    assert!(err.contains("Operation already in progress"), "{err}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(sink.count(), 1, "nothing was sent again");
    // Sending again on purpose: a new Message-ID.
    m.ok("setfattr -x user.header.message-id copy.eml.parts && setfattr -n user.is_ready -v 1 copy.eml");
    wait_status(&m, "copy.eml", "Sent", 20);
    assert_eq!(sink.count(), 2);
}

/// Item 5: `flock MNT/newlock true` was EIO: open(O_CREAT|O_RDONLY) of a new file failed.
#[test]
fn flock_creates_and_locks_a_new_file() {
    let m = Mount::new(&[]);
    m.ok("flock newlock true");
    assert_eq!(m.ok("stat -c %s newlock"), "0\n");
    m.ok("touch d.eml && flock d.eml true && flock -n newlock -c 'flock -n newlock true' || true");
    // Two holders exclude each other.
    let o = m.sh("flock newlock sleep 1 & sleep 0.3; flock -n newlock true; r=$?; wait; exit $r");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    m.ok("python3 -c \"import os; os.close(os.open('ro.eml', os.O_CREAT | os.O_RDONLY, 0o600))\"");
    assert_eq!(m.attr("ro.eml", "status"), "Draft");
}

/// Item 6: `rsync -a dir/ MNT/d.eml.parts/` failed: rsync's `.NAME.XXXXXX` temp files were
/// refused (EINVAL). They are staged now, and become the part at rsync's rename.
#[test]
fn rsync_into_a_parts_directory() {
    let m = Mount::new(&[]);
    m.ok("touch d.eml && echo 'first body' > d.eml.parts/Body.txt");
    let dir = m.tmp.path().join("dir");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("Body.txt"), "second body\n").unwrap();
    let bin: Vec<u8> = (0..5000u32).map(|i| (i % 256) as u8).collect();
    std::fs::write(dir.join("table.bin"), &bin).unwrap();
    let o = sh_in(&m.mnt, &format!("rsync -a {}/ d.eml.parts/", dir.display()));
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(m.ok("cat d.eml.parts/Body.txt"), "second body\n");
    assert_eq!(std::fs::read(m.path("d.eml.parts/table.bin")).unwrap(), bin);
    assert!(!m.ok("ls -a d.eml.parts").contains(".table"), "no temp file left");
    // Again: nothing to change, the message keeps its bytes.
    let before = digests(&m);
    let o = sh_in(
        &m.mnt,
        &format!("rsync -a --checksum {}/ d.eml.parts/", dir.display()),
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(digests(&m), before);
}

/// Item 7: `rsync -aX x.eml MNT/` failed (the temp file could not hold xattrs), as did
/// `cp --preserve=xattr tmp && mv tmp X.eml`. Scratch files hold user xattrs now, and a
/// rename onto X.eml carries them into the message.
#[test]
fn scratch_files_hold_xattrs_and_carry_them_into_the_message() {
    let m = Mount::new(&[]);
    let src = m.tmp.path().join("x.eml");
    std::fs::write(&src, message("a@example.com", "b@example.org", "seven", "seven")).unwrap();
    sh_in(
        m.tmp.path(),
        "setfattr -n user.note -v n7 x.eml && setfattr -n user.env_to -v z@example.net x.eml",
    );
    m.ok("echo s > notes.txt && setfattr -n user.k -v v notes.txt");
    assert_eq!(m.attr("notes.txt", "k"), "v");
    m.ok("setfattr -x user.k notes.txt");
    assert!(!m.ok("getfattr -d notes.txt").contains("user.k"));
    m.ok(&format!(
        "cp --preserve=xattr {} tmp && mv tmp cp.eml",
        src.display()
    ));
    assert_eq!(m.attr("cp.eml", "note"), "n7");
    assert_eq!(m.attr("cp.eml", "env_to"), "z@example.net");
    let o = sh_in(&m.mnt, &format!("rsync -aX {} .", src.display()));
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(m.attr("x.eml", "note"), "n7");
    assert_eq!(m.attr("x.eml", "env_to"), "z@example.net");
    assert_eq!(m.attr("x.eml", "status"), "Draft");
    assert_eq!(m.attr("x.eml", "name"), "x.eml");
    // A bad value is not carried; the content still lands.
    m.ok("echo 'Subject: y' > t && setfattr -n user.env_to -v '-oops' t && mv t y.eml");
    assert!(m.ok("cat y.eml").contains("Subject: y"));
    assert!(m.sh("getfattr -n user.env_to y.eml").status.code() != Some(0));
}

/// Item 8: smaller POSIX answers.
#[test]
fn mkdir_long_names_case_renames_and_root_times() {
    let m = Mount::new(&[]);
    m.ok("touch d.eml");
    assert!(m.fails("mkdir d.eml.parts").contains("File exists"));
    assert!(m.fails("mkdir d.eml").contains("File exists"));
    assert!(m.fails("mkdir sub").contains("not permitted"));
    let long = "a".repeat(256);
    assert!(m.fails(&format!("touch {long}")).contains("too long"));
    assert!(m.fails(&format!("touch {long}.eml")).contains("too long"));
    assert!(m.fails(&format!("mkdir {long}")).contains("too long"));
    m.ok(&format!("touch {}", "b".repeat(255)));
    // One name per message, regular files only.
    assert!(m.fails("ln d.eml e.eml").contains("not permitted"));
    assert!(m.fails("ln -s d.eml e.eml").contains("not permitted"));
    // A message does not silently become a scratch file.
    assert!(m.fails("mv d.eml D.EML").contains("not permitted"));
    assert_eq!(m.attr("d.eml", "status"), "Draft");
    // The root's mtime follows scratch files.
    let t0 = m.ok("stat -c %Y.%y .");
    std::thread::sleep(Duration::from_millis(1100));
    m.ok("touch scratch.txt");
    let t1 = m.ok("stat -c %Y.%y .");
    assert_ne!(t0, t1, "creating a scratch file moves the root's mtime");
    std::thread::sleep(Duration::from_millis(1100));
    m.ok("rm scratch.txt");
    assert_ne!(m.ok("stat -c %Y.%y ."), t1, "removing one too");
}

/// The whole node through four backup tools into fresh nodes: every message byte for byte,
/// the Drafts' attributes with the tools that carry them, and nothing sent a second time.
#[test]
fn round_trip_through_tar_and_rsync_into_fresh_nodes() {
    let tmp = tempfile::tempdir().unwrap();
    let sink = Sink::start(tmp.path());
    let opts = sink_opts(&sink);
    let a = mount_with(&opts);
    fill_drafts(&a);
    a.ok("printf 'From: a@example.com\\nTo: b@example.org\\nSubject: gone\\n\\ngone\\n' > sent.eml");
    a.ok("setfattr -n user.is_ready -v 1 sent.eml");
    wait_status(&a, "sent.eml", "Sent", 20);
    assert_eq!(sink.count(), 1);
    // The senders may still record the outcome's last details: tar -c fails ("file changed
    // as we read it") if the root changes under it, so wait until it is still.
    let mut last = String::new();
    wait_for("the root to settle", Duration::from_secs(10), || {
        std::thread::sleep(Duration::from_millis(400));
        let now = a.ok("stat -c %y:%z .");
        std::mem::replace(&mut last, now.clone()) == now
    });
    let want = digests(&a);
    let listing = tree_listing(&a);
    let drafts = ["plain.eml", "multi.eml", "empty.eml", "fwd.eml"];
    let want_attrs: Vec<String> = drafts.iter().map(|d| attr_dump(&a, d)).collect();
    let bk = tmp.path().join("bk");
    let bkx = tmp.path().join("bkx");
    a.ok(&format!(
        "tar -cf {0}/n.tar . && tar --xattrs -cf {0}/x.tar . && rsync -a ./ {1}/ && rsync -aX ./ {2}/",
        tmp.path().display(),
        bk.display(),
        bkx.display()
    ));
    let t = tmp.path().display();
    let ways = [
        ("tar", format!("tar -xf {t}/n.tar"), false),
        ("tar --xattrs", format!("tar --xattrs -xf {t}/x.tar"), true),
        ("rsync -a", format!("rsync -a {}/ ./", bk.display()), false),
        (
            "rsync -aX",
            format!("rsync -aX --filter='-x user.spool_dir' {}/ ./", bkx.display()),
            true,
        ),
        ("cp -a", format!("cp -a {}/. ./", a.mnt.display()), true),
    ];
    for (what, cmd, xattrs) in ways {
        let b = mount_with(&opts);
        let o = sh_in(&b.mnt, &cmd);
        let out = text(&o);
        // The one refusal allowed: the Sent message's is_ready=1 (rsync reports it with code
        // 23, cp -a with 1); everything else, the attached message's parts included, is clean.
        let refusals = out
            .lines()
            .filter(|l| l.starts_with("rsync: [") || l.starts_with("cp: "))
            .count();
        let clean = o.status.success()
            || (matches!(
                (what, o.status.code()),
                ("rsync -aX", Some(23)) | ("cp -a", Some(1))
            ) && out.contains("Operation already in progress")
                && refusals == out.lines().filter(|l| l.contains("user.is_ready")).count());
        assert!(clean, "{what}: {out}");
        assert_eq!(digests(&b), want, "{what}");
        assert_eq!(tree_listing(&b), listing, "{what}: nothing more, nothing less");
        for (d, w) in drafts.iter().zip(&want_attrs) {
            let got = attr_dump(&b, d);
            if xattrs {
                assert_eq!(&got, w, "{what}: {d}");
            } else {
                assert!(
                    !got.contains("kept note") && !got.contains("user.tag"),
                    "{what}: {got}"
                );
            }
        }
        assert_eq!(b.attr("sent.eml", "status"), "Draft", "{what}");
        if xattrs {
            let err = b.fails("setfattr -n user.is_ready -v 1 sent.eml");
            assert!(err.contains("Operation already in progress"), "{what}: {err}");
        }
        // The attached message's parts stay read-only: other bytes are refused, its own are
        // no change.
        let nested = "fwd.eml.parts/inner.eml.parts/Body.txt";
        assert!(
            b.fails(&format!("echo other > {nested}"))
                .contains("Permission denied"),
            "{what}"
        );
        assert!(
            b.fails(&format!("rm {nested}")).contains("Permission denied"),
            "{what}"
        );
        b.ok(&format!("cat {nested} > ../same && cp ../same {nested}"));
        assert_eq!(b.ok(&format!("cat {nested}")), "inner body\n", "{what}");
        assert_eq!(digests(&b), want, "{what}");
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(sink.count(), 1, "{what}: nothing sent again");
    }
}

/// Item 8: chmod and chown of a message returned 0 and changed nothing. chmod now sets the
/// Draft's stored mode (kept across a remount), chown is root's alone (SPEC §10).
#[test]
fn chmod_and_chown_of_a_message() {
    let mut m = Mount::new(&["allow_other", "port=1"]);
    m.ok("touch d.eml && chmod 640 d.eml");
    assert_eq!(m.ok("stat -c %a d.eml"), "640\n");
    assert_eq!(m.ok("stat -c %a d.eml.parts"), "750\n");
    m.ok("chown nobody d.eml");
    assert_eq!(m.ok("stat -c %U d.eml"), "nobody\n");
    m.restart();
    assert_eq!(m.ok("stat -c %a:%U d.eml"), "640:nobody\n");
    // A user may not give a message away.
    m.ok("runuser -u nobody -- touch n.eml");
    let err = m.fails("runuser -u nobody -- chown root n.eml");
    assert!(err.contains("not permitted"), "{err}");
    assert_eq!(m.ok("stat -c %U n.eml"), "nobody\n");
    // A ready message keeps its mode.
    m.ok("printf 'From: a@example.com\\nTo: b@example.org\\n\\nx\\n' > r.eml && setfattr -n user.is_ready -v 1 r.eml");
    assert!(m.fails("chmod 660 r.eml").contains("Permission denied"));
}

/// audit-16 D1: a node holding a message that cannot be parsed was restored byte for byte, but
/// tar, rsync -a and cp -a all exited non-zero: its `raw.eml` could not be written back.
/// It now takes back the bytes it has, as an attached message's parts do.
#[test]
fn a_message_that_cannot_be_parsed_round_trips_through_tar_rsync_and_cp() {
    let a = Mount::new(&[]);
    std::fs::write(
        a.tmp.path().join("bad"),
        b"\x00\x01binary garbage no header\n\xff\xfe",
    )
    .unwrap();
    a.ok(&format!("cp {} broken.eml", a.tmp.path().join("bad").display()));
    a.ok("printf 'From: a@example.com\\nTo: b@example.org\\nSubject: ok\\n\\nfine\\n' > ok.eml");
    assert_eq!(a.ok("ls broken.eml.parts").trim(), "raw.eml");
    let tarball = a.tmp.path().join("node.tar");
    a.ok(&format!("tar -cf {} .", tarball.display()));
    let copy = a.tmp.path().join("copy");
    a.ok(&format!("cp -a . {}", copy.display()));
    for tool in [
        format!("tar -xf {}", tarball.display()),
        format!("rsync -a {}/ .", copy.display()),
        // From one mount to another, as README gives it: a plain directory lists in hash
        // order, and cp -a would make `X.eml.parts/` before `X.eml` is there.
        format!("cp -a {}/. .", a.mnt.display()),
    ] {
        let b = Mount::new(&[]);
        let o = sh_in(&b.mnt, &tool);
        assert!(o.status.success(), "{tool}: {}", text(&o));
        assert_eq!(digests(&a), digests(&b), "{tool}");
        // Over a node that has it already, too; other bytes in raw.eml are refused.
        let o = sh_in(&b.mnt, &tool);
        assert!(o.status.success(), "{tool} again: {}", text(&o));
        assert_eq!(digests(&a), digests(&b), "{tool} again");
        let o = sh_in(&b.mnt, "echo other > broken.eml.parts/raw.eml");
        assert!(!o.status.success(), "{}", text(&o));
        assert_eq!(digests(&a), digests(&b), "{tool}: a write of other bytes");
    }
}

/// audit-23 C1, C3: rsync -X writes every attribute of a file again, by path and after closing
/// it, when any of them differs. Refusing a mailfs attribute set to the value it shows (tried
/// for audit-21 A1) made an incremental `rsync -aX` after a user attribute changed, and every
/// `rsync -aX --inplace`, exit 23.
#[test]
fn incremental_and_inplace_rsync_x_between_nodes_exit_0() {
    let a = Mount::new(&[]);
    let b = Mount::new(&[]);
    std::fs::write(
        a.path("k1.eml"),
        "From: a@example.org\nTo: b@example.org\nMessage-ID: <k1@example.org>\nSubject: k\n\nbody\n",
    )
    .unwrap();
    a.ok("setfattr -n user.note -v one k1.eml");
    // audit-23 C2: one without a Message-ID field, whose made-up ID differs between nodes.
    std::fs::write(
        a.path("h1.eml"),
        "From: a@example.org\nTo: b@example.org\n\nbody\n",
    )
    .unwrap();
    let sync = |extra: &str| {
        sh_in(
            &a.mnt,
            &format!(
                "rsync -aX {extra} --filter='-x user.spool_dir' --include='k1.eml*' --include='h1.eml*' --exclude='*' ./ {}/",
                b.mnt.display()
            ),
        )
    };
    for (step, extra) in [("first", ""), ("unchanged", ""), ("inplace", "--inplace")] {
        let o = sync(extra);
        assert!(o.status.success(), "{step}: {}", text(&o));
    }
    a.ok("setfattr -n user.note -v two k1.eml");
    let o = sync("");
    assert!(o.status.success(), "after a user attribute changed: {}", text(&o));
    assert_eq!(b.attr("k1.eml", "note"), "two");
    a.ok("printf 'more\\n' >> k1.eml");
    let o = sync("--inplace");
    assert!(o.status.success(), "--inplace after an edit: {}", text(&o));
    assert_eq!(digests(&a), digests(&b));
    assert_eq!(b.attr("k1.eml", "status"), "Draft");
    assert_eq!(a.attr("h1.eml", "message_id"), b.attr("h1.eml", "message_id"));
}

/// audit-23 C5: `rsync -a` (no attributes), then `setfattr --restore=DUMP` of a dump in which
/// the message was Sent: the dump sets `user.first_try_date` (refused) before
/// `user.is_ready=1`, and the message went out again. It stays a Draft now; a later
/// `setfattr` of is_ready by the user makes it ready.
#[test]
fn a_dump_restore_after_rsync_without_attributes_sends_nothing_again() {
    let dead = common::smtp::dead_port();
    let p = format!("port={}", dead.port);
    let m = Mount::new(&[&p, "retry_time=3600"]);
    std::fs::write(
        m.path("s1.eml"),
        "From: a@example.org\nTo: b@example.org\nMessage-ID: <s1@example.org>\nSubject: s\n\nbody\n",
    )
    .unwrap();
    let dump = m.tmp.path().join("dump.txt");
    std::fs::write(
        &dump,
        "# file: s1.eml\nuser.env_from=\"a@example.org\"\nuser.env_to=\"b@example.org\"\n\
         user.expire_date=\"2026-11-27T12:00:05Z\"\nuser.first_try_date=\"2026-11-24T12:00:00Z\"\n\
         user.hold=\"0\"\nuser.is_ready=\"1\"\nuser.status=\"Sent\"\nuser.try_count=\"1\"\n",
    )
    .unwrap();
    let o = sh_in(&m.mnt, &format!("setfattr --restore={}", dump.display()));
    assert!(!o.status.success(), "EPERM lines are reported: {}", text(&o));
    assert_eq!(m.attr("s1.eml", "status"), "Draft");
    assert_eq!(m.attr("s1.eml", "is_ready"), "0");
    m.ok("setfattr -n user.is_ready -v 1 s1.eml");
    assert_eq!(m.attr("s1.eml", "is_ready"), "1");
}

/// audit-25 F6: README's way to send a copy again on purpose, removing its Message-ID field,
/// gave back the same ID (the one kept for the Draft, which went out).
#[test]
fn removing_the_message_id_field_gives_a_new_id() {
    let m = Mount::new(&[]);
    m.ok("touch t1.eml");
    let before = m.attr("t1.eml", "message_id");
    assert!(
        m.ok("cat t1.eml").contains(&before),
        "the template carries its ID"
    );
    m.ok("setfattr -x user.header.message-id t1.eml.parts");
    let after = m.attr("t1.eml", "message_id");
    assert_ne!(after, before);
    assert!(!m.ok("cat t1.eml").contains(&before));
}
