//! Tokens of the expression language, each with the byte offset where it starts.

use crate::error::ExprError;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// An integer literal; kept unsigned so that `-9223372036854775808` can be formed.
    Int(u64),
    Float(f64),
    Str(String),
    Ident(String),
    /// `$meta`
    Meta,
    True,
    False,
    And,
    Or,
    Not,
    In,
    Like,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    LParen,
    RParen,
    LBracket,
    RBracket,
    LBrace,
    RBrace,
    Comma,
    Eof,
}

impl Tok {
    /// How the token reads in an error message.
    pub(crate) fn describe(&self) -> String {
        let s = match self {
            Tok::Int(v) => return format!("'{v}'"),
            Tok::Float(v) => return format!("'{v}'"),
            Tok::Str(s) => return format!("string {s:?}"),
            Tok::Ident(s) => return format!("'{s}'"),
            Tok::Meta => "$meta",
            Tok::True => "true",
            Tok::False => "false",
            Tok::And => "and",
            Tok::Or => "or",
            Tok::Not => "not",
            Tok::In => "in",
            Tok::Like => "like",
            Tok::Eq => "==",
            Tok::Ne => "!=",
            Tok::Lt => "<",
            Tok::Le => "<=",
            Tok::Gt => ">",
            Tok::Ge => ">=",
            Tok::Plus => "+",
            Tok::Minus => "-",
            Tok::Star => "*",
            Tok::Slash => "/",
            Tok::Percent => "%",
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::LBracket => "[",
            Tok::RBracket => "]",
            Tok::LBrace => "{",
            Tok::RBrace => "}",
            Tok::Comma => ",",
            Tok::Eof => return "end of expression".to_string(),
        };
        format!("'{s}'")
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub tok: Tok,
    pub pos: usize,
}

/// Keywords are matched without regard to case (`and`, `AND`, `And` …).
fn keyword(word: &str) -> Option<Tok> {
    let lower = word.to_ascii_lowercase();
    Some(match lower.as_str() {
        "and" => Tok::And,
        "or" => Tok::Or,
        "not" => Tok::Not,
        "in" => Tok::In,
        "like" => Tok::Like,
        "true" => Tok::True,
        "false" => Tok::False,
        _ => return None,
    })
}

pub(crate) fn tokenize(src: &str) -> Result<Vec<Token>, ExprError> {
    let mut lx = Lexer { src, bytes: src.as_bytes(), pos: 0, out: Vec::new() };
    lx.run()?;
    Ok(lx.out)
}

struct Lexer<'a> {
    src: &'a str,
    bytes: &'a [u8],
    pos: usize,
    out: Vec<Token>,
}

fn is_ident_start(b: u8) -> bool {
    b == b'_' || b.is_ascii_alphabetic()
}

fn is_ident_char(b: u8) -> bool {
    b == b'_' || b.is_ascii_alphanumeric()
}

