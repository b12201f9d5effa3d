//! The command line: clap definitions, option parsing without I/O, and each command's run
//! function. `main.rs` only maps the result to an exit code.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::app::sendmail::SendmailArgs;
use crate::error::{Error, Result};
use crate::fs::MailFs;
use crate::fs::fuse::FuseAdapter;
use crate::model::attrs::table::{self, Who};
use crate::store::node::Node;
use crate::store::spool::Spool;

#[derive(Parser, Debug)]
#[command(
    name = "mailfs",
    version,
    about = "An outgoing mail node driven with shell tools: a FUSE spool of .eml files whose \
             attributes are xattrs; setfattr -n user.is_ready -v 1 X.eml sends X.",
    after_help = main_help()
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Mount the node kept in SPOOL_DIR (created if missing) at MOUNTPOINT.
    #[command(after_help = mount_help())]
    Mount {
        spool_dir: PathBuf,
        mountpoint: PathBuf,
        /// NAME=VALUE[,NAME=VALUE...]: node attributes (stored in the spool) and FUSE options
        /// (allow_other, allow_root, default_permissions, ro, rw, fsname=, subtype=).
        #[arg(short = 'o', value_name = "OPTIONS", action = clap::ArgAction::Append)]
        options: Vec<String>,
        /// Stay in the foreground and log to stderr (RUST_LOG sets the level).
        #[arg(short = 'f')]
        foreground: bool,
    },
    /// Run the sender pool on SPOOL_DIR without a mount, until SIGTERM/SIGINT.
    #[command(after_help = node_attrs_help())]
    Serve {
        spool_dir: PathBuf,
        /// NAME=VALUE[,...]: node attributes, stored in the spool.
        #[arg(short = 'o', value_name = "OPTIONS", action = clap::ArgAction::Append)]
        options: Vec<String>,
    },
    /// Show the queue like mailq: name, status, size, tries, next try, last reply, recipients.
    Queue {
        spool_dir: PathBuf,
        /// One JSON array of messages, for scripts.
        #[arg(long)]
        json: bool,
        /// A summary like Postfix's qshape: Pending messages per recipient domain, by age in
        /// minutes (a message counts in the first column its age is under).
        #[arg(long)]
        by_domain: bool,
    },
    /// Retry every deferred (Pending) message now.
    Flush { spool_dir: PathBuf },
    /// Remove queued messages (EX_TEMPFAIL while one is being sent), or ones that are done
    /// (Sent, Error, Received); a Draft is refused (65): remove it with rm on the mount.
    Cancel {
        spool_dir: PathBuf,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Keep queued messages from being attempted (like postsuper -h) until released.
    #[command(after_help = HOLD_HELP)]
    Hold(HoldArgs),
    /// Let held messages go: they are due at once (like postsuper -H).
    #[command(after_help = HOLD_HELP)]
    Release(HoldArgs),
    /// sendmail-compatible submission: the message on stdin is queued ready to send.
    #[command(after_help = SENDMAIL_HELP)]
    Sendmail(SendmailArgs),
    /// An MTA's delivery program: stores the message on stdin with status Received (never sent).
    Deliver { spool_dir: PathBuf },
    /// Print the DNS TXT record to publish for the node's DKIM key (dkim_domain,
    /// dkim_selector, dkim_key_file).
    DkimRecord { spool_dir: PathBuf },
}

/// Which messages `hold` and `release` act on.
#[derive(clap::Args, Debug)]
pub struct HoldArgs {
    pub spool_dir: PathBuf,
    /// Message names.
    pub names: Vec<String>,
    /// Also every Pending message with a recipient still to deliver in DOMAIN.
    #[arg(long, value_name = "DOMAIN")]
    pub domain: Option<String>,
}

const HOLD_HELP: &str = "Root and the spool's owner act on every message; any other user on \
their own only (through the process serving the node). Exit codes: 0 done, 65 not a Draft or \
Pending message, 66 no such message, 75 being sent right now or the node is not served, \
77 another user's message.";

