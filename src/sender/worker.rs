//! A worker thread: runs one job at a time with the transport `send_method` asks for, keeps
//! its SMTP session between jobs, and reports each job's result to the scheduler.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::transport::Transport;
use super::{JobKey, JobResult, Shared, attempt, sendmail, smtp};
use crate::model::attrs::SendMethod;
use crate::store::node::Node;

pub(super) enum ToWorker {
    /// A job; `true`: due now whatever next_try_date says (released, flushed, made ready).
    Job(JobKey, bool),
    Quit,
}

pub(super) struct Done {
    pub(super) worker: usize,
    pub(super) job: JobKey,
    pub(super) result: JobResult,
}

pub(super) fn run(
    id: usize,
    node: Arc<Node>,
    rx: Receiver<ToWorker>,
    done: Sender<Done>,
    shared: Arc<Shared>,
) {
    let mut smtp: Option<smtp::SmtpTransport> = None;
    // A transport put in by the caller (the recording stub in tests) replaces send_method's.
    let mut own: Option<Box<dyn Transport + Send>> = shared.transport.as_ref().map(|make| make());
    loop {
        // An idle connection is closed after a while, so it does not hold a server slot.
        let msg = match rx.recv_timeout(Duration::from_secs(2)) {
            Ok(m) => m,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                if let Some(s) = smtp.as_mut() {
                    s.close();
                }
                if let Some(t) = own.as_mut() {
                    t.close();
                }
                continue;
            }
            Err(_) => break,
        };
        let (job, force) = match msg {
            ToWorker::Job(j, f) => (j, f),
            ToWorker::Quit => break,
        };
        let cfg = node.attrs();
        // A bug in one attempt must not leave its message marked in flight forever: the
        // scheduler gets a retry instead, and the connection (state unknown) is dropped.
        let attempt = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match cfg.send_method {
            _ if own.is_some() => match own.as_mut() {
                Some(t) => attempt::run_job(&node, &cfg, &job, force, t.as_mut(), &shared),
                None => JobResult::Again(Instant::now()),
            },
            SendMethod::Smtp | SendMethod::Mx => {
                let t = match smtp.as_mut() {
                    Some(t) => {
                        t.configure(&cfg);
                        t
                    }
                    None => match smtp::SmtpTransport::new(cfg.clone()) {
                        Ok(t) => smtp.insert(t),
                        Err(e) => {
                            log::error!("cannot start SMTP client: {e}");
                            return JobResult::Again(Instant::now() + Duration::from_secs(5));
                        }
                    },
                };
                attempt::run_job(&node, &cfg, &job, force, t, &shared)
            }
            SendMethod::Sendmail => {
                if let Some(s) = smtp.as_mut() {
                    s.close();
                }
                let mut t = sendmail::SendmailTransport { node: cfg.clone() };
                attempt::run_job(&node, &cfg, &job, force, &mut t, &shared)
            }
        }));
        let result = attempt.unwrap_or_else(|_| {
            log::error!("sending {} failed with a panic; retrying in 60 s", job.name);
            smtp = None;
            JobResult::Again(Instant::now() + Duration::from_secs(60))
        });
        if done
            .send(Done {
                worker: id,
                job,
                result,
            })
            .is_err()
        {
            break;
        }
    }
}
