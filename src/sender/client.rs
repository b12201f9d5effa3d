//! One SMTP client session over tokio: connect, greeting, EHLO (HELO when EHLO is refused),
//! STARTTLS, AUTH, and transactions, pipelined when the server offers PIPELINING (RFC 2920).
//!
//! Replies are parsed by smtp-proto (Stalwart's parser, lenient about non-UTF-8 text). Every
//! step that waits on the peer (connect, TLS handshake, each reply, each write) is bounded by
//! `handshake_time`, and every reply by size: a reply longer than [`MAX_REPLY`] (1 MiB) ends the
//! session with a temporary failure, and what is kept of a reply's text is cut (a line at
//! [`MAX_LINE`], the text at 3 KiB plus its last line), so a hostile or broken peer costs
//! neither unbounded memory nor unbounded time, and its reply's code still decides.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use rustls::ClientConfig;
use smtp_proto::{
    AUTH_LOGIN, AUTH_PLAIN, EXT_8BIT_MIME, EXT_PIPELINING, EXT_SMTP_UTF8, EXT_START_TLS, EhloResponse,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::reply::ReplyReader;
pub use super::reply::{Fail, MAX_LINE, MAX_REPLY, Reply, Stage};
use super::transport::{Envelope, RcptOutcome, classify};
use crate::mail::wire::WireChunks;

/// Message data goes out in writes of about this size; the end mark rides on the last one.
const WRITE_CHUNK: usize = 64 * 1024;

/// What the session needs to know to open.
#[derive(Clone)]
pub struct Settings {
    pub timeout: Duration,
    pub helo: String,
    /// Implicit TLS from the first byte (`tls=tls`).
    pub implicit_tls: Option<Arc<ClientConfig>>,
    /// STARTTLS with this configuration; `required` fails the host when it is not offered.
    pub starttls: Option<(Arc<ClientConfig>, bool)>,
    /// AUTH PLAIN or LOGIN with (user, secret); sent only over TLS unless `auth_in_clear`.
    pub auth: Option<(String, String)>,
    pub auth_in_clear: bool,
}

/// Where to connect: the host name (for TLS and messages) and either a resolved address
/// (MX delivery) or a port to resolve the name with (relays).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub addr: Option<SocketAddr>,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.addr {
            Some(a) if a.ip().to_string() != self.host => write!(f, "{}[{}]", self.host, a),
            _ => write!(f, "{}:{}", self.host, self.port),
        }
    }
}

#[allow(clippy::large_enum_variant)]
enum Stream {
    Plain(TcpStream),
    Tls(TlsStream<TcpStream>),
    Gone,
}

pub struct Session {
    stream: Stream,
    /// Bytes received and not yet parsed (pipelined replies can arrive together).
    buf: Vec<u8>,
    t: Duration,
    caps: u32,
    auth_mechs: u64,
    tls: bool,
    pub target: Target,
    /// The last transaction got a MAIL FROM reply other than 421: the server took part in
    /// it. A kept session that fails before that (the server closed it while it was idle,
    /// or said 421) sent nothing the server kept: the transaction may go again on a new one.
    pub engaged: bool,
}

fn timed_out(what: &str, t: Duration) -> String {
    format!("timed out after {}s waiting for {what}", t.as_secs_f64())
}