const SENDMAIL_HELP: &str = "The spool is --spool, else $MAILFS_SPOOL, else /var/spool/mailfs. Linked or copied as `sendmail`, the binary acts as this command (ln -s $(command -v mailfs) /usr/sbin/sendmail). Accepted and ignored for compatibility: -o OPTION (-oi, -oem, -odi), -B TYPE, -b MODE (-bm), -N DSN, -R RET, -V ENVID, -v. Exit codes: 0 queued, 64 usage (no recipient), 65 bad address, 75 temporary failure (spool unavailable), 77 a node another user serves privately.";

const EXIT_CODES: &str = "Exit codes follow sysexits: 64 usage, 65 bad data, 66 missing input, \
73 can't create, 75 temporary failure, 77 permission denied (another user's message), \
78 configuration error (also a spool or log_dir others can write).";

/// `mailfs --help`'s epilogue: the exit codes and every node attribute with its default.
fn main_help() -> String {
    format!(
        "{EXIT_CODES}\n\nNode attributes and their defaults (-o NAME=VALUE, or setfattr on the \
         mount root; `mailfs mount --help` says what each is):\n{}",
        table::defaults_summary(100)
    )
}

/// The node attributes from the table: what each is, its kind and default; then lists in -o.
fn node_attrs_help() -> String {
    format!(
        "Node attributes: -o NAME=VALUE stores them in the spool, winning over stored values; on \
         a mount, setfattr -n user.NAME -v VALUE MOUNTPOINT sets one (root and the node's owner \
         only), setfattr -x puts the default back, getfattr -d MOUNTPOINT shows them all.\n{}\n\
         List values ({}) separate entries with commas or white space; inside -o write `\\,` \
         between entries, as libfuse reads them: -o server=relay1\\,relay2:587,conn_limit=4.",
        table::help_text(),
        table::list_names()
    )
}

fn mount_help() -> String {
    format!(
        "{}\n\nWithout -f the command returns once the mount is live and the server runs \
         detached, logging to SPOOL_DIR/.mailfs.log. Unmount with `fusermount3 -u MOUNTPOINT` \
         or `umount MOUNTPOINT`; SIGTERM or SIGINT unmount too. Exit 0 after a clean unmount.",
        node_attrs_help()
    )
}

/// Mount options resolved from `-o`, no I/O done.
#[derive(Debug, Default, PartialEq)]
pub struct MountOpts {
    pub node: Vec<(String, String)>,
    pub allow_other: bool,
    pub allow_root: bool,
    pub default_permissions: bool,
    pub read_only: bool,
    pub fsname: Option<String>,
}

/// Options fstab and mount(8) pass along that mean nothing to a FUSE server.
const IGNORED_OPTS: &[&str] = &[
    "defaults",
    "auto",
    "noauto",
    "user",
    "nouser",
    "users",
    "nofail",
    "_netdev",
    "dev",
    "nodev",
    "suid",
    "nosuid",
    "exec",
    "noexec",
    "atime",
    "noatime",
    "relatime",
    "nodiratime",
    "async",
    "sync",
];

/// Splits one `-o` argument at commas; `\,` is a comma inside a value (a list, SPEC §3) and
/// `\\` a backslash, as libfuse's option parser reads them.
fn split_opts(s: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let (Some(n), Some(last)) = (chars.next(), out.last_mut()) {
                    last.push(n);
                }
            }
            ',' => out.push(String::new()),
            c => {
                if let Some(last) = out.last_mut() {
                    last.push(c);
                }
            }
        }
    }
    out
}

