//! SMTP delivery at the connection level with lettre's async client, so every RCPT TO reply is
//! seen and connections are reused. The TCP stream is made here with TCP_NODELAY (lettre's
//! blocking client stalls ~40 ms per message on delayed ACKs), and every reply is awaited at
//! most `handshake_time`.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use lettre::Address;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt, Rset};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;

use super::transport::{Envelope, RcptOutcome, Transport, all, classify};
use crate::attrs::{NodeAttrs, TlsMode};
use crate::content::{WHOLE_READ_LIMIT, WireChunks};

/// What a connection was opened with; a change of any of it means a new connection.
#[derive(Debug, Clone, PartialEq)]
struct ConnKey {
    server: String,
    port: u16,
    tls: TlsMode,
    helo: String,
    ca_file: Option<String>,
    auth_user: Option<String>,
    auth_secret_file: Option<String>,
}

impl ConnKey {
    fn of(n: &NodeAttrs) -> ConnKey {
        ConnKey {
            server: n.server.clone(),
            port: n.port,
            tls: n.tls,
            helo: n.helo(),
            ca_file: n.ca_file.clone(),
            auth_user: n.auth_user.clone(),
            auth_secret_file: n.auth_secret_file.clone(),
        }
    }
}

pub struct SmtpTransport {
    rt: tokio::runtime::Runtime,
    conn: Option<(ConnKey, AsyncSmtpConnection)>,
    node: NodeAttrs,
}

fn response_text(r: &Response) -> String {
    format!("{} {}", r.code(), r.message().collect::<Vec<_>>().join(" "))
}

fn error_outcome(e: &lettre::transport::smtp::Error) -> RcptOutcome {
    match e.status() {
        Some(code) => {
            let text = std::error::Error::source(e)
                .map(|s| s.to_string())
                .unwrap_or_default();
            let n: u16 = code.to_string().parse().unwrap_or(451);
            classify(n, format!("{code} {text}"))
        }
        // Refused, reset, unresolvable, TLS trouble: the server never said no.
        None => RcptOutcome::TempFail(e.to_string()),
    }
}

fn timeout_outcome(what: &str, t: Duration) -> RcptOutcome {
    RcptOutcome::TempFail(format!("timed out after {}s waiting for {what}", t.as_secs_f64()))
}

