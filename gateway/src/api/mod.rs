//! The Kafka APIs the gateway offers, each translated into calls of Kafdo's HTTP API.
//!
//! [`OFFERED`] is the version table ApiVersions advertises: exactly the versions decoded here,
//! covering what librdkafka 2.16, kafka-python 3.0 and kafkajs 2.2 send. One module per area;
//! each handler takes the decoded request and its version and builds the answer for that
//! version (the `kafka-protocol` crate refuses to encode a field the version lacks).

mod configs;
mod delete_records;
mod fetch;
mod metadata;
mod offsets;
mod produce;
mod topics;
mod txn;

use bytes::Bytes;
use kafdo_client::Client;
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ApiKey, ApiVersionsRequest,
    ApiVersionsResponse, CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest,
    CreateTopicsResponse, DeleteRecordsRequest, DeleteRecordsResponse, DeleteTopicsRequest,
    DeleteTopicsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    DescribeProducersRequest, DescribeProducersResponse, DescribeTransactionsRequest,
    DescribeTransactionsResponse, EndTxnRequest, EndTxnResponse, FetchRequest, FetchResponse,
    FindCoordinatorRequest, FindCoordinatorResponse, InitProducerIdRequest, InitProducerIdResponse,
    ListOffsetsRequest, ListOffsetsResponse, ListTransactionsRequest, ListTransactionsResponse,
    MetadataRequest, MetadataResponse, ProduceRequest, ProduceResponse,
};
use kafka_protocol::ResponseError;

use crate::server::{self, FrameError};

/// The APIs offered, with the lowest and highest version of each.
pub const OFFERED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 9),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::FindCoordinator, 0, 4),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::AddPartitionsToTxn, 0, 3),
    (ApiKey::EndTxn, 0, 3),
    (ApiKey::ListTransactions, 0, 2),
    (ApiKey::DescribeTransactions, 0, 0),
    (ApiKey::DescribeProducers, 0, 0),
];

/// The versions of `key` the gateway offers, if any.
pub fn offered(key: ApiKey) -> Option<(i16, i16)> {
    OFFERED
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, low, high)| (*low, *high))
}

/// The node the gateway advertises itself as: the single broker of the cluster.
#[derive(Clone, Debug)]
pub struct Node {
    /// Always 0.
    pub id: i32,
    /// The host clients connect to.
    pub host: String,
    /// The port clients connect to.
    pub port: i32,
}

/// What every handler needs: Kafdo's HTTP API and the node to advertise. Nothing else: the
/// gateway keeps no state that a restart could lose.
pub struct Gateway {
    /// The Kafdo deployment.
    pub kafdo: Client,
    /// This gateway as clients see it.
    pub node: Node,
}

/// A decoded request of an offered API.
#[derive(Debug)]
pub enum Request {
    /// ApiVersions.
    ApiVersions(ApiVersionsRequest),
    /// Metadata.
    Metadata(MetadataRequest),
    /// Produce.
    Produce(ProduceRequest),
    /// Fetch.
    Fetch(FetchRequest),
    /// ListOffsets.
    ListOffsets(ListOffsetsRequest),
    /// FindCoordinator.
    FindCoordinator(FindCoordinatorRequest),
    /// CreateTopics.
    CreateTopics(CreateTopicsRequest),
    /// DeleteTopics.
    DeleteTopics(DeleteTopicsRequest),
    /// InitProducerId.
    InitProducerId(InitProducerIdRequest),
    /// DescribeConfigs.
    DescribeConfigs(DescribeConfigsRequest),
    /// DeleteRecords.
    DeleteRecords(DeleteRecordsRequest),
    /// AddPartitionsToTxn.
    AddPartitionsToTxn(AddPartitionsToTxnRequest),
    /// EndTxn.
    EndTxn(EndTxnRequest),
    /// ListTransactions.
    ListTransactions(ListTransactionsRequest),
    /// DescribeTransactions.
    DescribeTransactions(DescribeTransactionsRequest),
    /// DescribeProducers.
    DescribeProducers(DescribeProducersRequest),
    /// CreatePartitions.
    CreatePartitions(CreatePartitionsRequest),
}

