//! Backend errors as the Milvus-style errors roles answer with: unavailable, and
//! retriable when the backend says the failure is transient.

use fv_common::FvError;

/// A meta store failure.
pub fn meta_err(e: fv_metastore::MetaError) -> FvError {
    FvError::unavailable(format!("meta store: {e}")).retriable(e.is_retriable())
}

/// A log broker failure.
pub fn broker_err(e: fv_logbroker::BrokerError) -> FvError {
    FvError::unavailable(format!("log broker: {e}")).retriable(e.is_retriable())
}
