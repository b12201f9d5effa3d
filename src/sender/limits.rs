//! The node's send-rate limits (`ratelimit_time`, `domlimit_time`), shared by the workers.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The node's send-rate limits, shared by the workers: a send takes a slot right before its
/// transaction starts, so the gaps the server sees are never below the settings.
#[derive(Default)]
pub struct Limiter {
    last: Option<Instant>,
    last_dom: HashMap<String, Instant>,
}

impl Limiter {
    /// When a send to `domain` may start (now or later).
    pub fn ready_at(&self, now: Instant, domain: &str, rate: f64, domrate: f64) -> Instant {
        let mut at = now;
        if let Some(l) = self.last {
            at = at.max(l + Duration::from_secs_f64(rate));
        }
        if let Some(l) = self.last_dom.get(domain) {
            at = at.max(*l + Duration::from_secs_f64(domrate));
        }
        at
    }

    /// Takes the slot if it is free now; otherwise says how long to wait.
    pub fn try_take(&mut self, domain: &str, rate: f64, domrate: f64) -> Option<Duration> {
        let now = Instant::now();
        let at = self.ready_at(now, domain, rate, domrate);
        if at > now {
            return Some(at - now);
        }
        self.last = Some(now);
        self.last_dom.insert(domain.to_string(), now);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_spaces_sends() {
        let mut l = Limiter::default();
        assert!(l.try_take("x.org", 0.2, 0.0).is_none());
        let w = l.try_take("y.org", 0.2, 0.0).unwrap();
        assert!(w > Duration::from_millis(150));
        let mut l = Limiter::default();
        assert!(l.try_take("x.org", 0.0, 1.0).is_none());
        assert!(l.try_take("y.org", 0.0, 1.0).is_none());
        assert!(l.try_take("x.org", 0.0, 1.0).is_some());
    }
}