/// An answer, before encoding.
#[derive(Debug)]
pub enum Answer {
    /// ApiVersions.
    ApiVersions(ApiVersionsResponse),
    /// Metadata.
    Metadata(MetadataResponse),
    /// Produce.
    Produce(ProduceResponse),
    /// Fetch.
    Fetch(FetchResponse),
    /// ListOffsets.
    ListOffsets(ListOffsetsResponse),
    /// FindCoordinator.
    FindCoordinator(FindCoordinatorResponse),
    /// CreateTopics.
    CreateTopics(CreateTopicsResponse),
    /// DeleteTopics.
    DeleteTopics(DeleteTopicsResponse),
    /// InitProducerId.
    InitProducerId(InitProducerIdResponse),
    /// DescribeConfigs.
    DescribeConfigs(DescribeConfigsResponse),
    /// DeleteRecords.
    DeleteRecords(DeleteRecordsResponse),
    /// AddPartitionsToTxn.
    AddPartitionsToTxn(AddPartitionsToTxnResponse),
    /// EndTxn.
    EndTxn(EndTxnResponse),
    /// ListTransactions.
    ListTransactions(ListTransactionsResponse),
    /// DescribeTransactions.
    DescribeTransactions(DescribeTransactionsResponse),
    /// DescribeProducers.
    DescribeProducers(DescribeProducersResponse),
    /// CreatePartitions.
    CreatePartitions(CreatePartitionsResponse),
}

impl Request {
    /// Decodes the request body of an offered API at `version`.
    pub fn decode(key: ApiKey, version: i16, buf: &mut Bytes) -> Result<Request, FrameError> {
        macro_rules! body {
            ($variant:ident) => {
                Request::$variant(server::decode(key, version, version, buf)?)
            };
        }
        Ok(match key {
            ApiKey::ApiVersions => body!(ApiVersions),
            ApiKey::Metadata => body!(Metadata),
            ApiKey::Produce => body!(Produce),
            ApiKey::Fetch => body!(Fetch),
            ApiKey::ListOffsets => body!(ListOffsets),
            ApiKey::FindCoordinator => body!(FindCoordinator),
            ApiKey::CreateTopics => body!(CreateTopics),
            ApiKey::DeleteTopics => body!(DeleteTopics),
            ApiKey::InitProducerId => body!(InitProducerId),
            ApiKey::DescribeConfigs => body!(DescribeConfigs),
            ApiKey::DeleteRecords => body!(DeleteRecords),
            ApiKey::AddPartitionsToTxn => body!(AddPartitionsToTxn),
            ApiKey::EndTxn => body!(EndTxn),
            ApiKey::ListTransactions => body!(ListTransactions),
            ApiKey::DescribeTransactions => body!(DescribeTransactions),
            ApiKey::DescribeProducers => body!(DescribeProducers),
            ApiKey::CreatePartitions => body!(CreatePartitions),
            other => return Err(FrameError::Unsupported(other, version)),
        })
    }
}

impl Answer {
    /// The answer frame for a request of `key` at `version`.
    pub fn encode_frame(
        &self,
        key: ApiKey,
        version: i16,
        header_version: i16,
        correlation_id: i32,
    ) -> Result<Bytes, FrameError> {
        let e = |body: &dyn EncodeBody| body.frame(key, version, header_version, correlation_id);
        match self {
            Answer::ApiVersions(a) => e(a),
            Answer::Metadata(a) => e(a),
            Answer::Produce(a) => e(a),
            Answer::Fetch(a) => e(a),
            Answer::ListOffsets(a) => e(a),
            Answer::FindCoordinator(a) => e(a),
            Answer::CreateTopics(a) => e(a),
            Answer::DeleteTopics(a) => e(a),
            Answer::InitProducerId(a) => e(a),
            Answer::DescribeConfigs(a) => e(a),
            Answer::DeleteRecords(a) => e(a),
            Answer::AddPartitionsToTxn(a) => e(a),
            Answer::EndTxn(a) => e(a),
            Answer::ListTransactions(a) => e(a),
            Answer::DescribeTransactions(a) => e(a),
            Answer::DescribeProducers(a) => e(a),
            Answer::CreatePartitions(a) => e(a),
        }
    }
}