pub fn parse_mount_opts(list: &[String]) -> Result<MountOpts> {
    let mut o = MountOpts::default();
    let items: Vec<String> = list.iter().flat_map(|s| split_opts(s)).collect();
    for item in items.iter().map(String::as_str) {
        if item.is_empty()
            || IGNORED_OPTS.contains(&item)
            || item.starts_with("x-")
            || item.starts_with("comment=")
        {
            continue;
        }
        let (k, v) = match item.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (item, None),
        };
        match (k, v) {
            ("allow_other", None) => o.allow_other = true,
            ("allow_root", None) => o.allow_root = true,
            ("default_permissions", None) => o.default_permissions = true,
            ("ro", None) => o.read_only = true,
            ("rw", None) => o.read_only = false,
            ("fsname", Some(v)) => o.fsname = Some(v.to_string()),
            ("subtype", Some(_)) => {}
            (k, v) => match (table::lookup(k), v) {
                (Some(r), _) if r.who == Who::Nobody => {
                    return Err(Error::Usage(format!("{k} is read-only")));
                }
                (Some(_), Some(v)) => {
                    // Validate now so a typo is a usage error before anything is mounted.
                    crate::model::attrs::NodeAttrs::default()
                        .set(k, v.as_bytes())
                        .map_err(|e| Error::Usage(format!("-o {k}={v}: {e}")))?;
                    o.node.push((k.to_string(), v.to_string()));
                }
                _ => return Err(Error::Usage(format!("unknown mount option {item:?}"))),
            },
        }
    }
    Ok(o)
}

/// `mailfs sendmail ARGS` (main.rs puts the subcommand in for the binary linked as
/// `sendmail`) parsed by clap from sendmail's own options only: building the whole command
/// line first (every subcommand, and the help texts drawn from the attribute table) is a
/// measurable share of a one-message process. `None` for any other command and for whatever
/// this parse does not accept (`--help`, a bad option): [`parse`] then answers exactly as it
/// always did.
pub fn parse_sendmail(args: &[OsString]) -> Option<SendmailArgs> {
    use clap::{Args, FromArgMatches};
    if args.get(1).map(OsString::as_os_str) != Some("sendmail".as_ref()) {
        return None;
    }
    let cmd = SendmailArgs::augment_args(clap::Command::new("sendmail"));
    let m = cmd.try_get_matches_from(&args[1..]).ok()?;
    SendmailArgs::from_arg_matches(&m).ok()
}

/// Parses argv; help and version print and exit 0, anything else wrong is a usage error (64).
pub fn parse(args: Vec<OsString>) -> std::result::Result<Cli, i32> {
    use clap::{CommandFactory, FromArgMatches};
    // Linked as `sendmail`, main.rs put the subcommand in: name the program as it was
    // called, not `sendmail sendmail`.
    let linked = args.first().and_then(|a| Path::new(a).file_name()) == Some("sendmail".as_ref());
    let mut cmd = Cli::command();
    if linked {
        cmd = cmd.bin_name("mailfs").mut_subcommand("sendmail", |s| {
            s.override_usage("sendmail [OPTIONS] [--] [RCPT]...")
        });
    }
    match cmd
        .try_get_matches_from(args)
        .and_then(|m| Cli::from_arg_matches(&m))
    {
        Ok(c) => Ok(c),
        Err(e) => match e.kind() {
            clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                let _ = e.print();
                Err(0)
            }
            clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                eprintln!(
                    "mailfs: a command is required; usage: mailfs <COMMAND> (mailfs --help lists them)"
                );
                Err(64)
            }
            _ => {
                eprintln!("mailfs: {}", usage_line(&e.render().to_string()));
                Err(64)
            }
        },
    }
}

