//! The metadata object's host (named `cluster`), over [`kafdo_metadata::Metadata`]: the topic
//! list, the producer-id counter and the registry of groups. It has no alarm.

use kafdo_metadata::{Metadata, MetadataError};
use kafdo_sql::Sql;
use kafdo_types::api::CreateTopicRequest;
use kafdo_types::rpc::{
    AddPartitionsToTopic, AllocateKeyProducerIds, AllocateProducerIds, DeleteTopicRequest,
    ListGroupsRequest, ListTopicsRequest, MetadataCall, ProducerIdBlock, ProducerIdMarksRequest,
    RegisterGroupRequest, TopicRequest,
};
use kafdo_types::ApiError;

use super::{reply, Effects, Served};

fn api_error(e: MetadataError) -> ApiError {
    ApiError::new(e.code(), e.to_string())
}

/// The metadata object's memory: its core, opened on the first call (opening creates the
/// schema).
pub struct MetadataHost<S: Sql> {
    sql: S,
    core: Option<Metadata<S>>,
}

impl<S: Sql + Clone> MetadataHost<S> {
    /// A host over the object's storage.
    pub fn new(sql: S) -> Self {
        Self { sql, core: None }
    }

    /// The core, opened if it is not.
    pub fn core(&mut self) -> Result<&mut Metadata<S>, ApiError> {
        if self.core.is_none() {
            self.core = Some(Metadata::open(self.sql.clone()).map_err(api_error)?);
        }
        Ok(self.core.as_mut().expect("opened above"))
    }

    /// The instance lost its memory.
    pub fn restart(&mut self) {
        self.core = None;
    }

    /// Serves one call.
    pub fn serve(&mut self, call: MetadataCall, now_ms: i64) -> Served {
        let core = self.core();
        let answer = match call {
            MetadataCall::CreateTopic(req) => reply::<CreateTopicRequest>(
                core.and_then(|c| c.create_topic(&req, now_ms).map_err(api_error)),
            ),
            MetadataCall::Topic(req) => {
                reply::<TopicRequest>(core.and_then(|c| c.topic(&req.name).map_err(api_error)))
            }
            MetadataCall::ListTopics(_) => {
                reply::<ListTopicsRequest>(core.and_then(|c| c.list_topics().map_err(api_error)))
            }
            MetadataCall::AddPartitions(req) => reply::<AddPartitionsToTopic>(
                core.and_then(|c| c.add_partitions(&req.name, req.count).map_err(api_error)),
            ),
            MetadataCall::DeleteTopic(req) => reply::<DeleteTopicRequest>(core.and_then(|c| {
                c.delete_topic(&req.name, req.topic_id.as_deref())
                    .map_err(api_error)
            })),
            MetadataCall::AllocateProducerIds(req) => {
                reply::<AllocateProducerIds>(core.and_then(|c| {
                    let ids = c.allocate_producer_ids(req.count).map_err(api_error)?;
                    Ok(ProducerIdBlock {
                        start: ids.start,
                        end: ids.end,
                    })
                }))
            }
            MetadataCall::AllocateKeyProducerIds(req) => {
                reply::<AllocateKeyProducerIds>(core.and_then(|c| {
                    let ids = c.allocate_key_producer_ids(req.count).map_err(api_error)?;
                    Ok(ProducerIdBlock {
                        start: ids.start,
                        end: ids.end,
                    })
                }))
            }
            MetadataCall::ProducerIdMarks(_) => reply::<ProducerIdMarksRequest>(
                core.and_then(|c| c.producer_id_marks().map_err(api_error)),
            ),
            MetadataCall::RegisterGroup(req) => reply::<RegisterGroupRequest>(
                core.and_then(|c| c.register_group(&req.group_id, now_ms).map_err(api_error)),
            ),
            MetadataCall::ListGroups(req) => reply::<ListGroupsRequest>(core.and_then(|c| {
                c.list_groups(req.after.as_deref(), req.limit)
                    .map_err(api_error)
            })),
        };
        Served {
            answer,
            effects: Effects::default(),
        }
    }
}
