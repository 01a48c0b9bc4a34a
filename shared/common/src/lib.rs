//! Vocabulary shared by every Ferrovec crate: ids and hybrid timestamps, the Milvus error
//! codes and the [`FvError`] that carries them across roles, the validated schema model,
//! primary keys, vector similarity metrics, the row bitset ([`bitset`]) and the naming of
//! channels on the log.

pub mod bitset;
pub mod channel;
pub mod error;
pub mod hash;
pub mod ids;
pub mod metric;
pub mod pk;
pub mod schema;
pub mod ts;

pub use error::{Code, FvError, FvResult};
pub use ids::*;
pub use metric::Metric;
pub use pk::PrimaryKey;
pub use ts::Timestamp;