impl SmtpTransport {
    pub fn new(node: NodeAttrs) -> std::io::Result<SmtpTransport> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(SmtpTransport { rt, conn: None, node })
    }

    /// Node attributes apply to the next send.
    pub fn configure(&mut self, node: &NodeAttrs) {
        self.node = node.clone();
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.node.handshake_time.max(0.001))
    }

    fn tls_params(&self) -> Result<TlsParameters, RcptOutcome> {
        let mut b = TlsParameters::builder(self.node.server.clone());
        if let Some(ca) = &self.node.ca_file {
            let pem = std::fs::read(ca)
                .map_err(|e| RcptOutcome::TempFail(format!("cannot read ca_file {ca}: {e}")))?;
            let cert = Certificate::from_pem(&pem)
                .map_err(|e| RcptOutcome::TempFail(format!("bad certificate in {ca}: {e}")))?;
            b = b.add_root_certificate(cert);
        }
        b.build_rustls()
            .map_err(|e| RcptOutcome::TempFail(format!("TLS setup: {e}")))
    }

    fn credentials(&self) -> Result<Option<Credentials>, RcptOutcome> {
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
        Ok(Some(Credentials::new(user.clone(), secret)))
    }

    fn connect(&mut self) -> Result<(), RcptOutcome> {
        let key = ConnKey::of(&self.node);
        if let Some((k, c)) = &self.conn
            && *k == key
            && !c.has_broken()
        {
            return Ok(());
        }
        self.close();
        let t = self.timeout();
        let helo = ClientId::Domain(key.helo.clone());
        let tls = match key.tls {
            TlsMode::None => None,
            _ => Some(self.tls_params()?),
        };
        let creds = self.credentials()?;
        let addr = (key.server.clone(), key.port);
        let conn = self.rt.block_on(async {
            let mut conn = if key.tls == TlsMode::Tls {
                AsyncSmtpConnection::connect_tokio1(addr, Some(t), &helo, tls.clone(), None)
                    .await
                    .map_err(|e| error_outcome(&e))?
            } else {
                let stream = tokio::time::timeout(t, tokio::net::TcpStream::connect(addr))
                    .await
                    .map_err(|_| timeout_outcome("the connection", t))?
                    .map_err(|e| {
                        RcptOutcome::TempFail(format!("connect to {}:{}: {e}", key.server, key.port))
                    })?;
                let _ = stream.set_nodelay(true);
                tokio::time::timeout(
                    t,
                    AsyncSmtpConnection::connect_with_transport(Box::new(stream), &helo),
                )
                .await
                .map_err(|_| timeout_outcome("the greeting", t))?
                .map_err(|e| error_outcome(&e))?
            };
            if key.tls == TlsMode::Starttls {
                let params = tls
                    .clone()
                    .ok_or_else(|| RcptOutcome::TempFail("no TLS parameters".into()))?;
                tokio::time::timeout(t, conn.starttls(params, &helo))
                    .await
                    .map_err(|_| timeout_outcome("STARTTLS", t))?
                    .map_err(|e| error_outcome(&e))?;
            }
            if let Some(c) = &creds {
                tokio::time::timeout(t, conn.auth(&[Mechanism::Plain, Mechanism::Login], c))
                    .await
                    .map_err(|_| timeout_outcome("AUTH", t))?
                    .map_err(|e| error_outcome(&e))?;
            }
            Ok::<_, RcptOutcome>(conn)
        })?;
        self.conn = Some((key, conn));
        Ok(())
    }

    /// One transaction on the open connection. `Err` means the connection is unusable.
    fn transaction(
        &mut self,
        env: &Envelope,
        eml: &Path,
        message_id: &str,
    ) -> Result<Vec<RcptOutcome>, Vec<RcptOutcome>> {
        let t = self.timeout();
        let Some((_, conn)) = self.conn.as_mut() else {
            return Err(all(env, RcptOutcome::TempFail("not connected".into())));
        };
        let size = std::fs::metadata(eml).map(|m| m.len()).unwrap_or(0);
        if size > WHOLE_READ_LIMIT
            && let Err(e) = crate::content::check_readable(eml)
        {
            // Nothing was sent: the connection stays usable.
            return Ok(all(
                env,
                RcptOutcome::TempFail(format!("cannot read message: {e}")),
            ));
        }
        let rt = &self.rt;
        rt.block_on(async {
            let fail = |o: RcptOutcome| all(env, o);
            let from = if env.from.is_empty() {
                None
            } else {
                Some(
                    Address::from_str(&env.from)
                        .map_err(|e| fail(RcptOutcome::PermFail(format!("bad sender: {e}"))))?,
                )
            };
            let mut params = Vec::new();
            if conn.server_info().supports_feature(Extension::EightBitMime) {
                params.push(MailParameter::Body(MailBodyParameter::EightBitMime));
            }
            match tokio::time::timeout(t, conn.command(Mail::new(from, params))).await {
                Err(_) => return Err(fail(timeout_outcome("the MAIL FROM reply", t))),
                Ok(Err(e)) => {
                    let o = error_outcome(&e);
                    if e.status().is_none() {
                        return Err(fail(o));
                    }
                    let _ = tokio::time::timeout(t, conn.command(Rset)).await;
                    return Ok(fail(o));
                }
                Ok(Ok(_)) => {}
            }
            let mut out: Vec<Option<RcptOutcome>> = vec![None; env.to.len()];
            for (i, rcpt) in env.to.iter().enumerate() {
                let addr = match Address::from_str(rcpt) {
                    Ok(a) => a,
                    Err(e) => {
                        out[i] = Some(RcptOutcome::PermFail(format!("bad recipient: {e}")));
                        continue;
                    }
                };
                match tokio::time::timeout(t, conn.command(Rcpt::new(addr, vec![]))).await {
                    Err(_) => return Err(fail(timeout_outcome("the RCPT TO reply", t))),
                    Ok(Err(e)) if e.status().is_none() => return Err(fail(error_outcome(&e))),
                    Ok(Err(e)) => out[i] = Some(error_outcome(&e)),
                    Ok(Ok(_)) => {}
                }
            }
            if out.iter().all(|o| o.is_some()) {
                let _ = tokio::time::timeout(t, conn.command(Rset)).await;
                return Ok(out.into_iter().flatten().collect());
            }
            match tokio::time::timeout(t, conn.command(Data)).await {
                Err(_) => return Err(fail(timeout_outcome("the DATA reply", t))),
                Ok(Err(e)) if e.status().is_none() => return Err(fail(error_outcome(&e))),
                Ok(Err(e)) => {
                    let o = error_outcome(&e);
                    let _ = tokio::time::timeout(t, conn.command(Rset)).await;
                    return Ok(out.into_iter().map(|x| x.unwrap_or_else(|| o.clone())).collect());
                }
                Ok(Ok(_)) => {}
            }
            let chunks = WireChunks::open(eml, message_id)
                .map_err(|e| fail(RcptOutcome::TempFail(format!("cannot read message: {e}"))))?;
            // Allow for transfer time on top of the reply wait: at least 100 kB/s.
            let data_t = t + Duration::from_secs(size / 100_000);
            let reply = if size <= WHOLE_READ_LIMIT {
                let bytes = chunks
                    .read_all()
                    .map_err(|e| fail(RcptOutcome::TempFail(format!("cannot read message: {e}"))))?;
                tokio::time::timeout(data_t, conn.message(&bytes)).await
            } else {
                tokio::time::timeout(data_t, conn.message_iter(chunks)).await
            };
            let o = match reply {
                Err(_) => return Err(fail(timeout_outcome("the end-of-data reply", data_t))),
                Ok(Err(e)) if e.status().is_none() => return Err(fail(error_outcome(&e))),
                Ok(Err(e)) => error_outcome(&e),
                Ok(Ok(r)) => RcptOutcome::Accepted(response_text(&r)),
            };
            Ok(out.into_iter().map(|x| x.unwrap_or_else(|| o.clone())).collect())
        })
    }
}

impl Transport for SmtpTransport {
    fn send(
        &mut self,
        env: &Envelope,
        eml: &Path,
        message_id: &str,
        gate: &mut dyn FnMut(),
    ) -> Vec<RcptOutcome> {
        if let Err(o) = self.connect() {
            return all(env, o);
        }
        gate();
        match self.transaction(env, eml, message_id) {
            Ok(v) => v,
            Err(v) => {
                self.close();
                v
            }
        }
    }

    fn close(&mut self) {
        if let Some((_, mut c)) = self.conn.take() {
            let t = Duration::from_secs(2);
            self.rt.block_on(async {
                let _ = tokio::time::timeout(t, c.quit()).await;
            });
        }
    }
}

impl Drop for SmtpTransport {
    fn drop(&mut self) {
        self.close();
    }
}
