//! The one way tests mount mailfs: a real FUSE mount of a temporary spool, driven by the
//! `mailfs` binary in the foreground. Dropping the guard unmounts and kills only the process
//! it started, so a failing test never leaves a hung mount behind. Every shell step runs
//! under `timeout`.
#![allow(dead_code)]

pub mod postfix;
pub mod smtp;

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_mailfs");

pub fn is_mounted(mnt: &Path) -> bool {
    let want = mnt.to_string_lossy().to_string();
    std::fs::read_to_string("/proc/mounts")
        .map(|m| m.lines().any(|l| l.split(' ').nth(1) == Some(want.as_str())))
        .unwrap_or(false)
}

/// Waits until a message's `user.status` reads `want`.
pub fn wait_status(m: &Mount, name: &str, want: &str, secs: u64) {
    wait_for(&format!("{name} to be {want}"), Duration::from_secs(secs), || {
        m.sh(&format!("getfattr --only-values -n user.status {name}"))
            .stdout
            == want.as_bytes()
    });
}

pub fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        if t.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub struct Mount {
    pub tmp: tempfile::TempDir,
    pub spool: PathBuf,
    pub mnt: PathBuf,
    child: Option<Child>,
    pub opts: Vec<String>,
    /// Extra environment for the mailfs process (applied at each start).
    pub env: Vec<(String, String)>,
}

impl Mount {
    /// Mounts a fresh spool with `-o` options.
    pub fn new(opts: &[&str]) -> Mount {
        let tmp = tempfile::tempdir().expect("tempdir");
        let spool = tmp.path().join("spool");
        let mnt = tmp.path().join("mnt");
        std::fs::create_dir_all(&mnt).expect("mkdir mnt");
        let mut m = Mount {
            tmp,
            spool,
            mnt,
            child: None,
            opts: opts.iter().map(|s| s.to_string()).collect(),
            env: Vec::new(),
        };
        m.start();
        m
    }

