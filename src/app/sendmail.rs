//! `mailfs sendmail` (and the binary linked as `sendmail`): its options and the submission,
//! directly into the spool when this user may write it, else through the serving process's
//! control socket.

use std::io;
use std::path::PathBuf;

use crate::app::admin::{Route, route_to_write, tempfail};
use crate::control::{Request, client};
use crate::error::Result;
use crate::store::queue::{Origin, Submission, queue_incoming, read_message, recipients};
use crate::store::spool::Spool;

#[derive(clap::Args, Debug)]
pub struct SendmailArgs {
    /// The spool to queue into.
    #[arg(long, env = "MAILFS_SPOOL", default_value = "/var/spool/mailfs")]
    pub spool: PathBuf,
    /// Take recipients from the To, Cc and Bcc headers (as well as the arguments).
    #[arg(short = 't')]
    pub read_headers: bool,
    /// A line with a single dot does not end the message.
    #[arg(short = 'i')]
    pub ignore_dots: bool,
    /// Envelope sender.
    #[arg(short = 'f', short_alias = 'r', value_name = "FROM")]
    pub from: Option<String>,
    /// Full name of the sender, for a From header the message lacks.
    #[arg(short = 'F', value_name = "NAME")]
    pub full_name: Option<String>,
    #[arg(short = 'o', hide = true)]
    pub o: Vec<String>,
    #[arg(short = 'B', hide = true)]
    pub body_type: Option<String>,
    #[arg(short = 'b', hide = true)]
    pub mode: Option<String>,
    #[arg(short = 'N', hide = true)]
    pub dsn: Option<String>,
    #[arg(short = 'R', hide = true)]
    pub ret: Option<String>,
    #[arg(short = 'V', hide = true)]
    pub envid: Option<String>,
    #[arg(short = 'v', hide = true)]
    pub verbose: bool,
    /// Recipients; a bare local name (root) becomes NAME@HOSTNAME, as Postfix qualifies it
    #[arg(value_name = "RCPT")]
    pub recipients: Vec<String>,
}

pub fn sendmail(a: &SendmailArgs) -> Result<()> {
    let sub = Submission {
        env_from: a.from.clone(),
        recipients: a.recipients.clone(),
        recipients_from_headers: a.read_headers,
        full_name: a.full_name.clone(),
    };
    // Refuse bad addresses before reading the message.
    recipients(&sub.recipients)?;
    // `-oi` is the old spelling of `-i`.
    let ignore_dots = a.ignore_dots || a.o.iter().any(|o| o == "i");
    if let Route::Socket(sock) = route_to_write(&a.spool) {
        let req = Request::Sendmail {
            env_from: sub.env_from,
            recipients: sub.recipients,
            read_headers: sub.recipients_from_headers,
            full_name: sub.full_name,
            stop_at_dot: !ignore_dots,
        };
        return client::call(&sock, &a.spool, &req, Some(&mut io::stdin().lock())).map(|_| ());
    }
    let spool = Spool::open_quick(&a.spool).map_err(tempfail)?;
    let msg = read_message(&spool, &mut io::stdin().lock(), !ignore_dots).map_err(tempfail)?;
    queue_incoming(&spool, msg, &sub, &Origin::this_user())
        .map(|_| ())
        .map_err(tempfail)
}
