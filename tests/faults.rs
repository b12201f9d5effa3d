//! Issue 6: the fault matrix against the scripted server. Every fault ends in the right status
//! with a bounded number of tries, and one stuck session never holds up mail to other domains.

mod common;

use common::smtp::{Script, Scripted};
use common::*;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How a fault must end.
#[derive(Clone, Copy, Debug)]
enum Ends {
    /// Error at the first try (a 5xx).
    ErrorAtOnce,
    /// TempFail, retried every second, Error once queue_time (3 s) has passed.
    TempThenError,
}

struct Case {
    name: &'static str,
    script: Option<Script>,
    /// Node attributes beyond the defaults below (server, port for no-server cases).
    extra: Vec<String>,
    ends: Ends,
    reply: &'static str,
}

fn case(name: &'static str, script: Script, ends: Ends, reply: &'static str) -> Case {
    Case {
        name,
        script: Some(script),
        extra: vec![],
        ends,
        reply,
    }
}

fn run(c: Case) -> Result<(), String> {
    let srv = c.script.map(Scripted::start);
    let mut opts: Vec<String> = vec![
        "ratelimit_time=0".into(),
        "domlimit_time=0".into(),
        "retry_time=1".into(),
        "queue_time=3".into(),
        "handshake_time=2".into(),
        "notify=never".into(),
    ];
    if let Some(s) = &srv {
        opts.push(format!("port={}", s.port));
    }
    opts.extend(c.extra);
    let refs: Vec<&str> = opts.iter().map(String::as_str).collect();
    let m = Mount::new(&refs);
    std::fs::write(
        m.path("f.eml"),
        message("me@example.com", "you@example.org", c.name, "x"),
    )
    .unwrap();
    m.ok("setfattr -n user.is_ready -v 1 f.eml");
    let t = Instant::now();
    let mut first = None;
    loop {
        let st = m.attr("f.eml", "status");
        let tries: u32 = m.attr("f.eml", "try_count").parse().unwrap_or(0);
        if tries >= 1 && first.is_none() {
            first = Some(m.attr("f.eml", "last_try_status"));
        }
        if st == "Error" {
            break;
        }
        if t.elapsed() > Duration::from_secs(30) {
            return Err(format!("{}: still {st} after 30 s, {tries} tries", c.name));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let tries: u32 = m.attr("f.eml", "try_count").parse().unwrap_or(0);
    let msg = m.attr("f.eml", "last_try_msg");
    let first = first.unwrap_or_default();
    let ok = match c.ends {
        Ends::ErrorAtOnce => tries == 1 && first == "Fail",
        // First TempFail, then tries bounded by queue_time / retry_time (+ the one at the
        // deadline, + slack for slow attempts).
        Ends::TempThenError => first == "TempFail" && (2..=6).contains(&tries),
    };
    if !ok || !msg.contains(c.reply) {
        return Err(format!(
            "{}: expected {:?}, got first={first} tries={tries} last_try_msg={msg:?}",
            c.name, c.ends
        ));
    }
    if let Some(s) = &srv
        && !s.delivered().is_empty()
    {
        return Err(format!("{}: delivered {:?}", c.name, s.delivered()));
    }
    Ok(())
}

#[test]
fn every_fault_ends_in_the_right_status_with_bounded_tries() {
    use Ends::*;
    let s = Script::default;
    // Refuses connections until the end of the test: no case's server can be given it.
    let refused = common::smtp::dead_port();
    let cases = vec![
        case(
            "greeting 421",
            Script {
                greeting: Some("421 4.3.2 try later".into()),
                ..s()
            },
            TempThenError,
            "421",
        ),
        case(
            "451 at MAIL",
            Script {
                mail: "451 4.3.0 busy".into(),
                ..s()
            },
            TempThenError,
            "451",
        ),
        case(
            "550 at MAIL",
            Script {
                mail: "550 5.7.1 no".into(),
                ..s()
            },
            ErrorAtOnce,
            "550",
        ),
        case(
            "451 at RCPT",
            Script {
                rcpt: Arc::new(|_| "451 4.2.0 greylisted".into()),
                ..s()
            },
            TempThenError,
            "451",
        ),
        case(
            "550 at RCPT",
            Script {
                rcpt: Arc::new(|_| "550 5.1.1 no such user".into()),
                ..s()
            },
            ErrorAtOnce,
            "550",
        ),
        case(
            "451 after DATA",
            Script {
                data_end: "451 4.3.0 disk full".into(),
                ..s()
            },
            TempThenError,
            "451",
        ),
        case(
            "554 after DATA",
            Script {
                data_end: "554 5.6.0 content rejected".into(),
                ..s()
            },
            ErrorAtOnce,
            "554",
        ),
        case(
            "reset mid-DATA",
            Script {
                reset_in_data: true,
                ..s()
            },
            TempThenError,
            "",
        ),
        case(
            "no greeting",
            Script {
                greeting: None,
                ..s()
            },
            TempThenError,
            "timed out",
        ),
        case(
            "one byte a second",
            Script {
                drip: Some(Duration::from_secs(1)),
                ..s()
            },
            TempThenError,
            "timed out",
        ),
        Case {
            name: "unresolvable server name",
            script: None,
            extra: vec!["server=no-such-host.invalid".into()],
            ends: TempThenError,
            reply: "",
        },
        Case {
            name: "connection refused",
            script: None,
            extra: vec![format!("port={}", refused.port)],
            ends: TempThenError,
            reply: "",
        },
    ];
    let n = cases.len();
    // Each case has its own mount and server; they run side by side.
    let handles: Vec<_> = cases
        .into_iter()
        .map(|c| std::thread::spawn(move || run(c)))
        .collect();
    let failures: Vec<String> = handles
        .into_iter()
        .filter_map(|h| match h.join() {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e),
            Err(_) => Some("a case panicked".into()),
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {n} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn a_stuck_session_for_one_domain_does_not_hold_up_the_others() {
    // RCPT for stuck.example hangs for a minute; everything else is answered at once.
    let srv = Scripted::start(Script {
        rcpt: Arc::new(|a| {
            if a.ends_with("@stuck.example") {
                std::thread::sleep(Duration::from_secs(60));
            }
            "250 2.1.5 Ok".into()
        }),
        ..Script::default()
    });
    let port = format!("port={}", srv.port);
    let m = Mount::new(&[
        &port,
        "ratelimit_time=0",
        "domlimit_time=0",
        "conn_limit=2",
        "domconn_limit=1",
        "handshake_time=120",
    ]);
    std::fs::write(
        m.path("s.eml"),
        message("me@example.com", "x@stuck.example", "stuck", "x"),
    )
    .unwrap();
    m.ok("setfattr -n user.is_ready -v 1 s.eml");
    wait_for("the stuck session to start", Duration::from_secs(10), || {
        srv.connections.load(std::sync::atomic::Ordering::SeqCst) >= 1
    });
    for i in 0..10 {
        std::fs::write(
            m.path(&format!("o{i}.eml")),
            message(
                "me@example.com",
                &format!("u{i}@d{}.example", i % 3),
                "other",
                "x",
            ),
        )
        .unwrap();
    }
    m.ok("for f in o*.eml; do setfattr -n user.is_ready -v 1 $f; done");
    for i in 0..10 {
        wait_status(&m, &format!("o{i}.eml"), "Sent", 20);
    }
    assert_eq!(m.attr("s.eml", "status"), "Pending");
}