/// A usage error as one line (SPEC §1: one clear line on stderr): clap's message with its
/// lists run together, then the usage it shows.
pub(super) fn usage_line(rendered: &str) -> String {
    let usage = rendered
        .lines()
        .find_map(|l| l.trim().strip_prefix("Usage: "))
        .map(str::trim);
    let what: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .take_while(|l| !l.is_empty() && !l.starts_with("Usage: "))
        .collect();
    let what = what.join(" ");
    let what = what
        .strip_prefix("error: ")
        .unwrap_or(&what)
        .trim_end_matches(':');
    match usage {
        Some(u) => format!("{what}; usage: {u}"),
        None => what.to_string(),
    }
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Cmd::Mount {
            spool_dir,
            mountpoint,
            options,
            foreground,
        } => mount(&spool_dir, &mountpoint, &options, foreground),
        Cmd::Serve { spool_dir, options } => serve(&spool_dir, &options),
        Cmd::Queue {
            spool_dir,
            json,
            by_domain,
        } => crate::app::admin::queue(&spool_dir, json, by_domain),
        Cmd::Flush { spool_dir } => crate::app::admin::flush(&spool_dir),
        Cmd::Cancel { spool_dir, names } => crate::app::admin::cancel(&spool_dir, &names),
        Cmd::Hold(a) => crate::app::admin::hold(&a.spool_dir, &a.names, a.domain.as_deref(), true),
        Cmd::Release(a) => crate::app::admin::hold(&a.spool_dir, &a.names, a.domain.as_deref(), false),
        Cmd::Sendmail(a) => crate::app::sendmail::sendmail(&a),
        Cmd::Deliver { spool_dir } => crate::app::admin::deliver(&spool_dir),
        Cmd::DkimRecord { spool_dir } => {
            let spool = crate::app::admin::open_existing(&spool_dir)?;
            println!("{}", crate::mail::dkim::dns_record(&spool.load_node()?)?);
            Ok(())
        }
    }
}

const READY_FD_ENV: &str = "MAILFS_READY_FD";
const LOG_FILE_ENV: &str = "MAILFS_LOG_FILE";

fn mount(spool_dir: &Path, mountpoint: &Path, options: &[String], foreground: bool) -> Result<()> {
    let opts = parse_mount_opts(options)?;
    match std::fs::metadata(mountpoint) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(Error::NotFound(format!(
                "mount point {} is not a directory",
                mountpoint.display()
            )));
        }
        // A dead FUSE mount (its server was killed) answers ENOTCONN: say how to clear it.
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
            let mp = mountpoint.display();
            return Err(Error::Unavailable(format!(
                "mount point {mp} is a dead mount; clear it with fusermount3 -u {mp}"
            )));
        }
        Err(e) => {
            return Err(Error::NotFound(format!(
                "mount point {}: {e}",
                mountpoint.display()
            )));
        }
    }
    Spool::check_servable_path(spool_dir)?;
    if !foreground {
        return daemonize(spool_dir, mountpoint, options);
    }
    let node = Node::open(spool_dir, &opts.node)?;
    node.spool.check_servable()?;
    serve_mount(node, mountpoint, &opts)
}

