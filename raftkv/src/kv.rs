//! The replicated state machine: a map from string keys to an integer register or an
//! integer list (for the list-append workload), and the commands the log carries.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A stored value: a register (put/cas) or a list (append).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    /// A register's value, set by put or cas; serialized as a bare JSON number (untagged).
    Int(i64),
    /// The elements appended to a key, oldest first; serialized as a bare JSON array (untagged).
    List(Vec<i64>),
}

/// A state-machine command, serialized as JSON into log entries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Command {
    /// Overwrite the key with an integer, whatever it held (a list too); never a mismatch.
    Put {
        /// The key to overwrite; created if absent.
        key: String,
        /// The integer stored in place of whatever the key held.
        value: i64,
    },
    /// Compare-and-set: set `to` iff the current value is `from` (`None` = absent).
    Cas {
        /// The key compared and set; an absent key matches only `from: None`.
        key: String,
        /// The value the key must hold for the cas to apply; `None` expects it absent, and a list
        /// never matches.
        from: Option<i64>,
        /// Stored as an integer when `from` matches; otherwise nothing changes.
        to: i64,
    },
    /// Append an element to a list (an absent key is the empty list).
    Append {
        /// The list's key; absent means the empty list, and a key holding an integer makes the
        /// append a mismatch.
        key: String,
        /// The element pushed onto the end of the list.
        value: i64,
    },
}

impl Command {
    /// Whether the command can fail on the state (and so must not be acknowledged before it
    /// is applied, even under the `ack-before-commit` bug switch).
    pub fn is_conditional(&self) -> bool {
        matches!(self, Command::Cas { .. })
    }
}

/// What applying a command did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Applied: the state changed as the command says (a put always is).
    Ok,
    /// Not applied: the precondition failed; carries the current value for the client.
    Mismatch(Option<Value>),
}

/// The key-value map.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kv {
    /// Current values; absent keys are not stored.
    map: BTreeMap<String, Value>,
}

impl Kv {
    /// The key's value as of the last command applied; `None` for a key never written.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.map.get(key)
    }

    /// Apply a committed command; every node applies the same commands in log order, so all reach
    /// the same state. A cas whose compare fails, or an append to an integer, changes nothing and
    /// returns the value found.
    pub fn apply(&mut self, cmd: Command) -> Outcome {
        match cmd {
            Command::Put { key, value } => {
                self.map.insert(key, Value::Int(value));
                Outcome::Ok
            }
            Command::Cas { key, from, to } => {
                let current = self.map.get(&key);
                let matches = match (current, from) {
                    (None, None) => true,
                    (Some(Value::Int(v)), Some(f)) => *v == f,
                    _ => false,
                };
                if matches {
                    self.map.insert(key, Value::Int(to));
                    Outcome::Ok
                } else {
                    Outcome::Mismatch(current.cloned())
                }
            }
            Command::Append { key, value } => match self.map.get_mut(&key) {
                Some(Value::List(l)) => {
                    l.push(value);
                    Outcome::Ok
                }
                Some(other) => Outcome::Mismatch(Some(other.clone())),
                None => {
                    self.map.insert(key, Value::List(vec![value]));
                    Outcome::Ok
                }
            },
        }
    }

    /// The whole map as JSON, the `data` of a snapshot; [`Kv::from_snapshot`] reads it back.
    pub fn to_snapshot(&self) -> String {
        serde_json::to_string(self).expect("Kv always serializes")
    }

    /// Restore from a snapshot's data.
    pub fn from_snapshot(data: &str) -> Result<Kv, serde_json::Error> {
        serde_json::from_str(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cas_and_append_semantics() {
        let mut kv = Kv::default();
        let cas = |from, to| Command::Cas {
            key: "k".into(),
            from,
            to,
        };
        assert_eq!(kv.apply(cas(Some(1), 2)), Outcome::Mismatch(None));
        assert_eq!(kv.apply(cas(None, 1)), Outcome::Ok);
        assert_eq!(kv.apply(cas(Some(1), 2)), Outcome::Ok);
        assert_eq!(
            kv.apply(cas(Some(1), 3)),
            Outcome::Mismatch(Some(Value::Int(2)))
        );
        kv.apply(Command::Append {
            key: "l".into(),
            value: 5,
        });
        kv.apply(Command::Append {
            key: "l".into(),
            value: 6,
        });
        assert_eq!(kv.get("l"), Some(&Value::List(vec![5, 6])));
        let back = Kv::from_snapshot(&kv.to_snapshot()).expect("decode");
        assert_eq!(back, kv);
    }
}