impl Session {
    /// Opens a session ready for transactions: connected, greeted, introduced, encrypted
    /// and authenticated as the settings ask.
    pub async fn open(target: &Target, s: &Settings) -> Result<Session, Fail> {
        let t = s.timeout;
        let connect = async {
            match target.addr {
                Some(a) => TcpStream::connect(a).await,
                None => TcpStream::connect((target.host.as_str(), target.port)).await,
            }
        };
        let tcp = tokio::time::timeout(t, connect)
            .await
            .map_err(|_| {
                Fail::local(
                    Stage::Connect,
                    format!("{} ({target})", timed_out("the connection", t)),
                )
            })?
            .map_err(|e| Fail::local(Stage::Connect, format!("connect to {target}: {e}")))?;
        // Commands and the end of data are small writes: without this each waits ~40 ms
        // for the peer's delayed ACK.
        let _ = tcp.set_nodelay(true);
        let mut sess = Session {
            stream: Stream::Plain(tcp),
            buf: Vec::new(),
            t,
            caps: 0,
            auth_mechs: 0,
            tls: false,
            target: target.clone(),
            engaged: false,
        };
        if let Some(cfg) = &s.implicit_tls {
            sess.handshake(cfg.clone()).await?;
        }
        let greeting = sess.read_reply(Stage::Greeting, "the greeting").await?;
        if greeting.code != 220 {
            return Err(sess.fail_with(Stage::Greeting, &greeting));
        }
        sess.hello(&s.helo).await?;
        if let Some((cfg, required)) = &s.starttls
            && !sess.tls
        {
            if sess.caps & EXT_START_TLS != 0 {
                let r = sess
                    .command(Stage::Tls, b"STARTTLS\r\n", "the STARTTLS reply")
                    .await?;
                if r.code == 220 {
                    sess.handshake(cfg.clone()).await?;
                    sess.hello(&s.helo).await?;
                } else if *required {
                    return Err(sess.fail_with(Stage::Tls, &r));
                }
            } else if *required {
                return Err(Fail::local(
                    Stage::Tls,
                    format!("{target} does not offer STARTTLS (tls=starttls)"),
                ));
            }
        }
        if let Some((user, secret)) = &s.auth {
            if !sess.tls && !s.auth_in_clear {
                return Err(Fail::local(
                    Stage::Auth,
                    format!("{target} offers no TLS: AUTH is not sent in clear (set tls=none to allow it)"),
                ));
            }
            sess.authenticate(user, secret).await?;
        }
        Ok(sess)
    }

    fn fail_with(&self, stage: Stage, r: &Reply) -> Fail {
        let mut f = Fail::reply(stage, r);
        f.text = format!("{} (from {})", f.text, self.target);
        f
    }