    pub fn start(&mut self) {
        assert!(self.child.is_none());
        let mut cmd = Command::new(BIN);
        cmd.arg("mount").arg(&self.spool).arg(&self.mnt).arg("-f");
        if !self.opts.is_empty() {
            cmd.arg("-o").arg(self.opts.join(","));
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.tmp.path().join("mount.log"))
            .expect("log");
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            );
        cmd.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let child = cmd.spawn().expect("spawn mailfs");
        self.child = Some(child);
        let mnt = self.mnt.clone();
        let t = Instant::now();
        while !is_mounted(&mnt) {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(st)) = c.try_wait()
            {
                panic!("mailfs exited early with {st}: {}", self.log());
            }
            if t.elapsed() > Duration::from_secs(20) {
                panic!("mount did not come up: {}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // The mount shows before mailfs has answered the kernel's first request (INIT): a
        // stat of the root waits for that answer, so what INIT does (its log lines, the
        // options it sets) is done when this returns.
        let live = Command::new("timeout")
            .args(["20", "stat", "-c", "%i"])
            .arg(&self.mnt)
            .output()
            .expect("stat");
        assert!(live.status.success(), "mount not live: {}", self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.tmp.path().join("mount.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Unmounts with fusermount3 -u and waits for the server to exit; returns its exit code.
    pub fn stop(&mut self) -> i32 {
        let _ = Command::new("timeout")
            .args(["10", "fusermount3", "-u"])
            .arg(&self.mnt)
            .status();
        self.wait_exit()
    }

    /// Sends a signal to the server and waits for it to exit.
    pub fn signal(&mut self, sig: i32) -> i32 {
        if let Some(pid) = self.pid() {
            // SAFETY: plain kill(2) on the pid of the child this guard started.
            unsafe { libc::kill(pid as i32, sig) };
        }
        self.wait_exit()
    }

    fn wait_exit(&mut self) -> i32 {
        let Some(mut c) = self.child.take() else { return -1 };
        let t = Instant::now();
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                return st.code().unwrap_or(-1);
            }
            if t.elapsed() > Duration::from_secs(15) {
                let _ = c.kill();
                let _ = c.wait();
                self.force_unmount();
                panic!("mailfs did not exit: {}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for a server that is expected to die by itself (an injected crash), then clears
    /// the dead mount.
    pub fn wait_crashed(&mut self) -> Option<i32> {
        let mut c = self.child.take()?;
        let t = Instant::now();
        let code = loop {
            if let Ok(Some(st)) = c.try_wait() {
                break st.code();
            }
            if t.elapsed() > Duration::from_secs(15) {
                let _ = c.kill();
                let _ = c.wait();
                self.force_unmount();
                panic!("mailfs did not crash as planned: {}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        self.force_unmount();
        code
    }

    /// Kills the server with SIGKILL and clears the dead mount, as after a crash.
    pub fn crash(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.force_unmount();
    }

    pub fn restart(&mut self) {
        if self.child.is_some() {
            assert_eq!(self.stop(), 0, "clean exit: {}", self.log());
        }
        self.start();
    }

    fn force_unmount(&self) {
        if is_mounted(&self.mnt) {
            let _ = Command::new("timeout")
                .args(["10", "fusermount3", "-u", "-z"])
                .arg(&self.mnt)
                .status();
            if is_mounted(&self.mnt)
                && let Ok(c) = CString::new(self.mnt.as_os_str().as_bytes())
            {
                // SAFETY: lazy unmount of our own mount point.
                unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
            }
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.mnt.join(name)
    }

    /// Runs a shell command in the mount point, under `timeout 20`.
    pub fn sh(&self, script: &str) -> Output {
        Command::new("timeout")
            .args(["20", "bash", "-c", script])
            .current_dir(&self.mnt)
            .output()
            .expect("run shell")
    }

    /// Runs a shell command that must succeed; returns its stdout.
    pub fn ok(&self, script: &str) -> String {
        let o = self.sh(script);
        assert!(
            o.status.success(),
            "`{script}` failed ({}): {}{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Runs a shell command that must fail; returns its stderr.
    pub fn fails(&self, script: &str) -> String {
        let o = self.sh(script);
        assert!(!o.status.success(), "`{script}` succeeded but should fail");
        String::from_utf8_lossy(&o.stderr).into_owned()
    }

    /// getfattr --only-values of one attribute.
    pub fn attr(&self, file: &str, name: &str) -> String {
        self.ok(&format!("getfattr --only-values -n user.{name} '{file}'"))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = Command::new("timeout")
                .args(["10", "fusermount3", "-u"])
                .arg(&self.mnt)
                .status();
            if let Some(mut c) = self.child.take() {
                let t = Instant::now();
                while t.elapsed() < Duration::from_secs(5) {
                    if let Ok(Some(_)) = c.try_wait() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        self.force_unmount();
    }
}

/// Raw getxattr with an explicit buffer size, to check the size probe and ERANGE.
pub fn getxattr_sized(path: &Path, name: &str, size: usize) -> Result<Vec<u8>, i32> {
    let p = CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = CString::new(name).unwrap();
    let mut buf = vec![0u8; size];
    // SAFETY: valid C strings and a buffer of `size` bytes.
    let rc = unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), size) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
    }
    if size == 0 {
        // A size probe: the answer is the length, as zeroes.
        return Ok(vec![0u8; rc as usize]);
    }
    buf.truncate(rc as usize);
    Ok(buf)
}

pub fn setxattr(path: &Path, name: &str, value: &[u8]) -> Result<(), i32> {
    let p = CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = CString::new(name).unwrap();
    // SAFETY: valid C strings and value slice.
    let rc = unsafe { libc::setxattr(p.as_ptr(), n.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
    }
    Ok(())
}

pub fn message(from: &str, to: &str, subject: &str, body: &str) -> String {
    format!("From: {from}\nTo: {to}\nSubject: {subject}\n\n{body}\n")
}

/// A `mailfs` process a test started (e.g. `serve`): killed on drop, so a failing test leaves
/// no process behind.
pub struct Spawned(pub Option<Child>);

impl Spawned {
    /// Starts `mailfs ARGS...` with its output discarded.
    pub fn mailfs<I, S>(args: I) -> Spawned
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let c = Command::new(BIN)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn mailfs");
        Spawned(Some(c))
    }

    /// SIGTERM, then the exit code (waits at most 15 s).
    pub fn term(&mut self) -> Option<i32> {
        let mut c = self.0.take()?;
        // SAFETY: kill(2) on the pid of the child this guard started.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(15) {
            if let Ok(Some(st)) = c.try_wait() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
        None
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