/// An answer body that can be framed (object-safe over the crate's `Encodable`).
trait EncodeBody {
    fn frame(
        &self,
        key: ApiKey,
        version: i16,
        header_version: i16,
        correlation_id: i32,
    ) -> Result<Bytes, FrameError>;
}

impl<T: kafka_protocol::protocol::Encodable> EncodeBody for T {
    fn frame(
        &self,
        key: ApiKey,
        version: i16,
        header_version: i16,
        correlation_id: i32,
    ) -> Result<Bytes, FrameError> {
        server::encode_answer(key, version, header_version, correlation_id, self)
    }
}

impl Gateway {
    /// Serves one request; `None` when it gets no answer (a produce with `acks=0`).
    pub async fn serve(&self, request: Request, version: i16) -> Option<Answer> {
        Some(match request {
            Request::ApiVersions(_) => Answer::ApiVersions(api_versions(None)),
            Request::Metadata(r) => Answer::Metadata(self.metadata(r, version).await),
            Request::Produce(r) => return self.produce(r, version).await.map(Answer::Produce),
            Request::Fetch(r) => Answer::Fetch(self.fetch(r, version).await),
            Request::ListOffsets(r) => Answer::ListOffsets(self.list_offsets(r, version).await),
            Request::FindCoordinator(r) => {
                Answer::FindCoordinator(self.find_coordinator(r, version))
            }
            Request::CreateTopics(r) => Answer::CreateTopics(self.create_topics(r, version).await),
            Request::DeleteTopics(r) => Answer::DeleteTopics(self.delete_topics(r, version).await),
            Request::InitProducerId(r) => {
                Answer::InitProducerId(self.init_producer_id(r, version).await)
            }
            Request::AddPartitionsToTxn(r) => {
                Answer::AddPartitionsToTxn(self.add_partitions_to_txn(r, version).await)
            }
            Request::EndTxn(r) => Answer::EndTxn(self.end_txn(r, version).await),
            Request::ListTransactions(r) => {
                Answer::ListTransactions(self.list_transactions(r, version).await)
            }
            Request::DescribeTransactions(r) => {
                Answer::DescribeTransactions(self.describe_transactions(r, version).await)
            }
            Request::DescribeProducers(r) => {
                Answer::DescribeProducers(self.describe_producers(r, version).await)
            }
            Request::CreatePartitions(r) => {
                Answer::CreatePartitions(self.create_partitions(r, version).await)
            }
            Request::DeleteRecords(r) => {
                Answer::DeleteRecords(self.delete_records(r, version).await)
            }
            Request::DescribeConfigs(r) => {
                Answer::DescribeConfigs(self.describe_configs(r, version).await)
            }
        })
    }
}

/// The ApiVersions answer: [`OFFERED`], with `error`.
fn api_versions(error: Option<ResponseError>) -> ApiVersionsResponse {
    use kafka_protocol::messages::api_versions_response::ApiVersion;
    ApiVersionsResponse::default()
        .with_error_code(code(error))
        .with_api_keys(
            OFFERED
                .iter()
                .map(|(key, low, high)| {
                    ApiVersion::default()
                        .with_api_key(*key as i16)
                        .with_min_version(*low)
                        .with_max_version(*high)
                })
                .collect(),
        )
}

/// The answer to an ApiVersions request newer than the gateway knows.
pub fn unsupported_api_versions() -> ApiVersionsResponse {
    api_versions(Some(ResponseError::UnsupportedVersion))
}

/// An error code and no error, as the crate writes them.
fn code(error: Option<ResponseError>) -> i16 {
    error.map_or(0, |e| e.code())
}
