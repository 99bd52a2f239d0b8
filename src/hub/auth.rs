//! First-run setup, unlock with back-off, lock, passphrase change and browser sessions.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use super::{Hub, HubError, Session, SessionId};
use crate::vault;

pub const MIN_PASSPHRASE_LEN: usize = 10;
const MAX_PASSPHRASE_LEN: usize = 1024;

/// What `GET /api/v1/status` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub initialized: bool,
    pub locked: bool,
    pub offline: bool,
    pub version: &'static str,
}

/// The first pause after a wrong passphrase; each further recent failure doubles it.
const FIRST_DELAY: Duration = Duration::from_millis(250);
/// The longest pause between two attempts from one source: also the bound on how long the
/// right passphrase waits behind each attempt queued before it.
pub const MAX_DELAY: Duration = Duration::from_secs(4);
/// Failures older than this are forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// Attempts one source may have waiting at once; more are refused at once.
const MAX_WAITING: usize = 8;
/// Sources remembered at once (the quietest are forgotten first).
const MAX_SOURCES: usize = 4096;
/// Attempts waiting at once, all sources together: many addresses cannot queue without end.
const MAX_IN_FLIGHT: usize = 64;

/// Where an attempt comes from: the peer address (IPv6 by its /64), or a signed-in session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    Peer(IpAddr),
    /// A passphrase change by a signed-in browser: its failures slow no unlock.
    SignedIn,
    /// A browser that unlocked this Hub before (its device cookie): a lane of its own, so
    /// guesses from the owner's own address cannot slow it.
    Device([u8; 8]),
}

impl Source {
    pub fn peer(ip: IpAddr) -> Source {
        Source::Peer(match ip.to_canonical() {
            IpAddr::V6(v6) => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
            v4 => v4,
        })
    }
}

/// Spaces out passphrase attempts per source instead of refusing them. Each source gets
/// attempt slots: after `n` recent failures from it, its next slot is
/// `min(250 ms × 2^(n-1), 4 s)` after the previous one, and an attempt waits for its slot
/// rather than being turned away. So a guesser anywhere slows only its own source, and even
/// one guessing from the owner's own address delays the right passphrase by at most
/// `MAX_DELAY` per attempt queued ahead of it (at most `MAX_WAITING`), then it works.
/// Waiting holds no thread, and at most `MAX_IN_FLIGHT` attempts wait Hub-wide.
/// Argon2id runs one attempt at a time.
#[derive(Default)]
pub(super) struct UnlockThrottle {
    lanes: Mutex<Lanes>,
    verify: Mutex<()>,
}

#[derive(Default)]
struct Lanes {
    by_source: HashMap<Source, Lane>,
    /// Attempts waiting or running, all sources together (at most `MAX_IN_FLIGHT`).
    waiting: usize,
}

#[derive(Debug, Default, Clone)]
struct Lane {
    failures: u32,
    last_failure: Option<Instant>,
    next_slot: Option<Instant>,
    waiting: usize,
}

/// `min(FIRST_DELAY × 2^(n-1), MAX_DELAY)`, and nothing after no failure.
fn pause_after(failures: u32) -> Duration {
    match failures {
        0 => Duration::ZERO,
        n => FIRST_DELAY
            .saturating_mul(1u32 << (n - 1).min(16))
            .min(MAX_DELAY),
    }
}

impl Lane {
    /// The pause after this lane's recent failures.
    fn delay(&self) -> Duration {
        pause_after(self.failures)
    }

    /// Books the next slot for an attempt arriving at `now`.
    fn reserve(&mut self, now: Instant) -> Result<Instant, HubError> {
        if self
            .last_failure
            .is_some_and(|at| now.duration_since(at) > FORGET_AFTER)
        {
            *self = Lane {
                waiting: self.waiting,
                ..Lane::default()
            };
        }
        if self.waiting >= MAX_WAITING {
            return Err(HubError::Backoff {
                retry_after: MAX_DELAY,
            });
        }
        let slot = self.next_slot.map_or(now, |at| at.max(now));
        // Attempts still waiting count as failures to come, so a burst of parallel guesses
        // is spaced out at once instead of all starting together.
        let ahead = u32::try_from(self.waiting).unwrap_or(u32::MAX);
        self.next_slot = Some(slot + pause_after(self.failures.saturating_add(ahead)));
        self.waiting += 1;
        Ok(slot)
    }

