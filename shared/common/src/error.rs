//! Milvus error codes and [`FvError`], the error that crosses role boundaries.
//!
//! Every crate has its own `thiserror` enum for what can go wrong inside it; at a role's
//! edge those convert into an `FvError`: a Milvus code (the numbering of Milvus'
//! `merr` package, which SDKs and their users know), a message that names the problem,
//! and whether retrying can help. On the wire it becomes a `common.Status` with the new
//! `code` plus the legacy `error_code` that older clients read.

use fv_proto::common::{ErrorCode, Status};

/// Milvus error codes (the `code` field of `common.Status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum Code {
    Success = 0,
    ServiceNotReady = 1,
    ServiceUnavailable = 2,
    ServiceMemoryLimitExceeded = 3,
    ServiceRequestLimitExceeded = 4,
    ServiceInternal = 5,
    ServiceDiskLimitExceeded = 7,
    RateLimit = 8,
    ForceDeny = 9,
    ServiceUnimplemented = 10,
    CollectionNotFound = 100,
    CollectionNotLoaded = 101,
    CollectionNumLimitExceeded = 102,
    CollectionNotFullyLoaded = 103,
    PartitionNotFound = 200,
    PartitionNotLoaded = 201,
    PartitionNotFullyLoaded = 202,
    ReplicaNotAvailable = 401,
    ChannelNotFound = 500,
    ChannelNotAvailable = 503,
    SegmentNotFound = 600,
    SegmentNotLoaded = 601,
    IndexNotFound = 700,
    IndexNotSupported = 701,
    IndexDuplicate = 702,
    DatabaseNotFound = 800,
    DatabaseNumLimitExceeded = 801,
    DatabaseInvalidName = 802,
    NodeNotFound = 901,
    NodeNotAvailable = 905,
    IoKeyNotFound = 1000,
    IoFailed = 1001,
    ParameterInvalid = 1100,
    MetricNotFound = 1200,
    MqTopicNotFound = 1300,
    MqInternal = 1302,
    AliasNotFound = 1600,
    AliasCollectionNameConflict = 1601,
    AliasAlreadyExist = 1602,
    FieldNotFound = 1700,
    FieldInvalidName = 1701,
    Timeout = 10001,
    Unexpected = 65535,
}

impl Code {
    pub fn from_i32(v: i32) -> Code {
        use Code::*;
        const ALL: &[Code] = &[
            Success,
            ServiceNotReady,
            ServiceUnavailable,
            ServiceMemoryLimitExceeded,
            ServiceRequestLimitExceeded,
            ServiceInternal,
            ServiceDiskLimitExceeded,
            RateLimit,
            ForceDeny,
            ServiceUnimplemented,
            CollectionNotFound,
            CollectionNotLoaded,
            CollectionNumLimitExceeded,
            CollectionNotFullyLoaded,
            PartitionNotFound,
            PartitionNotLoaded,
            PartitionNotFullyLoaded,
            ReplicaNotAvailable,
            ChannelNotFound,
            ChannelNotAvailable,
            SegmentNotFound,
            SegmentNotLoaded,
            IndexNotFound,
            IndexNotSupported,
            IndexDuplicate,
            DatabaseNotFound,
            DatabaseNumLimitExceeded,
            DatabaseInvalidName,
            NodeNotFound,
            NodeNotAvailable,
            IoKeyNotFound,
            IoFailed,
            ParameterInvalid,
            MetricNotFound,
            MqTopicNotFound,
            MqInternal,
            AliasNotFound,
            AliasCollectionNameConflict,
            AliasAlreadyExist,
            FieldNotFound,
            FieldInvalidName,
            Timeout,
            Unexpected,
        ];
        ALL.iter().copied().find(|c| *c as i32 == v).unwrap_or(Unexpected)
    }

