//! A call table: calls by message id, stored in a slab.
//!
//! Ids are found through a direct-mapped index (`id mod size` → slot): every
//! known peer, tchan included, numbers its calls from a counter, so the ids in
//! flight are nearly consecutive and each lands in a cell of its own. An id
//! whose cell is taken goes to an overflow map (seeded hashing, so chosen ids
//! cost the sender nothing more than ordinary collisions). The index holds
//! slot numbers only, so inserting and removing move four bytes, not the call.
//!
//! A slot's generation changes every time it is reused, so `(slot,
//! generation)` names one call for good: a deadline queued for a call that
//! has since ended is recognised as stale without a lookup.

/// Maps keyed by message ids. Ids come from the peer, so the hasher is
/// seeded (foldhash: fast, and resists chosen-key collisions).
type IdMap<V> = crate::util::HashMap<u32, V>;

/// The key of a call table: a message id, typed by who chose it so that an
/// id of one direction cannot look up a call of the other.
pub(crate) trait CallId: Copy {
    fn raw(self) -> u32;
    fn from_raw(id: u32) -> Self;
}

/// The id of one of our calls: we chose it, in our requests; the peer's
/// call res, continues and error frames carry it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct OutId(pub(crate) u32);

/// The id of one of the peer's calls: it chose it, in its call req; our
/// responses and its cancels carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct InId(pub(crate) u32);

impl CallId for OutId {
    fn raw(self) -> u32 {
        self.0
    }
    fn from_raw(id: u32) -> Self {
        OutId(id)
    }
}

impl CallId for InId {
    fn raw(self) -> u32 {
        self.0
    }
    fn from_raw(id: u32) -> Self {
        InId(id)
    }
}

/// First size of the direct index, and the largest it grows to.
const MIN_DIRECT: usize = 64;
const MAX_DIRECT: usize = 1 << 16;

#[derive(Debug)]
struct Slot<T> {
    id: u32,
    generation: u32,
    call: Option<T>,
}

/// Calls of one direction, by message id.
#[derive(Debug)]
pub(crate) struct CallTable<K, T> {
    /// Slot + 1 of the call whose id maps to each cell; 0 for none.
    direct: Vec<u32>,
    overflow: IdMap<u32>,
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    len: usize,
    _key: std::marker::PhantomData<K>,
}

impl<K, T> Default for CallTable<K, T> {
    fn default() -> Self {
        CallTable {
            direct: Vec::new(),
            overflow: IdMap::default(),
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
            _key: std::marker::PhantomData,
        }
    }
}

/// Where a call lives: its slot and the slot's generation when it was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct CallRef {
    pub(crate) slot: u32,
    pub(crate) generation: u32,
}

impl<K: CallId, T> CallTable<K, T> {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    fn cell(&self, id: u32) -> usize {
        id as usize & (self.direct.len() - 1)
    }

    /// The slot holding `id`, if any.
    #[inline]
    fn find(&self, id: u32) -> Option<usize> {
        if self.direct.is_empty() {
            return None;
        }
        let s = self.direct[self.cell(id)];
        if s != 0 {
            let slot = s as usize - 1;
            if self.slots[slot].id == id {
                return Some(slot);
            }
        }
        if self.overflow.is_empty() {
            return None;
        }
        self.overflow.get(&id).map(|&s| s as usize)
    }

    pub(crate) fn contains(&self, id: K) -> bool {
        self.find(id.raw()).is_some()
    }

    /// Adds a call for `id` (which must not be in the table).
    pub(crate) fn insert(&mut self, id: K, call: T) -> CallRef {
        let id = id.raw();
        if self.len * 2 >= self.direct.len() && self.direct.len() < MAX_DIRECT {
            self.grow();
        }
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
        self.index(id, slot);
        self.len += 1;
        CallRef {
            slot,
            generation: self.slots[slot as usize].generation,
        }
    }

    fn index(&mut self, id: u32, slot: u32) {
        let c = self.cell(id);
        if self.direct[c] == 0 {
            self.direct[c] = slot + 1;
        } else {
            self.overflow.insert(id, slot);
        }
    }

    /// Doubles the direct index and places every call again.
    fn grow(&mut self) {
        let size = (self.direct.len() * 2).max(MIN_DIRECT);
        self.direct.clear();
        self.direct.resize(size, 0);
        self.overflow.clear();
        for i in 0..self.slots.len() {
            if self.slots[i].call.is_some() {
                let id = self.slots[i].id;
                self.index(id, i as u32);
            }
        }
    }

    pub(crate) fn get(&self, id: K) -> Option<&T> {
        let s = self.find(id.raw())?;
        self.slots[s].call.as_ref()
    }

    pub(crate) fn get_mut(&mut self, id: K) -> Option<&mut T> {
        let s = self.find(id.raw())?;
        self.slots[s].call.as_mut()
    }

    pub(crate) fn remove(&mut self, id: K) -> Option<T> {
        let id = id.raw();
        if self.direct.is_empty() {
            return None;
        }
        let c = self.cell(id);
        let s = self.direct[c];
        let slot = if s != 0 && self.slots[s as usize - 1].id == id {
            self.direct[c] = 0;
            s - 1
        } else {
            self.overflow.remove(&id)?
        };
        let call = self.slots[slot as usize].call.take();
        self.free.push(slot);
        self.len -= 1;
        call
    }

    /// The id of the call `r` names, if it is still in the table.
    #[inline]
    pub(crate) fn live_id(&self, r: CallRef) -> Option<K> {
        self.slots
            .get(r.slot as usize)
            .filter(|e| e.generation == r.generation && e.call.is_some())
            .map(|e| K::from_raw(e.id))
    }

    /// Every id in the table, in ascending order.
    pub(crate) fn sorted_ids(&self) -> Vec<K> {
        let mut ids: Vec<u32> = self
            .slots
            .iter()
            .filter(|e| e.call.is_some())
            .map(|e| e.id)
            .collect();
        ids.sort_unstable();
        ids.into_iter().map(K::from_raw).collect()
    }

    pub(crate) fn clear(&mut self) {
        self.direct.iter_mut().for_each(|c| *c = 0);
        self.overflow.clear();
        self.free.clear();
        for (i, e) in self.slots.iter_mut().enumerate().rev() {
            e.call = None;
            self.free.push(i as u32);
        }
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl CallId for u32 {
        fn raw(self) -> u32 {
            self
        }
        fn from_raw(id: u32) -> Self {
            id
        }
    }

    #[test]
    fn a_reused_slot_does_not_answer_for_the_call_that_left_it() {
        let mut t: CallTable<u32, &str> = CallTable::default();
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

    #[test]
    fn colliding_ids_and_growth_keep_every_call_findable() {
        let mut t: CallTable<u32, u32> = CallTable::default();
        let mut model = std::collections::BTreeMap::new();
        // ids that share cells (multiples of 64), a long-lived straggler,
        // and a sliding window of consecutive ids
        let mut x: u32 = 12345;
        for step in 0..20_000u32 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let id = match x % 3 {
                0 => step,
                1 => (x % 50) * 64,
                _ => x,
            };
            if let std::collections::btree_map::Entry::Vacant(v) = model.entry(id) {
                v.insert(step);
                t.insert(id, step);
            } else if x.is_multiple_of(2) {
                assert_eq!(t.remove(id), model.remove(&id));
            }
            if step % 97 == 0 {
                for (&id, &v) in &model {
                    assert_eq!(t.get(id), Some(&v), "id {id}");
                }
                assert_eq!(t.len(), model.len());
            }
        }
        assert_eq!(t.sorted_ids(), model.keys().copied().collect::<Vec<_>>());
    }
}
