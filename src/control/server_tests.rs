//! The control server's answers without a kernel mount: requests from made-up callers on a
//! temporary spool, and one real socket round trip.

use std::io::BufReader;
use std::sync::Arc;

use super::server::{ControlServer, answer, handle, login_of};
use super::{Reply, Request, SUBMIT_SIZE_LIMIT, client};
use crate::error::Error;
use crate::model::attrs::Owner;
use crate::store::node::Node;

const ROOT: Owner = Owner { uid: 0, gid: 0 };
const NOBODY: Owner = Owner {
    uid: 65534,
    gid: 65534,
};
const ALICE: Owner = Owner { uid: 1000, gid: 1000 };

fn node() -> (tempfile::TempDir, Arc<Node>) {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::open(&dir.path().join("spool"), &[]).unwrap();
    (dir, node)
}

fn sendmail(rcpt: &str, stop_at_dot: bool) -> Request {
    Request::Sendmail {
        env_from: None,
        recipients: vec![rcpt.to_string()],
        read_headers: false,
        full_name: None,
        stop_at_dot,
    }
}

fn submit(node: &Node, who: Owner, rcpt: &str) -> String {
    let body = b"Subject: t\n\nbody\n".to_vec();
    match answer(node, who, sendmail(rcpt, false), &mut &body[..]) {
        Reply::Queued { name } => name,
        other => panic!("{other:?}"),
    }
}

fn err(r: Reply) -> Error {
    match r {
        Reply::Error { error } => error.into_error(),
        other => panic!("expected an error, got {other:?}"),
    }
}

fn names(node: &Node, who: Owner) -> Vec<String> {
    match answer(node, who, Request::Queue, &mut &b""[..]) {
        Reply::Rows { rows } => rows.into_iter().map(|r| r.name).collect(),
        other => panic!("{other:?}"),
    }
}

