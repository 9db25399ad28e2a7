//! Account lockout: consecutive failed logins lock an account for a cool-down. Pure state
//! transitions; the store keeps the state so that every node sees the same lock.

use time::{Duration, OffsetDateTime};

/// The lockout rule: after `failures` consecutive failed logins the account is locked for
/// `cooldown`. `failures == 0` switches lockout off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    pub failures: u32,
    pub cooldown: Duration,
}

/// An account's failed-login state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LockoutState {
    /// Consecutive failures since the last success, unlock or expired lock.
    pub failures: u32,
    /// Locked until then, when locked.
    pub locked_until: Option<OffsetDateTime>,
}

impl LockoutState {
    /// Whether the account is locked at `now`.
    pub fn is_locked(&self, now: OffsetDateTime) -> bool {
        self.locked_until.is_some_and(|until| until > now)
    }

    /// The state after a failed login at `now`, and whether this failure locked the account.
    /// Failures while locked are not counted (the lock is not extended); once a lock has run
    /// out, counting starts again from zero.
    pub fn after_failure(self, policy: LockoutPolicy, now: OffsetDateTime) -> (LockoutState, bool) {
        if self.is_locked(now) {
            return (self, false);
        }
        let failures = if self.locked_until.is_some() { 1 } else { self.failures.saturating_add(1) };
        if policy.failures > 0 && failures >= policy.failures {
            (LockoutState { failures, locked_until: Some(now + policy.cooldown) }, true)
        } else {
            (LockoutState { failures, locked_until: None }, false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: LockoutPolicy = LockoutPolicy { failures: 3, cooldown: Duration::minutes(15) };

    #[test]
    fn locks_on_the_nth_failure_for_the_cooldown() {
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
        let (s, locked) = LockoutState::default().after_failure(POLICY, now);
        assert!(!locked && !s.is_locked(now));
        let (s, locked) = s.after_failure(POLICY, now);
        assert!(!locked);
        let (s, locked) = s.after_failure(POLICY, now);
        assert!(locked && s.is_locked(now));
        assert!(s.is_locked(now + Duration::minutes(14)));
        assert!(!s.is_locked(now + Duration::minutes(15)));
    }

    #[test]
    fn failures_while_locked_do_not_extend_and_an_expired_lock_counts_afresh() {
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
        let locked = LockoutState { failures: 3, locked_until: Some(now + Duration::minutes(1)) };
        assert_eq!(locked.after_failure(POLICY, now), (locked, false));
        let later = now + Duration::minutes(2);
        let (s, again) = locked.after_failure(POLICY, later);
        assert_eq!((s.failures, s.locked_until, again), (1, None, false));
    }

    #[test]
    fn zero_failures_switches_lockout_off() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let off = LockoutPolicy { failures: 0, cooldown: Duration::minutes(15) };
        let mut s = LockoutState::default();
        for _ in 0..100 {
            s = s.after_failure(off, now).0;
        }
        assert!(!s.is_locked(now));
    }
}
