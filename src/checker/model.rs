//! Models: what each operation means, and the state space the search walks.
//!
//! Every model here is a register or a list per key, so a model state is small enough to intern:
//! the search carries one `u32` state id, and equality of ids is equality of states. That keeps
//! the memo (linearized set, state) cheap to hash and compare, whatever the model.
//!
//! - register values are interned per partition; id 0 is "absent" (null), the initial state;
//! - list states are nodes of a trie of appended elements; node 0 is the empty list, and a list
//!   read is interned by walking the trie, so "the state equals what the read saw" is one compare;
//! - when a partition holds several keys (splitting turned off), a state is an interned tuple of
//!   per-key states.

use crate::history::{Fun, Op, Outcome, Value};
use rustc_hash::FxHashMap as HashMap;
use serde::{Deserialize, Serialize};

/// The sequential specification a history is checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Model {
    /// One register (per key if keys are present): read and write.
    Register,
    /// A register that also takes compare-and-set (`value` is `[expected, new]`); like the
    /// register, per key if keys are present.
    CasRegister,
    /// A map of independent cas-registers, one per key.
    Kv,
    /// A list per key: append one element, read the whole list.
    ListAppend,
}

impl Model {
    /// The name used on the command line and in results.json.
    pub fn name(self) -> &'static str {
        match self {
            Model::Register => "register",
            Model::CasRegister => "cas-register",
            Model::Kv => "kv",
            Model::ListAppend => "list-append",
        }
    }

    /// Every model, for help texts and parsing.
    pub const ALL: [Model; 4] = [
        Model::Register,
        Model::CasRegister,
        Model::Kv,
        Model::ListAppend,
    ];

    /// Parse a model name as written on the command line.
    pub fn parse(s: &str) -> Option<Model> {
        Model::ALL.into_iter().find(|m| m.name() == s)
    }

    /// Pick the model a history was most likely written for: appends mean list-append (a read
    /// returning a list alone does not: registers may hold lists); keys mean kv; a cas means cas-register; otherwise a plain register.
    pub fn infer(ops: &[Op]) -> Model {
        if ops.iter().any(|o| o.f == Fun::Append) {
            Model::ListAppend
        } else if ops.iter().any(|o| o.key.is_some()) {
            Model::Kv
        } else if ops.iter().any(|o| o.f == Fun::Cas) {
            Model::CasRegister
        } else {
            Model::Register
        }
    }

    /// Refuse operations the model has no meaning for, naming the first offending op.
    pub fn validate(self, ops: &[Op]) -> Result<(), (usize, String)> {
        for o in ops {
            let ok = match (self, o.f) {
                (Model::ListAppend, Fun::Read) => {
                    o.outcome != Outcome::Ok || o.value.is_null() || o.value.is_array()
                }
                (_, Fun::Read) => true,
                (Model::ListAppend, Fun::Append) => true,
                (Model::ListAppend, _) => false,
                (_, Fun::Append) => false,
                (Model::Register, Fun::Cas) => false,
                _ => true,
            };
            if !ok {
                let what = if o.f == Fun::Read {
                    format!("a read returning {}", o.value)
                } else {
                    format!("a {} op", o.f.name())
                };
                return Err((
                    o.id,
                    format!("the {} model has no meaning for {what}", self.name()),
                ));
            }
        }
        Ok(())
    }
}

/// What one operation does to its key's state, with interned values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// A register read that returned the value with this id (0: absent).
    Read(u32),
    /// A register write of the value with this id, which becomes the state.
    Write(u32),
    /// A cas that must find `from` and leaves `to`.
    Cas { from: u32, to: u32 },
    /// A cas whose compare failed: the state was anything but `from`; nothing changes.
    Mismatch { from: u32 },
    /// Append one element (element id) to a list.
    Append(u32),
    /// A list read that returned the list with this trie id.
    ReadList(u32),
}

impl Action {
    /// The value id this action writes, if it writes one.
    pub(crate) fn written(self) -> Option<u32> {
        match self {
            Action::Write(v) | Action::Cas { to: v, .. } | Action::Append(v) => Some(v),
            _ => None,
        }
    }
}