    /// Records the outcome of an attempt that had a slot.
    fn finish(&mut self, ok: bool, now: Instant) {
        self.waiting = self.waiting.saturating_sub(1);
        if ok {
            *self = Lane {
                waiting: self.waiting,
                ..Lane::default()
            };
            return;
        }
        self.failures = self.failures.saturating_add(1);
        self.last_failure = Some(now);
        let after = now + self.delay();
        self.next_slot = Some(self.next_slot.map_or(after, |at| at.max(after)));
    }
}

/// A booked attempt: the slot it may start at, and the duty to report how it went. Dropped
/// unused (the caller went away while waiting), it frees its place in the queue.
pub struct Ticket {
    hub: Hub,
    source: Source,
    slot: Instant,
    open: bool,
}

impl Ticket {
    /// Runs `check` (one attempt at a time across the Hub); a `WrongPassphrase` from it counts
    /// as a failure of this ticket's source. Blocking.
    fn check<T>(
        mut self,
        check: impl FnOnce() -> Result<T, vault::VaultError>,
    ) -> Result<T, HubError> {
        let throttle = &self.hub.inner.throttle;
        let result = {
            let _one_at_a_time = throttle.verify.lock().unwrap_or_else(|p| p.into_inner());
            check()
        };
        let wrong = matches!(result, Err(vault::VaultError::WrongPassphrase));
        throttle.with_lane(self.source, |lane, waiting| {
            lane.finish(!wrong, Instant::now());
            *waiting = waiting.saturating_sub(1);
            if wrong {
                tracing::warn!(failures = lane.failures, "unlock refused: wrong passphrase");
            }
        });
        self.open = false;
        result.map_err(HubError::from)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.open {
            self.hub
                .inner
                .throttle
                .with_lane(self.source, |lane, waiting| {
                    lane.waiting = lane.waiting.saturating_sub(1);
                    *waiting = waiting.saturating_sub(1);
                });
        }
    }
}

impl UnlockThrottle {
    /// Runs `f` on `source`'s lane and the count of attempts waiting Hub-wide.
    fn with_lane<R>(&self, source: Source, f: impl FnOnce(&mut Lane, &mut usize) -> R) -> R {
        let mut lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
        let Lanes { by_source, waiting } = &mut *lanes;
        if by_source.len() >= MAX_SOURCES && !by_source.contains_key(&source) {
            forget_quietest(by_source);
        }
        let lane = by_source.entry(source).or_default();
        let out = f(lane, waiting);
        if lane.failures == 0 && lane.waiting == 0 {
            by_source.remove(&source);
        }
        out
    }
}

/// Drops the idle lane whose last failure is oldest, to keep memory bounded.
fn forget_quietest(lanes: &mut HashMap<Source, Lane>) {
    let quietest = lanes
        .iter()
        .filter(|(_, l)| l.waiting == 0)
        .min_by_key(|(_, l)| l.last_failure)
        .map(|(s, _)| *s);
    if let Some(source) = quietest {
        lanes.remove(&source);
    }
}

impl Hub {
    pub fn status(&self) -> Result<Status, HubError> {
        Ok(Status {
            initialized: self.store().vault_header()?.is_some(),
            locked: self.is_locked(),
            offline: self.config().offline,
            version: env!("CARGO_PKG_VERSION"),
        })
    }

