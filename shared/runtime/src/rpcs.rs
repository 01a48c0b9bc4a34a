//! Every request a role serves, with its request and response types.

use fv_proto::common::Status;

use crate::rpc::{HasStatus, Role, Rpc};

macro_rules! has_status {
    ($($t:ty),* $(,)?) => {
        $(impl HasStatus for $t {
            fn status(&self) -> Option<&Status> { self.status.as_ref() }
            fn set_status(&mut self, status: Status) { self.status = Some(status); }
        })*
    };
}

macro_rules! rpcs {
    ($role:expr; $($name:ident => $req:ty => $resp:ty;)*) => {
        $(
            #[doc = concat!("`", stringify!($name), "` request.")]
            pub struct $name;
            impl Rpc for $name {
                const ROLE: Role = $role;
                const METHOD: &'static str = stringify!($name);
                type Req = $req;
                type Resp = $resp;
            }
        )*
    };
}

use fv_proto::fv::{
    common as c, datacoord as dc, datanode as dn, index as ix, proxy as px, querycoord as qc, querynode as qn,
    rootcoord as rc,
};

has_status!(
    c::StatusResponse,
    rc::AllocTimestampResponse,
    rc::AllocIdResponse,
    rc::DescribeCollectionResponse,
    rc::ShowCollectionsResponse,
    rc::ShowPartitionsResponse,
    rc::SyncTimeTickResponse,
    px::ConfirmTimeTickResponse,
    dc::AssignSegmentResponse,
    dc::FlushResponse,
    dc::GetFlushStateResponse,
    dc::GetRecoveryInfoResponse,
    dc::GetSegmentInfoResponse,
    dc::GetCollectionStatisticsResponse,
    dn::WatchedChannelsResponse,
    qc::GetLoadStateResponse,
    qc::GetShardLeadersResponse,
    qc::GetDistributionResponse,
    qn::SearchResponse,
    qn::QueryResponse,
    qn::GetDataDistributionResponse,
    ix::DescribeIndexResponse,
    ix::GetSegmentIndexesResponse,
    ix::GetJobStatsResponse,
);

/// Served by rootcoord.
pub mod rootcoord {
    use super::*;
    rpcs!(Role::RootCoord;
        AllocTimestamp => rc::AllocTimestampRequest => rc::AllocTimestampResponse;
        AllocId => rc::AllocIdRequest => rc::AllocIdResponse;
        CreateCollection => rc::CreateCollectionRequest => c::StatusResponse;
        DropCollection => rc::DropCollectionRequest => c::StatusResponse;
        DescribeCollection => rc::DescribeCollectionRequest => rc::DescribeCollectionResponse;
        ShowCollections => rc::ShowCollectionsRequest => rc::ShowCollectionsResponse;
        RenameCollection => rc::RenameCollectionRequest => c::StatusResponse;
        CreatePartition => rc::CreatePartitionRequest => c::StatusResponse;
        DropPartition => rc::DropPartitionRequest => c::StatusResponse;
        ShowPartitions => rc::ShowPartitionsRequest => rc::ShowPartitionsResponse;
        SyncTimeTick => rc::SyncTimeTickRequest => rc::SyncTimeTickResponse;
    );
}

/// Served by each proxy.
pub mod proxy {
    use super::*;
    rpcs!(Role::Proxy;
        ConfirmTimeTick => px::ConfirmTimeTickRequest => px::ConfirmTimeTickResponse;
    );
}