/// Interns values and list states for one partition, and steps states.
#[derive(Debug, Default)]
pub(crate) struct Space {
    /// Integer values (the common case) by value, without formatting them.
    ints: HashMap<i64, u32>,
    /// Other register values and list elements by canonical JSON text; id 0 is null.
    values: HashMap<String, u32>,
    /// The value behind each id, for counterexamples.
    value_of: Vec<Value>,
    /// List trie: (parent list, element) -> child list.
    trie: HashMap<(u32, u32), u32>,
    /// Parent and element of each trie node (node 0, the empty list, has none).
    trie_nodes: Vec<(u32, u32)>,
    /// Number of keys sharing this partition; 1 when the history was split per key.
    slots: usize,
    /// Tuple states when `slots > 1`: id -> per-key states, and back.
    tuples: Vec<Box<[u32]>>,
    tuple_ids: HashMap<Box<[u32]>, u32>,
}

impl Space {
    pub(crate) fn new(slots: usize) -> Space {
        let mut s = Space {
            slots: slots.max(1),
            value_of: vec![Value::Null],
            trie_nodes: vec![(0, 0)],
            ..Default::default()
        };
        s.values.insert("null".to_string(), 0);
        if s.slots > 1 {
            let zero: Box<[u32]> = vec![0; s.slots].into_boxed_slice();
            s.tuple_ids.insert(zero.clone(), 0);
            s.tuples.push(zero);
        }
        s
    }

    /// Intern a scalar (or any JSON) value.
    pub(crate) fn value(&mut self, v: &Value) -> u32 {
        if let Some(i) = v.as_i64() {
            if let Some(&id) = self.ints.get(&i) {
                return id;
            }
            let id = self.value_of.len() as u32;
            self.ints.insert(i, id);
            self.value_of.push(v.clone());
            return id;
        }
        let key = canonical(v);
        if let Some(&id) = self.values.get(&key) {
            return id;
        }
        let id = self.value_of.len() as u32;
        self.values.insert(key, id);
        self.value_of.push(v.clone());
        id
    }

    /// Intern a list as a trie node (creating the path if needed).
    pub(crate) fn list(&mut self, items: &[Value]) -> u32 {
        let mut node = 0;
        for it in items {
            let e = self.value(it);
            node = self.child(node, e);
        }
        node
    }

    fn child(&mut self, parent: u32, elem: u32) -> u32 {
        if let Some(&c) = self.trie.get(&(parent, elem)) {
            return c;
        }
        let id = self.trie_nodes.len() as u32;
        self.trie_nodes.push((parent, elem));
        self.trie.insert((parent, elem), id);
        id
    }

    /// The element ids of a list state, oldest first.
    pub(crate) fn list_elems(&self, mut node: u32) -> Vec<u32> {
        let mut items = Vec::new();
        while node != 0 {
            let (p, e) = self.trie_nodes[node as usize];
            items.push(e);
            node = p;
        }
        items.reverse();
        items
    }

    /// The value behind a register state, for display.
    pub(crate) fn show_value(&self, id: u32) -> Value {
        self.value_of
            .get(id as usize)
            .cloned()
            .unwrap_or(Value::Null)
    }

    /// The list behind a trie node, for display.
    pub(crate) fn show_list(&self, node: u32) -> Value {
        Value::Array(
            self.list_elems(node)
                .into_iter()
                .map(|e| self.show_value(e))
                .collect(),
        )
    }

    /// Per-key states of a state id.
    pub(crate) fn slots_of(&self, state: u32) -> Vec<u32> {
        if self.slots == 1 {
            vec![state]
        } else {
            self.tuples[state as usize].to_vec()
        }
    }

    /// Apply `action` on key `slot` in `state`. `None`: the action is impossible in this state.
    /// `info` marks an op whose outcome is unknown: a cas may then also have done nothing.
    #[inline]
    pub(crate) fn step(
        &mut self,
        state: u32,
        slot: usize,
        action: Action,
        info: bool,
    ) -> Option<u32> {
        if self.slots == 1 {
            return self.step_one(state, action, info);
        }
        let sub = self.tuples[state as usize][slot];
        let next = self.step_one(sub, action, info)?;
        if next == sub {
            return Some(state);
        }
        let mut t = self.tuples[state as usize].clone();
        t[slot] = next;
        if let Some(&id) = self.tuple_ids.get(&t) {
            return Some(id);
        }
        let id = self.tuples.len() as u32;
        self.tuple_ids.insert(t.clone(), id);
        self.tuples.push(t);
        Some(id)
    }

