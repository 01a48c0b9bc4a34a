//! Generated code for Ferrovec's protobuf definitions. The module tree mirrors the
//! protobuf packages: `milvus::proto::{common, schema, milvus}` is the Milvus client API
//! (our own .proto text, Milvus' names and field numbers), `fv::*` are Ferrovec's
//! internal bus messages, meta records and role requests; [`rpc`] is what the generated
//! glue of the internal bus services (`service` blocks in `proto/internal/`) is written
//! against.

#![allow(clippy::all, missing_docs)]

pub mod rpc;

pub mod milvus {
    pub mod proto {
        pub mod common {
            include!(concat!(env!("OUT_DIR"), "/milvus.proto.common.rs"));
        }
        pub mod schema {
            include!(concat!(env!("OUT_DIR"), "/milvus.proto.schema.rs"));
        }
        pub mod milvus {
            include!(concat!(env!("OUT_DIR"), "/milvus.proto.milvus.rs"));
        }
    }
}

pub mod fv {
    pub mod common {
        include!(concat!(env!("OUT_DIR"), "/fv.common.rs"));
    }
    pub mod msg {
        include!(concat!(env!("OUT_DIR"), "/fv.msg.rs"));
    }
    pub mod meta {
        include!(concat!(env!("OUT_DIR"), "/fv.meta.rs"));
    }
    pub mod rootcoord {
        include!(concat!(env!("OUT_DIR"), "/fv.rootcoord.rs"));
    }
    pub mod proxy {
        include!(concat!(env!("OUT_DIR"), "/fv.proxy.rs"));
    }
    pub mod datacoord {
        include!(concat!(env!("OUT_DIR"), "/fv.datacoord.rs"));
    }
    pub mod datanode {
        include!(concat!(env!("OUT_DIR"), "/fv.datanode.rs"));
    }
    pub mod querycoord {
        include!(concat!(env!("OUT_DIR"), "/fv.querycoord.rs"));
    }
    pub mod querynode {
        include!(concat!(env!("OUT_DIR"), "/fv.querynode.rs"));
    }
    pub mod index {
        include!(concat!(env!("OUT_DIR"), "/fv.index.rs"));
    }
}

pub use milvus::proto::{common, milvus as api, schema};
