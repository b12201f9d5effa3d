//! The sender's wall clock, injectable: the lifecycle rules (next_try_date, queue_time,
//! expiry, delay notices) read the time through a [`Clock`], so tests move time forward
//! without sleeping. Timers between attempts stay on `Instant` (monotonic); only the unix
//! seconds written into the spool come from here.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

/// Unix time in whole seconds, as the spool stores dates.
pub trait Clock: Send + Sync {
    fn now(&self) -> i64;
}

/// The system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        crate::model::attrs::now_secs()
    }
}

/// A clock that moves only when told to (tests).
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn at(secs: i64) -> Arc<ManualClock> {
        Arc::new(ManualClock(AtomicI64::new(secs)))
    }
    pub fn set(&self, secs: i64) {
        self.0.store(secs, Ordering::SeqCst);
    }
    pub fn advance(&self, secs: i64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// The monotonic instant of unix time `secs` as seen from `now` (the clock's present): at
/// once when it is not in the future.
pub fn instant_of(secs: Option<i64>, now: i64) -> Instant {
    match secs {
        Some(s) if s > now => Instant::now() + Duration::from_secs((s - now) as u64),
        _ => Instant::now(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told_and_instants_follow_it() {
        let c = ManualClock::at(1_000);
        assert_eq!(c.now(), 1_000);
        c.advance(30);
        assert_eq!(c.now(), 1_030);
        let before = Instant::now();
        // A date 60 s after the clock's present is 60 s of monotonic time away.
        let at = instant_of(Some(1_090), c.now());
        assert!(at >= before + Duration::from_secs(59));
        assert!(at <= Instant::now() + Duration::from_secs(60));
        // Past or absent dates are due at once.
        assert!(instant_of(Some(1_000), c.now()) <= Instant::now());
        assert!(instant_of(None, c.now()) <= Instant::now());
        c.set(5);
        assert_eq!(c.now(), 5);
    }
}
