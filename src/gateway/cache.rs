//! What the gateway keeps between calls: apps by id and connection routes by id, valid for
//! one generation of the hub. Any change to apps, connections or the lock bumps the hub's
//! generation, and the first lookup under a new one empties the cache.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::hub::{AppGate, Route};

#[derive(Default)]
struct Entries {
    generation: u64,
    apps: HashMap<String, Arc<AppGate>>,
    routes: HashMap<String, Arc<Route>>,
}

#[derive(Default)]
pub(crate) struct Cache {
    entries: RwLock<Entries>,
}

impl Cache {
    pub fn app(&self, generation: u64, id: &str) -> Option<Arc<AppGate>> {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        (entries.generation == generation)
            .then(|| entries.apps.get(id).cloned())
            .flatten()
    }

    pub fn route(&self, generation: u64, id: &str) -> Option<Arc<Route>> {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        (entries.generation == generation)
            .then(|| entries.routes.get(id).cloned())
            .flatten()
    }

    /// Keeps `app`, loaded under `generation` (read before loading, so a change during the
    /// load leaves it stale rather than cached as new).
    pub fn keep_app(&self, generation: u64, app: Arc<AppGate>) {
        self.with(generation, |e| {
            e.apps.insert(app.id.clone(), app);
        });
    }

    pub fn keep_route(&self, generation: u64, route: Arc<Route>) {
        self.with(generation, |e| {
            e.routes.insert(route.id.clone(), route);
        });
    }

    fn with(&self, generation: u64, f: impl FnOnce(&mut Entries)) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        if entries.generation != generation {
            entries.apps.clear();
            entries.routes.clear();
            entries.generation = generation;
        }
        f(&mut entries);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn app(id: &str) -> Arc<AppGate> {
        Arc::new(AppGate {
            id: id.into(),
            key_hash: vec![],
            bindings: vec![],
            monthly_budget: None,
            rpm_limit: None,
            tpm_limit: None,
        })
    }

    #[test]
    fn a_new_generation_forgets_everything() {
        let cache = Cache::default();
        cache.keep_app(0, app("a"));
        assert!(cache.app(0, "a").is_some());
        assert!(
            cache.app(1, "a").is_none(),
            "stale under a newer generation"
        );
        cache.keep_app(1, app("b"));
        assert!(
            cache.app(1, "a").is_none(),
            "dropped when the generation moved on"
        );
        assert!(cache.app(1, "b").is_some());
    }
}
