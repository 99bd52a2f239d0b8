//! Browser sessions: random 256-bit ids with a per-session CSRF token, ended by idle time,
//! by lock and by a passphrase change.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq;

/// A session id as sent in the cookie: 64 hex characters.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SessionId(String);

impl SessionId {
    /// A placeholder used only to build a removal cookie.
    pub fn empty() -> SessionId {
        SessionId(String::new())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionId(..)")
    }
}

/// What a page needs to know about the signed-in browser.
#[derive(Clone)]
pub struct Session {
    pub csrf_token: String,
}

impl Session {
    /// Compares a submitted form token with this session's, in constant time.
    pub fn csrf_matches(&self, submitted: &str) -> bool {
        bool::from(self.csrf_token.as_bytes().ct_eq(submitted.as_bytes()))
    }
}

struct Entry {
    session: Session,
    last_seen: Instant,
}

pub(super) struct Sessions {
    idle: Duration,
    map: Mutex<HashMap<String, Entry>>,
}

impl Sessions {
    pub fn new(idle: Duration) -> Sessions {
        Sessions {
            idle,
            map: Mutex::new(HashMap::new()),
        }
    }

    pub fn create(&self) -> Result<(SessionId, Session), super::HubError> {
        let id = random_hex()?;
        let session = Session {
            csrf_token: random_hex()?,
        };
        let mut map = self.lock();
        let now = Instant::now();
        map.retain(|_, e| now.duration_since(e.last_seen) < self.idle);
        map.insert(
            id.clone(),
            Entry {
                session: session.clone(),
                last_seen: now,
            },
        );
        Ok((SessionId(id), session))
    }

    /// Looks a session up and refreshes its idle timer; expired sessions are removed.
    pub fn touch(&self, id: &str) -> Option<(SessionId, Session)> {
        let mut map = self.lock();
        let now = Instant::now();
        let entry = map.get_mut(id)?;
        if now.duration_since(entry.last_seen) >= self.idle {
            map.remove(id);
            return None;
        }
        entry.last_seen = now;
        Some((SessionId(id.to_string()), entry.session.clone()))
    }

    pub fn end(&self, id: &str) {
        self.lock().remove(id);
    }

    pub fn end_all(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn random_hex() -> Result<String, super::HubError> {
    let bytes = crate::vault::random_array::<32>()?;
    Ok(hex::encode(bytes))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_random_and_expire() {
        let s = Sessions::new(Duration::from_millis(50));
        let (a, sa) = s.create().unwrap();
        let (b, _) = s.create().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 64);
        assert!(s.touch(a.as_str()).is_some());
        assert!(sa.csrf_matches(&sa.csrf_token));
        assert!(!sa.csrf_matches("nope"));
        std::thread::sleep(Duration::from_millis(60));
        assert!(s.touch(a.as_str()).is_none());
    }

    #[test]
    fn end_all_signs_everyone_out() {
        let s = Sessions::new(Duration::from_secs(60));
        let (a, _) = s.create().unwrap();
        s.end_all();
        assert!(s.touch(a.as_str()).is_none());
    }
}