fn outcome(r: Reply) -> Vec<Option<i32>> {
    match r {
        Reply::Outcomes { outcomes } => outcomes
            .into_iter()
            .map(|(_, e)| e.map(|e| e.into_error().exit_code()))
            .collect(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_submission_is_owned_by_the_caller_and_ready() {
    let (_d, node) = node();
    let name = submit(&node, NOBODY, "a@example.org");
    let (a, _) = node.spool.read_attrs(&name).unwrap().unwrap();
    assert_eq!(a.owner, Some(NOBODY));
    assert!(a.is_ready);
    assert_eq!(a.status.as_str(), "Pending");
    assert_eq!(
        a.env_from.as_deref(),
        Some(format!("{}@{}", login_of(65534), crate::model::attrs::hostname()).as_str())
    );
    let eml = std::fs::read_to_string(node.spool.eml_path(&name)).unwrap();
    assert!(eml.contains("Message-ID:") && eml.ends_with("body\n"), "{eml}");
}

#[test]
fn bad_recipients_and_big_messages_are_refused_and_leave_nothing() {
    let (_d, node) = node();
    for bad in [
        "-oQ/tmp/x@example.org",
        "a@example.org\r\nRCPT TO:<b@x>",
        "a\0@x.org",
    ] {
        let e = err(answer(&node, NOBODY, sendmail(bad, false), &mut &b"x\n"[..]));
        assert_eq!(e.exit_code(), 65, "{bad:?}: {e}");
    }
    let big = vec![b'x'; SUBMIT_SIZE_LIMIT as usize + 1];
    let e = err(answer(
        &node,
        NOBODY,
        sendmail("a@example.org", false),
        &mut &big[..],
    ));
    assert!(matches!(e, Error::TooBig(_)), "{e}");
    assert!(node.spool.list_messages().unwrap().is_empty());
    let tmp = std::fs::read_dir(node.spool.root().join(".tmp")).unwrap().count();
    assert_eq!(tmp, 0, "a refused message left a temp file");
}

#[test]
fn a_lone_dot_ends_the_message_without_dash_i() {
    let (_d, node) = node();
    let body = b"Subject: t\n\nkept\n.\nnot kept\n".to_vec();
    let Reply::Queued { name } = answer(&node, NOBODY, sendmail("a@example.org", true), &mut &body[..])
    else {
        panic!()
    };
    let eml = std::fs::read_to_string(node.spool.eml_path(&name)).unwrap();
    assert!(eml.ends_with("kept\n") && !eml.contains("not kept"), "{eml}");
}

#[test]
fn each_user_sees_and_acts_on_their_own_messages_only() {
    let (_d, node) = node();
    let mine = submit(&node, NOBODY, "a@example.org");
    let alices = submit(&node, ALICE, "b@example.org");
    let roots = submit(&node, ROOT, "c@example.org");
    assert_eq!(names(&node, NOBODY), vec![mine.clone()]);
    assert_eq!(names(&node, ALICE), vec![alices.clone()]);
    let mut all = vec![mine.clone(), alices.clone(), roots.clone()];
    all.sort();
    assert_eq!(names(&node, ROOT), all);

    // Another user's message: refused (77), untouched.
    let before = node.spool.read_attrs(&roots).unwrap().unwrap().0;
    for req in [
        Request::Cancel {
            names: vec![roots.clone()],
        },
        Request::Hold {
            names: vec![roots.clone()],
            domain: None,
            hold: true,
        },
        Request::Hold {
            names: vec![alices.clone()],
            domain: None,
            hold: false,
        },
    ] {
        assert_eq!(outcome(answer(&node, NOBODY, req, &mut &b""[..])), vec![Some(77)]);
    }
    assert_eq!(node.spool.read_attrs(&roots).unwrap().unwrap().0, before);
    assert!(node.spool.eml_path(&roots).exists());
    // Names are checked before they touch a path.
    let r = answer(
        &node,
        NOBODY,
        Request::Cancel {
            names: vec!["../spool/x.eml".into(), "mailfs.node".into()],
        },
        &mut &b""[..],
    );
    assert_eq!(outcome(r), vec![Some(65), Some(65)]);

    // --domain reaches only the caller's messages.
    let r = answer(
        &node,
        NOBODY,
        Request::Hold {
            names: vec![],
            domain: Some("EXAMPLE.org".into()),
            hold: true,
        },
        &mut &b""[..],
    );
    assert_eq!(outcome(r), vec![None]);
    let held = |n: &str| node.spool.read_attrs(n).unwrap().unwrap().0.hold;
    assert!(held(&mine) && !held(&alices) && !held(&roots));

    // Their own: cancel works.
    let r = answer(
        &node,
        NOBODY,
        Request::Cancel {
            names: vec![mine.clone()],
        },
        &mut &b""[..],
    );
    assert_eq!(outcome(r), vec![None]);
    assert!(!node.spool.eml_path(&mine).exists());
}

#[test]
fn a_message_without_an_owner_is_the_node_owners() {
    let (_d, node) = node();
    let name = submit(&node, ROOT, "c@example.org");
    let (mut a, _) = node.spool.read_attrs(&name).unwrap().unwrap();
    a.owner = None;
    node.spool.write_attrs(&name, &a).unwrap();
    assert!(names(&node, NOBODY).is_empty());
    assert_eq!(names(&node, ROOT), vec![name]);
}

#[test]
fn release_makes_a_held_message_due_at_once() {
    let (_d, node) = node();
    let name = submit(&node, NOBODY, "a@example.org");
    let (mut a, _) = node.spool.read_attrs(&name).unwrap().unwrap();
    a.next_try_date = Some(crate::model::attrs::now_secs() + 3600);
    node.spool.write_attrs(&name, &a).unwrap();
    node.spool.take_ready_markers();
    let hold = |h: bool| Request::Hold {
        names: vec![name.clone()],
        domain: None,
        hold: h,
    };
    assert_eq!(
        outcome(answer(&node, NOBODY, hold(true), &mut &b""[..])),
        vec![None]
    );
    assert!(node.spool.take_ready_markers().is_empty());
    assert_eq!(
        outcome(answer(&node, NOBODY, hold(false), &mut &b""[..])),
        vec![None]
    );
    let (a, _) = node.spool.read_attrs(&name).unwrap().unwrap();
    assert!(!a.hold && a.next_try_date.is_none());
    // The senders of whichever process serves the spool are told.
    assert_eq!(node.spool.take_ready_markers(), vec![name]);
}

#[test]
fn deliver_stores_a_received_message_for_the_caller() {
    let (_d, node) = node();
    let req = Request::Deliver {
        recipient: Some("me@example.org".into()),
        sender: Some("-bad".into()),
    };
    let Reply::Queued { name } = answer(&node, NOBODY, req, &mut &b"Subject: in\n\nx\n"[..]) else {
        panic!()
    };
    let (a, _) = node.spool.read_attrs(&name).unwrap().unwrap();
    assert_eq!(a.status.as_str(), "Received");
    assert_eq!(a.owner, Some(NOBODY));
    assert_eq!(a.env_to, Some(vec!["me@example.org".to_string()]));
    assert_eq!(a.env_from, None, "an invalid SENDER is not kept");
}

#[test]
fn a_real_socket_round_trip_uses_the_kernels_identity() {
    let (dir, node) = node();
    let server = ControlServer::start(node.clone(), false).unwrap().unwrap();
    let sock = server.path().to_path_buf();
    assert_eq!(sock, dir.path().canonicalize().unwrap().join("spool.sock"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // A second server on the same spool leaves the socket to the first.
    assert!(ControlServer::start(node.clone(), false).unwrap().is_none());
    let mut body = BufReader::new(&b"Subject: s\n\nvia the socket\n"[..]);
    let reply = client::call(
        &sock,
        dir.path(),
        &sendmail("z@example.net", false),
        Some(&mut body),
    )
    .unwrap();
    let Reply::Queued { name } = reply else { panic!() };
    let (a, _) = node.spool.read_attrs(&name).unwrap().unwrap();
    // SAFETY: geteuid cannot fail.
    assert_eq!(a.owner.map(|o| o.uid), Some(unsafe { libc::geteuid() }));
    drop(server);
    assert!(!sock.exists(), "the socket is removed when the server stops");
    let e = client::call(&sock, dir.path(), &Request::Queue, None).unwrap_err();
    assert_eq!(e.exit_code(), 75, "{e}");
}

#[test]
fn a_socket_planted_by_another_user_is_neither_trusted_nor_kept() {
    let (dir, node) = node();
    let sock = dir.path().canonicalize().unwrap().join("spool.sock");
    // Someone else's live listener where the node's socket goes.
    let planted = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    std::os::unix::fs::chown(&sock, Some(65534), Some(65534)).unwrap();
    let e = client::call(&sock, &dir.path().join("spool"), &Request::Queue, None).unwrap_err();
    assert_eq!(e.exit_code(), 75);
    assert!(e.to_string().contains("not using it"), "{e}");
    // The server replaces it instead of deferring to it.
    let server = ControlServer::start(node.clone(), true).unwrap().unwrap();
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::symlink_metadata(&sock).unwrap();
    // SAFETY: geteuid cannot fail.
    assert_eq!(meta.uid(), unsafe { libc::geteuid() });
    assert_eq!(meta.permissions().mode() & 0o777, 0o666);
    let r = client::call(&sock, &dir.path().join("spool"), &Request::Queue, None).unwrap();
    assert!(matches!(r, Reply::Rows { .. }));
    drop(server);
    drop(planted);
}

#[test]
fn a_message_over_the_limit_is_refused_over_the_socket_with_its_reason() {
    let (dir, node) = node();
    let server = ControlServer::start(node.clone(), false).unwrap().unwrap();
    let big = vec![b'x'; SUBMIT_SIZE_LIMIT as usize + 4 * 1024 * 1024];
    let mut body = &big[..];
    let e = client::call(
        server.path(),
        dir.path(),
        &sendmail("a@example.org", false),
        Some(&mut body),
    )
    .unwrap_err();
    assert!(matches!(e, Error::TooBig(_)), "{e}");
    assert_eq!(e.exit_code(), 65);
    assert!(node.spool.list_messages().unwrap().is_empty());
}

#[test]
fn the_nodes_message_size_limit_applies_to_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let opts = [("message_size_limit".to_string(), "1000".to_string())];
    let node = Node::open(&dir.path().join("spool"), &opts).unwrap();
    let body = vec![b'x'; 1001];
    let e = err(answer(
        &node,
        NOBODY,
        sendmail("a@example.org", false),
        &mut &body[..],
    ));
    assert!(e.to_string().contains("1000"), "{e}");
    let ok = vec![b'x'; 900];
    assert!(matches!(
        answer(&node, NOBODY, sendmail("a@example.org", false), &mut &ok[..]),
        Reply::Queued { .. }
    ));
}

/// audit-10 J12: with two processes serving one spool, stopping the one that answers on the
/// socket leaves the other to take it over, instead of serving with no socket.
#[test]
fn when_the_socket_owner_stops_another_server_of_the_spool_takes_it_over() {
    use crate::control::standby::Control;
    let (dir, node) = node();
    let first = Control::start(node.clone(), false).unwrap();
    let second = Control::start(node.clone(), false).unwrap();
    assert!(first.answering() && !second.answering());
    let sock = dir.path().canonicalize().unwrap().join("spool.sock");
    drop(first);
    let t = std::time::Instant::now();
    while !second.answering() && t.elapsed() < std::time::Duration::from_secs(10) {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(second.answering(), "not taken over");
    assert!(std::os::unix::net::UnixStream::connect(&sock).is_ok());
    drop(second);
    assert!(!sock.exists(), "the last one removes it");
}

/// audit-14: a socket owner that is alive but does not answer (stopped, or stuck dying) is
/// replaced, where a bare connection (the kernel's backlog accepts it) kept it in place and
/// every submission hung.
#[test]
fn a_socket_whose_owner_does_not_answer_is_taken_over() {
    use crate::control::standby::Control;
    let (dir, node) = node();
    let sock = dir.path().canonicalize().unwrap().join("spool.sock");
    // Listening, never accepting: what a stopped server looks like from outside.
    let mute = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let t = std::time::Instant::now();
    let control = Control::start(node.clone(), false).unwrap();
    assert!(control.answering(), "not taken over");
    assert!(t.elapsed() < std::time::Duration::from_secs(5));
    let reply = client::call(&sock, dir.path(), &Request::Queue, None);
    assert!(reply.is_ok(), "{reply:?}");
    drop(mute);
}

/// audit-14: a submission whose client gave up before the server read it (the server was
/// stopped) is not stored when the server comes back; one whose client still waits is.
#[test]
fn a_request_whose_client_left_is_not_carried_out() {
    use std::io::Write;
    use std::os::unix::net::UnixStream;
    let (_dir, node) = node();
    let hello = super::Hello {
        v: super::PROTOCOL,
        req: sendmail("a@example.org", false),
    };
    let mut line = serde_json::to_vec(&hello).unwrap();
    line.extend_from_slice(b"\nSubject: t\n\nbody\n");
    // Gone: request sent, then the client closed.
    let (mut client, server) = UnixStream::pair().unwrap();
    client.write_all(&line).unwrap();
    drop(client);
    handle(&node, ROOT, server);
    assert!(
        node.spool.list_messages().unwrap().is_empty(),
        "stored for a client that left"
    );
    // Waiting: request sent and its writing half shut, as the client does.
    let (mut client, server) = UnixStream::pair().unwrap();
    client.write_all(&line).unwrap();
    client.shutdown(std::net::Shutdown::Write).unwrap();
    handle(&node, ROOT, server);
    assert_eq!(node.spool.list_messages().unwrap().len(), 1);
    let reply: Reply = super::read_line(&mut BufReader::new(&client)).unwrap();
    assert!(matches!(reply, Reply::Queued { .. }), "{reply:?}");
}