    /// The legacy `common.ErrorCode` that older SDK code paths still inspect.
    pub fn legacy(self) -> ErrorCode {
        match self {
            Code::Success => ErrorCode::Success,
            Code::CollectionNotFound => ErrorCode::CollectionNotExists,
            Code::ParameterInvalid | Code::FieldNotFound | Code::FieldInvalidName => ErrorCode::IllegalArgument,
            Code::IndexNotFound => ErrorCode::IndexNotExist,
            Code::RateLimit => ErrorCode::RateLimit,
            Code::ForceDeny => ErrorCode::ForceDeny,
            Code::ServiceNotReady => ErrorCode::NotReadyServe,
            Code::SegmentNotFound => ErrorCode::SegmentNotFound,
            Code::ServiceMemoryLimitExceeded => ErrorCode::MemoryQuotaExhausted,
            Code::ServiceDiskLimitExceeded => ErrorCode::DiskQuotaExhausted,
            _ => ErrorCode::UnexpectedError,
        }
    }

    /// Whether the same request may succeed later without change.
    pub fn default_retriable(self) -> bool {
        matches!(
            self,
            Code::ServiceNotReady
                | Code::ServiceUnavailable
                | Code::ServiceRequestLimitExceeded
                | Code::RateLimit
                | Code::CollectionNotFullyLoaded
                | Code::PartitionNotFullyLoaded
                | Code::ChannelNotAvailable
                | Code::NodeNotAvailable
                | Code::Timeout
        )
    }

    /// Errors caused by the request (bad input) rather than by the system.
    pub fn is_input_error(self) -> bool {
        matches!(
            self,
            Code::CollectionNotFound
                | Code::CollectionNotLoaded
                | Code::PartitionNotFound
                | Code::PartitionNotLoaded
                | Code::IndexNotFound
                | Code::IndexNotSupported
                | Code::IndexDuplicate
                | Code::DatabaseNotFound
                | Code::DatabaseInvalidName
                | Code::ParameterInvalid
                | Code::MetricNotFound
                | Code::AliasNotFound
                | Code::AliasCollectionNameConflict
                | Code::AliasAlreadyExist
                | Code::FieldNotFound
                | Code::FieldInvalidName
                | Code::CollectionNumLimitExceeded
        )
    }
}

/// An error with its Milvus code, as it travels between roles and to clients.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FvError {
    pub code: Code,
    pub message: String,
    pub retriable: bool,
    /// Legacy error code to report when it differs from `code.legacy()` (e.g. EmptyCollection).
    pub legacy: Option<ErrorCode>,
}

pub type FvResult<T> = Result<T, FvError>;