    async fn handshake(&mut self, cfg: Arc<ClientConfig>) -> Result<(), Fail> {
        let name = super::tls::server_name(&self.target.host).map_err(|e| Fail::local(Stage::Tls, e))?;
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Gone) else {
            return Err(Fail::local(Stage::Tls, "TLS requested twice"));
        };
        let tls = tokio::time::timeout(self.t, TlsConnector::from(cfg).connect(name, tcp))
            .await
            .map_err(|_| {
                Fail::local(
                    Stage::Tls,
                    format!("{} ({})", timed_out("the TLS handshake", self.t), self.target),
                )
            })?
            .map_err(|e| Fail::local(Stage::Tls, format!("TLS with {}: {e}", self.target)))?;
        self.stream = Stream::Tls(tls);
        self.tls = true;
        // Nothing sent before the handshake may be taken as said inside it (RFC 3207 §6).
        self.buf.clear();
        Ok(())
    }

    /// EHLO, or HELO when the server does not know EHLO (RFC 5321 §4.1.1.1).
    async fn hello(&mut self, name: &str) -> Result<(), Fail> {
        let r = self
            .command(
                Stage::Hello,
                format!("EHLO {name}\r\n").as_bytes(),
                "the EHLO reply",
            )
            .await?;
        if r.code == 250 {
            // A reply the capability parser cannot read still greets us: just no extensions.
            match EhloResponse::parse(&mut r.raw.iter()) {
                Ok(e) => {
                    self.caps = e.capabilities;
                    self.auth_mechs = e.auth_mechanisms;
                }
                Err(_) => {
                    self.caps = 0;
                    self.auth_mechs = 0;
                }
            }
            return Ok(());
        }
        if !(500..600).contains(&r.code) {
            return Err(self.fail_with(Stage::Hello, &r));
        }
        let h = self
            .command(
                Stage::Hello,
                format!("HELO {name}\r\n").as_bytes(),
                "the HELO reply",
            )
            .await?;
        if h.code != 250 {
            return Err(self.fail_with(Stage::Hello, &h));
        }
        self.caps = 0;
        self.auth_mechs = 0;
        Ok(())
    }

    async fn authenticate(&mut self, user: &str, secret: &str) -> Result<(), Fail> {
        let b64 = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
        let done = if self.auth_mechs & AUTH_PLAIN != 0 {
            let token = b64(format!("\0{user}\0{secret}").as_bytes());
            self.command(
                Stage::Auth,
                format!("AUTH PLAIN {token}\r\n").as_bytes(),
                "the AUTH reply",
            )
            .await?
        } else if self.auth_mechs & AUTH_LOGIN != 0 {
            let r = self
                .command(Stage::Auth, b"AUTH LOGIN\r\n", "the AUTH reply")
                .await?;
            if r.code != 334 {
                return Err(self.fail_with(Stage::Auth, &r));
            }
            let r = self
                .command(
                    Stage::Auth,
                    format!("{}\r\n", b64(user.as_bytes())).as_bytes(),
                    "the AUTH reply",
                )
                .await?;
            if r.code != 334 {
                return Err(self.fail_with(Stage::Auth, &r));
            }
            self.command(
                Stage::Auth,
                format!("{}\r\n", b64(secret.as_bytes())).as_bytes(),
                "the AUTH reply",
            )
            .await?
        } else {
            return Err(Fail::local(
                Stage::Auth,
                format!("{} offers neither AUTH PLAIN nor AUTH LOGIN", self.target),
            ));
        };
        if done.code != 235 {
            return Err(self.fail_with(Stage::Auth, &done));
        }
        Ok(())
    }

    async fn write(&mut self, stage: Stage, bytes: &[u8]) -> Result<(), Fail> {
        let t = self.t;
        let res = tokio::time::timeout(t, async {
            match &mut self.stream {
                Stream::Plain(s) => s.write_all(bytes).await,
                Stream::Tls(s) => {
                    s.write_all(bytes).await?;
                    s.flush().await
                }
                Stream::Gone => Err(std::io::ErrorKind::NotConnected.into()),
            }
        })
        .await;
        match res {
            Err(_) => Err(Fail::local(stage, timed_out("the server to take data", t))),
            Ok(Err(e)) => Err(Fail::local(stage, format!("writing to {}: {e}", self.target))),
            Ok(Ok(())) => Ok(()),
        }
    }

    async fn command(&mut self, stage: Stage, cmd: &[u8], what: &str) -> Result<Reply, Fail> {
        self.write(stage, cmd).await?;
        self.read_reply(stage, what).await
    }

    /// Reads one whole reply, bounded in time and size.
    async fn read_reply(&mut self, stage: Stage, what: &str) -> Result<Reply, Fail> {
        let t = self.t;
        match tokio::time::timeout(t, self.read_reply_unbounded_time(stage)).await {
            Ok(r) => r,
            Err(_) => Err(Fail::local(
                stage,
                format!("{} from {}", timed_out(what, t), self.target),
            )),
        }
    }

    async fn read_reply_unbounded_time(&mut self, stage: Stage) -> Result<Reply, Fail> {
        let mut rd = ReplyReader::default();
        let mut chunk = [0u8; 4096];
        loop {
            match rd.feed(&mut self.buf) {
                Ok(Some(r)) => return Ok(r),
                Ok(None) => {}
                Err(why) => return Err(Fail::local(stage, format!("{} {why}", self.target))),
            }
            let n = match &mut self.stream {
                Stream::Plain(s) => s.read(&mut chunk).await,
                Stream::Tls(s) => s.read(&mut chunk).await,
                Stream::Gone => Err(std::io::ErrorKind::NotConnected.into()),
            }
            .map_err(|e| Fail::local(stage, format!("reading from {}: {e}", self.target)))?;
            if n == 0 {
                return Err(Fail::local(
                    stage,
                    format!("{} closed the connection", self.target),
                ));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// One transaction. `Ok` carries each recipient's outcome and leaves the session usable;
    /// `Err` means the session is in an unknown state and must be dropped (its outcomes
    /// say what is known).
    pub async fn send(
        &mut self,
        env: &Envelope,
        mut data: WireChunks<'_>,
    ) -> Result<Vec<RcptOutcome>, Vec<RcptOutcome>> {
        let st = Stage::Transaction;
        let all = |o: RcptOutcome| env.to.iter().map(|_| o.clone()).collect::<Vec<_>>();
        let lost = |f: Fail| all(f.outcome());
        let body = if self.caps & EXT_8BIT_MIME != 0 {
            " BODY=8BITMIME"
        } else {
            ""
        };
        // An address the server cannot be given (a local part that is not ASCII, without
        // SMTPUTF8) fails for good here rather than going out raw.
        let utf8_ok = self.caps & EXT_SMTP_UTF8 != 0;
        let needs_utf8 = |a: &str| {
            format!(
                "553 5.6.7 {} does not offer SMTPUTF8, which the address {a} needs",
                self.target
            )
        };
        let from = WireAddr::of(&env.from);
        if from.smtputf8 && !utf8_ok {
            return Ok(all(RcptOutcome::PermFail(needs_utf8(&env.from))));
        }
        let to: Vec<WireAddr> = env.to.iter().map(|a| WireAddr::of(a)).collect();
        let mut out: Vec<Option<RcptOutcome>> = env
            .to
            .iter()
            .zip(&to)
            .map(|(a, w)| (w.smtputf8 && !utf8_ok).then(|| RcptOutcome::PermFail(needs_utf8(a))))
            .collect();
        if out.iter().all(Option::is_some) {
            return Ok(out.into_iter().flatten().collect());
        }
        // Only with the server's word for it (RFC 6531 §3.4), and only when an address that
        // goes out needs it: a strict server refuses the parameter it did not offer.
        let utf8 = utf8_ok && (from.smtputf8 || to.iter().zip(&out).any(|(w, o)| w.smtputf8 && o.is_none()));
        let param = if utf8 { " SMTPUTF8" } else { "" };
        let mail = format!("MAIL FROM:<{}>{body}{param}\r\n", from.text);
        // Each RCPT with the index of its recipient in the envelope.
        let rcpts: Vec<(usize, String)> = to
            .iter()
            .enumerate()
            .filter(|(i, _)| out[*i].is_none())
            .map(|(i, w)| (i, format!("RCPT TO:<{}>\r\n", w.text)))
            .collect();
        let data_reply;
        self.engaged = false;
        // 421: the server is closing the session (RFC 5321 §3.8); what it said is the outcome.
        let closing = |m: &Reply| (m.code == 421).then(|| all(classify(m.code, m.text())));
        if self.caps & EXT_PIPELINING != 0 {
            // MAIL, every RCPT and DATA in one write, then their replies in order.
            let mut batch = mail.into_bytes();
            for (_, r) in &rcpts {
                batch.extend_from_slice(r.as_bytes());
            }
            batch.extend_from_slice(b"DATA\r\n");
            self.write(st, &batch).await.map_err(lost)?;
            let m = self.read_reply(st, "the MAIL FROM reply").await.map_err(lost)?;
            if let Some(o) = closing(&m) {
                return Err(o);
            }
            self.engaged = true;
            for (i, _) in &rcpts {
                let r = self.read_reply(st, "the RCPT TO reply").await.map_err(lost)?;
                if !r.positive() {
                    out[*i] = Some(classify(r.code, r.text()));
                }
            }
            let d = self.read_reply(st, "the DATA reply").await.map_err(lost)?;
            if !m.positive() || out.iter().all(Option::is_some) {
                if d.code == 354 {
                    // The server took DATA although nothing can be delivered: end it empty.
                    self.write(st, b".\r\n").await.map_err(lost)?;
                    self.read_reply(st, "the end-of-data reply").await.map_err(lost)?;
                }
                self.reset().await.map_err(lost)?;
                if !m.positive() {
                    return Ok(all(classify(m.code, m.text())));
                }
                return Ok(out.into_iter().flatten().collect());
            }
            data_reply = d;
        } else {
            let m = self
                .command(st, mail.as_bytes(), "the MAIL FROM reply")
                .await
                .map_err(lost)?;
            if let Some(o) = closing(&m) {
                return Err(o);
            }
            self.engaged = true;
            if !m.positive() {
                self.reset().await.map_err(lost)?;
                return Ok(all(classify(m.code, m.text())));
            }
            for (i, r) in &rcpts {
                let r = self
                    .command(st, r.as_bytes(), "the RCPT TO reply")
                    .await
                    .map_err(lost)?;
                if !r.positive() {
                    out[*i] = Some(classify(r.code, r.text()));
                }
            }
            if out.iter().all(Option::is_some) {
                self.reset().await.map_err(lost)?;
                return Ok(out.into_iter().flatten().collect());
            }
            data_reply = self
                .command(st, b"DATA\r\n", "the DATA reply")
                .await
                .map_err(lost)?;
        }
        let fill = |out: Vec<Option<RcptOutcome>>, o: RcptOutcome| {
            out.into_iter()
                .map(|x| x.unwrap_or_else(|| o.clone()))
                .collect::<Vec<_>>()
        };
        if data_reply.code != 354 {
            self.reset().await.map_err(lost)?;
            return Ok(fill(out, classify(data_reply.code, data_reply.text())));
        }
        self.write_data(&mut data)
            .await
            .map_err(|f| fill(out.clone(), f.outcome()))?;
        let end = self
            .read_reply(st, "the end-of-data reply")
            .await
            .map_err(|f| fill(out.clone(), f.outcome()))?;
        Ok(fill(out, classify(end.code, end.text())))
    }

    /// The message with dot-stuffing, then the end mark: `.` CRLF alone after content that
    /// ends in a line end, CRLF `.` CRLF otherwise (SPEC §7). A read error stops before the
    /// end mark, so a truncated message is never accepted.
    async fn write_data(&mut self, data: &mut WireChunks<'_>) -> Result<(), Fail> {
        let st = Stage::Transaction;
        let mut out = Vec::with_capacity(WRITE_CHUNK + 1024);
        let mut at_line_start = true;
        let mut prev = [0u8; 2];
        let mut total = 0u64;
        for chunk in data.by_ref() {
            total += chunk.len() as u64;
            for &b in &chunk {
                if at_line_start && b == b'.' {
                    out.push(b'.');
                }
                out.push(b);
                at_line_start = b == b'\n';
                prev = [prev[1], b];
            }
            if out.len() >= WRITE_CHUNK {
                self.write(st, &out).await?;
                out.clear();
            }
        }
        if let Some(e) = data.error.take() {
            return Err(Fail::local(st, format!("cannot read message: {e}")));
        }
        if total == 0 || prev == *b"\r\n" {
            out.extend_from_slice(b".\r\n");
        } else {
            out.extend_from_slice(b"\r\n.\r\n");
        }
        self.write(st, &out).await
    }

    async fn reset(&mut self) -> Result<(), Fail> {
        let r = self
            .command(Stage::Transaction, b"RSET\r\n", "the RSET reply")
            .await?;
        if r.code != 250 {
            return Err(self.fail_with(Stage::Transaction, &r));
        }
        Ok(())
    }

    /// Says goodbye, briefly: a peer that does not answer is simply left.
    pub async fn quit(mut self) {
        self.t = self.t.min(Duration::from_secs(2));
        let _ = self
            .command(Stage::Transaction, b"QUIT\r\n", "the QUIT reply")
            .await;
    }
}

/// An address as MAIL FROM and RCPT TO carry it: an internationalised domain as its A-labels
/// (RFC 5890), which every server takes and which is the same domain; `smtputf8` when what is
/// left is not ASCII (the local part), which only a server offering SMTPUTF8 (RFC 6531) may be
/// given, with that parameter on MAIL FROM.
struct WireAddr {
    text: String,
    smtputf8: bool,
}

impl WireAddr {
    fn of(addr: &str) -> WireAddr {
        if addr.is_ascii() {
            return WireAddr {
                text: addr.to_string(),
                smtputf8: false,
            };
        }
        let text = match addr.rsplit_once('@') {
            Some((local, domain)) if !domain.is_ascii() => match idna::domain_to_ascii(domain) {
                Ok(a) => format!("{local}@{a}"),
                Err(_) => addr.to_string(),
            },
            _ => addr.to_string(),
        };
        WireAddr {
            smtputf8: !text.is_ascii(),
            text,
        }
    }
}

#[cfg(test)]
mod wire_addr_tests {
    use super::WireAddr;

    #[test]
    fn domains_go_out_as_a_labels_and_only_a_non_ascii_local_part_needs_smtputf8() {
        let w = WireAddr::of("b@exämple.org");
        assert_eq!((w.text.as_str(), w.smtputf8), ("b@xn--exmple-cua.org", false));
        let w = WireAddr::of("josé@example.org");
        assert_eq!((w.text.as_str(), w.smtputf8), ("josé@example.org", true));
        let w = WireAddr::of("josé@exämple.org");
        assert_eq!((w.text.as_str(), w.smtputf8), ("josé@xn--exmple-cua.org", true));
        let w = WireAddr::of("a@example.org");
        assert_eq!((w.text.as_str(), w.smtputf8), ("a@example.org", false));
        assert!(!WireAddr::of("").smtputf8);
    }
}
