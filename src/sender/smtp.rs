//! SMTP delivery: picks the hosts for a job (the relays in `server`, or the recipient
//! domain's exchangers for `send_method=mx`), opens a session on the first that works
//! (SPEC §6: the next host after a refused or timed-out connection or a failed greeting,
//! EHLO/HELO or TLS), runs the transaction, and keeps the session for the next job to the
//! same place. The dialogue itself is in [`super::client`].

use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;

use super::client::{Fail, Session, Settings, Target};
use super::mx::Resolver;
use super::transport::{Envelope, RcptOutcome, Transport, all};
use crate::mail::wire::{WHOLE_READ_LIMIT, Wire};
use crate::model::attrs::{NodeAttrs, SendMethod, TlsMode, domain_key};

/// What a session was opened with; a change of any of it means a new session.
#[derive(Debug, Clone, PartialEq)]
struct ConnKey {
    /// The relays, or `mx:DOMAIN`.
    route: String,
    port: u16,
    tls: TlsMode,
    helo: String,
    ca_file: Option<String>,
    auth_user: Option<String>,
    auth_secret_file: Option<String>,
    timeout: u64,
}

pub struct SmtpTransport {
    rt: tokio::runtime::Runtime,
    conn: Option<(ConnKey, Session)>,
    node: NodeAttrs,
    verified: Option<(Option<String>, Arc<ClientConfig>)>,
    unverified: Option<Arc<ClientConfig>>,
    resolver: Option<Resolver>,
}

impl SmtpTransport {
    pub fn new(node: NodeAttrs) -> std::io::Result<SmtpTransport> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(SmtpTransport {
            rt,
            conn: None,
            node,
            verified: None,
            unverified: None,
            resolver: None,
        })
    }

    /// Node attributes apply to the next send.
    pub fn configure(&mut self, node: &NodeAttrs) {
        self.node = node.clone();
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.node.handshake_time.max(0.001))
    }

    fn key(&self, domain: &str) -> ConnKey {
        let n = &self.node;
        ConnKey {
            route: match n.send_method {
                SendMethod::Mx => format!("mx:{domain}"),
                _ => n.server.clone(),
            },
            port: n.port,
            tls: n.tls,
            helo: n.helo(),
            ca_file: n.ca_file.clone(),
            auth_user: n.auth_user.clone(),
            auth_secret_file: n.auth_secret_file.clone(),
            timeout: self.timeout().as_millis() as u64,
        }
    }

    fn verified(&mut self) -> Result<Arc<ClientConfig>, RcptOutcome> {
        let ca = self.node.ca_file.clone();
        if let Some((k, c)) = &self.verified
            && *k == ca
        {
            return Ok(c.clone());
        }
        let c = super::tls::verified(ca.as_deref()).map_err(RcptOutcome::TempFail)?;
        self.verified = Some((ca, c.clone()));
        Ok(c)
    }

    fn unverified(&mut self) -> Result<Arc<ClientConfig>, RcptOutcome> {
        if let Some(c) = &self.unverified {
            return Ok(c.clone());
        }
        let c = super::tls::unverified().map_err(RcptOutcome::TempFail)?;
        self.unverified = Some(c.clone());
        Ok(c)
    }

    fn credentials(&self) -> Result<Option<(String, String)>, RcptOutcome> {
        let Some(user) = &self.node.auth_user else {
            return Ok(None);
        };
        let Some(file) = &self.node.auth_secret_file else {
            return Err(RcptOutcome::TempFail(
                "auth_user is set but auth_secret_file is not".into(),
            ));
        };
        let secret = std::fs::read_to_string(file)
            .map_err(|e| RcptOutcome::TempFail(format!("cannot read auth_secret_file: {e}")))?;
        let secret = secret.trim_end_matches(['\r', '\n']).to_string();
        Ok(Some((user.clone(), secret)))
    }

    fn settings(&mut self, mx: bool) -> Result<Settings, RcptOutcome> {
        // Direct delivery is opportunistic whatever `tls` says: an exchanger's certificate
        // rarely names it, and there is nobody to authenticate to.
        let tls = if mx { TlsMode::May } else { self.node.tls };
        let (implicit_tls, starttls) = match tls {
            TlsMode::None => (None, None),
            TlsMode::May => (None, Some((self.unverified()?, false))),
            TlsMode::Starttls => (None, Some((self.verified()?, true))),
            TlsMode::Tls => (Some(self.verified()?), None),
        };
        Ok(Settings {
            timeout: self.timeout(),
            helo: self.node.helo(),
            implicit_tls,
            starttls,
            auth: if mx { None } else { self.credentials()? },
            auth_in_clear: tls == TlsMode::None,
        })
    }

    fn targets(&mut self, domain: &str) -> Result<Vec<Target>, RcptOutcome> {
        if self.node.send_method != SendMethod::Mx {
            return Ok(crate::model::lists::relays(&self.node.server, self.node.port)
                .into_iter()
                .map(|(host, port)| Target {
                    host,
                    port,
                    addr: None,
                })
                .collect());
        }
        let want = self.node.dns_server.clone();
        if self.resolver.as_ref().is_none_or(|r| r.servers != want) {
            self.resolver = Some(Resolver::new(want, self.timeout()).map_err(RcptOutcome::TempFail)?);
        }
        let Some(r) = self.resolver.as_ref() else {
            return Err(RcptOutcome::TempFail("no resolver".into()));
        };
        self.rt.block_on(r.exchangers(domain))
    }

    /// A session to the first host that takes us, or what the last one said.
    fn connect(&mut self, domain: &str) -> Result<(), RcptOutcome> {
        let key = self.key(domain);
        if self.conn.as_ref().is_some_and(|(k, _)| *k == key) {
            return Ok(());
        }
        self.close();
        let mx = self.node.send_method == SendMethod::Mx;
        let settings = self.settings(mx)?;
        let targets = self.targets(domain)?;
        let mut failures: Vec<Fail> = Vec::new();
        for t in &targets {
            match self.rt.block_on(Session::open(t, &settings)) {
                Ok(s) => {
                    if !failures.is_empty() {
                        let why: Vec<&str> = failures.iter().map(|f| f.text.as_str()).collect();
                        log::info!("{domain}: using {t} after {}", why.join("; "));
                    }
                    self.conn = Some((key, s));
                    return Ok(());
                }
                Err(f) if f.next_host() => {
                    log::info!("{domain}: {t}: {}", f.text);
                    failures.push(f);
                }
                Err(f) => return Err(f.outcome()),
            }
        }
        // Permanent only when every host said no for good; a host that could not be
        // reached or said "later" may do better next time.
        let Some(last) = failures.last() else {
            return Err(RcptOutcome::TempFail(format!("no host to deliver {domain} to")));
        };
        let text = if failures.len() > 1 {
            format!("{} (and {} more hosts failed)", last.text, failures.len() - 1)
        } else {
            last.text.clone()
        };
        if failures.iter().all(|f| matches!(f.code, Some(500..=599))) {
            Err(RcptOutcome::PermFail(text))
        } else {
            Err(RcptOutcome::TempFail(text))
        }
    }
}

