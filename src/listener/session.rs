//! One SMTP session (RFC 5321) on a connection, plain or after STARTTLS. Commands are parsed
//! by smtp-proto; replies are batched and written when the client's input runs dry, which is
//! what PIPELINING (RFC 2920) asks of a server. Message data is un-stuffed by smtp-proto's
//! `DataReceiver` and streamed to a spool temp file, never held whole in memory (`data.rs`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use base64::Engine as _;
use smtp_proto::request::receiver::RequestReceiver;
use smtp_proto::{
    AUTH_LOGIN, AUTH_PLAIN, EXT_8BIT_MIME, EXT_AUTH, EXT_ENHANCED_STATUS_CODES, EXT_PIPELINING, EXT_SIZE,
    EXT_START_TLS, EhloResponse, Request,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::Ctx;
use crate::model::attrs::{NodeAttrs, validate_address};

mod parse;
use parse::*;

/// Postfix's smtpd_hard_error_limit: a client whose commands were refused this many times in
/// one session is disconnected.
pub const ERROR_LIMIT: u32 = 10;
/// Postfix's smtpd_junk_command_limit: NOOP, RSET, VRFY, HELP, HELO and EHLO without a
/// message queued in between; the next one ends the session with 421.
pub const JUNK_LIMIT: u32 = 100;
/// Recipients per message (Postfix's smtpd_recipient_limit is 1000).
const RCPT_LIMIT: usize = 1000;
pub(super) const READ_CHUNK: usize = 64 * 1024;

/// What ends a pass of [`Session::serve`].
enum Next {
    Quit,
    StartTls,
}

/// What a handled command asks of the loop.
pub(super) enum Flow {
    Continue,
    Quit,
    StartTls,
}

/// Runs one session to its end; errors (timeouts, resets) just end it.
pub async fn run(ctx: Arc<Ctx>, mut stream: TcpStream, peer: SocketAddr) {
    let attrs = ctx.node.attrs();
    let tls_config = ctx.tls.get(
        attrs.listener.listen_tls_cert.as_deref(),
        attrs.listener.listen_tls_key.as_deref(),
    );
    let mut s = Session::new(ctx, attrs, peer, tls_config);
    let host = s.attrs.helo();
    s.reply(220, [2, 0, 0], &format!("{host} ESMTP mailfs"));
    let first = s.serve(&mut stream).await;
    match first {
        Ok(Next::StartTls) => {
            let Some(config) = s.tls_config.clone() else {
                return;
            };
            let acceptor = tokio_rustls::TlsAcceptor::from(config);
            match tokio::time::timeout(s.timeout, acceptor.accept(stream)).await {
                Ok(Ok(mut tls)) => {
                    s.after_tls();
                    if let Err(e) = s.serve(&mut tls).await {
                        log::debug!("listener: {peer}: {e}");
                    }
                    let _ = tokio::time::timeout(Duration::from_secs(5), tls.shutdown()).await;
                }
                Ok(Err(e)) => log::info!("listener: {peer}: TLS handshake failed: {e}"),
                Err(_) => log::info!("listener: {peer}: TLS handshake timed out"),
            }
        }
        Ok(Next::Quit) => {}
        Err(e) => log::debug!("listener: {peer}: {e}"),
    }
}

pub(super) struct Session {
    pub(super) ctx: Arc<Ctx>,
    pub(super) attrs: NodeAttrs,
    pub(super) peer: SocketAddr,
    pub(super) timeout: Duration,
    pub(super) tls_config: Option<Arc<rustls::ServerConfig>>,
    pub(super) tls: bool,
    pub(super) helo: Option<String>,
    pub(super) esmtp: bool,
    pub(super) user: Option<String>,
    pub(super) from: Option<String>,
    pub(super) rcpts: Vec<String>,
    pub(super) errors: u32,
    /// Junk commands since the last message queued ([`JUNK_LIMIT`]).
    pub(super) junk: u32,
    /// The raw bytes of the command being read (its first [`LINE_KEPT`]).
    pub(super) line: Vec<u8>,
    pub(super) out: Vec<u8>,
    pub(super) rx: RequestReceiver,
    pub(super) inbuf: Vec<u8>,
    pub(super) start: usize,
}

fn io_err(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, what.to_string())
}

