//! The one error type of mailfs and its one mapping to errno.
//!
//! Every layer (spool, attributes, file system, sender) returns [`Error`]; the FUSE adapter
//! turns it into an errno with [`Error::errno`] and the command line into a sysexits code with
//! [`Error::exit_code`], so each failure is classified exactly once.

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no such file: {0}")]
    NotFound(String),
    #[error("attribute {0} is not set")]
    NoAttr(String),
    #[error("only the user.* attribute namespace is supported: {0}")]
    NotSupported(String),
    #[error("attribute {0} is maintained by mailfs and cannot be changed")]
    ReadOnlyAttr(String),
    #[error("{0} is ready to send and can no longer be changed")]
    Frozen(String),
    #[error("invalid value for {name}: {why}")]
    Invalid { name: String, why: String },
    #[error("{0} is being sent right now")]
    Busy(String),
    #[error("{0} already exists")]
    Exists(String),
    #[error("{0} is a directory")]
    IsDir(String),
    #[error("{0} is not a directory")]
    NotDir(String),
    #[error("directory {0} is not empty")]
    NotEmpty(String),
    #[error("operation not permitted: {0}")]
    NotPermitted(String),
    #[error("read-only file system")]
    ReadOnlyFs,
    #[error("too large: {0}")]
    TooBig(String),
    #[error("file name too long: {0}")]
    NameTooLong(String),
    #[error("{0}")]
    AlreadySent(String),
    #[error("corrupt spool file {path}: {why}")]
    Corrupt { path: String, why: String },
    #[error("usage: {0}")]
    Usage(String),
    #[error("configuration error: {0}")]
    Config(String),
    /// A temporary condition the caller should retry (EX_TEMPFAIL): nothing serves the node.
    #[error("{0}")]
    Unavailable(String),
    /// Another user's message (EACCES, EX_NOPERM).
    #[error("permission denied: {0}")]
    Denied(String),
    #[error("{0}")]
    Io(#[from] io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(name: impl Into<String>, why: impl Into<String>) -> Self {
        Error::Invalid {
            name: name.into(),
            why: why.into(),
        }
    }

    /// The errno a file system call answers with.
    pub fn errno(&self) -> i32 {
        match self {
            Error::NotFound(_) => libc::ENOENT,
            Error::NoAttr(_) => libc::ENODATA,
            Error::NotSupported(_) => libc::ENOTSUP,
            Error::ReadOnlyAttr(_) | Error::NotPermitted(_) => libc::EPERM,
            Error::Frozen(_) | Error::Denied(_) => libc::EACCES,
            Error::Invalid { .. } | Error::Usage(_) | Error::Config(_) => libc::EINVAL,
            Error::Busy(_) => libc::EBUSY,
            Error::Unavailable(_) => libc::EAGAIN,
            Error::Exists(_) => libc::EEXIST,
            Error::IsDir(_) => libc::EISDIR,
            Error::NotDir(_) => libc::ENOTDIR,
            Error::NotEmpty(_) => libc::ENOTEMPTY,
            Error::ReadOnlyFs => libc::EROFS,
            Error::TooBig(_) => libc::EFBIG,
            Error::NameTooLong(_) => libc::ENAMETOOLONG,
            // A message this node already sent (or a restored copy says went out): the
            // errno tools print as "Operation already in progress".
            Error::AlreadySent(_) => libc::EALREADY,
            Error::Corrupt { .. } => libc::EIO,
            Error::Io(e) => e.raw_os_error().unwrap_or(libc::EIO),
        }
    }

    /// The sysexits code a command exits with.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => 64,
            Error::Invalid { .. }
            | Error::Corrupt { .. }
            | Error::TooBig(_)
            | Error::NameTooLong(_)
            | Error::AlreadySent(_) => 65,
            Error::NotFound(_) => 66,
            Error::Config(_) => 78,
            Error::Busy(_) | Error::Unavailable(_) => 75,
            Error::Denied(_) => 77,
            // By the errno, or by the kind of one given a message (a path) on the way.
            Error::Io(e) => match (e.raw_os_error(), e.kind()) {
                (Some(libc::ENOSPC | libc::EAGAIN | libc::EINTR), _) => 75,
                (
                    None,
                    io::ErrorKind::StorageFull | io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted,
                ) => 75,
                (Some(libc::ENOENT), _) | (None, io::ErrorKind::NotFound) => 66,
                _ => 73,
            },
            _ => 73,
        }
    }

    /// A submission's failure to store (a full disk, an unreadable spool) as the temporary
    /// failure it is for the one submitting (75), whichever way it came: `mailfs sendmail`
    /// run directly or through the serving process. Other errors are what they are.
    pub fn spool_unavailable(self) -> Error {
        match self {
            Error::Io(io) => Error::Unavailable(format!("spool unavailable: {io}")),
            other => other,
        }
    }

    /// Whether this is worth logging above debug level (lookups of missing names are routine).
    pub fn is_routine(&self) -> bool {
        matches!(
            self,
            Error::NotFound(_) | Error::NoAttr(_) | Error::NotSupported(_)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_mapping_matches_spec() {
        assert_eq!(Error::invalid("port", "x").errno(), libc::EINVAL);
        assert_eq!(Error::Frozen("a.eml".into()).errno(), libc::EACCES);
        assert_eq!(Error::ReadOnlyAttr("status".into()).errno(), libc::EPERM);
        assert_eq!(Error::NoAttr("x".into()).errno(), libc::ENODATA);
        assert_eq!(Error::NotSupported("trusted.x".into()).errno(), libc::ENOTSUP);
        assert_eq!(Error::Busy("a".into()).errno(), libc::EBUSY);
        let e: Error = io::Error::from_raw_os_error(libc::ENOSPC).into();
        assert_eq!(e.errno(), libc::ENOSPC);
        assert_eq!(e.exit_code(), 75);
    }

    #[test]
    fn each_error_has_the_errno_spec_names() {
        let cases: [(Error, i32); 13] = [
            (Error::NotFound("x".into()), libc::ENOENT),
            (Error::NoAttr("x".into()), libc::ENODATA),
            (Error::NotSupported("x".into()), libc::ENOTSUP),
            (Error::ReadOnlyAttr("x".into()), libc::EPERM),
            (Error::NotPermitted("x".into()), libc::EPERM),
            (Error::Frozen("x".into()), libc::EACCES),
            (Error::Denied("x".into()), libc::EACCES),
            (Error::invalid("x", "y"), libc::EINVAL),
            (Error::Busy("x".into()), libc::EBUSY),
            (Error::Exists("x".into()), libc::EEXIST),
            (Error::TooBig("x".into()), libc::EFBIG),
            (Error::NameTooLong("x".into()), libc::ENAMETOOLONG),
            (Error::Io(io::Error::from_raw_os_error(libc::EXDEV)), libc::EXDEV),
        ];
        for (e, want) in cases {
            assert_eq!(e.errno(), want, "{e}");
        }
    }
}
