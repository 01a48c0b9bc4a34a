//! Topic, subject and stream names on NATS.
//!
//! A topic becomes the JetStream stream `<stream_prefix><TOPIC>` where `<TOPIC>` is the
//! topic upper-cased with every `.` replaced by `_` (`fv.dml.3` -> `FV_DML_3`), capturing
//! the subjects `<topic>.>`. The mapping is readable but not injective (`a.b`, `a_b` and
//! `A.B` share a stream name), so the stream records its topic in its metadata
//! ([`TOPIC_METADATA_KEY`]) and a topic whose stream name is taken by another topic is
//! refused instead of being mixed into it.

use crate::{BrokerError, Result};

/// Stream metadata key holding the topic a stream was created for; it also marks the
/// streams this broker owns (`topics()` lists only those).
pub(crate) const TOPIC_METADATA_KEY: &str = "ferrovec.topic";

/// Longest topic name; keeps stream names (and the server's directory names) short.
pub(crate) const MAX_TOPIC_LEN: usize = 200;
/// Longest stream prefix.
pub(crate) const MAX_PREFIX_LEN: usize = 32;

fn invalid(reason: String) -> BrokerError {
    BrokerError::InvalidArgument { reason }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// A topic is one or more tokens of `[A-Za-z0-9_-]` separated by single dots, so that
/// `<topic>.>` is a valid subject pattern and the stream name is valid too.
pub(crate) fn validate_topic(topic: &str) -> Result<()> {
    if topic.is_empty() {
        return Err(invalid("empty topic name".into()));
    }
    if topic.len() > MAX_TOPIC_LEN {
        return Err(invalid(format!("topic name longer than {MAX_TOPIC_LEN} bytes: {topic:?}")));
    }
    if topic.split('.').any(|token| token.is_empty() || !token.chars().all(is_name_char)) {
        return Err(invalid(format!(
            "topic {topic:?} is not usable on NATS: it must be tokens of [A-Za-z0-9_-] separated by single dots"
        )));
    }
    Ok(())
}

/// A stream prefix may be empty or `[A-Za-z0-9_-]`.
pub(crate) fn validate_stream_prefix(prefix: &str) -> Result<()> {
    if prefix.len() > MAX_PREFIX_LEN || !prefix.chars().all(is_name_char) {
        return Err(invalid(format!(
            "stream prefix {prefix:?} must be at most {MAX_PREFIX_LEN} characters of [A-Za-z0-9_-]"
        )));
    }
    Ok(())
}

/// The stream holding `topic` (which [`validate_topic`] accepted).
pub(crate) fn stream_name(prefix: &str, topic: &str) -> String {
    let mut name = String::with_capacity(prefix.len() + topic.len());
    name.push_str(prefix);
    name.extend(topic.chars().map(|c| if c == '.' { '_' } else { c.to_ascii_uppercase() }));
    name
}

/// The subject pattern a topic's stream captures.
pub(crate) fn topic_subjects(topic: &str) -> String {
    format!("{topic}.>")
}

fn check_token(subject: &str, token: &str, wildcard_tail_ok: bool, last: bool) -> Result<()> {
    if token.is_empty() {
        return Err(invalid(format!("subject {subject:?} has an empty token")));
    }
    if token == ">" && wildcard_tail_ok && last {
        return Ok(());
    }
    if token.chars().any(|c| c.is_whitespace() || c.is_control() || c == '*' || c == '>') {
        return Err(invalid(format!(
            "subject {subject:?} contains whitespace, a control character or a wildcard where none is allowed"
        )));
    }
    Ok(())
}

/// A literal subject: non-empty dot-separated tokens without whitespace or wildcards.
pub(crate) fn validate_subject(subject: &str) -> Result<()> {
    if subject.is_empty() {
        return Err(invalid("empty subject".into()));
    }
    let tokens: Vec<&str> = subject.split('.').collect();
    for (i, token) in tokens.iter().enumerate() {
        check_token(subject, token, false, i + 1 == tokens.len())?;
    }
    Ok(())
}

/// A listen pattern: a literal subject whose last token may be `>`.
pub(crate) fn validate_pattern(pattern: &str) -> Result<()> {
    if pattern.is_empty() {
        return Err(invalid("empty subject pattern".into()));
    }
    let tokens: Vec<&str> = pattern.split('.').collect();
    for (i, token) in tokens.iter().enumerate() {
        check_token(pattern, token, true, i + 1 == tokens.len())?;
    }
    Ok(())
}

/// A record subject of `topic`: a literal subject starting with `<topic>.`.
pub(crate) fn validate_record_subject(topic: &str, subject: &str) -> Result<()> {
    validate_subject(subject)?;
    let inside =
        subject.len() > topic.len() + 1 && subject.starts_with(topic) && subject.as_bytes()[topic.len()] == b'.';
    if !inside {
        return Err(invalid(format!(
            "subject {subject:?} is not inside topic {topic:?} (it must start with \"{topic}.\")"
        )));
    }
    Ok(())
}

/// A queue group name: non-empty, no whitespace.
pub(crate) fn validate_queue_group(group: &str) -> Result<()> {
    if group.is_empty() || group.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(format!("queue group {group:?} must be non-empty and contain no whitespace")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names_are_readable() {
        assert_eq!(stream_name("", "fv.dml.3"), "FV_DML_3");
        assert_eq!(stream_name("T_", "run-1a_b.x"), "T_RUN-1A_B_X");
        assert_eq!(topic_subjects("fv.dml.3"), "fv.dml.3.>");
    }

    #[test]
    fn topics_must_be_subject_tokens() {
        for ok in ["fv.dml.0", "a", "A-b_c.9", "x.y.z"] {
            validate_topic(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in ["", ".a", "a.", "a..b", "a b", "a/b", "a*", "a.>", "ü", "a\\b", &"x".repeat(201)] {
            assert!(matches!(validate_topic(bad), Err(BrokerError::InvalidArgument { .. })), "{bad:?}");
        }
    }

    #[test]
    fn subjects_and_patterns() {
        validate_subject("fv.rpc.datacoord.Flush").expect("literal");
        validate_subject("a.ü.$x").expect("any printable token");
        for bad in ["", "a..b", ".a", "a.", "a.*.b", "a.>", "a b", "a\tb", "a.b*"] {
            assert!(validate_subject(bad).is_err(), "{bad:?}");
        }
        validate_pattern("fv.evt.>").expect("tail wildcard");
        validate_pattern("fv.evt.a").expect("literal pattern");
        for bad in ["fv.>.a", "fv.*", ">a", "", "a..>"] {
            assert!(validate_pattern(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn record_subjects_live_inside_their_topic() {
        validate_record_subject("fv.dml.1", "fv.dml.1.7v0").expect("inside");
        validate_record_subject("fv.dml.1", "fv.dml.1.tt").expect("inside");
        for bad in ["fv.dml.1", "fv.dml.10.tt", "fv.dml.1.", "fv.dml.2.tt", "x"] {
            assert!(validate_record_subject("fv.dml.1", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn prefixes_and_groups() {
        validate_stream_prefix("").expect("empty");
        validate_stream_prefix("FV_test-1").expect("name chars");
        assert!(validate_stream_prefix("a.b").is_err());
        assert!(validate_stream_prefix(&"x".repeat(33)).is_err());
        validate_queue_group("datacoord").expect("group");
        assert!(validate_queue_group("").is_err());
        assert!(validate_queue_group("a b").is_err());
    }
}
