//! Names of channels on the log.
//!
//! A pchannel is a topic of the log broker: `fv_dml_<i>`. A collection's shard `s` is the
//! vchannel `fv_dml_<i>_<collection>v<s>` on pchannel `i`. On the topic, the vchannel's
//! records carry the subject `fv.dml.<i>.<collection>v<s>` and time ticks the subject
//! `fv.dml.<i>.tt`, names that read well in the NATS CLI.

use crate::ids::CollectionId;

pub const PCHANNEL_PREFIX: &str = "fv_dml_";

pub fn pchannel_name(index: usize) -> String {
    format!("{PCHANNEL_PREFIX}{index}")
}

pub fn vchannel_name(pchannel: &str, collection: CollectionId, shard: usize) -> String {
    format!("{pchannel}_{collection}v{shard}")
}

/// The pchannel a vchannel lives on.
pub fn pchannel_of(vchannel: &str) -> &str {
    // vchannel = <pchannel>_<collection>v<shard>; pchannel itself contains underscores.
    match vchannel.rfind('_') {
        Some(i) if vchannel[i + 1..].contains('v') => &vchannel[..i],
        _ => vchannel,
    }
}

/// Index of a pchannel (`fv_dml_3` -> 3).
pub fn pchannel_index(pchannel: &str) -> Option<usize> {
    pchannel.strip_prefix(PCHANNEL_PREFIX)?.parse().ok()
}

/// Subject of a vchannel's records inside its pchannel's topic.
pub fn vchannel_subject(vchannel: &str) -> String {
    let p = pchannel_of(vchannel);
    let idx = pchannel_index(p).map(|i| i.to_string()).unwrap_or_else(|| p.to_string());
    let suffix = &vchannel[p.len()..].trim_start_matches('_');
    format!("fv.dml.{idx}.{suffix}")
}

/// Subject of the time ticks of a pchannel.
pub fn tick_subject(pchannel: &str) -> String {
    let idx = pchannel_index(pchannel).map(|i| i.to_string()).unwrap_or_else(|| pchannel.to_string());
    format!("fv.dml.{idx}.tt")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let p = pchannel_name(3);
        assert_eq!(p, "fv_dml_3");
        let v = vchannel_name(&p, 4490, 1);
        assert_eq!(v, "fv_dml_3_4490v1");
        assert_eq!(pchannel_of(&v), "fv_dml_3");
        assert_eq!(pchannel_index(&p), Some(3));
        assert_eq!(vchannel_subject(&v), "fv.dml.3.4490v1");
        assert_eq!(tick_subject(&p), "fv.dml.3.tt");
    }
}
