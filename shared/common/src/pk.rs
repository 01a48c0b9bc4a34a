//! Primary keys: Int64 or VarChar.

use fv_proto::schema::{IDs, LongArray, StringArray, i_ds::IdField};

use crate::hash::{hash_bytes, hash_i64};

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PrimaryKey {
    Int(i64),
    Str(String),
}

impl PrimaryKey {
    /// Stable hash used to route the key to a shard and into bloom filters.
    pub fn hash(&self) -> u64 {
        match self {
            PrimaryKey::Int(v) => hash_i64(*v),
            PrimaryKey::Str(s) => hash_bytes(s.as_bytes()),
        }
    }

    /// The shard (0..shards) this key belongs to.
    pub fn shard(&self, shards: usize) -> usize {
        (self.hash() % shards.max(1) as u64) as usize
    }
}

impl std::fmt::Display for PrimaryKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PrimaryKey::Int(v) => write!(f, "{v}"),
            PrimaryKey::Str(s) => write!(f, "{s:?}"),
        }
    }
}

/// A column of primary keys of one type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PkColumn {
    Int(Vec<i64>),
    Str(Vec<String>),
}

impl PkColumn {
    pub fn len(&self) -> usize {
        match self {
            PkColumn::Int(v) => v.len(),
            PkColumn::Str(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn get(&self, i: usize) -> PrimaryKey {
        match self {
            PkColumn::Int(v) => PrimaryKey::Int(v[i]),
            PkColumn::Str(v) => PrimaryKey::Str(v[i].clone()),
        }
    }
    pub fn iter(&self) -> impl Iterator<Item = PrimaryKey> + '_ {
        (0..self.len()).map(move |i| self.get(i))
    }
    pub fn from_keys(keys: &[PrimaryKey]) -> Option<PkColumn> {
        match keys.first() {
            None => None,
            Some(PrimaryKey::Int(_)) => keys
                .iter()
                .map(|k| match k {
                    PrimaryKey::Int(v) => Some(*v),
                    PrimaryKey::Str(_) => None,
                })
                .collect::<Option<Vec<_>>>()
                .map(PkColumn::Int),
            Some(PrimaryKey::Str(_)) => keys
                .iter()
                .map(|k| match k {
                    PrimaryKey::Str(v) => Some(v.clone()),
                    PrimaryKey::Int(_) => None,
                })
                .collect::<Option<Vec<_>>>()
                .map(PkColumn::Str),
        }
    }
    pub fn to_ids(&self) -> IDs {
        IDs {
            id_field: Some(match self {
                PkColumn::Int(v) => IdField::IntId(LongArray { data: v.clone() }),
                PkColumn::Str(v) => IdField::StrId(StringArray { data: v.clone() }),
            }),
        }
    }
    pub fn from_ids(ids: &IDs) -> PkColumn {
        match &ids.id_field {
            Some(IdField::IntId(a)) => PkColumn::Int(a.data.clone()),
            Some(IdField::StrId(a)) => PkColumn::Str(a.data.clone()),
            None => PkColumn::Int(Vec::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        let c = PkColumn::Str(vec!["a".into(), "b".into()]);
        assert_eq!(PkColumn::from_ids(&c.to_ids()), c);
        let keys = vec![PrimaryKey::Int(3), PrimaryKey::Int(1)];
        assert_eq!(PkColumn::from_keys(&keys), Some(PkColumn::Int(vec![3, 1])));
        assert_eq!(PkColumn::from_keys(&[PrimaryKey::Int(1), PrimaryKey::Str("x".into())]), None);
    }
}