impl Session {
    fn new(
        ctx: Arc<Ctx>,
        attrs: NodeAttrs,
        peer: SocketAddr,
        tls_config: Option<Arc<rustls::ServerConfig>>,
    ) -> Session {
        let timeout = Duration::from_secs_f64(attrs.handshake_time.clamp(1.0, 3600.0));
        Session {
            ctx,
            attrs,
            peer,
            timeout,
            tls_config,
            tls: false,
            helo: None,
            esmtp: false,
            user: None,
            from: None,
            rcpts: Vec::new(),
            errors: 0,
            junk: 0,
            line: Vec::new(),
            out: Vec::with_capacity(1024),
            rx: RequestReceiver::default(),
            inbuf: Vec::with_capacity(READ_CHUNK),
            start: 0,
        }
    }

    /// RFC 3207: after STARTTLS the session starts over, knowing nothing from before.
    fn after_tls(&mut self) {
        self.tls = true;
        self.helo = None;
        self.esmtp = false;
        self.user = None;
        self.reset();
        self.rx = RequestReceiver::default();
        self.inbuf.clear();
        self.start = 0;
        self.line.clear();
    }

    fn reset(&mut self) {
        self.from = None;
        self.rcpts.clear();
    }

    pub(super) fn reply(&mut self, code: u16, esc: [u8; 3], text: &str) {
        if code >= 400 {
            self.errors += 1;
        }
        let r = smtp_proto::Response::new(code, esc[0], esc[1], esc[2], text);
        let _ = r.write(&mut self.out);
    }

