//! The throttle for failed logins, reset links and invitation links: counts per account, per
//! client address (an IPv6 address with its /64) and per known device in a sliding window, kept
//! bounded; refusals are held back a second.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::{ApiError, ApiResult};

/// Counts failed logins per account, per client address and per known device in a sliding
/// window; successful logins are never delayed, and a success clears the account's count.
///
/// A known device (one that signed in to the account before, see `routes::auth::known_device`)
/// is judged by its own failures only: an attacker failing the same account, or sharing the
/// device's address, neither refuses nor slows it. Its failures still count for the account and
/// the address, so that everyone else sees them.
pub struct LoginThrottle {
    per_account: u32,
    per_address: u32,
    window: Duration,
    failures: Mutex<HashMap<String, Vec<Instant>>>,
    /// Refusals being held back ([`REFUSAL_DELAY`]), at most [`REFUSALS_HELD`] at once.
    held: tokio::sync::Semaphore,
}

/// How long a refused attempt waits for its 429. A client that tries again as soon as it is
/// answered (a guessing loop) then costs one answer a second per connection instead of thousands,
/// and the CPU it would have taken stays with the logins.
pub const REFUSAL_DELAY: std::time::Duration = std::time::Duration::from_secs(1);

/// The most refusals held back at once; beyond it they are answered at once, so that holding
/// them never costs more than this many waiting requests.
pub const REFUSALS_HELD: usize = 1024;

fn account_key(account: &str) -> String {
    format!("account:{account}")
}

