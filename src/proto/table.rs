//! A call table: calls by message id, stored in a slab.
//!
//! The id map holds only slot numbers, so inserting and removing move four
//! bytes, not the call. A slot's generation changes every time it is reused,
//! so `(slot, generation)` names one call for good: a deadline queued for a
//! call that has since ended is recognised as stale without a lookup.

/// Maps keyed by message ids. Ids come from the peer, so the hasher is
/// seeded (foldhash: fast, and resists chosen-key collisions).
type IdMap<V> = foldhash::HashMap<u32, V>;

#[derive(Debug)]
struct Slot<T> {
    id: u32,
    generation: u32,
    call: Option<T>,
}

/// Calls of one direction, by message id.
#[derive(Debug)]
pub(super) struct CallTable<T> {
    by_id: IdMap<u32>,
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
}

impl<T> Default for CallTable<T> {
    fn default() -> Self {
        CallTable {
            by_id: IdMap::default(),
            slots: Vec::new(),
            free: Vec::new(),
        }
    }
}

/// Where a call lives: its slot and the slot's generation when it was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct CallRef {
    pub(super) slot: u32,
    pub(super) generation: u32,
}

impl<T> CallTable<T> {
    pub(super) fn len(&self) -> usize {
        self.by_id.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    pub(super) fn contains(&self, id: u32) -> bool {
        self.by_id.contains_key(&id)
    }

    /// Adds a call for `id` (which must not be in the table).
    pub(super) fn insert(&mut self, id: u32, call: T) -> CallRef {
        let slot = match self.free.pop() {
            Some(s) => {
                let e = &mut self.slots[s as usize];
                e.id = id;
                e.generation = e.generation.wrapping_add(1);
                e.call = Some(call);
                s
            }
            None => {
                self.slots.push(Slot {
                    id,
                    generation: 0,
                    call: Some(call),
                });
                (self.slots.len() - 1) as u32
            }
        };
        self.by_id.insert(id, slot);
        CallRef {
            slot,
            generation: self.slots[slot as usize].generation,
        }
    }

    pub(super) fn get(&self, id: u32) -> Option<&T> {
        let s = *self.by_id.get(&id)?;
        self.slots.get(s as usize)?.call.as_ref()
    }

    pub(super) fn get_mut(&mut self, id: u32) -> Option<&mut T> {
        let s = *self.by_id.get(&id)?;
        self.slots.get_mut(s as usize)?.call.as_mut()
    }

    pub(super) fn remove(&mut self, id: u32) -> Option<T> {
        let s = self.by_id.remove(&id)?;
        let call = self.slots.get_mut(s as usize)?.call.take();
        self.free.push(s);
        call
    }

    /// The id of the call `r` names, if it is still in the table.
    pub(super) fn live_id(&self, r: CallRef) -> Option<u32> {
        self.slots
            .get(r.slot as usize)
            .filter(|e| e.generation == r.generation && e.call.is_some())
            .map(|e| e.id)
    }

    /// Every id in the table, in ascending order.
    pub(super) fn sorted_ids(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = self.by_id.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    pub(super) fn clear(&mut self) {
        self.by_id.clear();
        self.free.clear();
        for (i, e) in self.slots.iter_mut().enumerate() {
            e.call = None;
            self.free.push(i as u32);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reused_slot_does_not_answer_for_the_call_that_left_it() {
        let mut t: CallTable<&str> = CallTable::default();
        let a = t.insert(7, "a");
        assert_eq!(t.live_id(a), Some(7));
        assert_eq!(t.remove(7), Some("a"));
        assert_eq!(t.live_id(a), None);
        let b = t.insert(9, "b");
        assert_eq!(b.slot, a.slot, "slot reused");
        assert_eq!(t.live_id(a), None, "old generation");
        assert_eq!(t.live_id(b), Some(9));
        assert_eq!(t.get(9), Some(&"b"));
        assert!(t.get(7).is_none());
        t.insert(3, "c");
        assert_eq!(t.sorted_ids(), [3, 9]);
        t.clear();
        assert!(t.is_empty());
        assert_eq!(t.live_id(b), None);
    }
}
