//! LIKE patterns: `%` matches any run of characters, `_` exactly one character, and a
//! backslash makes the next character literal (`\%`, `\_`, `\\`). Patterns of the common
//! shapes (`abc`, `abc%`, `%abc`, `%abc%`) compile to plain string tests.

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum LikeTok {
    Char(char),
    /// `_`
    One,
    /// `%`
    Any,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum LikePattern {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Infix(String),
    General(Vec<LikeTok>),
}

impl LikePattern {
    pub(crate) fn compile(pattern: &str) -> LikePattern {
        let mut toks = Vec::new();
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => toks.push(LikeTok::Char(chars.next().unwrap_or('\\'))),
                '%' => {
                    if toks.last() != Some(&LikeTok::Any) {
                        toks.push(LikeTok::Any)
                    }
                }
                '_' => toks.push(LikeTok::One),
                c => toks.push(LikeTok::Char(c)),
            }
        }
        let lead = toks.first() == Some(&LikeTok::Any);
        let trail = toks.len() > usize::from(lead) && toks.last() == Some(&LikeTok::Any);
        let inner = &toks[usize::from(lead)..toks.len() - usize::from(trail)];
        let literal: Option<String> = inner
            .iter()
            .map(|t| match t {
                LikeTok::Char(c) => Some(*c),
                _ => None,
            })
            .collect();
        match (literal, lead, trail) {
            (Some(s), false, false) => LikePattern::Exact(s),
            (Some(s), false, true) => LikePattern::Prefix(s),
            (Some(s), true, false) if s.is_empty() => LikePattern::Prefix(s),
            (Some(s), true, false) => LikePattern::Suffix(s),
            (Some(s), true, true) => LikePattern::Infix(s),
            (None, ..) => LikePattern::General(toks),
        }
    }

    #[inline]
    pub(crate) fn matches(&self, s: &str) -> bool {
        match self {
            LikePattern::Exact(p) => s == p,
            LikePattern::Prefix(p) => s.starts_with(p.as_str()),
            LikePattern::Suffix(p) => s.ends_with(p.as_str()),
            LikePattern::Infix(p) => s.contains(p.as_str()),
            LikePattern::General(toks) => general_match(toks, s),
        }
    }
}

fn char_len_at(s: &str, i: usize) -> usize {
    s[i..].chars().next().map_or(1, char::len_utf8)
}

/// Wildcard matching with backtracking to the last `%` only: O(len(s) * len(p)) at
/// worst, no recursion.
fn general_match(p: &[LikeTok], s: &str) -> bool {
    let (mut pi, mut si) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if let Some(t) = p.get(pi) {
            match t {
                LikeTok::Any => {
                    star = Some((pi, si));
                    pi += 1;
                    continue;
                }
                LikeTok::One => {
                    si += char_len_at(s, si);
                    pi += 1;
                    continue;
                }
                LikeTok::Char(c) if s[si..].starts_with(*c) => {
                    si += c.len_utf8();
                    pi += 1;
                    continue;
                }
                LikeTok::Char(_) => {}
            }
        }
        let Some((sp, ss)) = star else {
            return false;
        };
        let next = ss + char_len_at(s, ss);
        star = Some((sp, next));
        pi = sp + 1;
        si = next;
    }
    while p.get(pi) == Some(&LikeTok::Any) {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_path_shapes() {
        assert_eq!(LikePattern::compile("abc"), LikePattern::Exact("abc".into()));
        assert_eq!(LikePattern::compile("ab%"), LikePattern::Prefix("ab".into()));
        assert_eq!(LikePattern::compile("%ab"), LikePattern::Suffix("ab".into()));
        assert_eq!(LikePattern::compile("%ab%%"), LikePattern::Infix("ab".into()));
        assert_eq!(LikePattern::compile("%"), LikePattern::Prefix(String::new()));
        assert_eq!(LikePattern::compile("%%"), LikePattern::Prefix(String::new()));
        assert_eq!(LikePattern::compile(""), LikePattern::Exact(String::new()));
        assert_eq!(LikePattern::compile(r"50\%%"), LikePattern::Prefix("50%".into()));
        assert!(matches!(LikePattern::compile("a_c"), LikePattern::General(_)));
        assert!(matches!(LikePattern::compile("a%c"), LikePattern::General(_)));
    }

    #[test]
    fn matching() {
        let m = |p: &str, s: &str| LikePattern::compile(p).matches(s);
        assert!(m("ab%", "abc") && m("ab%", "ab") && !m("ab%", "xab"));
        assert!(m("%ab", "xxab") && !m("%ab", "abx"));
        assert!(m("%ab%", "xaby") && !m("%ab%", "ba"));
        assert!(m("a_c", "abc") && m("a_c", "aéc") && !m("a_c", "ac") && !m("a_c", "abbc"));
        assert!(m("a%c", "ac") && m("a%c", "abbbc") && !m("a%c", "abbbd"));
        assert!(m("%a%b%c%", "xxaxxbxxcxx") && !m("%a%b%c%", "cba"));
        assert!(m("_", "é") && !m("_", "") && !m("_", "ab"));
        assert!(m("a\\_c", "a_c") && !m("a\\_c", "abc"));
        assert!(m("%\\%", "100%") && !m("%\\%", "100"));
        assert!(m("%ba_%", "abab") && m("%ba_", "abab") && !m("%ba_", "abba"));
        assert!(m("", "") && !m("", "a"));
        assert!(m("%", "") && m("%", "anything"));
        // Backtracking cost stays polynomial.
        let s = "a".repeat(2000);
        assert!(!m(&format!("{}b", "%a".repeat(50)), &s));
    }
}