/// Served by datacoord.
pub mod datacoord {
    use super::*;
    rpcs!(Role::DataCoord;
        AssignSegment => dc::AssignSegmentRequest => dc::AssignSegmentResponse;
        Flush => dc::FlushRequest => dc::FlushResponse;
        GetFlushState => dc::GetFlushStateRequest => dc::GetFlushStateResponse;
        SaveBinlogPaths => dc::SaveBinlogPathsRequest => c::StatusResponse;
        UpdateChannelCheckpoint => dc::UpdateChannelCheckpointRequest => c::StatusResponse;
        ReportDataNodeStats => dc::ReportDataNodeStatsRequest => c::StatusResponse;
        GetRecoveryInfo => dc::GetRecoveryInfoRequest => dc::GetRecoveryInfoResponse;
        GetSegmentInfo => dc::GetSegmentInfoRequest => dc::GetSegmentInfoResponse;
        GetCollectionStatistics => dc::GetCollectionStatisticsRequest => dc::GetCollectionStatisticsResponse;
        WatchChannels => dc::WatchChannelsRequest => c::StatusResponse;
        DropCollectionData => dc::DropCollectionDataRequest => c::StatusResponse;
    );
}

/// Served by each data node.
pub mod datanode {
    use super::*;
    rpcs!(Role::DataNode;
        WatchDmChannel => dn::WatchDmChannelRequest => c::StatusResponse;
        UnwatchDmChannel => dn::UnwatchDmChannelRequest => c::StatusResponse;
        FlushSegments => dn::FlushSegmentsRequest => c::StatusResponse;
        WatchedChannels => dn::WatchedChannelsRequest => dn::WatchedChannelsResponse;
    );
}

/// Served by querycoord.
pub mod querycoord {
    use super::*;
    rpcs!(Role::QueryCoord;
        LoadCollection => qc::LoadCollectionRequest => c::StatusResponse;
        LoadPartitions => qc::LoadPartitionsRequest => c::StatusResponse;
        ReleaseCollection => qc::ReleaseCollectionRequest => c::StatusResponse;
        ReleasePartitions => qc::ReleasePartitionsRequest => c::StatusResponse;
        GetLoadState => qc::GetLoadStateRequest => qc::GetLoadStateResponse;
        GetShardLeaders => qc::GetShardLeadersRequest => qc::GetShardLeadersResponse;
        GetDistribution => qc::GetDistributionRequest => qc::GetDistributionResponse;
    );
}

/// Served by each query node.
pub mod querynode {
    use super::*;
    rpcs!(Role::QueryNode;
        WatchDmChannel => qn::WatchDmChannelRequest => c::StatusResponse;
        UnsubDmChannel => qn::UnsubDmChannelRequest => c::StatusResponse;
        LoadSegments => qn::LoadSegmentsRequest => c::StatusResponse;
        ReleaseSegments => qn::ReleaseSegmentsRequest => c::StatusResponse;
        SyncDistribution => qn::SyncDistributionRequest => c::StatusResponse;
        ApplyDelete => qn::ApplyDeleteRequest => c::StatusResponse;
        Search => qn::SearchRequest => qn::SearchResponse;
        Query => qn::QueryRequest => qn::QueryResponse;
        GetDataDistribution => qn::GetDataDistributionRequest => qn::GetDataDistributionResponse;
    );
}

/// Served by indexcoord.
pub mod indexcoord {
    use super::*;
    rpcs!(Role::IndexCoord;
        CreateIndex => ix::CreateIndexRequest => c::StatusResponse;
        DescribeIndex => ix::DescribeIndexRequest => ix::DescribeIndexResponse;
        DropIndex => ix::DropIndexRequest => c::StatusResponse;
        DropCollectionIndexes => ix::DropCollectionIndexesRequest => c::StatusResponse;
        GetSegmentIndexes => ix::GetSegmentIndexesRequest => ix::GetSegmentIndexesResponse;
        ReportBuildResult => ix::ReportBuildResultRequest => c::StatusResponse;
        ReportCorruptIndex => ix::ReportCorruptIndexRequest => c::StatusResponse;
    );
}

/// Served by each index node.
pub mod indexnode {
    use super::*;
    rpcs!(Role::IndexNode;
        BuildIndex => ix::BuildIndexRequest => c::StatusResponse;
        GetJobStats => ix::GetJobStatsRequest => ix::GetJobStatsResponse;
    );
}