/// Runs the mount in this process until it is unmounted or signalled.
fn serve_mount(node: Arc<Node>, mountpoint: &Path, opts: &MountOpts) -> Result<()> {
    let mut config = fuser::Config::default();
    let fsname = opts.fsname.clone().unwrap_or_else(|| node.spool.root_str());
    config.mount_options = vec![
        fuser::MountOption::FSName(fsname),
        fuser::MountOption::Subtype("mailfs".into()),
    ];
    if opts.default_permissions {
        config.mount_options.push(fuser::MountOption::DefaultPermissions);
    }
    if opts.read_only {
        config.mount_options.push(fuser::MountOption::RO);
    }
    if opts.allow_other {
        config.acl = fuser::SessionACL::All;
    } else if opts.allow_root {
        config.acl = fuser::SessionACL::RootAndOwner;
    }
    config.n_threads = Some(4);
    // glibc gives each thread that allocates its own arena; the FUSE workers' short-lived
    // allocations then leave several partly used heaps (tens of MB with a 100,000-message
    // spool listed). Two arenas keep the mount's memory near what it holds.
    // SAFETY: mallopt only tunes the allocator; called before the mount's threads start.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
    let fs = MailFs::new(node.clone());
    fs.kernel_checks(opts.default_permissions);
    let notifier = fs.notifier_slot();
    let adapter = FuseAdapter { fs };
    let session = match fuser::Session::new(adapter, mountpoint, &config) {
        Ok(s) => s,
        // `fusermount3 -u` right after the mount, before the kernel's first request was
        // read: the user stopped it, as after any other unmount.
        Err(e) if e.kind() == std::io::ErrorKind::NotConnected => {
            log::info!("{} was unmounted before it was ready: {e}", mountpoint.display());
            return Ok(());
        }
        Err(e) => {
            return Err(Error::Io(std::io::Error::new(
                e.kind(),
                format!("cannot mount {}: {e}", mountpoint.display()),
            )));
        }
    };
    let _ = notifier.set(session.notifier());
    crate::fs::watch_spool(&node.spool, session.notifier());
    log::info!(
        "mounted {} at {}",
        node.spool.root().display(),
        mountpoint.display()
    );
    signal_ready();
    let engine = crate::sender::Engine::start(node.clone());
    let control = start_control(&node, opts.allow_other);
    let listener = crate::listener::Listener::start(node.clone());

    // Never dropped: once the kernel has taken the mount down, dropping the session would
    // have fuser unmount the mount point once more (its check that the mount is still there
    // reads poll's POLLERR the wrong way), taking down whatever is mounted beneath it:
    // another node, a tmpfs (audit-10 J-m). What is left goes with the process.
    let bg = std::mem::ManuallyDrop::new(session.spawn()?);
    let mut signals =
        signal_hook::iterator::Signals::new([signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT])?;
    let sig_handle = signals.handle();
    let mp = mountpoint.to_path_buf();
    let sig_thread = std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            log::info!("signal {sig}: unmounting {}", mp.display());
            unmount_self(&mp);
        }
    });
    // SAFETY: the session thread's handle is moved out of `bg` this once; `bg` is never
    // dropped and its `guard` never used again, so nothing is dropped or joined twice.
    let guard = unsafe { std::ptr::read(&bg.guard) };
    let res = match guard.join() {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::other("the FUSE session thread panicked")),
    };
    // A session that failed (rather than ended by an unmount) leaves its mount in place, dead
    // ("Transport endpoint is not connected"): it is ours, on top, so it is taken down here.
    if let Err(e) = &res {
        log::error!(
            "the FUSE session failed ({e}); unmounting {}",
            mountpoint.display()
        );
        unmount_self(mountpoint);
    }
    sig_handle.close();
    let _ = sig_thread.join();
    drop(control);
    listener.stop();
    engine.stop();
    res.map_err(Error::Io)?;
    log::info!("unmounted {}", mountpoint.display());
    Ok(())
}

/// Unmounts this process's own mount (on a signal; it is on top of the mount point while
/// the session runs): directly as root, else through the setuid helper; lazily when busy.
fn unmount_self(mp: &Path) {
    let Ok(c) = std::ffi::CString::new(mp.as_os_str().as_encoded_bytes()) else {
        return;
    };
    // SAFETY: c is a valid NUL-terminated path.
    if unsafe { libc::umount2(c.as_ptr(), 0) } == 0 {
        return;
    }
    let helper = |lazy: bool| {
        let mut cmd = Command::new("fusermount3");
        cmd.arg(if lazy { "-uz" } else { "-u" }).arg(mp);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd.status().is_ok_and(|s| s.success())
    };
    if helper(false) {
        return;
    }
    log::warn!("unmount of {} failed; unmounting it lazily", mp.display());
    // SAFETY: as above.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
        helper(true);
    }
}

fn serve(spool_dir: &Path, options: &[String]) -> Result<()> {
    let opts = parse_mount_opts(options)?;
    Spool::check_servable_path(spool_dir)?;
    let node = Node::open(spool_dir, &opts.node)?;
    node.spool.check_servable()?;
    let engine = crate::sender::Engine::start(node.clone());
    let control = start_control(&node, false);
    let listener = crate::listener::Listener::start(node.clone());
    log::info!("serving {}", node.spool.root().display());
    let mut signals =
        signal_hook::iterator::Signals::new([signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT])?;
    if let Some(sig) = signals.forever().next() {
        log::info!("signal {sig}: stopping");
    }
    drop(control);
    listener.stop();
    engine.stop();
    Ok(())
}

