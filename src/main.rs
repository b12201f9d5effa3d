//! The `mailfs` binary: parse, run, map the outcome to a sysexits code.

fn main() {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // Invoked as `sendmail` through a link, act as `mailfs sendmail`.
    let invoked_as = args
        .first()
        .and_then(|a| {
            std::path::Path::new(a)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    if invoked_as == "sendmail" {
        args.insert(1, "sendmail".into());
    }
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format_timestamp_millis()
        .init();
    // One process per message: sendmail skips building the whole command line.
    if let Some(a) = mailfs::app::cli::parse_sendmail(&args) {
        // Its two short-lived threads (syncs run side by side) share the main heap: an arena
        // of their own costs each a 64 MB mapping made and unmade.
        // SAFETY: mallopt only tunes the allocator; no other thread runs yet.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
        exit_with(mailfs::app::sendmail::sendmail(&a));
        return;
    }
    let cli = match mailfs::app::cli::parse(args) {
        Ok(c) => c,
        Err(code) => std::process::exit(code),
    };
    exit_with(mailfs::app::cli::run(cli));
}

fn exit_with(res: mailfs::error::Result<()>) {
    if let Err(e) = res {
        eprintln!("mailfs: {e}");
        std::process::exit(e.exit_code());
    }
}
