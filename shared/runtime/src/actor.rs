//! Helpers for the actix actors at the core of each role.
//!
//! Most roles keep their state behind an `Arc` shared with read-only request handlers
//! and use an actor to *serialise* every change: each message is handled by an
//! exclusive (`AtomicResponse`) handler that runs an async method of the shared core to
//! completion before the next message starts. [`atomic_handlers!`] writes those message
//! types and handlers.

use fv_common::FvError;

/// Converts an actor mailbox failure (the actor stopped) into a retriable error.
pub fn mailbox_error(e: actix::MailboxError) -> FvError {
    FvError::unavailable(format!("actor stopped: {e}"))
}

/// Declares one message type per line and an exclusive handler on `$actor` that awaits
/// `self.$inner.$method(request)`:
///
/// ```ignore
/// atomic_handlers!(DataCoordActor, inner;
///     Assign(AssignSegmentRequest) => assign -> AssignSegmentResponse;
/// );
/// ```
#[macro_export]
macro_rules! atomic_handlers {
    ($actor:ty, $inner:ident; $($msg:ident($req:ty) => $method:ident -> $ret:ty;)*) => {
        $(
            #[doc = concat!("Runs `", stringify!($method), "` exclusively on the actor.")]
            pub struct $msg(pub $req);
            impl ::actix::Message for $msg {
                type Result = ::fv_common::FvResult<$ret>;
            }
            impl ::actix::Handler<$msg> for $actor {
                type Result = ::actix::AtomicResponse<Self, ::fv_common::FvResult<$ret>>;
                fn handle(&mut self, msg: $msg, _ctx: &mut Self::Context) -> Self::Result {
                    use ::actix::WrapFuture;
                    let inner = self.$inner.clone();
                    let span = ::tracing::debug_span!(concat!("actor.", stringify!($method)));
                    ::actix::AtomicResponse::new(Box::pin(
                        ::tracing::Instrument::instrument(async move { inner.$method(msg.0).await }, span).into_actor(self),
                    ))
                }
            }
        )*
    };
}