    /// True while setup needs the one-time token printed on the console: the Hub listens
    /// beyond loopback and has no passphrase yet.
    pub fn setup_token_required(&self) -> bool {
        self.inner
            .setup_token
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// The setup token to print on the console at start, if one is needed.
    pub fn setup_token(&self) -> Option<SecretString> {
        self.inner
            .setup_token
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// First run: creates the vault under `passphrase`, unlocks it and signs the caller in.
    /// A Hub that listens beyond loopback also needs the setup token from its console.
    /// Blocking (Argon2id): call from a blocking thread.
    pub fn setup(
        &self,
        passphrase: &SecretString,
        confirmation: Option<&SecretString>,
        token: Option<&SecretString>,
    ) -> Result<(SessionId, Session), HubError> {
        let _one_at_a_time = self
            .inner
            .throttle
            .verify
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if self.store().vault_header()?.is_some() {
            return Err(HubError::AlreadyInitialized);
        }
        self.check_setup_token(token)?;
        check_new_passphrase(passphrase, confirmation)?;
        let (header, unlocked) = vault::create(passphrase, self.config().kdf)?;
        self.store().create_vault_header(&header)?;
        self.set_vault(Some(Arc::new(unlocked)));
        *self
            .inner
            .setup_token
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = None;
        tracing::info!("vault created and unlocked");
        self.inner.sessions.create()
    }

    fn check_setup_token(&self, given: Option<&SecretString>) -> Result<(), HubError> {
        let expected = self.setup_token();
        let Some(expected) = expected else {
            return Ok(());
        };
        let given = given.map(|t| t.expose_secret().trim()).unwrap_or("");
        let same =
            subtle::ConstantTimeEq::ct_eq(given.as_bytes(), expected.expose_secret().as_bytes());
        if bool::from(same) {
            Ok(())
        } else {
            Err(HubError::SetupToken)
        }
    }

    /// The lane of a browser's device cookie, when this Hub issued it. Blocking (SQLite).
    pub fn device_source(&self, token: &str) -> Result<Option<Source>, HubError> {
        let digest = device_digest(token);
        let known = self.store().setting(&device_key(&digest))?.is_some();
        let mut lane = [0u8; 8];
        lane.copy_from_slice(&digest[..8]);
        Ok(known.then_some(Source::Device(lane)))
    }

    /// Remembers a new device cookie for the browser that just unlocked; returns its value.
    /// Only its SHA-256 is stored. Blocking (SQLite).
    pub fn new_device(&self) -> Result<String, HubError> {
        let token = hex::encode(
            vault::random_array::<16>().map_err(|e| HubError::Unexpected(e.to_string()))?,
        );
        self.store().set_setting(
            &device_key(&device_digest(&token)),
            &crate::store::now_rfc3339(),
        )?;
        Ok(token)
    }

    /// Books the next attempt slot of `source` (see [`UnlockThrottle`]).
    fn book_attempt(&self, source: Source) -> Result<Ticket, HubError> {
        let slot = self.inner.throttle.with_lane(source, |lane, waiting| {
            if *waiting >= MAX_IN_FLIGHT {
                return Err(HubError::Backoff {
                    retry_after: MAX_DELAY,
                });
            }
            let slot = lane.reserve(Instant::now())?;
            *waiting += 1;
            Ok(slot)
        })?;
        Ok(Ticket {
            hub: self.clone(),
            source,
            slot,
            open: true,
        })
    }

    /// Checks the passphrase, unlocks the vault if it is locked, and starts a session.
    /// The attempt first waits, without holding a thread, for `source`'s next slot; the
    /// check itself runs on the blocking pool.
    pub async fn sign_in(
        &self,
        passphrase: SecretString,
        source: Source,
    ) -> Result<(SessionId, Session), HubError> {
        let ticket = self.book_attempt(source)?;
        tokio::time::sleep_until(ticket.slot.into()).await;
        let hub = self.clone();
        super::blocking(move || hub.sign_in_now(ticket, &passphrase)).await
    }

    fn sign_in_now(
        &self,
        ticket: Ticket,
        passphrase: &SecretString,
    ) -> Result<(SessionId, Session), HubError> {
        let header = self
            .store()
            .vault_header()?
            .ok_or(HubError::NotInitialized)?;
        let unlocked = ticket.check(|| vault::unlock(&header, passphrase))?;
        if self.is_locked() {
            self.set_vault(Some(Arc::new(unlocked)));
            tracing::info!("vault unlocked");
        }
        self.inner.sessions.create()
    }

    /// Forgets the data key and ends every session.
    pub fn lock(&self) {
        self.set_vault(None);
        self.inner.sessions.end_all();
        tracing::info!("vault locked; all sessions ended");
    }

    /// Re-wraps the data key under a new passphrase in one transaction and ends every
    /// session. Blocking (Argon2id, twice).
    pub fn change_passphrase(
        &self,
        current: &SecretString,
        new: &SecretString,
        confirmation: Option<&SecretString>,
    ) -> Result<(), HubError> {
        check_new_passphrase(new, confirmation)?;
        let header = self
            .store()
            .vault_header()?
            .ok_or(HubError::NotInitialized)?;
        let ticket = self.book_attempt(Source::SignedIn)?;
        std::thread::sleep(ticket.slot.saturating_duration_since(Instant::now()));
        let unlocked = ticket.check(|| vault::unlock(&header, current))?;
        let new_header = unlocked.wrap_for(new, self.config().kdf)?;
        self.store().replace_vault_header(&new_header)?;
        self.inner.sessions.end_all();
        tracing::info!("passphrase changed; all sessions ended");
        Ok(())
    }

    /// The session behind a cookie value, refreshed; `None` when unknown or expired.
    pub fn session(&self, id: &str) -> Option<(SessionId, Session)> {
        if self.is_locked() {
            return None;
        }
        self.inner.sessions.touch(id)
    }

    pub fn sign_out(&self, id: &str) {
        self.inner.sessions.end(id);
    }

    /// Headless start: a passphrase from the environment or a file creates the vault on the
    /// first start and unlocks it on every start. The passphrase is dropped (and wiped)
    /// afterwards: a locked Hub keeps no copy of it.
    pub(super) fn headless_unlock(&self, passphrase: Option<SecretString>) -> Result<(), HubError> {
        let Some(passphrase) = passphrase else {
            return Ok(());
        };
        match self.store().vault_header()? {
            None => {
                check_new_passphrase(&passphrase, None)?;
                let (header, unlocked) = vault::create(&passphrase, self.config().kdf)?;
                self.store().create_vault_header(&header)?;
                self.set_vault(Some(Arc::new(unlocked)));
                tracing::info!("vault created and unlocked from the configured passphrase");
            }
            Some(header) => {
                let unlocked = vault::unlock(&header, &passphrase)?;
                self.set_vault(Some(Arc::new(unlocked)));
                tracing::info!("vault unlocked from the configured passphrase");
            }
        }
        Ok(())
    }
}

fn device_digest(token: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(format!("workshop-hub device\n{token}")).into()
}

fn device_key(digest: &[u8; 32]) -> String {
    format!("unlock_device:{}", hex::encode(digest))
}

/// A fresh setup token: 128 random bits, hex.
pub(super) fn new_setup_token() -> Result<SecretString, HubError> {
    let bytes = zeroize::Zeroizing::new(
        vault::random_array::<16>().map_err(|e| HubError::Unexpected(e.to_string()))?,
    );
    Ok(SecretString::from(hex::encode(*bytes)))
}

fn check_new_passphrase(
    passphrase: &SecretString,
    confirmation: Option<&SecretString>,
) -> Result<(), HubError> {
    let text = passphrase.expose_secret();
    let chars = text.chars().count();
    if chars < MIN_PASSPHRASE_LEN {
        return Err(HubError::bad_input(
            "passphrase",
            format!("Choose a passphrase of at least {MIN_PASSPHRASE_LEN} characters."),
        ));
    }
    if chars > MAX_PASSPHRASE_LEN {
        return Err(HubError::bad_input(
            "passphrase",
            format!("A passphrase can have at most {MAX_PASSPHRASE_LEN} characters."),
        ));
    }
    if let Some(again) = confirmation {
        if again.expose_secret() != text {
            return Err(HubError::bad_input(
                "confirm",
                "The two passphrases differ. Type the same passphrase twice.",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn slots_space_out_failures_per_source_and_reset_on_success() {
        let now = Instant::now();
        let mut lane = Lane::default();
        assert_eq!(
            lane.reserve(now).unwrap(),
            now,
            "a first attempt does not wait"
        );
        lane.finish(false, now);
        let second = lane.reserve(now).unwrap();
        assert_eq!(second - now, FIRST_DELAY);
        lane.finish(false, second);
        lane.finish(false, second);
        lane.waiting = 1;
        let next = lane.reserve(second).unwrap();
        assert_eq!(next - second, FIRST_DELAY * 4, "three failures: 1 s");
        lane.finish(true, next);
        assert_eq!(lane.failures, 0);
        assert_eq!(
            lane.reserve(next).unwrap(),
            next,
            "the right passphrase resets"
        );
    }

    #[test]
    fn the_pause_is_bounded_and_waiting_attempts_are_capped() {
        let now = Instant::now();
        let mut lane = Lane {
            failures: 40,
            last_failure: Some(now),
            next_slot: Some(now),
            waiting: 0,
        };
        assert_eq!(lane.delay(), MAX_DELAY);
        let mut last = now;
        for _ in 0..MAX_WAITING {
            last = lane.reserve(now).unwrap();
        }
        assert_eq!(last - now, MAX_DELAY * (MAX_WAITING as u32 - 1));
        assert!(matches!(lane.reserve(now), Err(HubError::Backoff { .. })));
    }

    #[test]
    fn a_ticket_given_up_while_waiting_frees_its_place() {
        let dir = tempfile::tempdir().unwrap();
        let hub = crate::hub::test_hub(dir.path());
        let here = Source::peer("127.0.0.1".parse().unwrap());
        let mut held: Vec<Ticket> = (0..MAX_WAITING)
            .map(|_| hub.book_attempt(here).unwrap())
            .collect();
        assert!(matches!(
            hub.book_attempt(here),
            Err(HubError::Backoff { .. })
        ));
        let elsewhere = Source::peer("192.0.2.1".parse().unwrap());
        assert!(
            hub.book_attempt(elsewhere).is_ok(),
            "another source has its own lane"
        );
        held.pop();
        assert!(
            hub.book_attempt(here).is_ok(),
            "a dropped ticket gives its place back"
        );
        held.clear();
        let lanes = hub.inner.throttle.lanes.lock().unwrap();
        assert_eq!(lanes.waiting, 0);
        assert!(
            lanes.by_source.is_empty(),
            "idle lanes without failures are forgotten"
        );
    }

    #[test]
    fn a_burst_of_parallel_attempts_is_spaced_out_at_once() {
        let now = Instant::now();
        let mut lane = Lane::default();
        let slots: Vec<Duration> = (0..6).map(|_| lane.reserve(now).unwrap() - now).collect();
        let ms: Vec<u128> = slots.iter().map(|d| d.as_millis()).collect();
        assert_eq!(ms, [0, 0, 250, 750, 1750, 3750]);
    }

    #[test]
    fn old_failures_are_forgotten() {
        let now = Instant::now();
        let mut lane = Lane::default();
        for _ in 0..10 {
            lane.waiting = 1;
            lane.finish(false, now);
        }
        let later = now + FORGET_AFTER + Duration::from_secs(1);
        assert_eq!(lane.reserve(later).unwrap(), later);
    }

    #[test]
    fn sources_are_peers_with_ipv6_by_prefix() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        assert_eq!(Source::peer(a), Source::peer(b));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(
            Source::peer(mapped),
            Source::peer("192.0.2.1".parse().unwrap())
        );
        assert_ne!(
            Source::peer("127.0.0.1".parse().unwrap()),
            Source::peer("192.0.2.1".parse().unwrap())
        );
    }

    #[test]
    fn new_passphrases_are_checked() {
        let short = SecretString::from("short".to_string());
        assert!(check_new_passphrase(&short, None).is_err());
        let ok = SecretString::from("long enough passphrase".to_string());
        let other = SecretString::from("another long passphrase".to_string());
        assert!(check_new_passphrase(&ok, Some(&ok)).is_ok());
        assert!(check_new_passphrase(&ok, Some(&other)).is_err());
    }
}
