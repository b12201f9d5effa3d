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
    let cli = match mailfs::app::cli::parse(args) {
        Ok(c) => c,
        Err(code) => std::process::exit(code),
    };
    if let Err(e) = mailfs::app::cli::run(cli) {
        eprintln!("mailfs: {e}");
        std::process::exit(e.exit_code());
    }
}
