//! Names of channels on the log.
//!
//! A pchannel is a topic of the log broker named `fv.dml.<i>`. A collection's shard `s`
//! is the vchannel `fv.dml.<i>.<collection>v<s>` on pchannel `i`, and that name is also
//! the subject its records carry inside the topic; time ticks carry `fv.dml.<i>.tt`.
//! Every subject of a topic starts with `<topic>.`, so a topic maps onto a NATS JetStream
//! stream (`FV_DML_<i>`, subjects `fv.dml.<i>.>`) and `nats sub 'fv.dml.>'` shows all DML.

use crate::ids::CollectionId;

pub const PCHANNEL_PREFIX: &str = "fv.dml.";

pub fn pchannel_name(index: usize) -> String {
    format!("{PCHANNEL_PREFIX}{index}")
}

pub fn vchannel_name(pchannel: &str, collection: CollectionId, shard: usize) -> String {
    format!("{pchannel}.{collection}v{shard}")
}

/// The pchannel a vchannel lives on.
pub fn pchannel_of(vchannel: &str) -> &str {
    match vchannel.rfind('.') {
        Some(i) if vchannel.starts_with(PCHANNEL_PREFIX) && i >= PCHANNEL_PREFIX.len() => &vchannel[..i],
        _ => vchannel,
    }
}

/// Index of a pchannel (`fv.dml.3` -> 3).
pub fn pchannel_index(pchannel: &str) -> Option<usize> {
    pchannel.strip_prefix(PCHANNEL_PREFIX)?.parse().ok()
}

/// Subject of a vchannel's records inside its pchannel's topic (the vchannel's name).
pub fn vchannel_subject(vchannel: &str) -> String {
    vchannel.to_string()
}

/// Subject of the time ticks of a pchannel.
pub fn tick_subject(pchannel: &str) -> String {
    format!("{pchannel}.tt")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let p = pchannel_name(3);
        assert_eq!(p, "fv.dml.3");
        let v = vchannel_name(&p, 4490, 1);
        assert_eq!(v, "fv.dml.3.4490v1");
        assert_eq!(pchannel_of(&v), "fv.dml.3");
        assert_eq!(pchannel_index(&p), Some(3));
        assert_eq!(vchannel_subject(&v), "fv.dml.3.4490v1");
        assert_eq!(tick_subject(&p), "fv.dml.3.tt");
        assert!(vchannel_subject(&v).starts_with(&format!("{p}.")));
        assert!(tick_subject(&p).starts_with(&format!("{p}.")));
    }
}