    #[inline]
    fn step_one(&mut self, s: u32, action: Action, info: bool) -> Option<u32> {
        match action {
            Action::Read(v) | Action::ReadList(v) => (s == v).then_some(s),
            Action::Write(v) => Some(v),
            Action::Cas { from, to } => {
                if s == from {
                    Some(to)
                } else if info {
                    Some(s)
                } else {
                    None
                }
            }
            Action::Mismatch { from } => (s != from).then_some(s),
            Action::Append(e) => Some(self.child(s, e)),
        }
    }

    /// Rough bytes held, for the memory bound.
    pub(crate) fn bytes(&self) -> usize {
        self.trie_nodes.len() * 24
            + self.tuples.len() * (self.slots * 4 + 48)
            + self.value_of.len() * 64
    }
}

/// JSON text with object keys sorted, so that equal values intern to one id whatever the key
/// order they were written in.
fn canonical(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut items: Vec<(&String, &Value)> = m.iter().collect();
            items.sort_by(|a, b| a.0.cmp(b.0));
            let inner: Vec<String> = items
                .into_iter()
                .map(|(k, v)| format!("{}:{}", Value::String(k.clone()), canonical(v)))
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(canonical).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn objects_equal_up_to_key_order_are_one_value() {
        let mut s = Space::new(1);
        let a = s.value(&json!({"a": 1, "b": [2, {"c": 3, "d": 4}]}));
        let b = s.value(&json!({"b": [2, {"d": 4, "c": 3}], "a": 1}));
        assert_eq!(a, b);
        assert_ne!(a, s.value(&json!({"a": 1})));
    }

    use super::*;
    use serde_json::json;

    #[test]
    fn list_reads_and_appends_meet_in_the_trie() {
        let mut s = Space::new(1);
        let read = s.list(&[json!(1), json!(2)]);
        let one = s.value(&json!(1));
        let two = s.value(&json!(2));
        let a = s.step(0, 0, Action::Append(one), false).unwrap();
        let b = s.step(a, 0, Action::Append(two), false).unwrap();
        assert_eq!(b, read);
        assert_eq!(s.show_list(b), json!([1, 2]));
        // Appending in the other order is a different list.
        let c = s.step(0, 0, Action::Append(two), false).unwrap();
        let d = s.step(c, 0, Action::Append(one), false).unwrap();
        assert_ne!(d, read);
    }

    #[test]
    fn info_cas_may_do_nothing_but_ok_cas_may_not() {
        let mut s = Space::new(1);
        let one = s.value(&json!(1));
        let two = s.value(&json!(2));
        assert_eq!(
            s.step(0, 0, Action::Cas { from: one, to: two }, false),
            None
        );
        assert_eq!(
            s.step(0, 0, Action::Cas { from: one, to: two }, true),
            Some(0)
        );
        assert_eq!(
            s.step(one, 0, Action::Cas { from: one, to: two }, true),
            Some(two)
        );
        assert_eq!(s.step(one, 0, Action::Mismatch { from: one }, false), None);
        assert_eq!(
            s.step(two, 0, Action::Mismatch { from: one }, false),
            Some(two)
        );
    }

    #[test]
    fn tuple_states_are_interned() {
        let mut s = Space::new(2);
        let one = s.value(&json!(1));
        let a = s.step(0, 1, Action::Write(one), false).unwrap();
        let b = s.step(0, 1, Action::Write(one), false).unwrap();
        assert_eq!(a, b);
        assert_eq!(s.slots_of(a), vec![0, one]);
        assert_eq!(s.step(a, 0, Action::Read(0), false), Some(a));
        assert_eq!(s.step(a, 1, Action::Read(0), false), None);
    }
}
