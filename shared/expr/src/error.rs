//! The one error type of the crate.

use fv_common::FvError;

/// What class of problem an [`ExprError`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExprErrorKind {
    /// The text is not a well-formed expression (bad token, unbalanced parentheses, …).
    Syntax,
    /// A name that is neither a schema field nor (without a dynamic field) a dynamic key.
    UnknownField,
    /// Operands of the wrong type, a non-boolean filter, an unsupported function, …
    Type,
    /// A `{name}` placeholder without a value, or a value of an unusable kind.
    Template,
    /// Nesting deeper than [`crate::MAX_DEPTH`].
    TooDeep,
    /// The data handed to [`crate::Plan::evaluate`] does not fit the plan (a column of
    /// the wrong type or length).
    Evaluation,
}

/// An error with the problem, its class and (for text problems) the byte offset in the
/// expression where it was found. Displays as `"<message> at position <n>"`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}{}", .message, .position.map(|p| format!(" at position {p}")).unwrap_or_default())]
pub struct ExprError {
    pub kind: ExprErrorKind,
    pub message: String,
    pub position: Option<usize>,
}

impl ExprError {
    pub fn new(kind: ExprErrorKind, message: impl Into<String>, position: Option<usize>) -> Self {
        ExprError { kind, message: message.into(), position }
    }
    pub(crate) fn syntax(message: impl Into<String>, pos: usize) -> Self {
        Self::new(ExprErrorKind::Syntax, message, Some(pos))
    }
    pub(crate) fn type_err(message: impl Into<String>, pos: usize) -> Self {
        Self::new(ExprErrorKind::Type, message, Some(pos))
    }
    pub(crate) fn eval(message: impl Into<String>) -> Self {
        Self::new(ExprErrorKind::Evaluation, message, None)
    }
}

impl From<ExprError> for FvError {
    /// Every expression error is the caller's input problem (Milvus answers invalid
    /// filters with code 1100), except data that does not fit a plan, which is internal.
    fn from(e: ExprError) -> FvError {
        match e.kind {
            ExprErrorKind::Evaluation => FvError::internal(format!("failed to evaluate filter: {e}")).retriable(false),
            _ => FvError::invalid_parameter(format!("failed to create query plan: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_position() {
        let e = ExprError::syntax("unexpected token ')'", 14);
        assert_eq!(e.to_string(), "unexpected token ')' at position 14");
        let e = ExprError::eval("column of field 101 has 3 rows, expected 4");
        assert_eq!(e.to_string(), "column of field 101 has 3 rows, expected 4");
        let f: FvError = ExprError::type_err("bad", 1).into();
        assert_eq!(f.code, fv_common::Code::ParameterInvalid);
        assert!(f.message.contains("bad at position 1"), "{}", f.message);
    }
}