/// An IPv4 address counts alone; an IPv6 address counts with its /64, the block one subscriber
/// gets, so that stepping through one's own block is not a fresh address each time.
fn address_key(address: Option<IpAddr>) -> String {
    match address {
        None => "address:unknown".into(),
        Some(IpAddr::V4(a)) => format!("address:{a}"),
        Some(IpAddr::V6(a)) => match a.to_ipv4_mapped() {
            Some(v4) => format!("address:{v4}"),
            None => {
                let s = a.segments();
                format!("address:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// The most counts a throttle keeps. Past it, counts older than the window go, then counts of a
/// single failure; a flood of fresh addresses can only make the throttle forget its least
/// telling counts, never grow memory.
pub const THROTTLE_MAX_KEYS: usize = 200_000;

fn device_key(device: &str) -> String {
    format!("device:{device}")
}

impl LoginThrottle {
    /// A throttle with the given limits; a known device may fail as often as an account.
    pub fn new(per_account: u32, per_address: u32, window: Duration) -> Self {
        LoginThrottle {
            per_account,
            per_address,
            window,
            failures: Mutex::new(HashMap::new()),
            held: tokio::sync::Semaphore::new(REFUSALS_HELD),
        }
    }

    /// [`LoginThrottle::check`], answering a refusal only after [`REFUSAL_DELAY`].
    pub async fn admit(&self, account: &str, address: Option<IpAddr>, device: Option<&str>) -> ApiResult<()> {
        let decided = self.check(account, address, device);
        self.hold_refusal(decided).await
    }

    /// [`LoginThrottle::check_address`], answering a refusal only after [`REFUSAL_DELAY`].
    pub async fn admit_address(&self, address: Option<IpAddr>) -> ApiResult<()> {
        let decided = self.check_address(address);
        self.hold_refusal(decided).await
    }

    async fn hold_refusal(&self, decided: ApiResult<()>) -> ApiResult<()> {
        if decided.is_err()
            && let Ok(_permit) = self.held.try_acquire()
        {
            tokio::time::sleep(REFUSAL_DELAY).await;
        }
        decided
    }

    /// Err(429) when a count that judges this login is at its limit, with the seconds until a slot
    /// frees: the account's and the address's, or for a known `device` only its own.
    pub fn check(&self, account: &str, address: Option<IpAddr>, device: Option<&str>) -> ApiResult<()> {
        let limits = match device {
            Some(d) => vec![(device_key(d), self.per_account)],
            None => vec![(account_key(account), self.per_account), (address_key(address), self.per_address)],
        };
        self.within(limits)
    }

    /// Err(429) with the seconds until a slot frees when any of the counts is at its limit.
    fn within(&self, limits: Vec<(String, u32)>) -> ApiResult<()> {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        for (key, limit) in limits {
            if let Some(times) = map.get_mut(&key) {
                times.retain(|t| now.duration_since(*t) < self.window);
                if times.len() >= limit as usize {
                    let oldest = times[0];
                    let wait = self.window.saturating_sub(now.duration_since(oldest));
                    return Err(ApiError::rate_limited(wait.as_secs() + 1));
                }
            }
        }
        Ok(())
    }

    /// Whether a login looks like an attack, so that its password check waits behind the others:
    /// its account failed within the window, or its address failed within the window at least as
    /// often as one account may (more than one person mistyping their own password). People
    /// behind one address with an attacker among them are not refused for it, and their known
    /// devices are not suspect; from a new device their checks queue with the attacker's until
    /// the address limit of [`LoginThrottle::check`] refuses the attacker. A known `device` is
    /// suspect only when it failed itself within the window.
    pub fn suspect(&self, account: &str, address: Option<IpAddr>, device: Option<&str>) -> bool {
        let now = Instant::now();
        let map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let recent = |key: String| {
            map.get(&key).map_or(0, |times| times.iter().filter(|t| now.duration_since(**t) < self.window).count())
        };
        match device {
            Some(d) => recent(device_key(d)) > 0,
            None => {
                recent(account_key(account)) > 0
                    || address.is_some_and(|a| recent(address_key(Some(a))) >= self.per_account.max(1) as usize)
            }
        }
    }

    /// Err(429) when `address` failed as often as an address may within the window: for links
    /// anyone can try (reset and invitation links), so that guessing them stays cheap to refuse.
    pub fn check_address(&self, address: Option<IpAddr>) -> ApiResult<()> {
        self.within(vec![(address_key(address), self.per_address)])
    }

    /// Records a failed attempt of `address` alone (a link that does not exist).
    pub fn failed_address(&self, address: Option<IpAddr>) {
        self.record([Some(address_key(address))]);
    }

    /// Adds a failure now to each key, within [`THROTTLE_MAX_KEYS`].
    fn record(&self, keys: impl IntoIterator<Item = Option<String>>) {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= THROTTLE_MAX_KEYS {
            map.retain(|_, times| {
                times.retain(|t| now.duration_since(*t) < self.window);
                !times.is_empty()
            });
        }
        if map.len() >= THROTTLE_MAX_KEYS {
            map.retain(|_, times| times.len() > 1);
        }
        if map.len() >= THROTTLE_MAX_KEYS {
            map.clear();
        }
        for key in keys.into_iter().flatten() {
            map.entry(key).or_default().push(now);
        }
    }

    /// How many counts are kept.
    pub fn kept(&self) -> usize {
        self.failures.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Records a failed attempt, for the account, the address and the known device if any.
    pub fn failed(&self, account: &str, address: Option<IpAddr>, device: Option<&str>) {
        self.record([Some(account_key(account)), Some(address_key(address)), device.map(device_key)]);
    }

    /// Clears the account's failures after a successful login.
    pub fn succeeded(&self, account: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&account_key(account));
    }

    /// Forgets failures older than the window; run periodically so the map stays bounded.
    pub fn prune(&self) {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, times| {
            times.retain(|t| now.duration_since(*t) < self.window);
            !times.is_empty()
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_refusal_is_held_back_a_second_and_only_so_many_at_once() {
        let throttle = Arc::new(LoginThrottle::new(5, 1, Duration::from_secs(900)));
        let ip: Option<IpAddr> = Some("192.0.2.7".parse().unwrap());
        let started = tokio::time::Instant::now();
        throttle.admit_address(ip).await.unwrap();
        assert_eq!(started.elapsed(), Duration::ZERO, "an admitted attempt waits for nothing");
        throttle.failed_address(ip);
        assert_eq!(throttle.admit_address(ip).await.unwrap_err().code(), "rate_limited");
        assert!(started.elapsed() >= REFUSAL_DELAY, "the refusal waited {:?}", started.elapsed());

        // With every hold taken, one more refusal is answered at once.
        let holders: Vec<_> = (0..REFUSALS_HELD)
            .map(|_| {
                let throttle = throttle.clone();
                tokio::spawn(async move { throttle.admit_address(ip).await })
            })
            .collect();
        while throttle.held.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        let at = tokio::time::Instant::now();
        assert!(throttle.admit_address(ip).await.is_err());
        assert_eq!(at.elapsed(), Duration::ZERO, "past the bound nothing is held");
        for h in holders {
            assert!(h.await.unwrap().is_err());
        }
    }

    #[test]
    fn an_ipv6_block_counts_as_one_address_and_the_counts_stay_bounded() {
        let throttle = LoginThrottle::new(5, 3, Duration::from_secs(900));
        for host in 1..=3u16 {
            throttle.failed_address(Some(IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 7, 9, 0, 0, 0, host))));
        }
        let neighbour = IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 7, 9, 0xffff, 1, 2, 3));
        assert!(throttle.check_address(Some(neighbour)).is_err(), "the same /64 is the same address");
        let elsewhere = IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 7, 10, 0, 0, 0, 1));
        assert!(throttle.check_address(Some(elsewhere)).is_ok());
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        for _ in 0..3 {
            throttle.failed_address(Some("192.0.2.1".parse().unwrap()));
        }
        assert!(throttle.check_address(Some(mapped)).is_err(), "an IPv4-mapped address is its IPv4 address");

        for n in 0..THROTTLE_MAX_KEYS as u32 + 10 {
            throttle.failed_address(Some(IpAddr::V4(n.into())));
        }
        assert!(throttle.kept() <= THROTTLE_MAX_KEYS, "{} counts kept", throttle.kept());
        assert!(throttle.check_address(Some(neighbour)).is_err(), "a flood of single failures leaves repeat offenders");
    }

    #[test]
    fn throttle_blocks_after_the_limit_and_success_clears_the_account() {
        let t = LoginThrottle::new(3, 100, Duration::from_secs(60));
        let ip = Some("127.0.0.1".parse().unwrap());
        for _ in 0..3 {
            t.check("a@x.io", ip, None).unwrap();
            t.failed("a@x.io", ip, None);
        }
        assert_eq!(t.check("a@x.io", ip, None).unwrap_err().code(), "rate_limited");
        assert!(t.check("b@x.io", ip, None).is_ok());
        assert!(t.suspect("a@x.io", None, None) && !t.suspect("b@x.io", None, None));
        t.succeeded("a@x.io");
        assert!(t.check("a@x.io", ip, None).is_ok());
    }

    #[test]
    fn an_address_failing_more_than_one_account_may_is_suspect_for_every_account() {
        let t = LoginThrottle::new(3, 100, Duration::from_secs(60));
        let (attacker, other) = (Some("192.0.2.7".parse().unwrap()), Some("198.51.100.1".parse().unwrap()));
        for i in 0..2 {
            t.failed(&format!("victim{i}@x.io"), attacker, None);
        }
        assert!(!t.suspect("next@x.io", attacker, None), "two typos are not an attack");
        t.failed("victim2@x.io", attacker, None);
        assert!(t.suspect("next@x.io", attacker, None), "three accounts failed from one address");
        assert!(!t.suspect("next@x.io", other, None), "another address is not");
        assert!(!t.suspect("next@x.io", None, None), "nor an unknown one");
        assert!(t.suspect("victim0@x.io", other, None), "an account that failed is, from anywhere");
    }

    #[test]
    fn a_known_device_is_judged_by_its_own_failures_only() {
        let t = LoginThrottle::new(3, 4, Duration::from_secs(60));
        let shared = Some("192.0.2.7".parse().unwrap());
        // An attacker behind the same address fails the account, and others, up to every limit.
        for i in 0..4 {
            t.failed(if i < 3 { "a@x.io" } else { "b@x.io" }, shared, None);
        }
        assert_eq!(t.check("a@x.io", shared, None).unwrap_err().code(), "rate_limited");
        assert_eq!(t.check("c@x.io", shared, None).unwrap_err().code(), "rate_limited", "the address is at its limit");
        assert!(t.suspect("a@x.io", shared, None));
        // The account's own device, on that address, is neither refused nor suspect.
        assert!(t.check("a@x.io", shared, Some("phone")).is_ok());
        assert!(!t.suspect("a@x.io", shared, Some("phone")));
        // Until it fails itself: then it waits, and after as many failures as an account may,
        // it is refused, while another known device of the account is not.
        t.failed("a@x.io", shared, Some("phone"));
        assert!(t.suspect("a@x.io", shared, Some("phone")));
        assert!(!t.suspect("a@x.io", shared, Some("laptop")));
        t.failed("a@x.io", shared, Some("phone"));
        t.failed("a@x.io", shared, Some("phone"));
        assert_eq!(t.check("a@x.io", shared, Some("phone")).unwrap_err().code(), "rate_limited");
        assert!(t.check("a@x.io", shared, Some("laptop")).is_ok());
    }
}
