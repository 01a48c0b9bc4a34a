//! Limits on nesting, and the big-stack helper thread that lets deep trees be parsed,
//! compiled and evaluated recursively without overflowing the caller's stack.

use crate::error::{ExprError, ExprErrorKind};

/// The deepest nesting of an expression (parentheses, operators, arrays) accepted.
pub const MAX_DEPTH: usize = 1000;

/// Trees deeper than this are parsed, compiled and evaluated on a helper thread with a
/// large stack, so that nesting up to [`MAX_DEPTH`] cannot overflow the caller's stack
/// (unoptimised builds use kilobytes of stack per level).
pub(crate) const SHALLOW_DEPTH: usize = 48;

/// Stack of the helper thread for deep expressions.
const BIG_STACK_BYTES: usize = 64 << 20;

/// Runs `f` on a helper thread with a [`BIG_STACK_BYTES`] stack.
pub(crate) fn on_big_stack<R: Send>(f: impl FnOnce() -> R + Send) -> Result<R, ExprError> {
    let fail =
        |why: &str| ExprError::new(ExprErrorKind::TooDeep, format!("expression is too deeply nested: {why}"), None);
    std::thread::scope(|s| {
        let handle = std::thread::Builder::new()
            .name("fv-expr-deep".into())
            .stack_size(BIG_STACK_BYTES)
            .spawn_scoped(s, f)
            .map_err(|e| fail(&format!("cannot start a thread for it: {e}")))?;
        handle.join().map_err(|_| fail("its evaluation failed"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_stack_runs_and_reports_panics() {
        assert_eq!(on_big_stack(|| 6 * 7).expect("runs"), 42);
        let e = on_big_stack(|| -> u8 { panic!("boom") }).expect_err("a panic is an error");
        assert_eq!(e.kind, ExprErrorKind::TooDeep);
        assert_eq!(e.to_string(), "expression is too deeply nested: its evaluation failed");
        const { assert!(SHALLOW_DEPTH < MAX_DEPTH) };
    }
}