    pub(super) async fn flush<S: AsyncWrite + Unpin>(&mut self, io: &mut S) -> std::io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let out = std::mem::take(&mut self.out);
        tokio::time::timeout(self.timeout, async {
            io.write_all(&out).await?;
            io.flush().await
        })
        .await
        .map_err(|_| io_err("write timed out"))??;
        self.out = out;
        self.out.clear();
        Ok(())
    }

    /// The deadline for a line (or a chunk of data) whose wait starts now.
    pub(super) fn deadline(&self) -> Instant {
        Instant::now() + self.timeout
    }

    /// Reads more input after what is still unread; `false` at end of input. Waits until
    /// `deadline` at most (the end of the time allowed for the whole line being read, not
    /// for this one read: a client trickling a byte at a time gets no more), then tells the
    /// client 421 and fails.
    pub(super) async fn fill<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        io: &mut S,
        deadline: Instant,
    ) -> std::io::Result<bool> {
        self.inbuf.drain(..self.start);
        self.start = 0;
        let have = self.inbuf.len();
        self.inbuf.resize(have + READ_CHUNK, 0);
        let n = tokio::time::timeout_at(deadline, io.read(&mut self.inbuf[have..])).await;
        let n = match n {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                self.inbuf.truncate(have);
                return Err(e);
            }
            Err(_) => {
                self.inbuf.truncate(have);
                // Told why before the close (RFC 5321 4.5.3.2), as Postfix's smtpd does.
                let line = format!("421 4.4.2 {} Error: timeout exceeded\r\n", self.attrs.helo());
                let _ = tokio::time::timeout(Duration::from_secs(5), io.write_all(line.as_bytes())).await;
                return Err(io_err("client timed out"));
            }
        };
        self.inbuf.truncate(have + n);
        Ok(n > 0)
    }

    async fn serve<S: AsyncRead + AsyncWrite + Unpin>(&mut self, io: &mut S) -> std::io::Result<Next> {
        // When the command line being read must be complete (handshake_time from when the
        // wait for it began).
        let mut deadline: Option<Instant> = None;
        loop {
            if self.errors >= ERROR_LIMIT {
                self.errors = 0;
                self.reply(421, [4, 7, 0], "Too many errors, closing the connection");
                self.flush(io).await?;
                log::info!("listener: {}: disconnected after {ERROR_LIMIT} errors", self.peer);
                return Ok(Next::Quit);
            }
            let mut it = self.inbuf[self.start..].iter();
            let parsed = self.rx.ingest(&mut it).map(Request::into_owned);
            let rest = it.as_slice().len();
            let from = self.start;
            self.start = self.inbuf.len() - rest;
            // The raw command line, for what smtp-proto does not say (a SIZE= too big for it).
            let room = LINE_KEPT.saturating_sub(self.line.len());
            let got = &self.inbuf[from..self.start];
            self.line.extend_from_slice(&got[..got.len().min(room)]);
            let line = match &parsed {
                Err(smtp_proto::Error::NeedsMoreData { .. }) => Vec::new(),
                _ => std::mem::take(&mut self.line),
            };
            let req = match parsed {
                Ok(r) => r,
                Err(smtp_proto::Error::NeedsMoreData { .. }) => {
                    self.flush(io).await?;
                    let by = *deadline.get_or_insert_with(|| self.deadline());
                    if !self.fill(io, by).await? {
                        return Ok(Next::Quit);
                    }
                    continue;
                }
                Err(e) => {
                    deadline = None;
                    let limit = self.attrs.listener.message_size_limit;
                    let over = match declared_size(&line) {
                        Some(Some(n)) => limit > 0 && n > limit,
                        Some(None) => true,
                        None => false,
                    };
                    if matches!(e, smtp_proto::Error::InvalidParameter { param: "SIZE" }) && over {
                        self.reply(552, [5, 3, 4], "Message size exceeds fixed limit");
                    } else {
                        self.parse_error(e);
                    }
                    continue;
                }
            };
            deadline = None;
            if is_junk(&req) {
                self.junk += 1;
                if self.junk > JUNK_LIMIT {
                    self.reply(421, [4, 7, 0], "Error: too many commands");
                    self.flush(io).await?;
                    log::info!(
                        "listener: {}: disconnected after {JUNK_LIMIT} junk commands",
                        self.peer
                    );
                    return Ok(Next::Quit);
                }
            }
            match self.handle(req, &line, io).await? {
                Flow::Continue => {}
                Flow::Quit => {
                    self.flush(io).await?;
                    return Ok(Next::Quit);
                }
                Flow::StartTls => {
                    self.flush(io).await?;
                    return Ok(Next::StartTls);
                }
            }
        }
    }

    fn parse_error(&mut self, e: smtp_proto::Error) {
        use smtp_proto::Error as E;
        match e {
            E::UnknownCommand => self.reply(500, [5, 5, 1], "Unrecognized command"),
            E::InvalidSenderAddress => self.reply(501, [5, 1, 7], "Bad sender address syntax"),
            E::InvalidRecipientAddress => self.reply(501, [5, 1, 3], "Bad recipient address syntax"),
            E::SyntaxError { syntax } => self.reply(501, [5, 5, 4], &format!("Syntax: {syntax}")),
            E::InvalidParameter { param } => {
                self.reply(501, [5, 5, 4], &format!("Invalid parameter {param}"))
            }
            E::UnsupportedParameter { param } => {
                let p = clean_name(&param);
                self.reply(555, [5, 5, 4], &format!("Unsupported parameter {p}"))
            }
            E::ResponseTooLong => self.reply(500, [5, 5, 2], "Line too long"),
            _ => self.reply(500, [5, 5, 2], "Syntax error"),
        }
    }

    fn auth_offered(&self) -> bool {
        self.tls && self.attrs.listener.listen_users_file.is_some()
    }

    fn ehlo(&mut self, host: String) {
        self.helo = Some(clean_name(&host));
        self.esmtp = true;
        self.reset();
        let mut r = EhloResponse::new(self.attrs.helo());
        r.capabilities = EXT_PIPELINING | EXT_8BIT_MIME | EXT_ENHANCED_STATUS_CODES | EXT_SIZE;
        r.size = usize::try_from(self.attrs.listener.message_size_limit).unwrap_or(usize::MAX);
        if !self.tls && self.tls_config.is_some() {
            r.capabilities |= EXT_START_TLS;
        }
        if self.auth_offered() && self.user.is_none() {
            r.capabilities |= EXT_AUTH;
            r.auth_mechanisms = AUTH_PLAIN | AUTH_LOGIN;
        }
        let mut buf = Vec::new();
        if r.write(&mut buf).is_ok() {
            // smtp-proto's first line carries a joke after the host name; keep the name only.
            let first_end = buf.iter().position(|&b| b == b'\n').map_or(0, |i| i + 1);
            self.out
                .extend_from_slice(format!("250-{}\r\n", self.attrs.helo()).as_bytes());
            self.out.extend_from_slice(&buf[first_end..]);
        }
    }

    async fn handle<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        req: Request<String>,
        line: &[u8],
        io: &mut S,
    ) -> std::io::Result<Flow> {
        match req {
            Request::Ehlo { host } => self.ehlo(host),
            Request::Helo { host } => {
                self.helo = Some(clean_name(&host));
                self.esmtp = false;
                self.reset();
                let me = self.attrs.helo();
                self.reply(250, [2, 0, 0], &me);
            }
            Request::Mail { from } => {
                // smtp-proto's own value is wrong for one that does not fit: read the line.
                let size = match declared_size(line) {
                    Some(v) => v,
                    None => Some(from.size as u64),
                };
                self.mail(from.address, size)
            }
            Request::Rcpt { to } => self.rcpt(to.address),
            Request::Data => return self.data(io).await,
            Request::Auth {
                mechanism,
                initial_response,
            } => self.auth(mechanism, initial_response, io).await?,
            Request::StartTls => {
                // As Postfix answers: not offered is not implemented here; a second one is
                // out of sequence.
                if self.tls {
                    self.reply(554, [5, 5, 1], "Error: TLS already active");
                } else if self.tls_config.is_none() {
                    self.reply(502, [5, 5, 1], "Error: command not implemented");
                } else {
                    self.reply(220, [2, 0, 0], "Ready to start TLS");
                    // Whatever was sent after STARTTLS in the clear is not trusted.
                    self.inbuf.clear();
                    self.start = 0;
                    return Ok(Flow::StartTls);
                }
            }
            Request::Rset => {
                self.reset();
                self.reply(250, [2, 0, 0], "OK");
            }
            Request::Noop { .. } => self.reply(250, [2, 0, 0], "OK"),
            Request::Quit => {
                self.reply(221, [2, 0, 0], "Bye");
                return Ok(Flow::Quit);
            }
            Request::Vrfy { .. } => {
                self.reply(252, [2, 5, 0], "Cannot VRFY user, but will accept the message")
            }
            Request::Help { .. } => self.reply(214, [2, 0, 0], "See RFC 5321"),
            other => {
                let name = other.name();
                self.reply(502, [5, 5, 1], &format!("{name} not implemented"));
            }
        }
        Ok(Flow::Continue)
    }

    /// MAIL; `size` is the SIZE= parameter (0 when absent), `None` when it does not fit in
    /// a u64 (bigger than any limit, so 552 whatever the limit).
    fn mail(&mut self, address: String, size: Option<u64>) {
        // No HELO needed first: Postfix's smtpd_helo_required is off by default too, and
        // some clients (Python's smtplib used bare) go straight to MAIL.
        if self.from.is_some() {
            return self.reply(503, [5, 5, 1], "Nested MAIL command");
        }
        let limit = self.attrs.listener.message_size_limit;
        let too_big = match size {
            Some(n) => limit > 0 && n > limit,
            None => true,
        };
        if too_big {
            return self.reply(552, [5, 3, 4], "Message size exceeds fixed limit");
        }
        // RFC 6531 §3.4: SMTPUTF8 is not offered, so a non-ASCII address is refused here
        // (accepting it would end in a bounce later: backscatter).
        if !address.is_ascii() {
            return self.reply(553, [5, 6, 7], "Non-ASCII address without SMTPUTF8");
        }
        let from = if address.is_empty() {
            String::new()
        } else {
            match validate_address("MAIL FROM", &address) {
                Ok(a) => a,
                Err(_) => return self.reply(553, [5, 1, 7], "Bad sender address"),
            }
        };
        self.from = Some(from);
        self.reply(250, [2, 1, 0], "OK");
    }

    fn rcpt(&mut self, address: String) {
        if self.from.is_none() {
            return self.reply(503, [5, 5, 1], "Need MAIL before RCPT");
        }
        if self.rcpts.len() >= RCPT_LIMIT {
            return self.reply(452, [4, 5, 3], "Too many recipients");
        }
        if self.user.is_none() && !self.attrs.listener.may_relay(self.peer.ip()) {
            log::info!("listener: {}: relay to <{address}> denied", self.peer);
            return self.reply(554, [5, 7, 1], "Relay access denied");
        }
        if !address.is_ascii() {
            return self.reply(553, [5, 6, 7], "Non-ASCII address without SMTPUTF8");
        }
        match validate_address("RCPT TO", &address) {
            Ok(a) => {
                // A recipient given twice is recorded once (Postfix's cleanup drops exact
                // duplicates): else it would be relayed twice in one transaction.
                if !self.rcpts.iter().any(|r| same_address(r, &a)) {
                    self.rcpts.push(a);
                }
                self.reply(250, [2, 1, 5], "OK");
            }
            Err(_) => self.reply(553, [5, 1, 3], "Bad recipient address"),
        }
    }

    /// Reads one line sent in answer to a 334 challenge.
    async fn read_line<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        io: &mut S,
    ) -> std::io::Result<Option<String>> {
        self.flush(io).await?;
        let deadline = self.deadline();
        loop {
            if let Some(i) = self.inbuf[self.start..].iter().position(|&b| b == b'\n') {
                let line = &self.inbuf[self.start..self.start + i];
                let line = String::from_utf8_lossy(line).trim_end_matches('\r').to_string();
                self.start += i + 1;
                return Ok(Some(line));
            }
            if self.inbuf.len() - self.start > 16 * 1024 || !self.fill(io, deadline).await? {
                return Ok(None);
            }
        }
    }

    async fn auth<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        mechanism: u64,
        initial: String,
        io: &mut S,
    ) -> std::io::Result<()> {
        if self.attrs.listener.listen_users_file.is_none() {
            // No users: encryption would not help (538 would say it does).
            self.reply(503, [5, 5, 1], "Error: authentication not enabled");
            return Ok(());
        }
        if !self.tls {
            self.reply(538, [5, 7, 11], "Encryption required for AUTH");
            return Ok(());
        }
        if !self.auth_offered() {
            {
                self.reply(503, [5, 5, 1], "AUTH not available");
                return Ok(());
            }
        }
        if self.user.is_some() || self.from.is_some() {
            {
                self.reply(503, [5, 5, 1], "AUTH not allowed now");
                return Ok(());
            }
        }
        let b64 = base64::engine::general_purpose::STANDARD;
        let decode = |s: &str| b64.decode(s.trim()).ok();
        let ask = |s: &mut Self, prompt: &str| {
            s.out.extend_from_slice(format!("334 {prompt}\r\n").as_bytes());
        };
        let creds: Option<(String, Vec<u8>)> = if mechanism == AUTH_PLAIN {
            let resp = if initial.is_empty() || initial == "=" {
                ask(self, "");
                match self.read_line(io).await? {
                    Some(l) => l,
                    None => return Ok(()),
                }
            } else {
                initial
            };
            if resp == "*" {
                {
                    self.reply(501, [5, 0, 0], "Authentication cancelled");
                    return Ok(());
                }
            }
            match decode(&resp).map(|raw| parse_plain(&raw)) {
                None | Some(Err(Plain::Malformed)) => None,
                Some(Err(Plain::OtherIdentity)) => {
                    log::warn!("listener: {}: AUTH PLAIN for another identity refused", self.peer);
                    self.reply(535, [5, 7, 8], "Authentication credentials invalid");
                    return Ok(());
                }
                Some(Ok(c)) => Some(c),
            }
        } else if mechanism == AUTH_LOGIN {
            let user = if initial.is_empty() {
                ask(self, "VXNlcm5hbWU6");
                match self.read_line(io).await? {
                    Some(l) => l,
                    None => return Ok(()),
                }
            } else {
                initial
            };
            ask(self, "UGFzc3dvcmQ6");
            let pass = match self.read_line(io).await? {
                Some(l) => l,
                None => return Ok(()),
            };
            if user == "*" || pass == "*" {
                {
                    self.reply(501, [5, 0, 0], "Authentication cancelled");
                    return Ok(());
                }
            }
            decode(&user)
                .and_then(|u| String::from_utf8(u).ok())
                .zip(decode(&pass))
        } else {
            {
                self.reply(504, [5, 5, 4], "Mechanism not supported");
                return Ok(());
            }
        };
        let Some((user, pass)) = creds else {
            {
                self.reply(501, [5, 5, 2], "Cannot decode the credentials");
                return Ok(());
            }
        };
        let Some(file) = self.attrs.listener.listen_users_file.clone() else {
            {
                self.reply(503, [5, 5, 1], "AUTH not available");
                return Ok(());
            }
        };
        let u = user.clone();
        let checked = tokio::task::spawn_blocking(move || {
            super::auth::check_password(std::path::Path::new(&file), &u, &pass)
        })
        .await;
        match checked {
            Ok(Ok(true)) => {
                log::info!("listener: {}: authenticated as {user}", self.peer);
                self.user = Some(user);
                self.reply(235, [2, 7, 0], "Authentication successful");
            }
            Ok(Ok(false)) => {
                log::warn!("listener: {}: authentication failed for {user:?}", self.peer);
                self.reply(535, [5, 7, 8], "Authentication credentials invalid");
            }
            Ok(Err(e)) => {
                log::error!("listener: {e}");
                self.reply(454, [4, 7, 0], "Temporary authentication failure");
            }
            Err(_) => self.reply(454, [4, 7, 0], "Temporary authentication failure"),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