impl SmtpTransport {
    /// One transaction on the open session. `Err` carries the outcomes and whether the server
    /// took part; the session (in an unknown state) is dropped without a goodbye.
    fn transaction(
        &mut self,
        env: &Envelope,
        wire: &Wire,
    ) -> Result<Vec<RcptOutcome>, (Vec<RcptOutcome>, bool)> {
        let Some((_, sess)) = self.conn.as_mut() else {
            return Err((all(env, RcptOutcome::TempFail("not connected".into())), true));
        };
        let res = self.rt.block_on(sess.send(env, wire.chunks()));
        let engaged = sess.engaged;
        res.map_err(|v| {
            self.conn = None;
            (v, engaged)
        })
    }
}

impl Transport for SmtpTransport {
    fn send(&mut self, env: &Envelope, wire: &Wire, gate: &mut dyn FnMut()) -> Vec<RcptOutcome> {
        // The job's domain (its recipients share it but for case): one connection key and
        // one MX lookup per domain however it is written.
        let domain = env.to.first().map(|r| domain_key(r)).unwrap_or_default();
        let key = self.key(&domain);
        let kept = self.conn.as_ref().is_some_and(|(k, _)| *k == key);
        if let Err(o) = self.connect(&domain) {
            return all(env, o);
        }
        if wire.size() > WHOLE_READ_LIMIT
            && let Err(e) = wire.check_readable()
        {
            // Nothing was sent: the session stays usable.
            return all(env, RcptOutcome::TempFail(format!("cannot read message: {e}")));
        }
        gate();
        match self.transaction(env, wire) {
            Ok(v) => v,
            // A kept session the server had closed while it sat idle (or closes now with a
            // 421) before it took part: nothing of this transaction reached it, so it goes
            // again at once on a new session rather than waiting retry_time.
            Err((_, false)) if kept => {
                log::info!("{domain}: the kept session was closed by the server; opening a new one");
                if let Err(o) = self.connect(&domain) {
                    return all(env, o);
                }
                self.transaction(env, wire).unwrap_or_else(|(v, _)| v)
            }
            Err((v, _)) => v,
        }
    }

    fn close(&mut self) {
        if let Some((_, s)) = self.conn.take() {
            self.rt.block_on(s.quit());
        }
    }
}

impl Drop for SmtpTransport {
    fn drop(&mut self) {
        self.close();
    }
}
