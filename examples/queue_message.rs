//! Queues a message with the mailfs library, as `mailfs sendmail` would: the message is built
//! with mail-builder (a body and an attachment), stored ready in the spool, and sent by
//! whatever serves that spool (`mailfs mount` or `mailfs serve`).
//!
//!     cargo run --release --example queue_message -- /var/spool/mailfs boss@example.org
//!
//! Prints the message's name in the spool; `mailfs queue SPOOL` shows its progress.

use std::path::PathBuf;

use mail_builder::MessageBuilder;
use mailfs::store::queue::{Submission, queue_message};
use mailfs::store::spool::Spool;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let spool_dir = PathBuf::from(args.next().unwrap_or_else(|| "/var/spool/mailfs".into()));
    let to = args.next().unwrap_or_else(|| "boss@example.org".into());

    let csv = b"region,q3\nnorth,120\nsouth,95\n".to_vec();
    let message = MessageBuilder::new()
        .from(("Reports", "reports@example.com"))
        .to(to.as_str())
        .subject("Q3 report")
        .text_body("Numbers attached.\n")
        .attachment("text/csv", "q3.csv", csv)
        .write_to_vec()?;

    let spool = Spool::open(&spool_dir)?;
    let name = queue_message(
        &spool,
        &mut message.as_slice(),
        &Submission {
            recipients: vec![to],
            ..Default::default()
        },
    )?;
    println!("{name}");
    Ok(())
}
