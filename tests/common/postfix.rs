//! A private Postfix instance on 127.0.0.1 acting as a TLS smarthost with SMTP AUTH: a
//! submission port (STARTTLS) and an SMTPS port (implicit TLS), a self-signed certificate
//! for 127.0.0.1, one SASL user in a sasldb, relaying what it accepts to a given port (an
//! smtp-sink). Its configuration, queue and log live in its own directory; dropping the guard
//! stops that instance only.
#![allow(dead_code)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::smtp::free_port;

pub const USER: &str = "relayuser@smarthost.test";
pub const PASSWORD: &str = "s3cret pass phrase";

pub struct Smarthost {
    pub dir: PathBuf,
    pub conf: PathBuf,
    /// The CA that signed the server's certificate (what `ca_file` names).
    pub cert: PathBuf,
    pub submission: u16,
    pub smtps: u16,
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Smarthost {
    pub fn start(base: &Path, relay_port: u16) -> Smarthost {
        Self::start_with_mechs(base, relay_port, "PLAIN LOGIN")
    }

    /// A smarthost offering only the SASL mechanisms in `mechs` (e.g. "LOGIN").
    pub fn start_with_mechs(base: &Path, relay_port: u16, mechs: &str) -> Smarthost {
        Self::start_full(base, relay_port, mechs, "")
    }

    /// With `extra` appended to main.cf (later settings win in Postfix).
    pub fn start_full(base: &Path, relay_port: u16, mechs: &str, extra: &str) -> Smarthost {
        let dir = base.join("postfix");
        let conf = dir.join("conf");
        for d in ["conf/sasl", "queue", "data"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        // Postfix's daemons run as user postfix and must reach every parent directory.
        run(Command::new("chmod").arg("755").arg(base).arg(&dir));
        run(Command::new("chown").arg("postfix").arg(dir.join("data")));
        // A private CA and a server certificate it signed, as a company relay would have;
        // clients trust the CA through ca_file.
        let ca = conf.join("ca.pem");
        let ssl = |args: &[&str]| {
            run(Command::new("timeout")
                .arg("60")
                .arg("openssl")
                .args(args)
                .current_dir(&conf));
        };
        ssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-subj",
            "/CN=mailfs test CA",
        ]);
        std::fs::write(
            conf.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
        )
        .unwrap();
        ssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ]);
        ssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            "cert.pem",
            "-extfile",
            "server.ext",
        ]);
        let (submission, smtps) = (free_port(), free_port());
        let d = dir.display();
        std::fs::write(
            conf.join("main.cf"),
            format!(
                "compatibility_level = 3.6\n\
                 queue_directory = {d}/queue\n\
                 data_directory = {d}/data\n\
                 maillog_file_prefixes = {d}\n\
                 maillog_file = {d}/postfix.log\n\
                 inet_interfaces = 127.0.0.1\n\
                 inet_protocols = ipv4\n\
                 myhostname = smarthost.test\n\
                 mydestination =\n\
                 mynetworks = 127.0.0.1/32\n\
                 relayhost = [127.0.0.1]:{relay_port}\n\
                 smtp_tls_security_level = none\n\
                 smtpd_tls_cert_file = {d}/conf/cert.pem\n\
                 smtpd_tls_key_file = {d}/conf/key.pem\n\
                 smtpd_tls_security_level = may\n\
                 smtpd_tls_loglevel = 1\n\
                 smtpd_tls_auth_only = yes\n\
                 smtpd_sasl_auth_enable = yes\n\
                 smtpd_sasl_type = cyrus\n\
                 smtpd_sasl_path = smtpd\n\
                 smtpd_relay_restrictions = permit_sasl_authenticated, reject\n\
                 smtpd_recipient_restrictions = permit_sasl_authenticated, reject\n\
                 {extra}\n"
            ),
        )
        .unwrap();
        let mut master = format!(
            "127.0.0.1:{submission} inet n - n - - smtpd\n\
             127.0.0.1:{smtps} inet n - n - - smtpd -o smtpd_tls_wrappermode=yes\n"
        );
        for (name, kind, private, proc_limit, cmd) in [
            ("pickup", "unix", "n", "1", "pickup"),
            ("cleanup", "unix", "n", "0", "cleanup"),
            ("qmgr", "unix", "n", "1", "qmgr"),
            ("tlsmgr", "unix", "-", "1", "tlsmgr"),
            ("rewrite", "unix", "-", "-", "trivial-rewrite"),
            ("bounce", "unix", "-", "0", "bounce"),
            ("defer", "unix", "-", "0", "bounce"),
            ("trace", "unix", "-", "0", "bounce"),
            ("verify", "unix", "-", "1", "verify"),
            ("flush", "unix", "n", "0", "flush"),
            ("proxymap", "unix", "-", "-", "proxymap"),
            ("smtp", "unix", "-", "-", "smtp"),
            ("relay", "unix", "-", "-", "smtp"),
            ("showq", "unix", "n", "-", "showq"),
            ("error", "unix", "-", "-", "error"),
            ("retry", "unix", "-", "-", "error"),
            ("discard", "unix", "-", "-", "discard"),
            ("anvil", "unix", "-", "1", "anvil"),
            ("local", "unix", "-", "-", "local"),
            ("scache", "unix", "-", "1", "scache"),
            ("postlog", "unix-dgram", "n", "1", "postlogd"),
        ] {
            // local(8) runs as root to switch to the recipient: unprivileged column "n".
            let unpriv = if name == "local" { "n" } else { "-" };
            master.push_str(&format!(
                "{name} {kind} {private} {unpriv} n - {proc_limit} {cmd}\n"
            ));
        }
        std::fs::write(conf.join("master.cf"), master).unwrap();
        // Debian's Postfix reads Cyrus SASL settings from $config_directory/sasl.
        let sasldb = conf.join("sasl/sasldb2");
        std::fs::write(
            conf.join("sasl/smtpd.conf"),
            format!(
                "pwcheck_method: auxprop\nauxprop_plugin: sasldb\nsasldb_path: {}\nmech_list: {mechs}\n",
                sasldb.display()
            ),
        )
        .unwrap();
        let (user, realm) = USER.split_once('@').unwrap();
        let mut p = Command::new("saslpasswd2")
            .args(["-p", "-c", "-f"])
            .arg(&sasldb)
            .args(["-u", realm, user])
            .stdin(Stdio::piped())
            .spawn()
            .expect("saslpasswd2 (apt-get install sasl2-bin)");
        {
            use std::io::Write;
            p.stdin.take().unwrap().write_all(PASSWORD.as_bytes()).unwrap();
        }
        assert!(p.wait().unwrap().success());
        run(Command::new("chown").arg("postfix").arg(&sasldb));
        run(Command::new("timeout")
            .args(["60", "postfix", "-c"])
            .arg(&conf)
            .arg("start"));
        let h = Smarthost {
            dir,
            conf,
            cert: ca,
            submission,
            smtps,
        };
        let t = Instant::now();
        while TcpStream::connect(("127.0.0.1", submission)).is_err()
            || TcpStream::connect(("127.0.0.1", smtps)).is_err()
        {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "postfix did not listen: {}",
                h.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        h
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("postfix.log")).unwrap_or_default()
    }
}

impl Drop for Smarthost {
    fn drop(&mut self) {
        let _ = Command::new("timeout")
            .args(["30", "postfix", "-c"])
            .arg(&self.conf)
            .arg("stop")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