/// The control socket beside the spool (SPEC §10): open to every local user when root serves
/// the node or the mount is shared (`allow_other`), else to the node's owner only. A node
/// served without it still works for those who can open the spool, so a failure is logged.
fn start_control(node: &Arc<Node>, allow_other: bool) -> Option<crate::control::standby::Control> {
    // SAFETY: geteuid cannot fail.
    let shared = allow_other || unsafe { libc::geteuid() } == 0;
    match crate::control::standby::Control::start(node.clone(), shared) {
        Ok(c) => Some(c),
        Err(e) => {
            log::warn!("no control socket, other users cannot submit: {e}");
            None
        }
    }
}

/// Tells a waiting parent (see [`daemonize`]) that the mount is live.
fn signal_ready() {
    let Some(fd) = std::env::var(READY_FD_ENV)
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
    else {
        return;
    };
    // SAFETY: the fd was handed to us by our parent for exactly this; we own it from here.
    unsafe {
        libc::write(fd, b"1".as_ptr().cast(), 1);
        libc::close(fd);
    }
    // Nobody waits for our errors any more: from now on they go to the spool's log file.
    let log = std::env::var_os(LOG_FILE_ENV).and_then(|p| {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(p)
            .ok()
    });
    if let (Ok(null), Some(log)) = (std::fs::File::open("/dev/null"), log) {
        use std::os::unix::io::AsRawFd;
        // SAFETY: dup2 onto this process's standard descriptors; both sources are open.
        unsafe {
            libc::dup2(null.as_raw_fd(), 0);
            libc::dup2(log.as_raw_fd(), 1);
            libc::dup2(log.as_raw_fd(), 2);
        }
    }
}

/// Starts the mount as a detached child (`-f` in a new session) and returns once it is live,
/// or fails with the child's exit code and error line.
fn daemonize(spool_dir: &Path, mountpoint: &Path, options: &[String]) -> Result<()> {
    let mut fds = [0i32; 2];
    // SAFETY: pipe writes two descriptors into the array.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    let (rfd, wfd) = (fds[0], fds[1]);
    let exe = std::env::current_exe()?;
    // Errors before the mount is live go to the caller's stderr; once live, to a log file.
    let spool = crate::store::spool::Spool::open(spool_dir)?;
    let log_path = spool.server_log_path();
    let mut cmd = Command::new(exe);
    cmd.arg("mount").arg(spool_dir).arg(mountpoint).arg("-f");
    for o in options {
        cmd.arg("-o").arg(o);
    }
    cmd.env(READY_FD_ENV, wfd.to_string())
        .env(LOG_FILE_ENV, &log_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if std::env::var_os("RUST_LOG").is_none() {
        cmd.env("RUST_LOG", "info");
    }
    // SAFETY: setsid is async-signal-safe; it detaches the child from our terminal session.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd.spawn()?;
    // SAFETY: the child has its copy; ours must close so EOF arrives if the child dies.
    unsafe { libc::close(wfd) };
    let stderr = child.stderr.take();
    // SAFETY: rfd is the read end we own.
    let mut ready = unsafe { <std::fs::File as std::os::unix::io::FromRawFd>::from_raw_fd(rfd) };
    let mut buf = [0u8; 1];
    let got = ready.read(&mut buf).unwrap_or(0);
    if got == 1 {
        return Ok(());
    }
    let mut msg = String::new();
    if let Some(mut err) = stderr {
        let _ = err.read_to_string(&mut msg);
    }
    let status = child.wait()?;
    let _ = std::io::stderr().write_all(msg.as_bytes());
    std::process::exit(status.code().unwrap_or(75).max(1));
}

#[cfg(test)]
mod opts_tests {
    use super::*;

    #[test]
    fn escaped_commas_stay_in_list_values() {
        let o = parse_mount_opts(&["server=relay1\\,relay2:587,conn_limit=4".to_string()]).unwrap();
        assert_eq!(
            o.node,
            vec![
                ("server".to_string(), "relay1,relay2:587".to_string()),
                ("conn_limit".to_string(), "4".to_string())
            ]
        );
        assert!(parse_mount_opts(&["server=relay1,relay2".to_string()]).is_err());
    }
}