impl Lexer<'_> {
    fn peek(&self, off: usize) -> u8 {
        self.bytes.get(self.pos + off).copied().unwrap_or(0)
    }

    fn push(&mut self, tok: Tok, pos: usize) {
        self.out.push(Token { tok, pos });
    }

    fn run(&mut self) -> Result<(), ExprError> {
        while self.pos < self.bytes.len() {
            let start = self.pos;
            let b = self.bytes[start];
            match b {
                b' ' | b'\t' | b'\r' | b'\n' => self.pos += 1,
                b'0'..=b'9' => self.number()?,
                b'.' if self.peek(1).is_ascii_digit() => self.number()?,
                b'"' | b'\'' => self.string(b)?,
                b'$' => {
                    let rest = &self.bytes[start + 1..];
                    if rest.starts_with(b"meta") && !rest.get(4).copied().is_some_and(is_ident_char) {
                        self.pos += 5;
                        self.push(Tok::Meta, start);
                    } else {
                        return Err(ExprError::syntax(
                            "unexpected character '$' (only $meta may start with '$')",
                            start,
                        ));
                    }
                }
                _ if is_ident_start(b) => {
                    while self.pos < self.bytes.len() && is_ident_char(self.bytes[self.pos]) {
                        self.pos += 1;
                    }
                    let word = &self.src[start..self.pos];
                    let tok = keyword(word).unwrap_or_else(|| Tok::Ident(word.to_string()));
                    self.push(tok, start);
                }
                _ => self.operator(start)?,
            }
        }
        self.push(Tok::Eof, self.bytes.len());
        Ok(())
    }

    fn operator(&mut self, start: usize) -> Result<(), ExprError> {
        let b = self.bytes[start];
        let next = self.peek(1);
        let (tok, len) = match (b, next) {
            (b'=', b'=') => (Tok::Eq, 2),
            (b'!', b'=') => (Tok::Ne, 2),
            (b'<', b'=') => (Tok::Le, 2),
            (b'>', b'=') => (Tok::Ge, 2),
            (b'&', b'&') => (Tok::And, 2),
            (b'|', b'|') => (Tok::Or, 2),
            (b'*', b'*') | (b'<', b'<') | (b'>', b'>') | (b'=', b'~') | (b'!', b'~') => {
                let op = &self.src[start..start + 2];
                return Err(ExprError::syntax(format!("operator '{op}' is not supported"), start));
            }
            (b'=', _) => return Err(ExprError::syntax("unexpected character '=' (use '==' to compare)", start)),
            (b'&' | b'|' | b'^' | b'~', _) => {
                return Err(ExprError::syntax(format!("bitwise operator '{}' is not supported", b as char), start));
            }
            (b'!', _) => (Tok::Not, 1),
            (b'<', _) => (Tok::Lt, 1),
            (b'>', _) => (Tok::Gt, 1),
            (b'+', _) => (Tok::Plus, 1),
            (b'-', _) => (Tok::Minus, 1),
            (b'*', _) => (Tok::Star, 1),
            (b'/', _) => (Tok::Slash, 1),
            (b'%', _) => (Tok::Percent, 1),
            (b'(', _) => (Tok::LParen, 1),
            (b')', _) => (Tok::RParen, 1),
            (b'[', _) => (Tok::LBracket, 1),
            (b']', _) => (Tok::RBracket, 1),
            (b'{', _) => (Tok::LBrace, 1),
            (b'}', _) => (Tok::RBrace, 1),
            (b',', _) => (Tok::Comma, 1),
            _ => {
                let c = self.src[start..].chars().next().unwrap_or('?');
                return Err(ExprError::syntax(format!("unexpected character {c:?}"), start));
            }
        };
        self.pos += len;
        self.push(tok, start);
        Ok(())
    }

    fn digits(&mut self, ok: impl Fn(u8) -> bool) -> usize {
        let start = self.pos;
        while self.pos < self.bytes.len() && ok(self.bytes[self.pos]) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<(), ExprError> {
        let start = self.pos;
        let radix_prefix = if self.bytes[start] == b'0' {
            match self.peek(1) {
                b'x' | b'X' => Some(16),
                b'b' | b'B' => Some(2),
                b'o' | b'O' => Some(8),
                _ => None,
            }
        } else {
            None
        };
        let tok = if let Some(radix) = radix_prefix {
            self.pos += 2;
            let n = self.digits(|b| (b as char).is_digit(radix));
            if n == 0 {
                return Err(ExprError::syntax(
                    format!("invalid number literal '{}'", &self.src[start..self.pos]),
                    start,
                ));
            }
            let text = &self.src[start + 2..self.pos];
            Tok::Int(self.int_value(text, radix, start)?)
        } else {
            let int_digits = self.digits(|b| b.is_ascii_digit());
            let mut is_float = false;
            if self.peek(0) == b'.' {
                // `1.` and `1.5` are floats; `.5` starts here with int_digits == 0.
                self.pos += 1;
                self.digits(|b| b.is_ascii_digit());
                is_float = true;
            }
            if matches!(self.peek(0), b'e' | b'E') {
                let sign = usize::from(matches!(self.peek(1), b'+' | b'-'));
                if self.peek(1 + sign).is_ascii_digit() {
                    self.pos += 1 + sign;
                    self.digits(|b| b.is_ascii_digit());
                    is_float = true;
                }
            }
            let text = &self.src[start..self.pos];
            if is_float {
                let v: f64 =
                    text.parse().map_err(|_| ExprError::syntax(format!("invalid number literal '{text}'"), start))?;
                if !v.is_finite() {
                    return Err(ExprError::syntax(format!("float literal '{text}' is out of range"), start));
                }
                Tok::Float(v)
            } else if int_digits > 1 && text.starts_with('0') {
                // C-style octal: 017 == 15.
                if !text.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
                    return Err(ExprError::syntax(format!("invalid octal literal '{text}'"), start));
                }
                Tok::Int(self.int_value(&text[1..], 8, start)?)
            } else {
                Tok::Int(self.int_value(text, 10, start)?)
            }
        };
        if self.pos < self.bytes.len() && (is_ident_char(self.bytes[self.pos]) || self.bytes[self.pos] == b'.') {
            let mut end = self.pos;
            while end < self.bytes.len() && (is_ident_char(self.bytes[end]) || self.bytes[end] == b'.') {
                end += 1;
            }
            return Err(ExprError::syntax(format!("invalid number literal '{}'", &self.src[start..end]), start));
        }
        self.push(tok, start);
        Ok(())
    }

    fn int_value(&self, digits: &str, radix: u32, start: usize) -> Result<u64, ExprError> {
        u64::from_str_radix(digits, radix).map_err(|_| {
            ExprError::syntax(format!("integer literal '{}' is out of range", &self.src[start..self.pos]), start)
        })
    }

    fn string(&mut self, quote: u8) -> Result<(), ExprError> {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.src[self.pos..].chars().next() else {
                return Err(ExprError::syntax("unterminated string literal", start));
            };
            if c as u32 == u32::from(quote) {
                self.pos += 1;
                break;
            }
            if c != '\\' {
                out.push(c);
                self.pos += c.len_utf8();
                continue;
            }
            let esc_pos = self.pos;
            self.pos += 1;
            let Some(e) = self.src[self.pos..].chars().next() else {
                return Err(ExprError::syntax("unterminated string literal", start));
            };
            self.pos += e.len_utf8();
            match e {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                'a' => out.push('\u{7}'),
                'b' => out.push('\u{8}'),
                'f' => out.push('\u{c}'),
                'v' => out.push('\u{b}'),
                '\\' => out.push('\\'),
                '"' => out.push('"'),
                '\'' => out.push('\''),
                '?' => out.push('?'),
                '0'..='7' => {
                    let mut v = e as u32 - '0' as u32;
                    for _ in 0..2 {
                        let d = self.peek(0);
                        if (b'0'..=b'7').contains(&d) {
                            v = v * 8 + u32::from(d - b'0');
                            self.pos += 1;
                        } else {
                            break;
                        }
                    }
                    out.push(char::from_u32(v).unwrap_or('\u{fffd}'));
                }
                'x' => {
                    let hs = self.pos;
                    let n = self.digits(|b| b.is_ascii_hexdigit()).min(2);
                    self.pos = hs + n;
                    if n == 0 {
                        return Err(ExprError::syntax("invalid escape '\\x' in string literal", esc_pos));
                    }
                    let v = u32::from_str_radix(&self.src[hs..hs + n], 16).unwrap_or(0xfffd);
                    out.push(char::from_u32(v).unwrap_or('\u{fffd}'));
                }
                'u' | 'U' => {
                    let c = self.unicode_escape(if e == 'u' { 4 } else { 8 }, esc_pos)?;
                    out.push(c);
                }
                // Other escapes keep their backslash, so that LIKE patterns can say `\%`
                // and `\_` for a literal percent sign or underscore.
                other => {
                    out.push('\\');
                    out.push(other);
                }
            }
        }
        self.push(Tok::Str(out), start);
        Ok(())
    }

    fn hex_digits(&mut self, n: usize, esc_pos: usize) -> Result<u32, ExprError> {
        let s = self.src.get(self.pos..self.pos + n).filter(|s| s.bytes().all(|b| b.is_ascii_hexdigit()));
        let Some(s) = s else {
            return Err(ExprError::syntax(format!("invalid unicode escape: expected {n} hex digits"), esc_pos));
        };
        self.pos += n;
        u32::from_str_radix(s, 16).map_err(|_| ExprError::syntax("invalid unicode escape", esc_pos))
    }

    fn unicode_escape(&mut self, n: usize, esc_pos: usize) -> Result<char, ExprError> {
        let v = self.hex_digits(n, esc_pos)?;
        if (0xD800..0xDC00).contains(&v) && n == 4 {
            // A UTF-16 surrogate pair written as two escapes.
            if self.peek(0) == b'\\' && self.peek(1) == b'u' {
                let save = self.pos;
                self.pos += 2;
                let lo = self.hex_digits(4, esc_pos)?;
                if (0xDC00..0xE000).contains(&lo) {
                    let c = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00);
                    return char::from_u32(c).ok_or_else(|| ExprError::syntax("invalid unicode escape", esc_pos));
                }
                self.pos = save;
            }
            return Err(ExprError::syntax("invalid unicode escape: unpaired surrogate", esc_pos));
        }
        char::from_u32(v)
            .ok_or_else(|| ExprError::syntax(format!("invalid unicode escape: {v:#x} is not a character"), esc_pos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        tokenize(s).expect("lexes").into_iter().map(|t| t.tok).collect()
    }

    fn err(s: &str) -> String {
        tokenize(s).expect_err("must fail").to_string()
    }

    #[test]
    fn numbers() {
        assert_eq!(
            toks("42 0x1F 0X1f 0o17 017 0b101 0B11 0"),
            vec![
                Tok::Int(42),
                Tok::Int(31),
                Tok::Int(31),
                Tok::Int(15),
                Tok::Int(15),
                Tok::Int(5),
                Tok::Int(3),
                Tok::Int(0),
                Tok::Eof
            ]
        );
        assert_eq!(
            toks("1.5 1e-3 .5 2. 3E+2 0.25"),
            vec![
                Tok::Float(1.5),
                Tok::Float(0.001),
                Tok::Float(0.5),
                Tok::Float(2.0),
                Tok::Float(300.0),
                Tok::Float(0.25),
                Tok::Eof
            ]
        );
        assert_eq!(toks("18446744073709551615"), vec![Tok::Int(u64::MAX), Tok::Eof]);
        assert_eq!(err("18446744073709551616"), "integer literal '18446744073709551616' is out of range at position 0");
        assert_eq!(err("a > 09"), "invalid octal literal '09' at position 4");
        assert_eq!(err("a > 12abc"), "invalid number literal '12abc' at position 4");
        assert_eq!(err("0x"), "invalid number literal '0x' at position 0");
        assert_eq!(err("1e999"), "float literal '1e999' is out of range at position 0");
        assert_eq!(err("1.2.3"), "invalid number literal '1.2.3' at position 0");
    }

    #[test]
    fn strings_and_escapes() {
        assert_eq!(
            toks(r#""a\n\t\\\"b" 'c\'d' "\u00e9\x41\101" "\uD83D\uDE00""#),
            vec![
                Tok::Str("a\n\t\\\"b".into()),
                Tok::Str("c'd".into()),
                Tok::Str("éAA".into()),
                Tok::Str("😀".into()),
                Tok::Eof
            ]
        );
        assert_eq!(toks(r#"'a\%b\_'"#), vec![Tok::Str(r"a\%b\_".into()), Tok::Eof]);
        assert_eq!(toks("'héllo' \"\""), vec![Tok::Str("héllo".into()), Tok::Str(String::new()), Tok::Eof]);
        assert_eq!(err(r#"a == "abc"#), "unterminated string literal at position 5");
        assert_eq!(err(r#"a == "abc\"#), "unterminated string literal at position 5");
        assert_eq!(err(r#"'\u12'"#), "invalid unicode escape: expected 4 hex digits at position 1");
        assert_eq!(err(r#"'\uD800'"#), "invalid unicode escape: unpaired surrogate at position 1");
    }

    #[test]
    fn words_and_operators() {
        assert_eq!(
            toks("a AND b && c Or d || NOT e ! f in IN like LIKE True FALSE $meta"),
            vec![
                Tok::Ident("a".into()),
                Tok::And,
                Tok::Ident("b".into()),
                Tok::And,
                Tok::Ident("c".into()),
                Tok::Or,
                Tok::Ident("d".into()),
                Tok::Or,
                Tok::Not,
                Tok::Ident("e".into()),
                Tok::Not,
                Tok::Ident("f".into()),
                Tok::In,
                Tok::In,
                Tok::Like,
                Tok::Like,
                Tok::True,
                Tok::False,
                Tok::Meta,
                Tok::Eof
            ]
        );
        assert_eq!(toks("<= < >= > == != + - * / % ( ) [ ] { } ,").len(), 19);
        assert_eq!(err("a = 1"), "unexpected character '=' (use '==' to compare) at position 2");
        assert_eq!(err("a # 1"), "unexpected character '#' at position 2");
        assert_eq!(err("a ** 2"), "operator '**' is not supported at position 2");
        assert_eq!(err("a & 2"), "bitwise operator '&' is not supported at position 2");
        assert_eq!(err("$foo"), "unexpected character '$' (only $meta may start with '$') at position 0");
        assert_eq!(err("a == 'x' ♥"), "unexpected character '♥' at position 9");
    }
}
