//! [`Rounds`]: a wallet's rounds by id, small when few.
//!
//! A cached wallet holds a handful of rounds at most (see `IDLE_ROUNDS_KEPT`), and a
//! `BTreeMap`'s first node reserves room for eleven entries, about 700 bytes: more than
//! the rest of an idle cached wallet. So up to [`FEW_MAX`] rounds live in a vector sized
//! to them, searched in order; the full state of a long history, which knows every round,
//! switches to a `BTreeMap`, so its lookups stay logarithmic.

use std::collections::BTreeMap;

use serde::de::{Deserialize, Deserializer};
use serde::ser::{Serialize, SerializeMap, Serializer};

use super::Round;
use crate::ids::RoundId;

/// Rounds kept in a vector, at most; past it, a map.
const FEW_MAX: usize = 16;

/// A wallet's rounds by id. Equal when they hold the same rounds, however stored;
/// serialised as a map in id order.
#[derive(Debug, Clone)]
pub(in crate::wallet) enum Rounds {
    Few(Vec<(RoundId, Round)>),
    Many(BTreeMap<RoundId, Round>),
}

impl Default for Rounds {
    fn default() -> Self {
        Rounds::Few(Vec::new())
    }
}

impl Rounds {
    pub fn get(&self, id: &RoundId) -> Option<&Round> {
        match self {
            Rounds::Few(v) => v.iter().find(|(k, _)| k == id).map(|(_, r)| r),
            Rounds::Many(m) => m.get(id),
        }
    }

    pub fn get_mut(&mut self, id: &RoundId) -> Option<&mut Round> {
        match self {
            Rounds::Few(v) => v.iter_mut().find(|(k, _)| k == id).map(|(_, r)| r),
            Rounds::Many(m) => m.get_mut(id),
        }
    }

    pub fn contains_key(&self, id: &RoundId) -> bool {
        self.get(id).is_some()
    }

    /// The round `id`, inserted as `new()` first if absent.
    pub fn get_or_insert(&mut self, id: &RoundId, new: impl FnOnce() -> Round) -> &mut Round {
        if let Rounds::Few(v) = self {
            if v.len() >= FEW_MAX && !v.iter().any(|(k, _)| k == id) {
                *self = Rounds::Many(std::mem::take(v).into_iter().collect());
            }
        }
        match self {
            Rounds::Few(v) => {
                let at = match v.iter().position(|(k, _)| k == id) {
                    Some(at) => at,
                    None => {
                        // Exactly one more: a few rounds, sized to them.
                        v.reserve_exact(1);
                        v.push((id.clone(), new()));
                        v.len() - 1
                    }
                };
                &mut v[at].1
            }
            Rounds::Many(m) => m.entry(id.clone()).or_insert_with(new),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Rounds::Few(v) => v.len(),
            Rounds::Many(m) => m.len(),
        }
    }

    pub fn iter(&self) -> Box<dyn Iterator<Item = (&RoundId, &Round)> + '_> {
        match self {
            Rounds::Few(v) => Box::new(v.iter().map(|(k, r)| (k, r))),
            Rounds::Many(m) => Box::new(m.iter()),
        }
    }

    /// Keeps the rounds `keep` says yes to, then stores them as compactly as they fit.
    pub fn retain(&mut self, mut keep: impl FnMut(&RoundId, &Round) -> bool) {
        let kept: Vec<(RoundId, Round)> = match std::mem::take(self) {
            Rounds::Few(v) => v.into_iter().filter(|(k, r)| keep(k, r)).collect(),
            Rounds::Many(m) => m.into_iter().filter(|(k, r)| keep(k, r)).collect(),
        };
        *self = if kept.len() <= FEW_MAX {
            let mut kept = kept;
            kept.shrink_to_fit();
            Rounds::Few(kept)
        } else {
            Rounds::Many(kept.into_iter().collect())
        };
    }
}

impl PartialEq for Rounds {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|(k, r)| other.get(k) == Some(r))
    }
}

impl Serialize for Rounds {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut sorted: Vec<(&RoundId, &Round)> = self.iter().collect();
        sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut map = serializer.serialize_map(Some(sorted.len()))?;
        for (k, r) in sorted {
            map.serialize_entry(k, r)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Rounds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let all = BTreeMap::<RoundId, Round>::deserialize(deserializer)?;
        Ok(if all.len() <= FEW_MAX {
            Rounds::Few(all.into_iter().collect())
        } else {
            Rounds::Many(all)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(n: u64) -> Round {
        Round {
            game_id: None,
            closed: n.is_multiple_of(2),
            last_used: n,
            open_bets: 0,
        }
    }

    fn id(n: u64) -> RoundId {
        RoundId::new(format!("r{n}")).unwrap()
    }

    #[test]
    fn few_and_many_hold_the_same_rounds_and_shrink_back() {
        let mut rounds = Rounds::default();
        let mut reference = BTreeMap::new();
        for n in 0..40u64 {
            rounds.get_or_insert(&id(n), || round(n));
            reference.insert(id(n), round(n));
            // Naming a known round again changes nothing.
            rounds.get_or_insert(&id(n / 2), || round(999));
            assert_eq!(rounds.len(), reference.len());
            assert!(matches!(rounds, Rounds::Few(_)) == (reference.len() <= FEW_MAX));
        }
        for (k, r) in &reference {
            assert_eq!(rounds.get(k), Some(r));
        }
        let json = serde_json::to_string(&rounds).unwrap();
        assert_eq!(
            json,
            serde_json::to_string(&reference).unwrap(),
            "a map in id order"
        );
        assert_eq!(serde_json::from_str::<Rounds>(&json).unwrap(), rounds);
        rounds.retain(|_, r| r.last_used >= 35);
        assert!(matches!(&rounds, Rounds::Few(v) if v.len() == 5 && v.capacity() == 5));
        assert!(rounds.contains_key(&id(39)) && !rounds.contains_key(&id(3)));
    }
}
