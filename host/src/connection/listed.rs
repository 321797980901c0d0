//! Live entries by a key their client holds (a connection token, a
//! transport `id`): each key is listed once, and an entry is unlisted only
//! through itself, so one that lingers never unlists a later one under its key.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

/// Live entries by key (see the module's docs).
#[derive(Debug)]
pub(crate) struct Listed<T> {
    by_key: Mutex<HashMap<String, Arc<T>>>,
}

impl<T> Default for Listed<T> {
    fn default() -> Self {
        Listed {
            by_key: Mutex::new(HashMap::new()),
        }
    }
}

impl<T> Listed<T> {
    /// The entry `key` names, if it is listed.
    pub(crate) fn get(&self, key: &str) -> Option<Arc<T>> {
        self.by_key.lock().get(key).cloned()
    }

    /// Lists `entry` under `key`. False, and nothing listed, when the key is taken.
    pub(crate) fn insert(&self, key: String, entry: Arc<T>) -> bool {
        let mut map = self.by_key.lock();
        if map.contains_key(&key) {
            return false;
        }
        map.insert(key, entry);
        true
    }

    /// Unlists `entry`, if `key` still names it.
    pub(crate) fn remove(&self, key: &str, entry: &Arc<T>) {
        let mut map = self.by_key.lock();
        if map.get(key).is_some_and(|e| Arc::ptr_eq(e, entry)) {
            map.remove(key);
        }
    }

    /// Entries listed.
    pub(crate) fn len(&self) -> usize {
        self.by_key.lock().len()
    }

    /// Calls `f` on every listed entry, the table locked meanwhile.
    pub(crate) fn for_each(&self, f: impl FnMut(&Arc<T>)) {
        self.by_key.lock().values().for_each(f);
    }
}