impl FvError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), retriable: code.default_retriable(), legacy: None }
    }

    pub fn with_legacy(mut self, legacy: ErrorCode) -> Self {
        self.legacy = Some(legacy);
        self
    }

    pub fn retriable(mut self, retriable: bool) -> Self {
        self.retriable = retriable;
        self
    }

    /// Prepends context to the message, keeping the code.
    pub fn context(mut self, ctx: impl std::fmt::Display) -> Self {
        self.message = format!("{ctx}: {}", self.message);
        self
    }

    // Constructors with Milvus' message shapes ("<what>[<key>=<value>]"), which SDK test
    // suites match as substrings.

    pub fn database_not_found(db: &str) -> Self {
        FvError::new(Code::DatabaseNotFound, format!("database not found[database={db}]"))
    }

    pub fn collection_not_found(db: &str, name: &str) -> Self {
        Self::new(Code::CollectionNotFound, format!("collection not found[database={db}][collection={name}]"))
    }
    pub fn collection_id_not_found(id: i64) -> Self {
        Self::new(Code::CollectionNotFound, format!("collection not found[collection={id}]"))
    }
    pub fn collection_not_loaded(name: &str) -> Self {
        Self::new(Code::CollectionNotLoaded, format!("collection not loaded[collection={name}]"))
    }
    pub fn partition_not_found(name: &str) -> Self {
        Self::new(Code::PartitionNotFound, format!("partition not found[partition={name}]"))
    }
    pub fn invalid_parameter(msg: impl std::fmt::Display) -> Self {
        Self::new(Code::ParameterInvalid, format!("{msg}: invalid parameter"))
    }
    pub fn field_not_found(name: &str) -> Self {
        Self::new(Code::FieldNotFound, format!("field not found[field={name}]"))
    }
    pub fn index_not_found(what: impl std::fmt::Display) -> Self {
        Self::new(Code::IndexNotFound, format!("index not found[{what}]"))
    }
    pub fn not_ready(what: impl std::fmt::Display) -> Self {
        Self::new(Code::ServiceNotReady, format!("service not ready: {what}"))
    }
    pub fn unavailable(what: impl std::fmt::Display) -> Self {
        Self::new(Code::ServiceUnavailable, format!("service unavailable: {what}"))
    }
    pub fn internal(what: impl std::fmt::Display) -> Self {
        Self::new(Code::ServiceInternal, format!("service internal error: {what}"))
    }
    pub fn unimplemented(what: impl std::fmt::Display) -> Self {
        Self::new(Code::ServiceUnimplemented, format!("service unimplemented: {what}"))
    }
    pub fn io(what: impl std::fmt::Display) -> Self {
        Self::new(Code::IoFailed, format!("IO failed: {what}"))
    }
    pub fn timeout(what: impl std::fmt::Display) -> Self {
        Self::new(Code::Timeout, format!("timeout: {what}"))
    }

    pub fn to_status(&self) -> Status {
        Status {
            error_code: self.legacy.unwrap_or_else(|| self.code.legacy()) as i32,
            reason: self.message.clone(),
            code: self.code as i32,
            retriable: self.retriable,
            detail: self.message.clone(),
            extra_info: Default::default(),
        }
    }

    /// The error a non-success status describes, or None for success.
    pub fn from_status(status: &Status) -> Option<FvError> {
        if status.code == 0 && status.error_code == 0 {
            return None;
        }
        let code = if status.code != 0 {
            Code::from_i32(status.code)
        } else {
            match ErrorCode::try_from(status.error_code) {
                Ok(ErrorCode::CollectionNotExists) => Code::CollectionNotFound,
                Ok(ErrorCode::IllegalArgument) => Code::ParameterInvalid,
                Ok(ErrorCode::IndexNotExist) => Code::IndexNotFound,
                _ => Code::Unexpected,
            }
        };
        let legacy = ErrorCode::try_from(status.error_code).ok().filter(|l| *l != code.legacy());
        Some(FvError { code, message: status.reason.clone(), retriable: status.retriable, legacy })
    }
}

/// A bus handler's error travels to its caller as the response's status.
impl fv_proto::rpc::IntoStatus for FvError {
    fn into_status(self) -> Status {
        self.to_status()
    }
}

/// A success status.
pub fn ok_status() -> Status {
    Status::default()
}

/// The status for a result: success, or the error's.
pub fn status_of<T>(r: &FvResult<T>) -> Status {
    match r {
        Ok(_) => ok_status(),
        Err(e) => e.to_status(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trip_keeps_code_and_legacy() {
        let e = FvError::collection_not_found("default", "c1");
        let st = e.to_status();
        assert_eq!(st.code, 100);
        assert_eq!(st.error_code, ErrorCode::CollectionNotExists as i32);
        assert_eq!(FvError::from_status(&st), Some(e));
        assert_eq!(FvError::from_status(&ok_status()), None);
        let empty = FvError::new(Code::Unexpected, "empty").with_legacy(ErrorCode::EmptyCollection);
        assert_eq!(FvError::from_status(&empty.to_status()), Some(empty));
    }

    #[test]
    fn every_code_maps_back() {
        for v in [0, 1, 100, 101, 200, 700, 1100, 65535] {
            assert_eq!(Code::from_i32(v) as i32, v);
        }
        assert_eq!(Code::from_i32(4242), Code::Unexpected);
    }
}
