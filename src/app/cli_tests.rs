//! `-o` against the node attribute table (model/attrs/table.rs): every row.

use super::cli::parse_mount_opts;
use crate::model::attrs::table_tests::{refused, settable};

/// `-o NAME=VALUE` takes every settable row (commas in lists escaped as `\,`) and refuses
/// what `setfattr` refuses, as a usage error before anything is mounted.
#[test]
fn mount_options_take_every_row_and_refuse_its_bad_values() {
    let mut one = Vec::new();
    for r in settable() {
        let opt = format!("{}={}", r.name, r.example.replace(',', "\\,"));
        let o = parse_mount_opts(std::slice::from_ref(&opt)).unwrap();
        assert_eq!(o.node, vec![(r.name.to_string(), r.example.to_string())], "{opt}");
        one.push(opt);
        for bad in refused(r.kind).iter().filter(|b| !b.contains(',')) {
            let e = parse_mount_opts(&[format!("{}={bad}", r.name)]).unwrap_err();
            assert_eq!(e.exit_code(), 64, "{}={bad:?}", r.name);
        }
    }
    let o = parse_mount_opts(&[one.join(",")]).unwrap();
    assert_eq!(o.node.len(), settable().count());
    let e = parse_mount_opts(&["spool_dir=/x".to_string()]).unwrap_err();
    assert_eq!(e.exit_code(), 64);
    assert!(e.to_string().contains("read-only"), "{e}");
}

/// `mailfs --help` names every attribute with its default; `mount --help` and `serve --help`
/// say what each is; all from the table.
#[test]
fn help_shows_every_row_from_the_table() {
    use crate::model::attrs::table::{TABLE, Who};
    use clap::CommandFactory;
    let mut cmd = super::cli::Cli::command();
    let top = cmd.render_long_help().to_string();
    for sub in ["mount", "serve"] {
        let help = cmd
            .find_subcommand_mut(sub)
            .unwrap()
            .render_long_help()
            .to_string();
        for r in TABLE {
            assert!(help.contains(r.help), "{sub} --help lacks {}", r.name);
            assert!(help.contains(&format!("default: {}", r.shown_default())) || r.who == Who::Nobody);
        }
        assert!(help.contains("relay_clients)"), "{sub}: the list values");
    }
    for r in TABLE.iter().filter(|r| r.who == Who::Owner) {
        let item = if r.default.is_empty() {
            format!("{} ({})", r.name, r.shown_default())
        } else {
            format!("{}={}", r.name, r.default)
        };
        assert!(top.contains(&item), "mailfs --help lacks {item}");
    }
}

/// sendmail's own parse (the fast path of a one-message process) reads every argument list
/// as the whole command line does, and gives way to it for help and errors.
#[test]
fn sendmail_alone_parses_as_the_whole_command_line() {
    use super::cli::{Cmd, parse, parse_sendmail};
    let argv = |a: &[&str]| -> Vec<std::ffi::OsString> { a.iter().map(Into::into).collect() };
    let lines: &[&[&str]] = &[
        &["mailfs", "sendmail", "a@example.org"],
        &[
            "mailfs",
            "sendmail",
            "-i",
            "-f",
            "me@example.org",
            "a@example.org,b@example.org",
        ],
        &[
            "sendmail",
            "sendmail",
            "-t",
            "-oi",
            "-oem",
            "-F",
            "Me",
            "-r",
            "x@y.example",
            "--",
            "c@d.example",
        ],
        &[
            "mailfs",
            "sendmail",
            "--spool",
            "/tmp/s",
            "-bm",
            "-N",
            "never",
            "-v",
            "-B8BITMIME",
            "e@f.example",
        ],
        &["mailfs", "sendmail", "-t"],
    ];
    for line in lines {
        let fast = parse_sendmail(&argv(line)).unwrap_or_else(|| panic!("{line:?}"));
        let Ok(Cmd::Sendmail(full)) = parse(argv(line)).map(|c| c.command) else {
            panic!("{line:?}")
        };
        assert_eq!(format!("{fast:?}"), format!("{full:?}"), "{line:?}");
    }
    for line in [
        &["mailfs", "sendmail", "--help"][..],
        &["mailfs", "sendmail", "-h"],
        &["mailfs", "sendmail", "--bogus", "a@example.org"],
        &["mailfs", "queue", "/tmp/s"],
        &["mailfs"],
    ] {
        assert!(parse_sendmail(&argv(line)).is_none(), "{line:?}");
    }
}

/// SPEC §1: a usage error is one clear line on stderr. clap's own message ran over five to
/// seven lines (the error, its list, the usage, a hint), and over thirty for no command.
#[test]
fn usage_errors_are_one_line() {
    use super::cli::{Cli, usage_line};
    use clap::CommandFactory;
    let argv = |l: &str| -> Vec<std::ffi::OsString> { l.split(' ').map(Into::into).collect() };
    for line in [
        "mailfs mount",
        "mailfs mount a b c",
        "mailfs queue --bogus x",
        "mailfs sendmail -Z",
        "mailfs frob",
        "mailfs hold",
    ] {
        let e = Cli::command().try_get_matches_from(argv(line)).expect_err(line);
        let one = usage_line(&e.render().to_string());
        assert!(!one.contains('\n') && !one.is_empty(), "{line}: {one:?}");
        assert!(one.contains("; usage: mailfs "), "{line}: {one}");
    }
    let e = Cli::command()
        .try_get_matches_from(argv("mailfs mount"))
        .expect_err("mount");
    assert_eq!(
        usage_line(&e.render().to_string()),
        "the following required arguments were not provided: <SPOOL_DIR> <MOUNTPOINT>; usage: mailfs mount <SPOOL_DIR> <MOUNTPOINT>"
    );
}
